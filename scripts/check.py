"""`./scripts/check <stack>`: the real program on Pulumi.<stack>.yaml, offline, under the mocks.

Usage: python scripts/check.py <stack>   (exit 0: the plan below; exit 1: every problem; 2: usage)

No AWS account, no Pulumi CLI, no credentials: it runs `__main__.py` with Pulumi.yaml's defaults
and the stack file, answering AWS's lookups from the stack itself, as for a first `pulumi up` (no
machine or home volume exists yet). It prints the program's own messages for every problem, or
what would be created per server. What only AWS knows is checked by `pulumi up`: that the
instance type exists in the region with that architecture, Nitro and spot; the AMI; the subnet,
VPC and zone; an adopted volume; prices (the estimate below says so); and the secrets' values,
which stay encrypted here (their presence and plaintext/secret status are checked).
"""

from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import yaml  # noqa: E402

from components.cost import HOURS_PER_MONTH, PUBLIC_IPV4_HOURLY_USD  # noqa: E402
from tests.program import (  # noqa: E402
    AwsError,
    FakeAws,
    ProgramRun,
    fake_openssh_private_key,
    reset_runtime,
    run_program,
    stack_config,
)

NAMESPACE = "devserver"
# Stand-ins for encrypted secrets, shaped as the program requires (it checks the shape).
SECRET_STAND_INS = {
    f"{NAMESPACE}:githubToken": "offline-check-stand-in-token",
    f"{NAMESPACE}:deployPrivateKey": fake_openssh_private_key(),
}
# EC2 names Graviton families with a `g` after the generation (m7g, c7gn, t4g, r8gd) and a1.
ARM_FAMILY = re.compile(r"(?:[a-z]+\d+g[a-z]*|a1)\.")
# Families on the Xen hypervisor (no NVMe EBS): refused by the program, as by AWS's answer.
XEN_FAMILY = re.compile(r"(?:t2|m4|m3|c4|c3|r4|r3|i2|d2|x1|x1e|h1|p2|p3|g3|f1)\.")
OFFLINE = "offline: AWS's price list is read by `pulumi up`"


class OfflineAws(FakeAws):
    """Answers lookups from the stack itself, as for a first `up`; prices are not known offline."""

    def __init__(self, region: str, config: dict[str, Any]) -> None:
        super().__init__()
        self.region = region
        self.values = [config, *_entries(config)]

    def _set(self, key: str) -> list[Any]:
        return [v[k] for v in self.values for k in (key, f"{NAMESPACE}:{key}") if v.get(k)]

    def _answer(self, invoke: str, a: dict[str, Any]) -> dict[str, Any]:
        zones = [f"{self.region}{z}" for z in "abc"]
        zones += [z for z in self._set("availabilityZone") if z not in zones]
        vpc = next(iter(self._set("vpcId")), "vpc-0ff11e")
        if invoke == "aws:ec2/getInstanceType:getInstanceType":
            name = a["instanceType"]
            return {
                "instanceType": name,
                "supportedArchitectures": ["arm64" if ARM_FAMILY.match(name) else "x86_64"],
                "hypervisor": "xen" if XEN_FAMILY.match(name) else "nitro",
                "supportedUsagesClasses": ["on-demand", "spot"],
                "defaultVcpus": 0,
                "memorySize": 0,
            }
        if invoke == "aws:ec2/getAmi:getAmi":
            ids = [f["values"][0] for f in a.get("filters") or [] if f["name"] == "image-id"]
            arches = [f["values"][0] for f in a.get("filters") or [] if f["name"] == "architecture"]
            arch = arches[0] if arches else self._ami_arch(ids[0] if ids else "")
            return {
                "id": ids[0] if ids else "ami-0ff11e",
                "name": "(offline)",
                "architecture": arch,
            }
        if invoke == "aws:ec2/getVpc:getVpc":
            return {"id": vpc}
        if invoke == "aws:ec2/getSubnets:getSubnets":
            return {"ids": [f"subnet-0ff11e{z[-1]}" for z in zones]}
        if invoke == "aws:ec2/getSubnet:getSubnet":
            zone = f"{self.region}{a['id'][-1]}" if a["id"].startswith("subnet-0ff11e") else None
            zone = zone or next(iter(self._set("availabilityZone")), zones[0])
            return {"id": a["id"], "vpcId": vpc, "availabilityZone": zone}
        if invoke == "aws:ec2/getInstanceTypeOfferings:getInstanceTypeOfferings":
            return {"locations": zones, "instanceTypes": []}
        if invoke == "aws:ebs/getVolume:getVolume":
            volume = next(f["values"][0] for f in a.get("filters") or [])
            size = next(iter(self._set("homeVolumeGiB")), 100)
            zone = next(iter(self._set("availabilityZone")), zones[0])
            return {"id": volume, "volumeId": volume, "availabilityZone": zone,
                    "encrypted": True, "size": size, "tags": {}}  # fmt: skip
        if invoke in ("aws:ebs/getEbsVolumes:getEbsVolumes", "aws:ec2/getInstances:getInstances"):
            return {"id": self.region, "ids": []}
        if invoke == "aws:ec2/getKeyPair:getKeyPair":
            raise AwsError("InvalidKeyPair.NotFound (offline: a first up)")
        if invoke == "aws:servicequotas/getServiceQuota:getServiceQuota":
            # Offline the quota is unknown: the program assumes AWS's default (5) and warns.
            raise AwsError("offline: the Elastic IP quota is read by `pulumi up`")
        if invoke in ("aws:pricing/getProduct:getProduct", "aws:ec2/getSpotPrice:getSpotPrice"):
            raise AwsError(OFFLINE)
        return super()._answer(invoke, a)

    def _ami_arch(self, ami_id: str) -> str:
        """A pinned AMI's architecture: the arch of the server that names it, as the stack says."""
        for values in self.values:
            if ami_id in (values.get("amiId"), values.get(f"{NAMESPACE}:amiId")):
                arch = values.get("arch") or values.get(f"{NAMESPACE}:arch")
                preset = values.get("preset") or values.get(f"{NAMESPACE}:preset") or "x86"
                if not arch and (ROOT / "presets" / f"{preset}.yaml").is_file():
                    arch = yaml.safe_load((ROOT / "presets" / f"{preset}.yaml").read_text())["arch"]
                return "arm64" if arch == "aarch64" else "x86_64"
        return "x86_64"


