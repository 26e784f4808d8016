"""Cancels a machine's persistent spot request when the machine is destroyed or replaced.

Terminating an instance launched by a *persistent* spot request leaves the request open, and EC2
launches a fresh instance for it: the bridged AWS provider does not cancel it
(pulumi/pulumi-aws#1523, hashicorp/terraform-provider-aws#31009 and friends). This resource
depends on the instance, so Pulumi deletes it - cancelling the request - before the instance is
terminated. It is a dynamic provider because its delete must run on `pulumi destroy`, when the
program itself does not run; the provider code travels in the state.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import pulumi
from pulumi.dynamic import CreateResult, DiffResult, ResourceProvider, UpdateResult

from components.settings import AwsAccess


class SpotRequestCancellerProvider(ResourceProvider):
    """Create records the request; delete cancels it (idempotently); a new request replaces.

    It calls EC2 with the stack's own AWS settings (region, profile, assumed roles, shared files,
    static keys), passed in as inputs, because the provider host only sees the environment: the
    `aws:` stack config reaches the AWS provider alone.
    """

    def create(self, props: dict[str, Any]) -> CreateResult:
        return CreateResult(id_=props["spotInstanceRequestId"], outs=props)

    def diff(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> DiffResult:
        # A replace would cancel the old request, so only a new request (or region) replaces;
        # new credentials settings are an update that keeps the request open.
        replaced = [k for k in ("spotInstanceRequestId", "region") if olds.get(k) != news.get(k)]
        changed = replaced or [k for k in news if k != "__provider" and olds.get(k) != news[k]]
        return DiffResult(changes=bool(changed), replaces=replaced, delete_before_replace=False)

    def update(self, _id: str, _olds: dict[str, Any], news: dict[str, Any]) -> UpdateResult:
        return UpdateResult(outs=news)

    def delete(self, _id: str, props: dict[str, Any]) -> None:
        request_id, region = props["spotInstanceRequestId"], props["region"]
        try:
            session = SpotRequestCancellerProvider.session(props)
            client = session.client("ec2", endpoint_url=props.get("ec2Endpoint") or None)
            SpotRequestCancellerProvider.cancel(request_id, region, client)
        except Exception as err:
            raise RuntimeError(
                f"cannot cancel the persistent spot request {request_id} in {region}: {err}. "
                "The canceller authenticates like the stack's AWS provider: aws:region, "
                "aws:profile, aws:assumeRoles, aws:sharedConfigFiles, aws:sharedCredentialsFiles, "
                "aws:accessKey/secretKey/token in the stack config, then the AWS_* environment "
                "(AWS_PROFILE, AWS_ACCESS_KEY_ID, ...). Set those so they reach an identity that "
                "may call ec2:CancelSpotInstanceRequests, and run the command again; or cancel it "
                f"yourself: aws ec2 cancel-spot-instance-requests --region {region} "
                f"--spot-instance-request-ids {request_id}"
            ) from err

    @staticmethod
    def session(props: dict[str, Any]) -> Any:
        """A boto3 session for the stack's AWS identity, built the way the AWS provider does."""
        # Imported here: the provider runs in Pulumi's dynamic provider host, not in the program.
        import boto3
        import botocore.session

        core = botocore.session.Session(profile=props.get("profile") or None)
        if props.get("sharedConfigFile"):
            core.set_config_variable("config_file", props["sharedConfigFile"])
        if props.get("sharedCredentialsFile"):
            core.set_config_variable("credentials_file", props["sharedCredentialsFile"])
        if props.get("accessKey") and props.get("secretKey"):
            core.set_credentials(props["accessKey"], props["secretKey"], props.get("token") or None)
        session = boto3.Session(botocore_session=core, region_name=props["region"])
        # Chained like the provider's aws:assumeRoles: each role is assumed with the one before.
        for role in props.get("assumeRoles") or []:
            request: dict[str, Any] = {
                "RoleArn": role["roleArn"],
                "RoleSessionName": role.get("sessionName") or "devserver-spot-canceller",
            }
            optional = {
                "ExternalId": role.get("externalId"),
                "DurationSeconds": role.get("durationSeconds"),
                "Policy": role.get("policy"),
                "PolicyArns": [{"arn": a} for a in role.get("policyArns") or []],
                "SourceIdentity": role.get("sourceIdentity"),
                "Tags": [{"Key": k, "Value": v} for k, v in (role.get("tags") or {}).items()],
                "TransitiveTagKeys": list(role.get("transitiveTagKeys") or []),
            }
            request.update({k: v for k, v in optional.items() if v})
            sts = session.client("sts", endpoint_url=props.get("stsEndpoint") or None)
            credentials = sts.assume_role(**request)["Credentials"]
            session = boto3.Session(
                aws_access_key_id=credentials["AccessKeyId"],
                aws_secret_access_key=credentials["SecretAccessKey"],
                aws_session_token=credentials["SessionToken"],
                region_name=props["region"],
            )
        return session

    @staticmethod
    def cancel(request_id: str, region: str, client: Any = None) -> str:
        """Cancel the request; return the state it ends in. A request already gone is fine."""
        import boto3
        from botocore.exceptions import ClientError

        ec2 = client or boto3.client("ec2", region_name=region)
        try:
            response = ec2.cancel_spot_instance_requests(SpotInstanceRequestIds=[request_id])
        except ClientError as err:
            if err.response["Error"]["Code"] == "InvalidSpotInstanceRequestID.NotFound":
                return "gone"
            raise
        return str(response["CancelledSpotInstanceRequests"][0]["State"])


