"""Real OpenSSH keys for tests, made by ssh-keygen (so OpenSSH itself vouches for their format)."""

from __future__ import annotations

import subprocess
from pathlib import Path


def ed25519_keypair(path: Path, comment: str | None = None) -> str:
    """Write an unencrypted ed25519 key pair at `path` (+ `.pub`); return the public key line."""
    comment_args = ["-C", comment] if comment is not None else []
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", *comment_args, "-f", str(path)],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        check=True,
    )
    return Path(f"{path}.pub").read_text()
