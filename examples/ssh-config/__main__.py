"""Consumer of a devserver stack: its SSH config entry and, optionally, a stable DNS name for it."""

import pulumi
import pulumi_aws as aws
from ssh_config import host_blocks

config = pulumi.Config()
# Fully qualified: <organization>/devserver/<stack>; DIY backends use the literal `organization`.
devserver = pulumi.StackReference(config.require("devserverStack"))
alias = config.get("hostAlias") or "devserver"
identity_file = config.get("identityFile") or None

# Read output by output: one secret output elsewhere in the stack must not make these secret.
outputs = {
    "publicDns": devserver.require_output("publicDns"),
    "user": devserver.require_output("user"),
    "instanceId": devserver.get_output("instanceId"),
    "servers": devserver.get_output("servers"),
}

host_name: pulumi.Output[str] | None = None
zone_id = config.get("dnsZoneId")
if zone_id:
    dns_name = config.get("dnsName")
    if not dns_name:
        raise ValueError("devserver-ssh-config:dnsName is required when dnsZoneId is set")
    # A CNAME to the EC2 public name resolves to the private address from inside the VPC.
    record = aws.route53.Record(
        "devserver",
        zone_id=zone_id,
        name=dns_name,
        type=aws.route53.RecordType.CNAME,
        ttl=60,
        records=[outputs["publicDns"]],
    )
    host_name = record.fqdn
    pulumi.export("dnsName", record.fqdn)

ssh_config = pulumi.Output.all(pulumi.Output.all(**outputs), host_name).apply(
    lambda resolved: host_blocks(
        resolved[0], alias, host_name=resolved[1], identity_file=identity_file
    )
)
pulumi.export("sshConfig", ssh_config)
