"""Runs the real `__main__.py` under Pulumi's mocks with real stack config, and records everything.

`FakeAws` answers invokes from small tables that look like one AWS region (eu-west-1) and gives
every resource plausible outputs. `run_program` loads `Pulumi.yaml` defaults and a stack file
(the suite's own, `tests/stacks/Pulumi.<stack>.yaml`), applies overrides, runs the program, and
returns what was registered: type, name, inputs (with secret markers kept), resource options and
parents, invokes, and the resolved stack outputs.

`preview=True` runs it as `pulumi preview` of a new stack: resources get no id and no computed
outputs (ids, ARNs, IPs, command stdout are unknown, as the engine reports them), and the
provider `Check` rules in CHECKS are enforced on every registration, preview or not.
"""

from __future__ import annotations

import asyncio
import base64
import fnmatch
import hashlib
import json
import re
import runpy
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pulumi
import yaml
from pulumi.output import Unknown
from pulumi.runtime import config as runtime_config
from pulumi.runtime import mocks, settings
from pulumi.runtime.stack import run_pulumi_func
from pulumi.runtime.sync_await import _sync_await

from components.settings import OPENSSH_KEY_BEGIN, OPENSSH_KEY_END

ROOT = Path(__file__).resolve().parent.parent
# The suite's own stack files: the repository's Pulumi.<stack>.yaml are the user's to edit.
FIXTURE_STACKS = ROOT / "tests" / "stacks"
ACCOUNT = "123456789012"
# An obviously fake token: tests look for it everywhere it must not be.
FAKE_TOKEN = "fake-github-token-for-tests-0123456789"
REGION = "eu-west-1"
# Pulumi's mocks keep a secret as {SECRET_SIG: SECRET_VALUE, "value": ...} in resource inputs.
SECRET_SIG = "4dabf18193072939515e22adb298388d"
SECRET_VALUE = "1b47061264138c4ac30d75fd1eb44270"

# name: (architectures, hypervisor, usage classes, vCPUs, MiB)
INSTANCE_TYPES: dict[str, tuple[list[str], str, list[str], int, int]] = {
    "m7i.xlarge": (["x86_64"], "nitro", ["on-demand", "spot"], 4, 16384),
    "m7i.2xlarge": (["x86_64"], "nitro", ["on-demand", "spot"], 8, 32768),
    "m7g.xlarge": (["arm64"], "nitro", ["on-demand", "spot"], 4, 16384),
    "c7g.2xlarge": (["arm64"], "nitro", ["on-demand", "spot"], 8, 16384),
    "t2.large": (["i386", "x86_64"], "xen", ["on-demand", "spot"], 2, 8192),
    "m7i-flex.xlarge": (["x86_64"], "nitro", ["on-demand"], 4, 16384),
}
# Zones that offer each type: m7g is missing from eu-west-1c, as real offerings differ per zone.
OFFERINGS = {t: ["eu-west-1a", "eu-west-1b", "eu-west-1c"] for t in INSTANCE_TYPES}
OFFERINGS["c7g.2xlarge"] = ["eu-west-1b"]
SUBNETS = {
    "subnet-0a0a0a0a": ("vpc-0d3fa017", "eu-west-1a"),
    "subnet-0b0b0b0b": ("vpc-0d3fa017", "eu-west-1b"),
    "subnet-0c0c0c0c": ("vpc-0d3fa017", "eu-west-1c"),
    "subnet-0e0e0e0e": ("vpc-0e1e2e3e", "eu-west-1c"),
}
DEFAULT_VPC = "vpc-0d3fa017"
NIXOS_AMIS = {"x86_64": "ami-0123456789abcdef0", "arm64": "ami-0fedcba9876543210"}
OTHER_AMIS = {
    "ami-0aaaaaaaaaaaaaaaa": ("x86_64", "custom-nixos-x86"),
    "ami-0bbbbbbbbbbbbbbbb": ("arm64", "custom-nixos-arm"),
}
VOLUMES = {
    "vol-0123456789abcdef0": ("eu-west-1b", True, 200),
    "vol-0deadbeefdeadbeef": ("eu-west-1a", False, 100),
}

