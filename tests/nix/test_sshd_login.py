"""The developer's login path against a real OpenSSH sshd on loopback (Debian's openssh-server).

The keys command is laid out as nix/modules/base.nix lays it out: a root-owned 0755 wrapper under
etc/ssh that execs the key script from a 1775 "store", run by sshd as an unprivileged
AuthorizedKeysCommandUser (here `nobody`, a real account) with the cache in var/cache. sshd's
safe_path wants every component up to / root-owned and not group/world-writable, so the tree lives
under /run (root 0755), not /tmp (1777). A local HTTP server stands in for
https://github.com/<user>.keys; sshd gives the command an empty environment, so the test's wrapper
(test-only) exports DEVSERVER_GITHUB_URL before the same `exec` line the module writes.
Needs root (sshd, a throwaway login account), /usr/sbin/sshd, ssh and ssh-keygen.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import socket
import stat
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from tests.sshkeys import ed25519_keypair

REPO = Path(__file__).resolve().parents[2]
KEYS_SCRIPT = REPO / "nix" / "scripts" / "github-authorized-keys.sh"
VERIFY_SCRIPT = REPO / "nix" / "scripts" / "verify-login.sh"
SSHD = "/usr/sbin/sshd"
GITHUB_USER = "octocat"
# nix/modules/base.nix: the wrapper's place and the arguments after %u.
WRAPPER = "etc/ssh/devserver-github-authorized-keys"
STORE_SCRIPT = "nix/store/00000000000000000000000000000000-devserver-github-authorized-keys/bin/devserver-github-authorized-keys"

BASE_NIX = REPO / "nix" / "modules" / "base.nix"
HARNESS = REPO / "tests" / "nix" / "eval-modules.nix"


def nixos_authorized_keys_file(in_homedir: bool) -> str:
    """The AuthorizedKeysFile line nixpkgs' sshd.nix renders (nixos/modules/services/networking/
    ssh/sshd.nix, master as indexed): `lib.optional cfg.authorizedKeysInHomedir
    "%h/.ssh/authorized_keys" ++ [ "/etc/ssh/authorized_keys.d/%u" ]`, then
    "AuthorizedKeysFile ${toString cfg.authorizedKeysFiles}"."""
    files = ["%h/.ssh/authorized_keys"] if in_homedir else []
    return "AuthorizedKeysFile " + " ".join([*files, "/etc/ssh/authorized_keys.d/%u"])


def module_in_homedir() -> bool:
    """nix/modules/base.nix's services.openssh.authorizedKeysInHomedir (upstream default: true)."""
    found = re.findall(
        r"^\s*authorizedKeysInHomedir = (?:lib\.mk\w+ )?(true|false);", BASE_NIX.read_text(), re.M
    )
    assert len(found) <= 1, f"{BASE_NIX} sets authorizedKeysInHomedir more than once: {found}"
    return found == [] or found[0] == "true"


def module_authorized_keys_file() -> str:
    """The line the devserver modules give sshd: evaluated from the modules when Nix and a nixpkgs
    lib are at hand (NIXPKGS_LIB), else base.nix's setting through the same rendering rule
    (tests/nix/test_module_eval.py checks that both agree)."""
    lib = os.environ.get("NIXPKGS_LIB", "")
    if lib and shutil.which("nix-instantiate"):
        done = subprocess.run(
            [
                *("nix-instantiate", "--option", "experimental-features", ""),
                *("--eval", "--strict", "--json", str(HARNESS), "--arg", "libPath", lib),
                *("-A", "sshdAuthorizedKeysFile"),
            ],
            capture_output=True,
            text=True,
            check=True,
            env={**os.environ, "NIX_PATH": ""},
        )
        line: str = json.loads(done.stdout)
        return line
    return nixos_authorized_keys_file(module_in_homedir())


pytestmark = [
    pytest.mark.skipif(os.geteuid() != 0, reason="sshd and a throwaway login account need root"),
    pytest.mark.skipif(
        not (Path(SSHD).exists() and shutil.which("ssh") and shutil.which("ssh-keygen")),
        reason="needs Debian's openssh-server and openssh-client (scripts/test installs them)",
    ),
]