def access_inputs(access: AwsAccess) -> dict[str, Any]:
    """The canceller's credential inputs: settings in plain text, keys as Pulumi secrets."""
    roles = [
        {
            "roleArn": r.role_arn,
            "sessionName": r.session_name,
            "externalId": r.external_id,
            "durationSeconds": r.duration_seconds,
            "policy": r.policy,
            "policyArns": list(r.policy_arns),
            "sourceIdentity": r.source_identity,
            "tags": dict(r.tags),
            "transitiveTagKeys": list(r.transitive_tag_keys),
        }
        for r in access.assume_roles
    ]
    inputs: dict[str, Any] = {
        "profile": access.profile,
        "assumeRoles": roles,
        "sharedConfigFile": access.shared_config_file,
        "sharedCredentialsFile": access.shared_credentials_file,
        "ec2Endpoint": access.ec2_endpoint,
        "stsEndpoint": access.sts_endpoint,
    }
    for key, value in (
        ("accessKey", access.access_key),
        ("secretKey", access.secret_key),
        ("token", access.token),
    ):
        if value is not None:
            inputs[key] = pulumi.Output.secret(value)
    return inputs


class SpotRequestCanceller(pulumi.dynamic.Resource):
    """Stands for a persistent spot request; deleting it cancels the request."""

    def __init__(
        self,
        name: str,
        spot_instance_request_id: pulumi.Input[str],
        region: str,
        access: AwsAccess | None = None,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        with _pickled_by_value(SpotRequestCancellerProvider):
            super().__init__(
                SpotRequestCancellerProvider(),
                name,
                {
                    "spotInstanceRequestId": spot_instance_request_id,
                    "region": region,
                    **access_inputs(access or AwsAccess()),
                },
                opts,
            )


@contextlib.contextmanager
def _pickled_by_value(cls: type) -> Iterator[None]:
    """Make dill store the class and its methods by value, as it does for code in `__main__`.

    The provider host that runs `pulumi destroy` cannot import this repo's modules, so a
    by-reference pickle (the default for importable modules) would fail there.
    """
    members = [cls] + [
        getattr(m, "__func__", m) for m in vars(cls).values() if callable(getattr(m, "__func__", m))
    ]
    saved = [(m, m.__module__) for m in members]
    try:
        for member, _ in saved:
            member.__module__ = "__main__"
        yield
    finally:
        for member, module in saved:
            member.__module__ = module
