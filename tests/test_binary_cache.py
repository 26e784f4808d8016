"""The stack-owned binary cache (components/binary_cache.py) under Pulumi's mocks, and its key
conversion on bad input. The real signatures are proven in tests/nix/test_binary_cache.py."""

from __future__ import annotations

import base64
import json
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from components.binary_cache import CACHE_INFO_KEY, MIN_EXPIRING_OBJECT_BYTES
from components.binary_cache_policies import READ_ACTIONS, reader_policy
from components.nix_signing_key import KeyFormatError, nix_public_key, nix_secret_key
from tests.program import (
    ACCOUNT,
    FAKE_APPLY_PHASES,
    FAKE_SIGNING_PUBLIC,
    FAKE_SIGNING_PUBLIC_BLOB,
    FAKE_SIGNING_SEED,
    ProgramRun,
    fake_ed25519_openssh_private_key,
    fake_openssh_private_key,
    reveal,
    walk_strings,
)

Run = Callable[..., ProgramRun]
TAGS = {"devserver:purpose": "devserver", "devserver:stack": "dev"}
KEY_NAME = "devserver-dev-1"
SECRET_B64 = base64.b64encode(FAKE_SIGNING_SEED + FAKE_SIGNING_PUBLIC).decode()
SEED_B64 = base64.b64encode(FAKE_SIGNING_SEED).decode()


def cache_program(tmp_path: Path, writer: str | None = "acme/infra") -> Path:
    """A program that builds only the cache (the stack program wires it in once it has keys)."""
    program = tmp_path / "cache_program.py"
    program.write_text(
        "import pulumi\n"
        "from components.binary_cache import BinaryCache, BinaryCacheArgs\n"
        f"cache = BinaryCache('binary-cache', BinaryCacheArgs('dev', 'eu-west-1', {TAGS!r},"
        f" writer_repository={writer!r}))\n"
        "for key in ('url', 'public_key', 'secret_key', 'signing_key_secret_arn',"
        " 'writer_role_arn', 'bucket_name'):\n"
        "    pulumi.export(key, getattr(cache, key))\n"
    )
    return program


@pytest.fixture
def cache(program: Run, tmp_path: Path) -> ProgramRun:
    return program(program=cache_program(tmp_path))


def policy(resource: Any) -> dict[str, Any]:
    return json.loads(reveal(resource.inputs["policy"]))  # type: ignore[no-any-return]