def _safe_base() -> Path:
    """A root-owned, not group/world-writable directory chain to / for sshd's safe_path."""
    for candidate in (Path("/run"), Path("/var/lib")):
        chain = [candidate, *candidate.parents]
        if all(p.stat().st_uid == 0 and not p.stat().st_mode & 0o022 for p in chain):
            return candidate
    pytest.skip("no root-owned 0755 directory chain (/run or /var/lib) for sshd's safe_path")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class GitHubStandIn:
    """Serves GET /<user>.keys with the configured body; records the paths asked for."""

    body: str
    requests: list[str] = field(default_factory=list)
    server: ThreadingHTTPServer | None = None
    delay: float = 0.0
    """Seconds before each answer: a slow GitHub."""

    @property
    def url(self) -> str:
        assert self.server is not None
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def start(self) -> None:
        stand_in = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                stand_in.requests.append(self.path)
                time.sleep(stand_in.delay)
                payload = stand_in.body.encode()
                self.send_response(200 if self.path == f"/{GITHUB_USER}.keys" else 404)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, format: str, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()


@dataclass
class Machine:
    """The on-disk layout of a dev server's login path, a developer account and a client key."""

    root: Path
    user: str
    client_key: Path
    github: GitHubStandIn
    keys_timeout: int = 2
    """The keys command's timeout argument (ssh.keysTimeoutSeconds; the module's default is 5)."""

    @property
    def wrapper(self) -> Path:
        return self.root / WRAPPER

    @property
    def store_script(self) -> Path:
        return self.root / STORE_SCRIPT

    @property
    def cache(self) -> Path:
        return self.root / "var" / "cache" / "devserver-ssh-keys"

    def use_github(self, github: GitHubStandIn) -> None:
        """The module's wrapper, plus one test-only line: sshd passes no DEVSERVER_GITHUB_URL."""
        self.github = github
        self.wrapper.write_text(
            f'#!/bin/sh\nexport DEVSERVER_GITHUB_URL={github.url}\nexec {self.store_script} "$@"\n'
        )
        self.wrapper.chmod(0o755)

    def age_cache(self) -> None:
        """An hour passes: the keys helper's cache is no longer fresh, so GitHub is asked again."""
        hour_ago = time.time() - 3600
        for path in self.cache.iterdir():
            os.utime(path, (hour_ago, hour_ago))

    def authorized_keys_file(self) -> str:
        # The module's line, with absolute paths moved into this test's tree (%h and %u stay).
        return module_authorized_keys_file().replace(" /etc/", f" {self.root}/etc/")

    def keys_command(self, program: Path) -> str:
        # base.nix: "<wrapper> %u <user> <githubUser> <cache dir> <timeout>".
        return f"{program} %u {self.user} {GITHUB_USER} {self.cache} {self.keys_timeout}"

    def sshd_config(self, program: Path, port: int) -> Path:
        config = self.root / f"sshd_config.{port}"
        config.write_text(
            f"Port {port}\n"
            "ListenAddress 127.0.0.1\n"
            f"HostKey {self.root / 'etc/ssh/ssh_host_ed25519_key'}\n"
            "PidFile none\n"
            # NixOS runs sshd with PAM (services.openssh.settings.UsePAM defaults to true).
            "UsePAM yes\n"
            "PasswordAuthentication no\n"
            "KbdInteractiveAuthentication no\n"
            "PubkeyAuthentication yes\n"
            "PermitRootLogin prohibit-password\n"
            f"{self.authorized_keys_file()}\n"
            f"AuthorizedKeysCommand {self.keys_command(program)}\n"
            "AuthorizedKeysCommandUser nobody\n"
            "LogLevel VERBOSE\n"
        )
        return config