# Volumes' tags, for tag lookups (a test adds the home volume an earlier `pulumi up` created).
VOLUME_TAGS: dict[str, dict[str, str]] = {}
# Instances that exist already: id -> tags, state, stateReasonCode, lifecycle ("spot" or None),
# and what DescribeInstances reports of their launch: instanceType, subnetId, keyName.
INSTANCES: dict[str, dict[str, Any]] = {}
# EC2 key pairs that exist already: name -> OpenSSH public key (as DescribeKeyPairs returns it).
KEY_PAIRS: dict[str, str] = {}
# Official images past their DeprecationTime (NixOS/amis upload_ami.py: 90 days after upload),
# and images deregistered after that (delete_deprecated_images.py).
DEPRECATED_AMIS: set[str] = set()
DEREGISTERED_AMIS: set[str] = set()
# Releases NixOS no longer uploads for, whose last images are all past their DeprecationTime.
RETIRED_RELEASES: set[str] = set()
# Latest Linux/UNIX spot prices per hour (DescribeSpotPriceHistory), the same in every zone.
SPOT_PRICES = {"m7i.xlarge": "0.0817", "m7g.xlarge": "0.0664", "c7g.2xlarge": "0.1203"}
# Elastic IPs of the region that exist already: allocation id -> tags (DescribeAddresses).
ELASTIC_IPS: dict[str, dict[str, str]] = {}
# Service Quotas "EC2-VPC Elastic IPs" (L-0263D0A3) of the region as applied (raised); None: never
# raised (GetServiceQuota answers NoSuchResourceException, the data source keeps the default).
ELASTIC_IP_QUOTA: list[float | None] = [5.0]
# Service Quotas actions refused beyond what docs/iam/operator-policy.json allows.
QUOTA_DENIED: set[str] = set()
# Invokes the operator's IAM policy does not allow: invoke token -> the IAM action AWS names.
DENIED: dict[str, str] = {}
# Invokes that fail for another reason (throttling, an outage): invoke token -> AWS's error.
FAILING: dict[str, str] = {}


def denied_message(action: str) -> str:
    """A refused read as the AWS provider reports it: the SDK's operation error (aws-sdk-go-v2
    smithy-go `OperationError`: "operation error <service>: <operation>, ...") around EC2's
    UnauthorizedOperation, whose text names the caller and the action (IAM's "User: <arn> is not
    authorized to perform: <action>" wording)."""
    service, operation = action.split(":")
    return (
        f"reading {operation}: operation error {service.upper()}: {operation}, https response "
        "error StatusCode: 403, RequestID: 00000000-0000-0000-0000-000000000000, api error "
        "UnauthorizedOperation: You are not authorized to perform this operation. User: "
        f"arn:aws:iam::{ACCOUNT}:user/alice is not authorized to perform: {action} because no "
        f"identity-based policy allows the {action} action"
    )


def operator_policy_allows(action: str) -> bool:
    """Whether docs/iam/operator-policy.json allows an action (IAM matches case-insensitively)."""
    policy = json.loads(
        (ROOT / "docs" / "iam" / "operator-policy.json").read_text(encoding="utf-8")
    )
    return any(
        s["Effect"] == "Allow"
        and any(
            fnmatch.fnmatchcase(action.lower(), p.lower())
            for p in ([s["Action"]] if isinstance(s["Action"], str) else s["Action"])
        )
        for s in policy["Statement"]
    )


def fake_openssh_private_key(cipher: str = "none") -> str:
    """A private key in OpenSSH's armour and header (openssh-key-v1, PROTOCOL.key) whose key
    material is obviously fake: the program checks the shape, never the key."""

    def string(data: bytes) -> bytes:
        return len(data).to_bytes(4, "big") + data

    body = (
        b"openssh-key-v1\x00"
        + string(cipher.encode())
        + string(b"none" if cipher == "none" else b"bcrypt")
        + string(b"")
        + (1).to_bytes(4, "big")
        + string(b"FAKE-PUBLIC-KEY-FOR-TESTS")
        + string(b"FAKE-PRIVATE-KEY-FOR-TESTS")
    )
    text = base64.b64encode(body).decode()
    lines = [text[i : i + 70] for i in range(0, len(text), 70)]
    return f"{OPENSSH_KEY_BEGIN}\n" + "\n".join(lines) + f"\n{OPENSSH_KEY_END}\n"


# What the fake apply prints last, as apply-flake.sh does (seconds per phase).
FAKE_APPLY_PHASES = (
    'DEVSERVER_PHASES {"waitForSsh": 31.5, "token": 1.2, "realise": 20.4, "activation": 7.9, '
    '"loginCheck": 0.8, "binaryCache": true}'
)
# The binary cache's fake Ed25519 key: 32 bytes each, obviously not a key (tests look for them).
FAKE_SIGNING_SEED = b"FAKE-SIGNING-SECRET-SEED-32-BYTE"
FAKE_SIGNING_PUBLIC = b"FAKE-SIGNING-PUBLIC-KEY-32-BYTES"


def _ssh_string(data: bytes) -> bytes:
    return len(data).to_bytes(4, "big") + data


FAKE_SIGNING_PUBLIC_BLOB = base64.b64encode(
    _ssh_string(b"ssh-ed25519") + _ssh_string(FAKE_SIGNING_PUBLIC)
).decode()


