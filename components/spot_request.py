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
from pulumi.dynamic import CreateResult, DiffResult, ResourceProvider


class SpotRequestCancellerProvider(ResourceProvider):
    """Create records the request; delete cancels it (idempotently); any change replaces."""

    def create(self, props: dict[str, Any]) -> CreateResult:
        return CreateResult(id_=props["spotInstanceRequestId"], outs=props)

    def diff(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> DiffResult:
        changed = [k for k in ("spotInstanceRequestId", "region") if olds.get(k) != news.get(k)]
        return DiffResult(changes=bool(changed), replaces=changed, delete_before_replace=False)

    def delete(self, _id: str, props: dict[str, Any]) -> None:
        SpotRequestCancellerProvider.cancel(props["spotInstanceRequestId"], props["region"])

    @staticmethod
    def cancel(request_id: str, region: str, client: Any = None) -> str:
        """Cancel the request; return the state it ends in. A request already gone is fine."""
        # Imported here: the provider runs in Pulumi's dynamic provider host, not in the program.
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


class SpotRequestCanceller(pulumi.dynamic.Resource):
    """Stands for a persistent spot request; deleting it cancels the request."""

    def __init__(
        self,
        name: str,
        spot_instance_request_id: pulumi.Input[str],
        region: str,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        with _pickled_by_value(SpotRequestCancellerProvider):
            super().__init__(
                SpotRequestCancellerProvider(),
                name,
                {"spotInstanceRequestId": spot_instance_request_id, "region": region},
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