@pytest.fixture(scope="module")
def layout() -> Iterator[tuple[Path, str, Path]]:
    """The root-owned tree, a throwaway developer account and its client key pair."""
    root = Path(tempfile.mkdtemp(prefix="devserver-sshd-test-", dir=_safe_base()))
    user = "dvs" + secrets.token_hex(4)
    try:
        root.chmod(0o755)  # sshd stats the command as AuthorizedKeysCommandUser
        (root / "etc" / "ssh").mkdir(parents=True)
        ed25519_keypair(root / "etc/ssh/ssh_host_ed25519_key")
        home = root / "home" / user
        # -M: the home is made below; no password, like an immutable NixOS user ("!" in shadow).
        subprocess.run(["useradd", "-M", "-d", str(home), "-s", "/bin/sh", "-U", user], check=True)
        home.mkdir(parents=True)
        shutil.chown(home, user, user)
        client_key = root / "client" / "id_ed25519"
        client_key.parent.mkdir(mode=0o700)
        ed25519_keypair(client_key, "fake-dev-key")
        # The "store": root:<a group with other members> 1775, like /nix/store (root:nixbld). Debian's
        # sshd (patch "Allow harmless group-writability") accepts a group-writable directory when
        # the group's only member is its owner, so root:root would not show upstream's refusal;
        # nogroup's member is nobody, so Debian and upstream both refuse it.
        script = root / STORE_SCRIPT
        script.parent.mkdir(parents=True)
        # What writeShellApplication adds: a bash shebang, strict mode and the runtime PATH.
        script.write_text(
            "#!/bin/bash\nset -o errexit -o nounset -o pipefail\nexport PATH=/usr/bin:/bin\n"
            + KEYS_SCRIPT.read_text()
        )
        script.chmod(0o555)
        shutil.chown(root / "nix" / "store", "root", "nogroup")
        (root / "nix" / "store").chmod(0o1775)
        yield root, user, client_key
    finally:
        subprocess.run(["userdel", user], check=False, capture_output=True)
        subprocess.run(["groupdel", user], check=False, capture_output=True)
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def machine(layout: tuple[Path, str, Path]) -> Iterator[Machine]:
    root, user, client_key = layout
    github = GitHubStandIn(body=Path(f"{client_key}.pub").read_text())
    github.start()
    m = Machine(root, user, client_key, github)
    # A fresh cache per test, owned by the command user as the module's tmpfiles rule makes it.
    shutil.rmtree(m.cache, ignore_errors=True)
    m.cache.mkdir(parents=True)
    shutil.chown(m.cache, "nobody", "nogroup")
    m.use_github(github)
    try:
        yield m
    finally:
        m.github.stop()


@dataclass
class Sshd:
    proc: subprocess.Popen[bytes]
    port: int
    log: Path
    config: Path

    def text(self) -> str:
        return self.log.read_text(errors="replace")


StartSshd = Callable[[Path], Sshd]


@pytest.fixture
def start_sshd(machine: Machine) -> Iterator[Callable[[Path], Sshd]]:
    started: list[Sshd] = []

    def start(program: Path) -> Sshd:
        # Debian's unit makes the privilege-separation directory (RuntimeDirectory=sshd).
        Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)
        port = _free_port()
        config = machine.sshd_config(program, port)
        log = machine.root / f"sshd.{port}.log"
        proc = subprocess.Popen(
            [SSHD, "-D", "-e", "-f", str(config)],
            stdout=subprocess.DEVNULL,
            stderr=log.open("wb"),
        )
        daemon = Sshd(proc, port, log, config)
        started.append(daemon)
        deadline = time.monotonic() + 10
        while True:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1):
                    return daemon
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"sshd did not start on port {port}:\n{daemon.text()}")
                time.sleep(0.05)

    try:
        yield start
    finally:
        for daemon in started:
            daemon.proc.terminate()
            try:
                daemon.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                daemon.proc.kill()
                daemon.proc.wait()


def ssh_login(machine: Machine, sshd: Sshd) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            *("ssh", "-F", "/dev/null", "-i", str(machine.client_key)),
            *("-o", "IdentitiesOnly=yes", "-o", "BatchMode=yes", "-o", "ConnectTimeout=5"),
            *("-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null"),
            *("-p", str(sshd.port), f"{machine.user}@127.0.0.1", "echo logged-in-as-$(id -un)"),
        ],
        capture_output=True,
        text=True,
        timeout=30,
    )