def test_the_bucket_is_private_encrypted_and_only_reachable_over_tls(cache: ProgramRun) -> None:
    bucket = cache.one("aws:s3/bucket:Bucket")
    assert bucket.inputs["bucketPrefix"].startswith("devserver-"), "scoped by the operator policy"
    assert bucket.inputs["tags"] == TAGS
    name, arn = bucket.state["bucket"], bucket.state["arn"]

    block = cache.one("aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock").inputs
    assert block["bucket"] == name
    for setting in (
        "blockPublicAcls",
        "blockPublicPolicy",
        "ignorePublicAcls",
        "restrictPublicBuckets",
    ):
        assert block[setting] is True, f"public access block {setting} is not on"
    ownership = cache.one("aws:s3/bucketOwnershipControls:BucketOwnershipControls").inputs
    assert ownership["rule"] == {"objectOwnership": "BucketOwnerEnforced"}, "ACLs must be off"

    sse = cache.one(
        "aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration"
    ).inputs
    assert sse["bucket"] == name
    (rule,) = sse["rules"]
    assert rule["applyServerSideEncryptionByDefault"] == {"sseAlgorithm": "AES256"}

    bucket_policy = cache.one("aws:s3/bucketPolicy:BucketPolicy")
    (deny,) = policy(bucket_policy)["Statement"]
    assert deny["Effect"] == "Deny" and deny["Principal"] == "*" and deny["Action"] == "s3:*"
    assert deny["Resource"] == [arn, f"{arn}/*"]
    assert deny["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
    assert not [s for s in policy(bucket_policy)["Statement"] if s["Effect"] == "Allow"], (
        "the bucket policy must grant nothing: IAM roles decide who reads and writes"
    )


def test_old_store_paths_expire_but_the_cache_description_stays(cache: ProgramRun) -> None:
    lifecycle = cache.one("aws:s3/bucketLifecycleConfiguration:BucketLifecycleConfiguration")
    rules = {r["id"]: r for r in lifecycle.inputs["rules"]}
    expire = rules["expire-old-store-paths"]
    assert expire["status"] == "Enabled" and expire["expiration"] == {"days": 90}
    assert expire["filter"] == {"objectSizeGreaterThan": MIN_EXPIRING_OBJECT_BYTES}
    info = cache.one("aws:s3/bucketObjectv2:BucketObjectv2").inputs
    assert info["key"] == CACHE_INFO_KEY
    assert len(info["content"].encode()) <= MIN_EXPIRING_OBJECT_BYTES, (
        "nix-cache-info must be below the expiry threshold, or the cache would vanish for Nix"
    )
    assert info["content"].startswith("StoreDir: /nix/store\n")
    assert rules["abort-incomplete-uploads"]["abortIncompleteMultipartUpload"] == {
        "daysAfterInitiation": 1
    }


def test_the_signing_key_is_a_secret_end_to_end_and_only_the_public_key_is_plain(
    cache: ProgramRun,
) -> None:
    key = cache.one("tls:index/privateKey:PrivateKey")
    assert key.inputs["algorithm"] == "ED25519"
    secret = cache.one("aws:secretsmanager/secret:Secret")
    assert secret.inputs["name"] == "devserver/dev/binary-cache-signing-key"
    version = cache.one("aws:secretsmanager/secretVersion:SecretVersion")
    assert reveal(version.inputs["secretString"]) == f"{KEY_NAME}:{SECRET_B64}"
    for resource in cache.resources:
        for text, is_secret in walk_strings(resource.inputs):
            if SEED_B64[:40] in text or SECRET_B64[:40] in text:
                assert is_secret, (
                    f"{resource.type} {resource.name} holds the signing key in plaintext"
                )
    assert "secret_key" in cache.secret_outputs
    assert "public_key" not in cache.secret_outputs, "the public key is exported in plaintext"
    assert (
        cache.outputs["public_key"]
        == f"{KEY_NAME}:{base64.b64encode(FAKE_SIGNING_PUBLIC).decode()}"
    )
    plain = json.dumps({k: v for k, v in cache.outputs.items() if k not in cache.secret_outputs})
    assert SEED_B64[:40] not in plain and SECRET_B64[:40] not in plain


def test_the_url_names_the_bucket_and_region(cache: ProgramRun) -> None:
    bucket = cache.one("aws:s3/bucket:Bucket").state["bucket"]
    assert cache.outputs["url"] == f"s3://{bucket}?region=eu-west-1"


def test_only_main_of_the_named_repository_may_push_and_read_the_signing_key(
    cache: ProgramRun,
) -> None:
    role = cache.one("aws:iam/role:Role")
    (trust,) = json.loads(role.inputs["assumeRolePolicy"])["Statement"]
    assert trust["Principal"] == {
        "Federated": f"arn:aws:iam::{ACCOUNT}:oidc-provider/token.actions.githubusercontent.com"
    }
    assert trust["Action"] == "sts:AssumeRoleWithWebIdentity"
    assert trust["Condition"] == {
        "StringEquals": {
            "token.actions.githubusercontent.com:aud": "sts.amazonaws.com",
            "token.actions.githubusercontent.com:sub": "repo:acme/infra:ref:refs/heads/main",
        }
    }
    assert role.inputs["tags"] == TAGS
    bucket = cache.one("aws:s3/bucket:Bucket").state["bucket"]
    secret_arn = cache.one("aws:secretsmanager/secret:Secret").state["arn"]
    statements = {
        s["Sid"]: s for s in policy(cache.one("aws:iam/rolePolicy:RolePolicy"))["Statement"]
    }
    assert statements["UploadToBinaryCache"]["Resource"] == [
        f"arn:aws:s3:::{bucket}",
        f"arn:aws:s3:::{bucket}/*",
    ]
    assert "s3:PutObject" in statements["UploadToBinaryCache"]["Action"]
    assert not [a for a in statements["UploadToBinaryCache"]["Action"] if "Delete" in a]
    assert statements["ReadSigningKey"] == {
        "Sid": "ReadSigningKey",
        "Effect": "Allow",
        "Action": "secretsmanager:GetSecretValue",
        "Resource": secret_arn,
    }
    assert cache.outputs["writer_role_arn"] == role.state["arn"]


def test_without_a_writer_repository_no_role_can_push(program: Run, tmp_path: Path) -> None:
    run = program(program=cache_program(tmp_path, writer=None))
    assert not run.of_type("aws:iam/role:Role") and not run.of_type("aws:iam/rolePolicy:RolePolicy")
    assert run.outputs["writer_role_arn"] is None


def test_the_machine_grant_reads_one_bucket_and_writes_nothing() -> None:
    (statement,) = json.loads(reader_policy("devserver-cache-0123", "aws"))["Statement"]
    assert statement["Effect"] == "Allow"
    assert sorted(statement["Action"]) == sorted(READ_ACTIONS)
    assert not [a for a in statement["Action"] if a.startswith("s3:Put") or "Delete" in a]
    assert statement["Resource"] == [
        "arn:aws:s3:::devserver-cache-0123",
        "arn:aws:s3:::devserver-cache-0123/*",
    ]


@pytest.mark.parametrize(
    ("key", "problem"),
    [
        (fake_openssh_private_key("aes256-ctr"), "passphrase"),
        (fake_openssh_private_key(), "check words"),
        (
            fake_ed25519_openssh_private_key(secret_public=b"X" * 32),
            "does not end with its own public key",
        ),
        (fake_ed25519_openssh_private_key(seed=b"short"), "wrong length"),
        ("ssh-ed25519 AAAA", "not an OpenSSH private key"),
    ],
    ids=["encrypted", "damaged", "foreign-public-half", "short-seed", "not-armoured"],
)
def test_a_key_that_is_not_an_unencrypted_ed25519_key_is_refused_without_showing_it(
    key: str, problem: str
) -> None:
    with pytest.raises(KeyFormatError, match=problem) as err:
        nix_secret_key(KEY_NAME, key)
    assert SEED_B64[:20] not in str(err.value) and "FAKE" not in str(err.value)


def test_key_names_and_public_keys_are_checked() -> None:
    with pytest.raises(KeyFormatError, match="key name"):
        nix_public_key("bad:name", f"ssh-ed25519 {FAKE_SIGNING_PUBLIC_BLOB}")
    with pytest.raises(KeyFormatError, match="not an ssh-ed25519"):
        nix_public_key(KEY_NAME, "ssh-rsa AAAAB3NzaC1yc2E=")


def test_the_instance_role_may_read_that_one_bucket_and_write_nothing(
    program: Run, tmp_path: Path
) -> None:
    source = tmp_path / "role_program.py"
    source.write_text(
        "from components.binary_cache import BinaryCache, BinaryCacheArgs\n"
        "from components.instance_role import InstanceRole, InstanceRoleArgs\n"
        f"cache = BinaryCache('binary-cache', BinaryCacheArgs('dev', 'eu-west-1', {TAGS!r}))\n"
        f"InstanceRole('devserver', InstanceRoleArgs({TAGS!r},"
        " binary_cache_bucket=cache.bucket_name))\n"
    )
    run = program(program=source)
    bucket = run.one("aws:s3/bucket:Bucket").state["bucket"]
    grant = run.named("devserver-read-binary-cache")
    assert grant.parent_types[0] == "aws:iam/role:Role"
    (statement,) = policy(grant)["Statement"]
    assert statement["Resource"] == [f"arn:aws:s3:::{bucket}", f"arn:aws:s3:::{bucket}/*"]
    assert sorted(statement["Action"]) == sorted(READ_ACTIONS)
    for role_policy in run.of_type("aws:iam/rolePolicy:RolePolicy"):
        for s in policy(role_policy)["Statement"]:
            actions = s["Action"] if isinstance(s["Action"], list) else [s["Action"]]
            assert "s3:PutObject" not in actions, f"{role_policy.name} lets the machine write"
            assert "secretsmanager:GetSecretValue" not in actions, (
                f"{role_policy.name} lets the machine read a secret (the signing key's?)"
            )


# --- the stack program with a cache --------------------------------------------------------------
OWN = {"devserver:binaryCache": True, "devserver:binaryCacheWriterRepository": "acme/infra"}
TEAM_S3 = {
    "devserver:binaryCacheUrl": "s3://team-nix-cache?region=eu-west-1",
    "devserver:binaryCachePublicKey": "team-cache-1:" + "B" * 43 + "=",
}


def instance_role_statements(run: ProgramRun) -> list[dict[str, Any]]:
    """Every statement of the machine's own role (not the CI writer's)."""
    return [
        s
        for p in run.of_type("aws:iam/rolePolicy:RolePolicy")
        if p.name.startswith("devserver-")
        for s in policy(p)["Statement"]
    ]


def machine_json(run: ProgramRun) -> dict[str, Any]:
    return json.loads(reveal(run.named("devserver-apply").inputs["stdin"]))  # type: ignore[no-any-return]


def test_a_server_trusts_the_stacks_cache_from_its_first_switch(program: Run) -> None:
    run = program(OWN)
    bucket = run.one("aws:s3/bucket:Bucket").state["bucket"]
    url, key = (
        f"s3://{bucket}?region=eu-west-1",
        f"{KEY_NAME}:{base64.b64encode(FAKE_SIGNING_PUBLIC).decode()}",
    )
    assert machine_json(run)["binaryCache"] == {"url": url, "publicKey": key}
    create = reveal(run.named("devserver-apply").inputs["create"])
    assert f"--substituter '{url}' --trusted-public-key {key}" in create, create
    # The role reads that one bucket; nothing of the machine's may write or read the signing key.
    reads = [s for s in instance_role_statements(run) if s.get("Sid") == "ReadBinaryCache"]
    assert [s["Resource"] for s in reads] == [
        [f"arn:aws:s3:::{bucket}", f"arn:aws:s3:::{bucket}/*"]
    ]
    for s in instance_role_statements(run):
        actions = s["Action"] if isinstance(s["Action"], list) else [s["Action"]]
        assert not [a for a in actions if a.startswith("s3:") and a not in READ_ACTIONS], s
        signing_arn = run.one("aws:secretsmanager/secret:Secret").state["arn"]
        assert s.get("Resource") != signing_arn, "the machine may read the signing key"
    assert run.outputs["binaryCacheUrl"] == url and run.outputs["binaryCachePublicKey"] == key
    cache = run.outputs["binaryCache"]
    assert cache["url"] == url and cache["publicKey"] == key and cache["bucket"] == bucket
    (writer,) = [r for r in run.of_type("aws:iam/role:Role") if r.name == "binary-cache-writer"]
    assert cache["writerRoleArn"] == writer.state["arn"]
    assert "binaryCache" not in run.secret_outputs and "binaryCacheUrl" not in run.secret_outputs


def test_the_signing_key_is_never_in_plaintext_in_the_stack_program(program: Run) -> None:
    """The leak check of test_program.py (the token) for the signing key: resources, invokes,
    stack outputs."""
    run = program(OWN)
    for resource in run.resources:
        for text, is_secret in walk_strings(resource.inputs) + walk_strings(resource.state):
            if SECRET_B64[:40] in text or SEED_B64[:40] in text:
                assert is_secret, (
                    f"{resource.type} {resource.name} has the signing key in plaintext"
                )
    for token, args in run.calls:
        assert SEED_B64[:40] not in json.dumps(args), f"the signing key went to the invoke {token}"
    assert SEED_B64[:40] not in json.dumps(run.outputs), "the signing key is in a stack output"
    assert SECRET_B64[:40] not in json.dumps(run.outputs)


def test_without_a_cache_nothing_changes_for_existing_machines(program: Run) -> None:
    run = program()
    assert not [r for r in run.resources if r.type.startswith("aws:s3/")]
    assert "binaryCache" not in machine_json(run), "machine.json (an apply trigger) is unchanged"
    assert "--substituter" not in reveal(run.named("devserver-apply").inputs["create"])
    assert run.outputs["binaryCacheUrl"] is None and "binaryCache" not in run.outputs
    assert not [s for s in instance_role_statements(run) if s.get("Sid") == "ReadBinaryCache"]


def test_a_teams_s3_cache_is_read_only_and_creates_nothing(program: Run) -> None:
    run = program(TEAM_S3)
    assert not [r for r in run.resources if r.type.startswith("aws:s3/")], "nothing of ours"
    assert machine_json(run)["binaryCache"] == {
        "url": TEAM_S3["devserver:binaryCacheUrl"],
        "publicKey": TEAM_S3["devserver:binaryCachePublicKey"],
    }
    (read,) = [s for s in instance_role_statements(run) if s.get("Sid") == "ReadBinaryCache"]
    assert read["Resource"] == ["arn:aws:s3:::team-nix-cache", "arn:aws:s3:::team-nix-cache/*"]
    https = program(
        {**TEAM_S3, "devserver:binaryCacheUrl": "https://cache.example.com/team"}, stack="dev"
    )
    assert not [s for s in instance_role_statements(https) if s.get("Sid") == "ReadBinaryCache"]
    assert machine_json(https)["binaryCache"]["url"] == "https://cache.example.com/team"


def test_a_fleet_shares_one_cache_and_only_its_trusting_servers_may_read_it(program: Run) -> None:
    servers = [
        {"name": "alice", "user": "alice", "githubUser": "alice-example", "binaryCache": True},
        {"name": "bob", "user": "bob", "githubUser": "bob-example"},
    ]
    run = program({"devserver:servers": servers})
    assert len(run.of_type("aws:s3/bucket:Bucket")) == 1
    grants = {
        r.name for r in run.of_type("aws:iam/rolePolicy:RolePolicy") if "binary-cache" in r.name
    }
    assert grants == {"alice-read-binary-cache"}
    outputs = run.outputs["servers"]
    assert outputs["alice"]["binaryCacheUrl"] == run.outputs["binaryCache"]["url"]
    assert outputs["bob"]["binaryCacheUrl"] is None


def test_a_new_stack_with_a_cache_previews(program: Run) -> None:
    """The host flake stays known at preview (the cache goes to machine.json, which may be
    unknown), so pulumi-command's CopyToRemote check passes."""
    run = program(OWN, preview=True, raise_errors=False)
    assert run.error is None, run.error
    assert run.of_type("aws:s3/bucket:Bucket")


def test_the_last_applys_phases_are_a_plain_stack_output(program: Run) -> None:
    run = program(OWN)
    assert run.outputs["deployPhases"] == json.loads(
        FAKE_APPLY_PHASES.removeprefix("DEVSERVER_PHASES ")
    )
    assert "deployPhases" not in run.secret_outputs


@pytest.mark.skipif(shutil.which("nix-instantiate") is None, reason="nix-instantiate not installed")
def test_the_host_flake_hands_the_cache_to_the_nixos_module(program: Run, tmp_path: Path) -> None:
    """The rendered /etc/nixos/flake.nix and machine.json, evaluated with stand-in inputs: the
    host module sets devserver.binaryCache, which nix/modules/binary-cache.nix turns into
    nix.settings (tests/nix/test_module_eval.py)."""
    run = program(OWN)
    (copy,) = [
        r for r in run.of_type("command:remote:CopyToRemote") if r.name.endswith("-host-flake")
    ]
    (tmp_path / "flake.nix").write_text(copy.inputs["source"].text)
    (tmp_path / "machine.json").write_text(json.dumps(machine_json(run)))
    expr = f"""
      let
        f = import {tmp_path}/flake.nix;
        o = f.outputs {{
          self = {{ }};
          nixpkgs.lib.nixosSystem = args: args;
          devserver.nixosModules.devserver = {{ }};
        }};
        c = builtins.head (builtins.attrValues o.nixosConfigurations);
      in (builtins.elemAt c.modules 1).devserver.binaryCache
    """
    result = subprocess.run(
        [
            "nix-instantiate",
            "--option",
            "experimental-features",
            "",
            "--eval",
            "--strict",
            "--json",
            "-E",
            expr,
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == machine_json(run)["binaryCache"]