def _entries(config: dict[str, Any]) -> list[dict[str, Any]]:
    servers = config.get(f"{NAMESPACE}:servers")
    if isinstance(servers, str):
        servers = yaml.safe_load(servers)
    return [s for s in servers or [] if isinstance(s, dict)]


def problems_of(error: BaseException) -> list[str]:
    """The program's own messages, one per problem."""
    found = getattr(error, "problems", None)
    if found:
        return list(dict.fromkeys(found))
    text = str(error).strip()
    lines = text.splitlines()
    if lines and lines[0].rstrip(":").endswith("configuration") and len(lines) > 1:
        return [line.strip().removeprefix("- ") for line in lines[1:]]
    return [text]


def _server_names(run: ProgramRun) -> list[str]:
    servers = run.outputs.get("servers") or {}
    return list(servers)


def _flake_source(run: ProgramRun, name: str) -> tuple[str, str]:
    """The shared flake and the personal flake the server's host flake names."""
    copies = [r for r in run.resources if r.name == f"{name}-host-flake"]
    if not copies:
        return "none: the deployment is off or the machine is stopped", "-"
    text = str(getattr(copies[0].inputs.get("source"), "text", ""))
    shared = re.search(r'devserver\.url = "([^"]*)"', text)
    personal = re.search(r'personal\.url = "([^"]*)"', text)
    source = shared.group(1) if shared else "?"
    pushed = [r for r in run.resources if r.name == f"{name}-shared-flake"]
    if pushed:
        header = str(getattr(pushed[0].inputs.get("source"), "text", "")).split("\n", 1)[0]
        digest = re.search(r"sha256=([0-9a-f]{12})", header)
        files = re.search(r"files=(\d+)", header)
        source = (
            f"this checkout's nix/, pushed by the deployment ({files.group(1) if files else '?'} "
            f"files git tracks, sha256 {digest.group(1) if digest else '?'}…)"
        )
    else:
        source = f"{source} (remote; devserver:flake)"
    return source, personal.group(1) if personal else "none (devserver:personalFlake)"


def _cost(cost: dict[str, Any], gib: str) -> str:
    if not cost:
        return "-"
    if cost.get("available") is False:
        reason = str(cost.get("reason", ""))
        if OFFLINE not in reason:
            return reason
        address = PUBLIC_IPV4_HOURLY_USD * HOURS_PER_MONTH
        return (
            f"the instance's hours and {gib} GiB of gp3 at AWS's prices (read by `pulumi up`, "
            f"not offline) + ${address:.2f}/month for the Elastic IP"
        )
    return f"about ${cost['monthly']:.2f}/month (${cost['hourly']:.4f}/h)"


def _int(value: Any) -> str:
    return str(int(value)) if isinstance(value, int | float) else str(value)


