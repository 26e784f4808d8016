# Nix signing keys (`name:base64`) from the Ed25519 key pair pulumi-tls generates in OpenSSH format.

from __future__ import annotations

import base64
import binascii
import re

# openssh-portable PROTOCOL.key: the armour, the magic, and an Ed25519 key's type name.
_OPENSSH_BEGIN = "-----BEGIN OPENSSH " + "PRIVATE KEY-----"
_OPENSSH_END = "-----END OPENSSH " + "PRIVATE KEY-----"
_OPENSSH_MAGIC = b"openssh-key-v1\x00"
_ED25519 = b"ssh-ed25519"
# libsodium crypto_sign_SECRETKEYBYTES (seed || public key) and crypto_sign_PUBLICKEYBYTES.
SECRET_KEY_BYTES = 64
PUBLIC_KEY_BYTES = 32
# A Nix key name: anything up to the first ':' (libutil signature/local-keys.cc); kept to the
# characters Nix's own examples use, so it is safe in nix.conf and on a command line.
KEY_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")


class KeyFormatError(ValueError):
    """A key that cannot be converted; the message never contains key material."""


def _string(data: bytes, offset: int) -> tuple[bytes, int]:
    """One SSH wire `string` (uint32 length, then the bytes) at offset, and the offset after it."""
    if offset + 4 > len(data):
        raise KeyFormatError("the key is truncated")
    end = offset + 4 + int.from_bytes(data[offset : offset + 4], "big")
    if end > len(data):
        raise KeyFormatError("the key is truncated")
    return data[offset + 4 : end], end


def _check_name(name: str) -> None:
    if not KEY_NAME.fullmatch(name):
        raise KeyFormatError(f"key name {name!r} must be letters, digits, '.', '_' or '-'")


def nix_secret_key(name: str, openssh_private_key: str) -> str:
    """A Nix signing key (`name:base64(seed || public key)`, Nix libutil signature/local-keys.cc
    `SecretKey`) from an unencrypted Ed25519 key in OpenSSH's format, which is what pulumi-tls's
    `privateKeyOpenssh` and `ssh-keygen -t ed25519 -N ''` write: its private field already is
    libsodium's 64-byte secret key (golang.org/x/crypto ssh/keys.go `marshalOpenSSHPrivateKey`)."""
    _check_name(name)
    lines = openssh_private_key.strip().splitlines()
    if len(lines) < 3 or lines[0].strip() != _OPENSSH_BEGIN or lines[-1].strip() != _OPENSSH_END:
        raise KeyFormatError("not an OpenSSH private key")
    try:
        body = base64.b64decode("".join(line.strip() for line in lines[1:-1]), validate=True)
    except (binascii.Error, ValueError) as err:
        raise KeyFormatError("the key's body is not base64") from err
    if not body.startswith(_OPENSSH_MAGIC):
        raise KeyFormatError("not an openssh-key-v1 key")
    cipher, offset = _string(body, len(_OPENSSH_MAGIC))
    if cipher != b"none":
        raise KeyFormatError("the key is protected by a passphrase")
    _kdf, offset = _string(body, offset)
    _kdf_options, offset = _string(body, offset)
    if body[offset : offset + 4] != (1).to_bytes(4, "big"):
        raise KeyFormatError("the file must hold exactly one key")
    _public_blob, offset = _string(body, offset + 4)
    private, _ = _string(body, offset)
    # The private section: two equal check words, the key type, public key, private key, comment.
    if len(private) < 8 or private[:4] != private[4:8]:
        raise KeyFormatError("the key's check words differ (a damaged key)")
    key_type, offset = _string(private, 8)
    if key_type != _ED25519:
        raise KeyFormatError("not an Ed25519 key")
    public, offset = _string(private, offset)
    secret, _ = _string(private, offset)
    if len(public) != PUBLIC_KEY_BYTES or len(secret) != SECRET_KEY_BYTES:
        raise KeyFormatError("the Ed25519 key has the wrong length")
    if secret[PUBLIC_KEY_BYTES:] != public:
        # libsodium signs with the public half stored in the secret key: it must be this key's.
        raise KeyFormatError("the secret key does not end with its own public key")
    return f"{name}:{base64.b64encode(secret).decode()}"


def nix_public_key(name: str, openssh_public_key: str) -> str:
    """The matching Nix public key (`name:base64(public key)`) from `ssh-ed25519 AAAA… [comment]`
    (pulumi-tls's `publicKeyOpenssh`): not derived from the secret, so it is not a secret."""
    _check_name(name)
    fields = openssh_public_key.split()
    if len(fields) < 2 or fields[0] != _ED25519.decode():
        raise KeyFormatError("not an ssh-ed25519 public key")
    try:
        blob = base64.b64decode(fields[1], validate=True)
    except (binascii.Error, ValueError) as err:
        raise KeyFormatError("the public key is not base64") from err
    key_type, offset = _string(blob, 0)
    public, _ = _string(blob, offset)
    if key_type != _ED25519 or len(public) != PUBLIC_KEY_BYTES:
        raise KeyFormatError("not a 32-byte Ed25519 public key")
    return f"{name}:{base64.b64encode(public).decode()}"
