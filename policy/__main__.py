"""Entry point the Pulumi CLI runs for `--policy-pack policy`: serves the devserver policies."""

from devserver_policy.policies import POLICIES
from pulumi_policy import EnforcementLevel, PolicyPack

PolicyPack(
    name="devserver-aws",
    enforcement_level=EnforcementLevel.MANDATORY,
    policies=POLICIES,
)