def plan_text(stack: str, run: ProgramRun, region: str) -> str:
    """What a first `pulumi up` would create, per server."""
    rows = [f"Pulumi.{stack}.yaml: no problems. A first `pulumi up` would create, in {region}:"]
    servers = run.outputs.get("servers") or {}
    for name in _server_names(run):
        out = servers[name]
        instances = [
            r for r in run.of_type("aws:ec2/instance:Instance") if r.name.startswith(f"{name}-")
        ]
        volumes = [r for r in run.of_type("aws:ebs/volume:Volume") if r.name == f"{name}-home"]
        machine = instances[0].inputs if instances else {}
        root = _int((machine.get("rootBlockDevice") or {}).get("volumeSize", "?"))
        pricing = (
            "spot (persistent, stops on interruption)"
            if machine.get("instanceMarketOptions")
            else "on-demand"
        )
        volume = (
            f"{_int(volumes[0].inputs.get('size'))} GiB gp3, encrypted, kept across rebuilds"
            if volumes
            else "adopted (devserver:homeVolumeId)"
        )
        shared, personal = _flake_source(run, name)
        home_gib = _int(volumes[0].inputs.get("size")) if volumes else "?"
        gib = str(int(root) + int(home_gib)) if f"{root}{home_gib}".isdigit() else "the"
        rows += [
            f"  server {name}: login {out.get('user')}",
            f"    machine        {machine.get('instanceType')}, {out.get('arch')}, {pricing}",
            f"    disks          root {root} GiB; home {volume}",
            f"    shared flake   {shared}",
            f"    personal flake {personal}",
            f"    cost           {_cost(out.get('estimatedCost') or {}, gib)}",
        ]
    total = run.outputs.get("estimatedCost") if len(servers) > 1 else None
    if isinstance(total, dict) and total.get("available") is not False and "monthly" in total:
        rows.append(f"  all {len(servers)} servers: {_cost(total, 'their')}")
    rows.append(
        f"  {len(run.resources)} resources in all. Checked only by `pulumi up`: what AWS knows "
        "(instance type, AMI, subnets, an adopted volume, prices) and the secrets' values."
    )
    return "\n".join(rows)


def check(stack: str, root: Path = ROOT) -> tuple[int, str]:
    """Exit code and report for one stack file."""
    stack_file = root / f"Pulumi.{stack}.yaml"
    if not stack_file.is_file():
        return 1, (
            f"scripts/check: no stack file Pulumi.{stack}.yaml: create the stack first "
            f"(./scripts/pulumi stack init {stack}; README.md)"
        )
    try:
        config = stack_config(stack, stack_file)
    except yaml.YAMLError as err:
        return 1, f"scripts/check: Pulumi.{stack}.yaml is not valid YAML: {err}"
    secrets = {}
    for key, value in list(config.items()):
        if isinstance(value, dict) and set(value) == {"secure"}:
            config.pop(key)
            secrets[key] = SECRET_STAND_INS.get(key, "offline-check-stand-in")
    region = str(config.get("aws:region") or "")
    reset_runtime()
    try:
        run = run_program(
            base=config,
            secrets=secrets,
            stack=stack,
            fake=OfflineAws(region, config),
            raise_errors=False,
        )
    finally:
        reset_runtime()
    if run.error is not None:
        found = problems_of(run.error)
        lines = [f"scripts/check: Pulumi.{stack}.yaml: {len(found)} problem(s), nothing created:"]
        return 1, "\n".join([*lines, *(f"  - {p}" for p in found)])
    return 0, "\n".join([plan_text(stack, run, region), *warnings_of(config)])


def warnings_of(config: dict[str, Any]) -> list[str]:
    """What the program allows but the shipped IAM policies refuse (an admin may mean it)."""
    if config.get(f"{NAMESPACE}:permissionsBoundary"):
        return []
    return [
        f"WARNING: {NAMESPACE}:permissionsBoundary is unset: the roles get no permissions "
        "boundary, and an identity with docs/iam/operator-policy.json (or the developer "
        "policy) is refused iam:CreateRole by AWS halfway through `pulumi up`. Create the "
        "boundary once per account and set its ARN (arn:aws:iam::<account>:policy/"
        "devserver-boundary; docs/security.md), or ignore this with an admin identity."
    ]


def main(argv: list[str]) -> int:
    if len(argv) != 2 or not argv[1] or argv[1].startswith("-"):
        sys.stderr.write("usage: ./scripts/check <stack>\n")
        return 2
    code, text = check(argv[1].rsplit("/", 1)[-1])
    (sys.stdout if code == 0 else sys.stderr).write(text + "\n")
    return code


if __name__ == "__main__":
    sys.exit(main(sys.argv))