def fake_ed25519_openssh_private_key(
    seed: bytes = FAKE_SIGNING_SEED,
    public: bytes = FAKE_SIGNING_PUBLIC,
    secret_public: bytes | None = None,
) -> str:
    """An unencrypted openssh-key-v1 Ed25519 key laid out as golang.org/x/crypto/ssh's
    marshalOpenSSHPrivateKey (pulumi-tls) writes it, holding the fake seed and public key
    (`secret_public`: another public half inside the 64-byte secret, for a damaged key)."""
    blob = _ssh_string(b"ssh-ed25519") + _ssh_string(public)
    private = (
        (7).to_bytes(4, "big") * 2
        + _ssh_string(b"ssh-ed25519")
        + _ssh_string(public)
        + _ssh_string(seed + (public if secret_public is None else secret_public))
        + _ssh_string(b"")
    )
    private += bytes(range(1, 1 + (-len(private)) % 8))
    body = (
        b"openssh-key-v1\x00"
        + _ssh_string(b"none")
        + _ssh_string(b"none")
        + _ssh_string(b"")
        + (1).to_bytes(4, "big")
        + _ssh_string(blob)
        + _ssh_string(private)
    )
    text = base64.b64encode(body).decode()
    lines = [text[i : i + 70] for i in range(0, len(text), 70)]
    return f"{OPENSSH_KEY_BEGIN}\n" + "\n".join(lines) + f"\n{OPENSSH_KEY_END}\n"


class AwsError(Exception):
    """What a failed invoke raises, shaped like the provider's error."""


class CheckFailure(Exception):
    """A provider's `Check` refused a resource's inputs (the engine stops the whole operation)."""


def is_unknown(value: Any) -> bool:
    """A value the engine does not know yet (preview); the mocks hand it over as Unknown."""
    return isinstance(value, Unknown)


def _check_copy_to_remote(inputs: dict[str, Any]) -> list[str]:
    # pulumi-command v1.2.1 provider/pkg/provider/remote/copyController.go (CopyToRemote.Check):
    # an unknown source decodes as neither asset nor archive (pulumi/pulumi-command#754).
    source = inputs.get("source")
    if source is None or is_unknown(source):
        return ["asset: either asset or archive must be set"]
    if not isinstance(source, pulumi.Asset | pulumi.Archive):
        return [f"source: expected an asset or an archive, got {type(source).__name__}"]
    # v1.2.1 also: "asset must be a path-based file asset or a text asset", "archive must be a
    # path to a file or directory" (an AssetArchive of chosen files is refused).
    if isinstance(source, pulumi.Asset) and not isinstance(
        source, pulumi.FileAsset | pulumi.StringAsset
    ):
        return ["asset: asset must be a path-based file asset or a text asset"]
    if isinstance(source, pulumi.Archive) and not isinstance(source, pulumi.FileArchive):
        return ["archive: archive must be a path to a file or directory"]
    return []


def _check_secret(inputs: dict[str, Any]) -> list[str]:
    # terraform-provider-aws secretsmanager/secret.go: name ValidateFunc (1-512 of these chars).
    name = inputs.get("name")
    if isinstance(name, str) and not re.fullmatch(r"[0-9A-Za-z/_+=.@-]{1,512}", name):
        return [f"name: {name!r} must be 1-512 of 0-9 A-Z a-z / _ + = . @ -"]
    return []


# The provider Check rules the program relies on, by type token.
CHECKS = {
    "command:remote:CopyToRemote": _check_copy_to_remote,
    "aws:secretsmanager/secret:Secret": _check_secret,
}


def _hex(text: str, n: int) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:n]


def _filters(args: dict[str, Any]) -> dict[str, list[str]]:
    return {f["name"]: f["values"] for f in args.get("filters") or []}


@dataclass
class Registered:
    """One registered resource as the engine would see it."""

    type: str
    name: str
    inputs: dict[str, Any]
    state: dict[str, Any] = field(default_factory=dict)
    opts: pulumi.ResourceOptions | None = None
    parent_types: list[str] = field(default_factory=list)
    """Types of the parents, nearest first (empty = the stack itself)."""