def verify_login(machine: Machine, sshd: Sshd) -> subprocess.CompletedProcess[str]:
    # Only systemctl is faked (no systemd unit here); sshd -T reads this test's config.
    fake_bin = machine.root / "fake-bin"
    fake_bin.mkdir(exist_ok=True)
    systemctl = fake_bin / "systemctl"
    systemctl.write_text('#!/bin/sh\n[ "$*" = "is-active --quiet sshd.service" ]\n')
    systemctl.chmod(0o755)
    return subprocess.run(
        ["bash", str(VERIFY_SCRIPT), "--user", machine.user],
        env={
            "PATH": f"{fake_bin}:/usr/sbin:/usr/bin:/sbin:/bin",
            "DEVSERVER_SSHD_CONFIG": str(sshd.config),
            "DEVSERVER_KEYS_TIMEOUT": "10",
        },
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_developer_logs_in_with_github_keys_through_the_root_owned_etc_wrapper(
    machine: Machine, start_sshd: StartSshd
) -> None:
    sshd = start_sshd(machine.wrapper)

    result = ssh_login(machine, sshd)

    assert result.returncode == 0, f"ssh: {result.stderr}\nsshd:\n{sshd.text()}"
    assert result.stdout.strip() == f"logged-in-as-{machine.user}"
    # sshd runs the command for the key query and again for the signed attempt.
    assert machine.github.requests and set(machine.github.requests) == {f"/{GITHUB_USER}.keys"}
    assert "Accepted publickey for " + machine.user in sshd.text()


def test_keys_command_in_a_group_writable_store_is_refused_by_sshd(
    machine: Machine, start_sshd: StartSshd
) -> None:
    # What the module did before: AuthorizedKeysCommand pointing straight into /nix/store (1775).
    assert stat.S_IMODE((machine.root / "nix" / "store").stat().st_mode) == 0o1775
    sshd = start_sshd(machine.store_script)

    result = ssh_login(machine, sshd)

    assert result.returncode == 255, f"ssh must be refused: {result.stdout}"
    log = sshd.text()
    assert (
        f'Unsafe AuthorizedKeysCommand "{machine.store_script}": '
        f"bad ownership or modes for directory {machine.root / 'nix' / 'store'}"
    ) in log, log
    assert machine.github.requests == [], "sshd never ran the command"


def test_github_outage_still_lets_the_developer_in_from_the_cached_keys(
    machine: Machine, start_sshd: StartSshd
) -> None:
    sshd = start_sshd(machine.wrapper)
    assert ssh_login(machine, sshd).returncode == 0, sshd.text()
    machine.github.stop()  # connection refused from now on
    machine.age_cache()

    result = ssh_login(machine, sshd)

    assert result.returncode == 0, f"ssh: {result.stderr}\nsshd:\n{sshd.text()}"
    assert result.stdout.strip() == f"logged-in-as-{machine.user}"
    assert "GitHub unreachable (HTTP 000); using cached keys" in sshd.text()


def test_outage_with_no_cache_offers_no_keys(machine: Machine, start_sshd: StartSshd) -> None:
    machine.github.stop()
    sshd = start_sshd(machine.wrapper)

    result = ssh_login(machine, sshd)

    assert result.returncode == 255, result.stdout
    assert "no cached keys" in sshd.text()


def test_verify_login_agrees_with_sshd_on_both_layouts(
    machine: Machine, start_sshd: StartSshd
) -> None:
    good = verify_login(machine, start_sshd(machine.wrapper))
    assert good.returncode == 0, good.stderr
    assert f"ok: 1 public key(s) for {machine.user}" in good.stderr

    bad = verify_login(machine, start_sshd(machine.store_script))
    assert bad.returncode == 2, bad.stderr
    assert f'Unsafe AuthorizedKeysCommand "{machine.store_script}"' in bad.stderr


def test_a_key_in_the_home_authorized_keys_is_refused_once_github_no_longer_lists_it(
    machine: Machine, start_sshd: StartSshd
) -> None:
    # The developer (or anything running as them) once copied the key into ~/.ssh/authorized_keys,
    # on the /home volume that outlives every rebuild and arch switch.
    ssh_dir = machine.root / "home" / machine.user / ".ssh"
    ssh_dir.mkdir(mode=0o700)
    shutil.copy(f"{machine.client_key}.pub", ssh_dir / "authorized_keys")
    (ssh_dir / "authorized_keys").chmod(0o600)
    for path in (ssh_dir, ssh_dir / "authorized_keys"):
        shutil.chown(path, machine.user, machine.user)
    try:
        sshd = start_sshd(machine.wrapper)
        assert ssh_login(machine, sshd).returncode == 0, sshd.text()
        machine.github.body = ""  # the key is revoked at GitHub
        machine.age_cache()  # once the helper's fresh-cache minute is over

        result = ssh_login(machine, sshd)

        assert result.returncode == 255, (
            f"a key GitHub no longer lists still logs in ({module_authorized_keys_file()}):\n"
            f"{sshd.text()}"
        )
    finally:
        shutil.rmtree(ssh_dir)
