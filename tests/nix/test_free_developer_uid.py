"""nix/scripts/free-developer-uid.sh on a copy of /etc/passwd and /etc/shadow: ssm-user is moved off
the developer's uid (by dropping its lines, so NixOS's users script creates it again), and nothing
else is touched."""

from __future__ import annotations

import os
import stat
import subprocess
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "nix" / "scripts" / "free-developer-uid.sh"
ROOT = "root:x:0:0:System administrator:/root:/run/current-system/sw/bin/bash\n"


def _etc(tmp_path: Path, passwd: str) -> Path:
    etc = tmp_path / "etc"
    etc.mkdir()
    (etc / "passwd").write_text(passwd)
    (etc / "passwd").chmod(0o644)
    names = [line.split(":", 1)[0] for line in passwd.splitlines()]
    (etc / "shadow").write_text("".join(f"{n}:!:1::::::\n" for n in names))
    (etc / "shadow").chmod(0o640)
    return etc


def _run(etc: Path, user: str = "alice") -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", str(SCRIPT), user, str(etc)],
        env={"PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        check=False,
    )


def test_ssm_user_sharing_the_developers_uid_is_dropped_for_the_users_script(
    tmp_path: Path,
) -> None:
    # What a server deployed with the old default (uid 1000) has on disk.
    etc = _etc(
        tmp_path,
        ROOT
        + "ssm-user:x:1000:997::/home/ssm-user:/run/current-system/sw/bin/sh\n"
        + "alice:x:1000:100:Alice:/home/alice:/run/current-system/sw/bin/zsh\n",
    )

    result = _run(etc)

    assert result.returncode == 0, result.stderr
    passwd = (etc / "passwd").read_text()
    assert "ssm-user:" not in passwd, "ssm-user must be created again on a free uid"
    assert "alice:x:1000:100:Alice:" in passwd, "the developer keeps the uid that owns /home"
    assert "root:x:0:0:" in passwd
    assert "ssm-user:" not in (etc / "shadow").read_text()
    assert "ssm-user shared uid 1000 with alice" in result.stdout
    assert stat.S_IMODE((etc / "passwd").stat().st_mode) == 0o644
    assert stat.S_IMODE((etc / "shadow").stat().st_mode) == 0o640
    assert sorted(p.name for p in etc.iterdir()) == ["passwd", "shadow"], "no temporary file left"


@pytest.mark.parametrize(
    "passwd",
    [
        # A fresh image: the developer does not exist yet and gets the declared uid (2000).
        ROOT + "ssm-user:x:1000:997::/home/ssm-user:/bin/sh\n",
        # A server created with the new default: nothing shared.
        ROOT
        + "ssm-user:x:1000:997::/home/ssm-user:/bin/sh\nalice:x:2000:100::/home/alice:/bin/zsh\n",
    ],
    ids=["fresh-image", "new-default"],
)
def test_nothing_changes_when_no_account_shares_the_developers_uid(
    tmp_path: Path, passwd: str
) -> None:
    etc = _etc(tmp_path, passwd)
    before = (etc / "passwd").stat().st_ino

    result = _run(etc)

    assert result.returncode == 0, result.stderr
    assert (etc / "passwd").read_text() == passwd
    assert (etc / "passwd").stat().st_ino == before, "/etc/passwd must not even be rewritten"
    assert result.stdout == ""


def test_another_account_on_the_developers_uid_is_reported_not_changed(tmp_path: Path) -> None:
    passwd = ROOT + "bob:x:2000:100::/home/bob:/bin/sh\nalice:x:2000:100::/home/alice:/bin/zsh\n"
    etc = _etc(tmp_path, passwd)

    result = _run(etc)

    assert result.returncode == 0, result.stderr
    assert (etc / "passwd").read_text() == passwd
    assert "WARNING: bob shares uid 2000 with alice" in result.stderr


@pytest.mark.skipif(os.geteuid() != 0, reason="chown --reference needs root to keep root:shadow")
def test_shadow_keeps_its_group(tmp_path: Path) -> None:
    etc = _etc(
        tmp_path,
        ROOT + "ssm-user:x:1000:997::/h:/bin/sh\nalice:x:1000:100::/home/alice:/bin/zsh\n",
    )
    os.chown(etc / "shadow", 0, 42)

    assert _run(etc).returncode == 0
    assert (etc / "shadow").stat().st_gid == 42