class FakeAws(pulumi.runtime.Mocks):
    """Answers invokes from the tables above; gives resources outputs like AWS would."""

    def __init__(self, preview: bool = False) -> None:
        self.resources: list[Registered] = []
        self.calls: list[tuple[str, dict[str, Any]]] = []
        self.preview = preview
        self.options: dict[tuple[str, str], pulumi.ResourceOptions] = {}
        """Each resource's options by (type, name), captured before it is registered."""

    def instances(self) -> dict[str, dict[str, Any]]:
        """The instances EC2 holds now (tests/lifecycle.py adds the ones in the stack's state)."""
        return INSTANCES

    def network_interfaces(self) -> dict[str, dict[str, str]]:
        """The primary ENIs of the instances EC2 holds now: id -> tags (tests/lifecycle.py adds
        the tags the stack's aws.ec2.Tag resources put there)."""
        return {
            x.get("networkInterfaceId") or f"eni-{i[2:]}": dict(x.get("eniTags") or {})
            for i, x in self.instances().items()
        }

    def key_pairs(self) -> dict[str, str]:
        """The EC2 key pairs that exist now (tests/lifecycle.py adds the stack's own)."""
        return KEY_PAIRS

    def volumes(self) -> dict[str, tuple[str, bool, int, dict[str, str]]]:
        """The EBS volumes that exist now: id -> zone, encrypted, GiB, tags."""
        return {v: (*spec, VOLUME_TAGS.get(v, {})) for v, spec in VOLUMES.items()} | {
            v: ("eu-west-1a", True, 100, tags)
            for v, tags in VOLUME_TAGS.items()
            if v not in VOLUMES
        }

    def elastic_ips(self) -> dict[str, dict[str, str]]:
        """The region's Elastic IPs now: allocation id -> tags."""
        return ELASTIC_IPS

    def call(  # type: ignore[override]
        self, args: pulumi.runtime.MockCallArgs
    ) -> tuple[dict[str, Any], list[tuple[str, str]]]:
        self.calls.append((args.token, args.args))
        try:
            return self._answer(args.token, args.args), []
        except AwsError as err:
            # Returned as a failure, the way the engine reports a data source error to the program.
            return {}, [("", str(err))]

    def _service_quota(self, a: dict[str, Any]) -> dict[str, Any]:
        """aws_servicequotas_service_quota as terraform-provider-aws reads it
        (internal/service/servicequotas/service_quota_data_source.go@01f43111
        dataSourceServiceQuotaRead): GetAWSDefaultServiceQuota first, an error if it fails; then
        GetServiceQuota, whose NoSuchResourceException (never raised) keeps the default value."""
        sq = "SERVICEQUOTAS"
        if (a.get("serviceCode"), a.get("quotaCode")) != ("ec2", "L-0263D0A3"):
            raise AwsError(f"{sq}: NoSuchResourceException: no quota {a.get('quotaCode')}")
        for action, step in (
            ("servicequotas:GetAWSDefaultServiceQuota", "getting Default Service Quota"),
            ("servicequotas:GetServiceQuota", "getting Service Quota"),
        ):
            if action in QUOTA_DENIED or not operator_policy_allows(action):
                raise AwsError(f"{step} for (ec2/L-0263D0A3): {denied_message(action)}")
        value = 5.0 if ELASTIC_IP_QUOTA[0] is None else ELASTIC_IP_QUOTA[0]
        return {"id": "ec2/L-0263D0A3", "value": value, "quotaName": "EC2-VPC Elastic IPs"}

    def _answer(self, token: str, a: dict[str, Any]) -> dict[str, Any]:
        if token in DENIED:
            raise AwsError(denied_message(DENIED[token]))
        if token in FAILING:
            raise AwsError(FAILING[token])
        if token == "aws:ec2/getInstanceType:getInstanceType":
            name = a["instanceType"]
            if name not in INSTANCE_TYPES:
                raise AwsError(
                    f"InvalidInstanceType: The following supplied instance types do not exist: [{name}]"
                )
            archs, hypervisor, usage, vcpus, mib = INSTANCE_TYPES[name]
            return {
                "instanceType": name,
                "supportedArchitectures": archs,
                "hypervisor": hypervisor,
                "supportedUsagesClasses": usage,
                "defaultVcpus": vcpus,
                "memorySize": mib,
            }
        if token == "aws:ec2/getAmi:getAmi":
            # DescribeImages: a deregistered image is gone; the data source drops deprecated
            # images unless include_deprecated (ami_data_source.go, IncludeDeprecated).
            f = _filters(a)
            gone = DEREGISTERED_AMIS | (set() if a.get("includeDeprecated") else DEPRECATED_AMIS)
            if "image-id" in f and f["image-id"][0] in gone:
                raise AwsError("Your query returned no results.")
            if "image-id" in f:
                ami_id = f["image-id"][0]
                if ami_id in OTHER_AMIS:
                    arch, name = OTHER_AMIS[ami_id]
                    return {"id": ami_id, "name": name, "architecture": arch}
                arch = next((k for k, v in NIXOS_AMIS.items() if v == ami_id), None)
                if arch is None:
                    raise AwsError("Your query returned no results.")
                return {"id": ami_id, "name": f"nixos/26.05.x-{arch}", "architecture": arch}
            arch = f["architecture"][0]
            release = f["name"][0].removeprefix("nixos/").rstrip("*")
            if release not in ("25.11", "26.05") or a.get("owners") != ["427812963091"]:
                raise AwsError("Your query returned no results.")
            if NIXOS_AMIS[arch] in gone or release in RETIRED_RELEASES:
                raise AwsError("Your query returned no results.")
            return {
                "id": NIXOS_AMIS[arch],
                "name": f"nixos/{release}.1234.abcdef-{arch}-linux",
                "architecture": arch,
            }
        if token == "aws:ec2/getVpc:getVpc":
            return {"id": DEFAULT_VPC}
        if token == "aws:ec2/getSubnets:getSubnets":
            vpc = _filters(a)["vpc-id"][0]
            return {"ids": [s for s, (v, _) in SUBNETS.items() if v == vpc]}
        if token == "aws:ec2/getSubnet:getSubnet":
            if a["id"] not in SUBNETS:
                raise AwsError(
                    f"InvalidSubnetID.NotFound: The subnet ID '{a['id']}' does not exist"
                )
            vpc, zone = SUBNETS[a["id"]]
            return {"id": a["id"], "vpcId": vpc, "availabilityZone": zone}
        if token == "aws:ec2/getInstanceTypeOfferings:getInstanceTypeOfferings":
            name = _filters(a)["instance-type"][0]
            return {"locations": OFFERINGS.get(name, []), "instanceTypes": [name]}
        if token == "aws:ebs/getVolume:getVolume":
            vid = _filters(a)["volume-id"][0]
            if vid not in self.volumes():
                raise AwsError("Your query returned no results.")
            zone, encrypted, size, tags = self.volumes()[vid]
            return {
                "id": vid,
                "volumeId": vid,
                "availabilityZone": zone,
                "encrypted": encrypted,
                "size": size,
                "tags": tags,
            }
        if token == "aws:ebs/getEbsVolumes:getEbsVolumes":
            wanted = (a.get("tags") or {}).items()
            ids = [v for v, x in self.volumes().items() if wanted <= x[3].items()]
            return {"id": REGION, "ids": sorted(ids)}
        if token == "aws:ec2/getEips:getEips":
            # DescribeAddresses (ec2_eips_data_source.go): every VPC address, or those with tags.
            wanted = (a.get("tags") or {}).items()
            ids = sorted(i for i, tags in self.elastic_ips().items() if wanted <= tags.items())
            return {"id": REGION, "allocationIds": ids, "publicIps": []}
        if token == "aws:servicequotas/getServiceQuota:getServiceQuota":
            return self._service_quota(a)
        if token == "aws:ec2/getInstances:getInstances":
            f = _filters(a)
            ids = [
                i
                for i, x in self.instances().items()
                if (a.get("instanceTags") or {}).items() <= x["tags"].items()
                and x["state"] in (a.get("instanceStateNames") or [x["state"]])
                and x.get("stateReasonCode")
                in f.get("state-reason-code", [x.get("stateReasonCode")])
                and x.get("lifecycle") in f.get("instance-lifecycle", [x.get("lifecycle")])
            ]
            return {"id": REGION, "ids": sorted(ids), "privateIps": [], "publicIps": []}
        if token == "aws:ec2/getInstance:getInstance":
            # terraform-provider-aws ec2_instance_data_source.go: one instance by id, or an error.
            x = self.instances().get(a.get("instanceId", ""))
            if x is None:
                raise AwsError("Your query returned no results. Please change your search criteria")
            subnet = x.get("subnetId", "subnet-0a0a0a0a")
            return {
                "id": a["instanceId"],
                "instanceId": a["instanceId"],
                "instanceState": x["state"],
                "instanceType": x.get("instanceType", "m7i.xlarge"),
                "subnetId": subnet,
                "availabilityZone": SUBNETS[subnet][1] if subnet in SUBNETS else None,
                # What the program's own key pair is called in this fake (see outputs_of).
                "keyName": x.get("keyName", "devserver-deploy-2468"),
                "ami": x.get("ami", ""),
                "networkInterfaceId": x.get("networkInterfaceId") or f"eni-{a['instanceId'][2:]}",
                "tags": x["tags"],
                "instanceTags": x["tags"],
            }
        if token == "aws:ec2/getNetworkInterface:getNetworkInterface":
            # DescribeNetworkInterfaces by id (vpc_network_interface_data_source.go).
            eni = a.get("id", "")
            enis = self.network_interfaces()
            if eni not in enis:
                raise AwsError(
                    f"InvalidNetworkInterfaceID.NotFound: The networkInterface ID '{eni}' does not "
                    "exist"
                )
            return {"id": eni, "tags": enis[eni]}
        if token == "aws:ec2/getKeyPair:getKeyPair":
            # DescribeKeyPairs (IncludePublicKey) by name; a missing one is InvalidKeyPair.NotFound.
            name = a.get("keyName", "")
            if name not in self.key_pairs():
                raise AwsError(f"InvalidKeyPair.NotFound: The key pair '{name}' does not exist")
            public = self.key_pairs()[name] if a.get("includePublicKey") else None
            return {"id": f"key-0{_hex(name, 16)}", "keyName": name, "publicKey": public}
        if token == "tls:index/getPublicKey:getPublicKey":
            return {
                "publicKeyOpenssh": "ssh-ed25519 AAAAFAKEPUBLICKEYFROMCONFIG devserver-deploy\n"
            }
        if token == "aws:pricing/getProduct:getProduct":
            f = {x["field"]: x["value"] for x in a.get("filters") or []}
            # Price List answers for eu-west-1 in USD: Linux instances per hour, gp3 per GB-month.
            on_demand = {
                "m7i.xlarge": "0.2226000000",
                "m7i.2xlarge": "0.4452000000",
                "m7g.xlarge": "0.1785000000",
                "c7g.2xlarge": "0.3152000000",
                "m7i-flex.xlarge": "0.2115000000",
            }
            exact = {
                "operatingSystem": "Linux",
                "tenancy": "Shared",
                "preInstalledSw": "NA",
                "capacitystatus": "Used",
            }
            if a.get("serviceCode") != "AmazonEC2" or f.get("regionCode") != REGION:
                raise AwsError("Pricing product query did not return any elements")
            if f.get("productFamily") == "Storage" and f.get("volumeApiName") == "gp3":
                family, sku, unit, usd = "Storage", "GP3STORAGE0001", "GB-Mo", "0.0880000000"
            elif "instanceType" in f and any(k not in f for k in exact):
                # Linux, RHEL, Windows, dedicated, reserved capacity ... all match a loose query.
                raise AwsError("Pricing product query not precise enough. Returned 8 elements")
            elif f.get("instanceType") in on_demand and all(f[k] == v for k, v in exact.items()):
                family, unit, usd = "Compute Instance", "Hrs", on_demand[f["instanceType"]]
                sku = f"SKU{_hex(f['instanceType'], 12).upper()}"
            else:
                raise AwsError("Pricing product query did not return any elements")
            term = f"{sku}.JRTCKXETXF"
            return {
                "result": json.dumps(
                    {
                        "product": {"productFamily": family, "attributes": f, "sku": sku},
                        "serviceCode": "AmazonEC2",
                        "terms": {
                            "OnDemand": {
                                term: {
                                    "offerTermCode": "JRTCKXETXF",
                                    "sku": sku,
                                    "effectiveDate": "2026-05-01T00:00:00Z",
                                    "priceDimensions": {
                                        f"{term}.6YS6EN2CT7": {
                                            "rateCode": f"{term}.6YS6EN2CT7",
                                            "unit": unit,
                                            "beginRange": "0",
                                            "endRange": "Inf",
                                            "pricePerUnit": {"USD": usd},
                                            "appliesTo": [],
                                        }
                                    },
                                    "termAttributes": {},
                                }
                            }
                        },
                        "version": "20260501000000",
                        "publicationDate": "2026-05-01T00:00:00Z",
                    }
                )
            }
        if token == "aws:ec2/getSpotPrice:getSpotPrice":
            # Latest Linux/UNIX spot prices per hour, the same in every zone that offers the type.
            spot = SPOT_PRICES
            name, zone = a.get("instanceType"), a.get("availabilityZone")
            if (
                _filters(a).get("product-description") != ["Linux/UNIX"]
                or name not in spot
                or zone not in OFFERINGS.get(name, [])
            ):
                raise AwsError("no Spot Price History found matching criteria")
            return {
                "spotPrice": spot[name],
                "spotPriceTimestamp": "2026-05-01T11:04:00Z",
                "instanceType": name,
                "availabilityZone": zone,
            }
        raise AwsError(f"the fake AWS has no answer for {token}")

    def new_resource(self, args: pulumi.runtime.MockResourceArgs) -> tuple[str, dict[str, Any]]:
        failures = CHECKS.get(args.typ, lambda _: [])(args.inputs)
        if failures:
            raise CheckFailure(f"{args.typ} {args.name}: Check failed: {'; '.join(failures)}")
        if self.preview and not args.resource_id:
            # A create in preview: the engine knows the inputs only; every computed output and
            # the id stay unknown until the provider really creates the resource.
            self.resources.append(Registered(args.typ, args.name, args.inputs, {}))
            return "", dict(args.inputs)
        rid, state = self.outputs_of(args)
        self.resources.append(Registered(args.typ, args.name, args.inputs, state))
        return rid, {**args.inputs, **state}

    def outputs_of(self, args: pulumi.runtime.MockResourceArgs) -> tuple[str, dict[str, Any]]:
        """The id and computed outputs AWS (or the provider) would give this new resource."""
        t, name, inputs = args.typ, args.name, args.inputs
        rid = f"{name}-id"
        state: dict[str, Any] = {}
        if t == "aws:ec2/instance:Instance":
            rid = f"i-0{_hex(name, 16)}"
            subnet = inputs.get("subnetId")
            state = {
                "publicIp": "198.51.100.7",
                "publicDns": f"ec2-198-51-100-7.{REGION}.compute.amazonaws.com",
                "availabilityZone": SUBNETS[subnet][1] if subnet in SUBNETS else None,
                "arn": f"arn:aws:ec2:{REGION}:{ACCOUNT}:instance/{rid}",
                # EC2 creates the primary ENI with the instance (and deletes it with it).
                "primaryNetworkInterfaceId": f"eni-{rid[2:]}",
                # pulumi-aws computes tagsAll from the config tags (provider/tags.go applyTags).
                "tagsAll": dict(inputs.get("tags") or {}),
            }
            if inputs.get("instanceMarketOptions"):
                state["spotInstanceRequestId"] = f"sir-{_hex(name, 8)}"
        elif t == "aws:ec2/eip:Eip":
            rid = f"eipalloc-0{_hex(name, 16)}"
            octet = int(_hex(name, 2), 16) % 250 + 1
            state = {
                "allocationId": rid,
                "publicIp": f"192.0.2.{octet}",
                # What EC2 reports for an Elastic IP outside us-east-1.
                "publicDns": f"ec2-192-0-2-{octet}.{REGION}.compute.amazonaws.com",
            }
        elif t == "aws:ebs/volume:Volume":
            rid = args.resource_id or f"vol-0{_hex(name, 16)}"
        elif t == "aws:secretsmanager/secret:Secret":
            rid = f"arn:aws:secretsmanager:{REGION}:{ACCOUNT}:secret:{name}-Ab12Cd"
            state = {"arn": rid}
        elif t == "aws:iam/role:Role":
            state = {
                "arn": f"arn:aws:iam::{ACCOUNT}:role/{name}-1234567",
                "name": f"{name}-1234567",
            }
        elif t == "aws:iam/instanceProfile:InstanceProfile":
            state = {
                "name": f"{name}-7654321",
                "arn": f"arn:aws:iam::{ACCOUNT}:instance-profile/{name}",
            }
        elif t == "aws:ec2/securityGroup:SecurityGroup":
            rid = f"sg-0{_hex(name, 16)}"
        elif t == "aws:ec2/keyPair:KeyPair":
            state = {"keyName": f"{name}-2468"}
        elif t == "tls:index/privateKey:PrivateKey" and name.endswith("-signing-key"):
            # The binary cache's Ed25519 key: shaped like the real thing, so it converts.
            state = {
                "privateKeyOpenssh": fake_ed25519_openssh_private_key(),
                "publicKeyOpenssh": f"ssh-ed25519 {FAKE_SIGNING_PUBLIC_BLOB}\n",
            }
        elif t == "aws:s3/bucket:Bucket":
            # terraform-provider-aws s3 bucket: `bucket_prefix` plus a unique suffix; id = name.
            rid = inputs.get("bucket") or f"{inputs.get('bucketPrefix', '')}{_hex(name, 12)}"
            state = {"bucket": rid, "arn": f"arn:aws:s3:::{rid}"}
        elif t == "tls:index/privateKey:PrivateKey":
            state = {
                "privateKeyOpenssh": f"fake-openssh-private-key-for-tests-{name}",
                "publicKeyOpenssh": f"ssh-ed25519 AAAAFAKE{_hex(name, 12)} {name}\n",
            }
        elif t == "command:remote:Command":
            # What the machine would print: the host-key step prints the key it reads. The
            # provider marks every output secret, because the connection (holding the private
            # key) is a secret input (pulumi-command remote/command.go, `connection` secret).
            stdout = (
                f"ssh-ed25519 AAAAFAKEHOSTKEY{_hex(name, 8)} root@devserver\n"
                if name.endswith("-host-key")
                # apply-flake.sh's last line: its phase timings (nix/scripts/apply-flake.sh).
                else f"switched\n{FAKE_APPLY_PHASES}\n"
                if name.endswith("-apply")
                else ""
            )
            state = {
                "stdout": {SECRET_SIG: SECRET_VALUE, "value": stdout},
                "stderr": {SECRET_SIG: SECRET_VALUE, "value": ""},
            }
        return rid, state


