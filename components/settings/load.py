# The one place that reads `pulumi.Config`: the whole stack checked, every problem reported at once.

from __future__ import annotations

import difflib

import pulumi

from components.settings import aws_access, fleet, keys, server
from components.settings.cache import BUCKET_PREFIX
from components.settings.declaration import STACK, run_rules
from components.settings.identity import host_name_from
from components.settings.model import (
    DEFAULT_SNAPSHOT_RETENTION_DAYS,
    NAMESPACE,
    DevServerSettings,
    InstanceTypes,
    SettingsError,
    StackSettings,
)
from components.settings.reader import ConfigSource, Context, Reader, Secret, report


def load(types: InstanceTypes, config: pulumi.Config | None = None) -> StackSettings:
    """Read and validate the stack's configuration; raise SettingsError listing every problem."""
    config = config or pulumi.Config(NAMESPACE)
    errors: list[str] = []
    _unknown_keys(errors)
    aws = pulumi.Config("aws")
    region = aws_access.region(aws.get("region"), errors)
    stack = pulumi.get_stack()
    access, aws_unsupported = aws_access.aws_access(aws_access.provider_args(aws), errors)
    zero_is_unset = frozenset(keys.PRESET_SIZE_KEYS)
    top = Reader(ConfigSource(config.get, zero_is_unset), errors)
    ctx = Context(region, stack, types, secrets={k: _secret(config, k) for k in keys.SECRET_KEYS})
    stack_values = run_rules(keys.KEYS, STACK, top, ctx)
    deploy_key = stack_values["deployPrivateKey"]
    shared = server.Shared(
        stack_values["githubToken"],
        stack_values["githubTokenKmsKeyArn"],
        stack_values["ebsKmsKeyArn"],
        access,
        deploy_key.public_blob if deploy_key else None,
        stack_values["permissionsBoundary"],
    )

    # Problems above do not stop the servers from being checked: every problem shows at once.
    raw_servers = stack_values["servers"]
    servers: list[DevServerSettings | None] = []
    if raw_servers is None:
        single = Context(region, stack, types, default_host=host_name_from(f"devserver-{stack}"))
        servers.append(server.build(top, single, "devserver", shared))
    else:
        servers.extend(
            fleet.entries(
                raw_servers,
                top,
                Context(region, stack, types),
                lambda r, c, name: server.build(r, c, name, shared),
                keys.SERVER_KEYS,
                keys.UNIQUE_PER_SERVER,
            )
        )
    if any(s is not None and s.machine.spot for s in servers):
        errors.extend(aws_unsupported)
    boundary = stack_values["permissionsBoundary"]
    for s in servers:
        bucket = s.binary_cache.bucket if s is not None and s.binary_cache is not None else None
        # The shipped boundary lets roles read devserver-cache-* buckets only.
        if s is not None and boundary and bucket and not bucket.startswith(BUCKET_PREFIX):
            errors.append(
                f"{s.config_prefix}binaryCacheUrl names the bucket {bucket!r}, but with "
                f"{NAMESPACE}:permissionsBoundary the machine's role may read only buckets named "
                f"{BUCKET_PREFIX}* (docs/iam/devserver-boundary.json): rename the bucket, serve "
                "the cache over https://, or add the bucket to your boundary policy"
            )
    writer = stack_values["binaryCacheWriterRepository"]
    if writer and not any(s and s.binary_cache and s.binary_cache.own for s in servers):
        errors.append(
            f"{NAMESPACE}:binaryCacheWriterRepository is set to {writer!r}, but no server has "
            f"{NAMESPACE}:binaryCache true: it names who fills the stack's own cache"
        )
    if errors or None in servers:
        problems = errors or ["the stack configuration is incomplete"]
        raise SettingsError(report(problems), problems)
    return StackSettings(
        servers=tuple(s for s in servers if s is not None),
        fleet=raw_servers is not None,
        region=region,
        stack=stack,
        deploy_private_key=deploy_key.private_key if deploy_key else None,
        snapshot_retention_days=stack_values["snapshotRetentionDays"]
        or DEFAULT_SNAPSHOT_RETENTION_DAYS,
        snapshots=stack_values["snapshots"] is not False,
        aws_access=access,
        permissions_boundary=stack_values["permissionsBoundary"],
        binary_cache_writer_repository=writer or None,
    )


def _secret(config: pulumi.Config, key: str) -> Secret:
    """A secret key's raw text (for its rule's checks, never shown) and, when it is stored
    encrypted, the secret Output the components get."""
    full = f"{NAMESPACE}:{key}"
    raw = pulumi.runtime.get_config(full)
    text = raw if isinstance(raw, str) else None
    secure = bool(text) and pulumi.runtime.is_config_secret(full)
    return Secret(text, secure, config.require_secret(key) if secure else None)


def _unknown_keys(errors: list[str]) -> None:
    """A key of the namespace that no declaration names is a typo: say which key was meant."""
    found = set(pulumi.runtime.config.CONFIG.get()) | set(pulumi.runtime.config.get_config_env())
    for full in sorted(k for k in found if k.startswith(f"{NAMESPACE}:")):
        key = full.split(":", 1)[1]
        if key not in keys.KNOWN_KEYS:
            close = difflib.get_close_matches(key, sorted(keys.KNOWN_KEYS), n=1)
            hint = (
                f"did you mean {NAMESPACE}:{close[0]}?" if close else "see Pulumi.yaml for the keys"
            )
            errors.append(f"{full} is not a configuration key of this program: {hint}")
