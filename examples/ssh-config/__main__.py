"""Consumer of a devserver stack: its SSH config, pinned host keys, and optionally a DNS name."""

import pulumi
import pulumi_aws as aws
from ssh_config import DEFAULT_KNOWN_HOSTS, SshConfigError, render

config = pulumi.Config()
# Fully qualified: <organization>/devserver/<stack>; DIY backends use the literal `organization`.
devserver = pulumi.StackReference(config.require("devserverStack"))
alias = config.get("hostAlias") or "devserver"
identity_file = config.get("identityFile") or None
known_hosts_file = config.get("knownHostsFile") or DEFAULT_KNOWN_HOSTS

# `servers` is the one output both stack shapes export (a single server as its only entry). Read
# on its own: a secret output elsewhere in the stack must not make it secret.
servers = devserver.require_output("servers")


def _only_server_dns(value: dict[str, dict[str, str]]) -> str:
    if not value or len(value) != 1:
        raise SshConfigError("dnsName names one server; this stack has several")
    return next(iter(value.values()))["publicDns"]


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
        records=[servers.apply(_only_server_dns)],
    )
    host_name = record.fqdn
    pulumi.export("dnsName", record.fqdn)

rendered = pulumi.Output.all(servers, host_name).apply(
    lambda resolved: render(
        resolved[0],
        alias,
        host_name=resolved[1],
        identity_file=identity_file,
        known_hosts_file=known_hosts_file,
    )
)
pulumi.export("sshConfig", rendered.apply(lambda r: r[0]))
pulumi.export("knownHosts", rendered.apply(lambda r: r[1]))