@dataclass
class ProgramRun:
    """What one run of the program registered, called and exported."""

    resources: list[Registered]
    calls: list[tuple[str, dict[str, Any]]]
    outputs: dict[str, Any]
    secret_outputs: set[str]
    error: BaseException | None = None

    def of_type(self, type_: str) -> list[Registered]:
        return [r for r in self.resources if r.type == type_]

    def one(self, type_: str) -> Registered:
        found = self.of_type(type_)
        assert len(found) == 1, f"expected one {type_}, got {[r.name for r in found]}"
        return found[0]

    def named(self, name: str) -> Registered:
        found = [r for r in self.resources if r.name == name]
        assert len(found) == 1, f"expected one resource named {name}, got {len(found)}"
        return found[0]


def stack_config(stack: str = "dev", stack_file: Path | None = None) -> dict[str, Any]:
    """Pulumi.yaml's declared defaults overlaid with a stack file, as the CLI resolves them.

    The stack file is the suite's own `tests/stacks/Pulumi.<stack>.yaml` unless one is given.
    """
    project = yaml.safe_load((ROOT / "Pulumi.yaml").read_text())
    values: dict[str, Any] = {}
    for key, spec in (project.get("config") or {}).items():
        if isinstance(spec, dict) and "default" in spec:
            values[key if ":" in key else f"devserver:{key}"] = spec["default"]
    stack_file = stack_file or FIXTURE_STACKS / f"Pulumi.{stack}.yaml"
    if stack_file.exists():
        for key, value in (yaml.safe_load(stack_file.read_text()).get("config") or {}).items():
            values[key] = value
    return values


