# Accounts and identity rules: entry name, user, githubUser, fullName, email, hostName.

from __future__ import annotations

import re

from components.settings.declaration import ENTRY, SERVER, Key
from components.settings.reader import Context, Reader

# Accounts that exist on the machine: NixOS's own (users-groups.nix, ids.nix), the services this
# image runs (sshd, docker, nscd, dhcpcd, the SSM agent's ssm-user), and every account nix/ creates.
RESERVED_USERS = frozenset(
    (
        "root bin daemon adm lp sync shutdown halt mail news uucp operator games ftp nobody"
        " nogroup sshd messagebus polkituser systemd-journal systemd-network systemd-resolve"
        " systemd-timesync systemd-coredump systemd-oom nscd docker wheel users admin ec2-user"
        " nixbld dhcpcd avahi rtkit geoclue ssm-user keys kvm render input audio video tty utmp"
        " uuidd tss disk dialout cdrom floppy tape kmem systemd-journal-gateway"
        " devserver-keys"
    ).split()
)
# Prefixes of whole families of system accounts: nixbld1..N, systemd-*, and nix/'s own devserver-*.
RESERVED_USER_PREFIXES = ("nixbld", "systemd-", "devserver-")
# NixOS aborts evaluation on a user name of 32 characters or more (users-groups.nix).
USER_RE = re.compile(r"[a-z_][a-z0-9_-]{0,30}")
GITHUB_USER_RE = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9]|-(?=[A-Za-z0-9])){0,38}")
HOST_RE = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?")
# C0 controls, DEL and C1 controls: invisible in logs and refused by git config and /etc/passwd.
CONTROL_CHARS = r"\x00-\x1f\x7f-\x9f"
EMAIL_RE = re.compile(
    rf"[^@\s\"'`$\\{CONTROL_CHARS}]+@[^@\s\"'`$\\{CONTROL_CHARS}]+\.[^@\s\"'`$\\{CONTROL_CHARS}]+"
)
# Far above any GitHub account id (they count up from 1; about 2e8 in 2025) and a safe Nix integer.
MAX_GITHUB_USER_ID = 10**12
# RFC 5321's 256-octet path limit minus the angle brackets.
MAX_EMAIL_LENGTH = 254
# The full name is the account's GECOS field (NixOS passwdEntry: no ':' or newline) and a Nix
# string (nix_string escapes it; an apostrophe is plain text there).
FULL_NAME_RE = re.compile(rf"[^\"`$\\:{CONTROL_CHARS}]{{1,100}}")


def server_name(r: Reader, ctx: Context) -> str | None:
    """A fleet entry's own name (never inherited): its resources' names and its `servers` output."""
    found = r.source.get("name")
    name = found[0] if found else None
    if not isinstance(name, str) or not HOST_RE.fullmatch(name) or name == "devserver":
        r.fail(
            f"{ctx.prefix}name",
            name,
            "a server name: lower case letters, digits and -, at most 63, not 'devserver'",
        )
        return None
    return name


def user(r: Reader, ctx: Context) -> str:
    name = r.required(
        "user",
        USER_RE,
        "a Linux login name: lower case, digits, _ or -, at most 31 (NixOS's limit)",
        "the Linux login name on the machine, e.g. alice",
    )
    if name and (name in RESERVED_USERS or name.startswith(RESERVED_USER_PREFIXES)):
        r.fail(
            r.label("user"),
            name,
            "a login name that is not already a system account on the machine "
            "(root, sshd, docker, ssm-user, devserver-keys, nixbld*, systemd-*, …)",
        )
    return name


def github_user(r: Reader, ctx: Context) -> str:
    return r.required(
        "githubUser",
        GITHUB_USER_RE,
        "a GitHub user name (letters, digits, single hyphens, at most 39)",
        "the GitHub account whose public keys may log in",
    )


def github_user_id(r: Reader, ctx: Context) -> int | None:
    # GitHub user ids are positive; 0 (the declared default) means unset.
    return r.integer("githubUserId", 0, MAX_GITHUB_USER_ID, default=0) or None


def full_name(r: Reader, ctx: Context) -> str | None:
    return r.text(
        "fullName",
        FULL_NAME_RE,
        "1-100 printable characters without \", `, $, \\ or : (':' separates /etc/passwd fields)",
    )


def email(r: Reader, ctx: Context) -> str | None:
    address = r.text(
        "email", EMAIL_RE, "an email address without spaces, quotes or control characters"
    )
    if address is not None and len(address) > MAX_EMAIL_LENGTH:
        r.fail(
            r.label("email"),
            address,
            f"an email address of at most {MAX_EMAIL_LENGTH} characters",
        )
        return None
    return address


def host_name(r: Reader, ctx: Context) -> str | None:
    return r.text(
        "hostName",
        HOST_RE,
        "a host name: lower case letters, digits and -, at most 63",
        default=ctx.default_host,
    )


def host_name_from(text: str) -> str:
    """A valid host name made from a stack name (which may hold capitals, dots or underscores)."""
    return re.sub(r"[^a-z0-9-]+", "-", text.lower()).strip("-")[:63].rstrip("-") or "devserver"


# The keys this module's rules check, declared once (keys.py collects them; order = check order).
KEYS = (
    Key(
        "name",
        "string",
        ENTRY,
        server_name,
        "The server's name in a devserver:servers entry: its resources' names and its key in the "
        "servers output.",
        shown_default="required in each entry",
        details="Lower case letters, digits and -, at most 63, not `devserver`.",
        unique=True,
    ),
    Key(
        "user",
        "string",
        SERVER,
        user,
        "Linux login name on the machine (required for a single server; a fleet sets it per entry "
        "in servers), at most 31 characters. Must not be an account the machine already has "
        "(root, sshd, docker, ssm-user, devserver-keys, nixbld*, systemd-*, ...).",
        default="",
        shown_default="required",
        details="Also refused: `devserver-*`, every NixOS system account.",
        unique=True,
    ),
    Key(
        "githubUser",
        "string",
        SERVER,
        github_user,
        "GitHub account whose public keys (https://github.com/<user>.keys) may log in as the user "
        "(required for a single server; a fleet sets it per entry in servers).",
        default="",
        shown_default="required",
    ),
    Key(
        "githubUserId",
        "integer",
        SERVER,
        github_user_id,
        "The numeric id of the githubUser account (its id in "
        "`curl https://api.github.com/users/<githubUser>`). When set, the machine offers the "
        "account's keys only while GitHub says "
        "the login still belongs to this id, so a renamed account's freed login, registered by "
        "someone else, is not let in.",
        default=0,
        shown_default="unset (the login is not pinned)",
        details='A whole number; 0 means unset. See docs/security.md, "Who can log in".',
    ),
    Key(
        "fullName",
        "string",
        SERVER,
        full_name,
        "Full name for git commits on the machine. Defaults to the user name.",
        default="",
        shown_default="the user name",
        details='1-100 characters, no control characters and no `"`, `` ` ``, `$`, `\\` or `:` '
        "(an apostrophe is fine).",
    ),
    Key(
        "email",
        "string",
        SERVER,
        email,
        "Email for git commits on the machine. Defaults to <githubUser>@users.noreply.github.com.",
        default="",
        shown_default="`<githubUser>@users.noreply.github.com`",
        details="No spaces, quotes or control characters; at most 254 characters.",
    ),
    Key(
        "hostName",
        "string",
        SERVER,
        host_name,
        "Host name of the machine and name of its nixosConfiguration. Defaults to "
        "devserver-<stack>.",
        default="",
        shown_default="`devserver-<stack>` (a fleet entry: its name)",
        unique=True,
    ),
)