def run_program(
    overrides: dict[str, Any] | None = None,
    *,
    secrets: dict[str, str] | None = None,
    stack: str = "dev",
    base: dict[str, Any] | None = None,
    unset: tuple[str, ...] = (),
    program: Path = ROOT / "__main__.py",
    raise_errors: bool = True,
    preview: bool = False,
    fake: FakeAws | None = None,
) -> ProgramRun:
    """Run the program with stack config (+ overrides, secrets, minus `unset`) under the mocks.

    `preview`: as `pulumi preview` of a new stack (see the module docstring). `fake`: answer with
    this FakeAws (e.g. one that carries state between runs, tests/lifecycle.py)."""
    values = dict(stack_config(stack) if base is None else base)
    values.update(overrides or {})
    values.update(secrets or {})
    for key in unset:
        values.pop(key, None)
    encoded = {
        k: v if isinstance(v, str) else json.dumps(v) for k, v in values.items() if v is not None
    }

    fake = fake or FakeAws(preview)
    fake.preview = preview
    settings.set_root_resource(None)  # type: ignore[arg-type]
    runtime_config.set_all_config(encoded, list(secrets or {}))
    mocks.set_mocks(fake, project="devserver", stack=stack, preview=preview)
    captured: dict[int, tuple[pulumi.Resource, pulumi.ResourceOptions, str]] = {}

    def capture(args: pulumi.ResourceTransformationArgs) -> None:
        captured[id(args.resource)] = (args.resource, args.opts, args.type_)
        fake.options[(args.type_, args.name)] = args.opts

    pulumi.runtime.register_stack_transformation(capture)
    try:
        _sync_await(run_pulumi_func(lambda: runpy.run_path(str(program), run_name="__main__")))
    except Exception as err:
        if raise_errors:
            raise
        return ProgramRun(fake.resources, fake.calls, {}, set(), err)

    by_name: dict[tuple[str, str], tuple[pulumi.ResourceOptions, list[str]]] = {}
    for resource, opts, type_ in captured.values():
        parents, parent = [], opts.parent
        while parent is not None and id(parent) in captured:
            parents.append(captured[id(parent)][2])
            parent = captured[id(parent)][1].parent
        by_name[(type_, resource._name)] = (opts, parents)  # type: ignore[attr-defined]
    for r in fake.resources:
        r.opts, r.parent_types = by_name.get((r.type, r.name), (None, []))

    outputs: dict[str, Any] = {}
    secret_outputs: set[str] = set()
    stack_resource = settings.get_root_resource()
    for key, value in stack_resource.outputs.items():  # type: ignore[union-attr]
        output = pulumi.Output.from_input(value)
        known = _sync_await(output.is_known())
        outputs[key] = _sync_await(output.future()) if known else Unknown()
        if _sync_await(output.is_secret()):
            secret_outputs.add(key)
    return ProgramRun(fake.resources, fake.calls, outputs, secret_outputs)


def _quiet_check_failures(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
    """A refused registration also fails the SDK's own futures, which nobody awaits once the run
    has stopped; the run already reported it (ProgramRun.error), so only that echo is dropped."""
    if not isinstance(context.get("exception"), CheckFailure):
        loop.default_exception_handler(context)


def reset_runtime() -> None:
    """Forget config and the root stack, so one test's program never leaks into the next."""
    # pytest-asyncio closes the loop after an async test; Pulumi's sync helpers need a current one.
    loop = asyncio.new_event_loop()
    loop.set_exception_handler(_quiet_check_failures)
    asyncio.set_event_loop(loop)
    # A run that failed mid-registration (a Check failure) leaves RPCs and tasks on the old loop.
    settings.SETTINGS.rpc_manager.clear()
    settings.SETTINGS.outputs.clear()
    runtime_config.set_all_config({}, [])
    settings.set_root_resource(None)  # type: ignore[arg-type]


def reveal(value: Any) -> Any:
    """The value with Pulumi's secret wrappers taken off (for asserting on what is inside)."""
    if isinstance(value, dict):
        if SECRET_SIG in value:
            return reveal(value["value"])
        return {k: reveal(v) for k, v in value.items()}
    if isinstance(value, list):
        return [reveal(v) for v in value]
    return value


def comparable(value: Any) -> str:
    """Inputs as canonical JSON: assets by their content or path, so two runs compare equal."""

    def default(o: Any) -> Any:
        if is_unknown(o):
            return "<unknown>"
        for attribute in ("text", "path", "uri"):
            if getattr(o, attribute, None) is not None:
                return {type(o).__name__: getattr(o, attribute)}
        raise TypeError(f"cannot compare {o!r}")

    return json.dumps(value, sort_keys=True, default=default)


def walk_strings(value: Any, secret: bool = False) -> list[tuple[str, bool]]:
    """Every string inside a value, with whether it sits inside a Pulumi secret."""
    if isinstance(value, str):
        return [(value, secret)]
    if isinstance(value, dict):
        inner = SECRET_SIG in value
        return [
            s for k, v in value.items() if k != SECRET_SIG for s in walk_strings(v, secret or inner)
        ]
    if isinstance(value, list | tuple):
        return [s for v in value for s in walk_strings(v, secret)]
    return []
