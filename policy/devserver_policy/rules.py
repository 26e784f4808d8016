"""The pack's rules as pure functions: a resource goes in, a list of violation messages comes out.

They know nothing about the policy SDK, so tests call them with plain dicts. Under the real engine
`props` are read-only proxies (a Mapping/Sequence, not dict/list), so checks use the abc types.
Property names are the engine's camelCase input names, e.g. `metadataOptions.httpTokens`.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import ipaddress
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

INSTANCE = "aws:ec2/instance:Instance"
SPOT_INSTANCE_REQUEST = "aws:ec2/spotInstanceRequest:SpotInstanceRequest"
VOLUME = "aws:ebs/volume:Volume"
SECURITY_GROUP = "aws:ec2/securityGroup:SecurityGroup"
SECURITY_GROUP_RULE = "aws:ec2/securityGroupRule:SecurityGroupRule"
SECURITY_GROUP_INGRESS_RULE = "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule"
IAM_POLICY_DOCUMENT_TYPES = (
    "aws:iam/rolePolicy:RolePolicy",
    "aws:iam/policy:Policy",
    "aws:iam/userPolicy:UserPolicy",
    "aws:iam/groupPolicy:GroupPolicy",
)
IAM_ROLE = "aws:iam/role:Role"

# Both resources launch a machine and share these input names.
MACHINE_TYPES = (INSTANCE, SPOT_INSTANCE_REQUEST)

SSH_PORT = 22
HOME_ROLE_TAG = "devserver:role"

# GitHub token formats: classic (prefix + 36 base62 chars) and fine-grained PATs.
TOKEN_PATTERNS = {
    "GitHub classic token (gh?_)": re.compile(r"gh[pousr]_[A-Za-z0-9]{36}"),
    "GitHub fine-grained token (github_pat_)": re.compile(r"github_pat_[A-Za-z0-9_]{22,}"),
}


@dataclass(frozen=True)
class Resource:
    """What a rule may look at: the type token, the input properties and the `protect` option."""

    type: str
    props: Mapping[str, Any] = field(default_factory=dict)
    protect: bool = False


def _items(value: Any) -> list[Any]:
    """A property that AWS accepts as one value or a list of them, as a list."""
    if value is None:
        return []
    if isinstance(value, str) or not isinstance(value, Sequence):
        return [value]
    return list(value)


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


# --- IMDSv2 -----------------------------------------------------------------------------------


def imdsv2_required(resource: Resource) -> list[str]:
    """Instances require IMDSv2 tokens with hop limit 1, so containers cannot reach the role."""
    if resource.type not in MACHINE_TYPES:
        return []
    options = _mapping(resource.props.get("metadataOptions"))
    # No metadata endpoint at all leaves nothing to steal credentials from.
    if options.get("httpEndpoint") == "disabled":
        return []
    violations = []
    if options.get("httpTokens") != "required":
        violations.append(
            "metadataOptions.httpTokens must be 'required' (IMDSv2), "
            f"got {options.get('httpTokens')!r}"
        )
    # Numbers arrive from the engine as floats; unset means the AMI's default, often 2.
    hop_limit = options.get("httpPutResponseHopLimit")
    hops = None if hop_limit is None else int(hop_limit)
    if hops is None or hops > 1:
        violations.append(
            "metadataOptions.httpPutResponseHopLimit must be 1 so containers cannot reach "
            f"the instance role, got {hops!r}"
        )
    return violations


# --- EBS encryption ---------------------------------------------------------------------------


def ebs_encrypted(resource: Resource) -> list[str]:
    """Root, attached and standalone EBS volumes are encrypted, explicitly in the program."""
    props = resource.props
    if resource.type == VOLUME:
        if props.get("encrypted") is not True:
            return [f"EBS volume must set encrypted=true, got {props.get('encrypted')!r}"]
        return []
    if resource.type not in MACHINE_TYPES:
        return []
    violations = []
    # The account's encrypt-by-default setting is invisible here, so the program must say it.
    root = _mapping(props.get("rootBlockDevice"))
    if root.get("encrypted") is not True:
        violations.append(f"rootBlockDevice.encrypted must be true, got {root.get('encrypted')!r}")
    for device in _items(props.get("ebsBlockDevices")):
        device = _mapping(device)
        if device.get("encrypted") is not True:
            violations.append(
                f"ebsBlockDevices[{device.get('deviceName')!r}].encrypted must be true, "
                f"got {device.get('encrypted')!r}"
            )
    return violations


# --- SSH from the whole internet --------------------------------------------------------------

# The narrowest network a single SSH rule may be wider than, per IP version (the program's own
# minimum for devserver:sshAllowedCidrs): a /7 IPv4 or /31 IPv6 rule is refused.
MIN_SSH_PREFIX = {4: 8, 6: 32}
WHOLE_INTERNET = (ipaddress.ip_network("0.0.0.0/0"), ipaddress.ip_network("::/0"))

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def _network(cidr: Any) -> Network | None:
    if not isinstance(cidr, str):
        return None
    try:
        return ipaddress.ip_network(cidr, strict=False)
    except ValueError:
        return None


def _too_wide(cidr: Any) -> bool:
    network = _network(cidr)
    return network is not None and network.prefixlen < MIN_SSH_PREFIX[network.version]


def _covered_families(cidrs: list[Any]) -> list[str]:
    """The whole-internet networks that the CIDRs cover together but no single one does (two /1
    halves are a /0; a /0 itself is reported as too wide)."""
    networks = [n for n in map(_network, cidrs) if n is not None]
    covered = []
    for whole in WHOLE_INTERNET:
        family = [n for n in networks if n.version == whole.version]
        if whole not in family and whole in ipaddress.collapse_addresses(family):  # type: ignore[type-var]
            covered.append(str(whole))
    return covered


def _reaches_ssh(protocol: Any, from_port: Any, to_port: Any) -> bool:
    protocol = str(protocol).lower() if protocol is not None else "-1"
    if protocol in ("-1", "all"):
        return True
    if protocol not in ("tcp", "6"):
        return False
    # Ports arrive as floats from the engine; a missing or -1 bound means every port.
    if from_port is None or to_port is None or int(from_port) == -1:
        return True
    return int(from_port) <= SSH_PORT <= int(to_port)


def _open_ssh_message(where: str, cidrs: list[Any]) -> str:
    wide = ", ".join(map(str, cidrs))
    return (
        f"{where} opens SSH (port {SSH_PORT}) to {wide}, wider than "
        f"/{MIN_SSH_PREFIX[4]} (IPv4) or /{MIN_SSH_PREFIX[6]} (IPv6); use devserver:sshAllowedCidrs"
    )


def _pieces_message(where: str, cidrs: list[Any], covered: list[str]) -> str:
    return (
        f"{where} together open SSH (port {SSH_PORT}) to the whole internet "
        f"({', '.join(covered)}) in pieces: {', '.join(map(str, cidrs))}; "
        "use devserver:sshAllowedCidrs"
    )


def _ssh_cidrs(resource: Resource) -> list[tuple[str, list[Any]]]:
    """(where, CIDRs) of each ingress rule in the resource that reaches SSH."""
    props = resource.props
    found: list[tuple[str, list[Any]]] = []
    if resource.type == SECURITY_GROUP:
        for index, rule in enumerate(_items(props.get("ingress"))):
            rule = _mapping(rule)
            if _reaches_ssh(rule.get("protocol"), rule.get("fromPort"), rule.get("toPort")):
                cidrs = _items(rule.get("cidrBlocks")) + _items(rule.get("ipv6CidrBlocks"))
                found.append((f"ingress[{index}]", cidrs))
    elif resource.type == SECURITY_GROUP_RULE:
        if props.get("type") == "ingress" and _reaches_ssh(
            props.get("protocol"), props.get("fromPort"), props.get("toPort")
        ):
            cidrs = _items(props.get("cidrBlocks")) + _items(props.get("ipv6CidrBlocks"))
            found.append(("security group rule", cidrs))
    elif resource.type == SECURITY_GROUP_INGRESS_RULE and _reaches_ssh(
        props.get("ipProtocol"), props.get("fromPort"), props.get("toPort")
    ):
        cidrs = [c for c in (props.get("cidrIpv4"), props.get("cidrIpv6")) if c is not None]
        found.append(("ingress rule", cidrs))
    return found


def no_ssh_from_anywhere(resource: Resource) -> list[str]:
    """No ingress rule opens port 22 to a network wider than /8 (IPv4) or /32 (IPv6), and no
    resource's rules cover the whole internet together, in any of the three ways to write one."""
    violations = []
    every: list[Any] = []
    for where, cidrs in _ssh_cidrs(resource):
        wide = [cidr for cidr in cidrs if _too_wide(cidr)]
        if wide:
            violations.append(_open_ssh_message(where, wide))
        every += cidrs
    covered = _covered_families(every)
    if covered:
        where = "ingress rules" if resource.type == SECURITY_GROUP else "its CIDRs"
        violations.append(_pieces_message(where, every, covered))
    return violations


@dataclass(frozen=True)
class StackResource:
    """A resource of the whole stack, for stack policies: its URN and its parent's too."""

    type: str
    props: Mapping[str, Any]
    urn: str
    parent_urn: str | None = None
    parent_type: str | None = None


def _group_of(resource: StackResource) -> str:
    """The security group a separate rule belongs to: its parent group (what this program does;
    known at preview) or the `securityGroupId` it names."""
    if resource.parent_type == SECURITY_GROUP and resource.parent_urn:
        return resource.parent_urn
    group = resource.props.get("securityGroupId")
    return group if isinstance(group, str) else resource.urn


def no_ssh_from_anywhere_in_pieces(resources: Sequence[StackResource]) -> list[tuple[str, str]]:
    """No security group's separate SSH rules cover the whole internet together (0.0.0.0/1 and
    128.0.0.0/1 are 0.0.0.0/0); returns (message, URN of the group's first rule)."""
    groups: dict[str, list[tuple[str, list[Any]]]] = {}
    for r in resources:
        if r.type not in (SECURITY_GROUP_RULE, SECURITY_GROUP_INGRESS_RULE):
            continue
        for _, cidrs in _ssh_cidrs(Resource(r.type, r.props)):
            groups.setdefault(_group_of(r), []).append((r.urn, cidrs))
    violations = []
    for group, rules in groups.items():
        every = [cidr for _, cidrs in rules for cidr in cidrs]
        covered = _covered_families(every)
        if covered:
            message = _pieces_message(f"the SSH rules of security group {group}", every, covered)
            violations.append((message, rules[0][0]))
    return violations


# --- IAM --------------------------------------------------------------------------------------

READ_SECRET_ACTION = "secretsmanager:getsecretvalue"  # noqa: S105 (an IAM action name)


def _iam_pattern_matches(pattern: str, action: str) -> bool:
    """IAM wildcard match (`*`, `?`), case-insensitive as IAM action names are."""
    regex = re.escape(pattern.lower()).replace(r"\*", ".*").replace(r"\?", ".")
    return re.fullmatch(regex, action) is not None


def _is_all_secrets(resource_pattern: Any) -> bool:
    return resource_pattern == "*" or (
        isinstance(resource_pattern, str) and resource_pattern.endswith(":secret:*")
    )


def _statement_violations(index: int, statement: Mapping[str, Any]) -> list[str]:
    if statement.get("Effect") != "Allow":
        return []
    where = f"Statement[{statement.get('Sid', index)}]"
    if "NotAction" in statement:
        return [f"{where} allows NotAction, which grants every action it does not list"]
    violations = []
    actions = [str(action).lower() for action in _items(statement.get("Action"))]
    resources = _items(statement.get("Resource"))
    for action in actions:
        if action == "*":
            violations.append(f"{where} allows every action ('*')")
        elif action == "secretsmanager:*":
            violations.append(f"{where} allows every Secrets Manager action ('secretsmanager:*')")
    if any(_iam_pattern_matches(action, READ_SECRET_ACTION) for action in actions):
        if "NotResource" in statement:
            violations.append(
                f"{where} allows secretsmanager:GetSecretValue with NotResource, "
                "i.e. on every secret it does not list"
            )
        wide = [pattern for pattern in resources if _is_all_secrets(pattern)]
        if wide:
            violations.append(
                f"{where} allows secretsmanager:GetSecretValue on {', '.join(wide)}; "
                "scope it to the one secret ARN"
            )
    return violations


def _document_violations(document: Any) -> list[str]:
    if isinstance(document, str):
        try:
            document = json.loads(document)
        except json.JSONDecodeError as error:
            return [f"policy is not valid JSON, so it cannot be checked: {error}"]
    if not isinstance(document, Mapping):
        return [f"policy must be a JSON object, got {type(document).__name__}"]
    violations = []
    for index, statement in enumerate(_items(document.get("Statement"))):
        violations += _statement_violations(index, _mapping(statement))
    return violations


def iam_least_privilege(resource: Resource) -> list[str]:
    """IAM grants no `*` or `secretsmanager:*` action, and GetSecretValue on one secret only."""
    if resource.type in IAM_POLICY_DOCUMENT_TYPES:
        return _document_violations(resource.props.get("policy"))
    if resource.type == IAM_ROLE:
        # Inline policies declared on the role itself are the same documents by another road.
        violations = []
        for inline in _items(resource.props.get("inlinePolicies")):
            inline = _mapping(inline)
            if inline.get("policy") is not None:
                where = f"inlinePolicies[{inline.get('name')!r}]"
                violations += [f"{where}: {v}" for v in _document_violations(inline["policy"])]
        return violations
    return []


# --- The home volume outlives the stack -------------------------------------------------------


def home_volume_protected(resource: Resource) -> list[str]:
    """The /home volume is protected: `retainOnDelete` never reaches policy packs."""
    if resource.type != VOLUME:
        return []
    tags = _mapping(resource.props.get("tags"))
    if tags.get(HOME_ROLE_TAG) != "home":
        return []
    if resource.protect:
        return []
    return [
        f"the home volume (tag {HOME_ROLE_TAG}=home) must be registered with protect=True: "
        "it holds the developer's data"
    ]


# --- No token in user data --------------------------------------------------------------------


def _user_data_texts(props: Mapping[str, Any]) -> list[tuple[str, str]]:
    texts = []
    if isinstance(props.get("userData"), str):
        texts.append(("userData", props["userData"]))
    encoded = props.get("userDataBase64")
    if isinstance(encoded, str):
        texts.append(("userDataBase64", encoded))
        # Not valid base64: AWS would reject it anyway, and the raw text is still scanned.
        with contextlib.suppress(binascii.Error, ValueError):
            decoded = base64.b64decode(encoded, validate=True).decode("utf-8", "replace")
            texts.append(("userDataBase64 (decoded)", decoded))
    return texts


def no_token_in_user_data(resource: Resource) -> list[str]:
    """No token-shaped string in user data, which the console and the whole machine can read."""
    if resource.type not in MACHINE_TYPES:
        return []
    violations = []
    for where, text in _user_data_texts(resource.props):
        for kind, pattern in TOKEN_PATTERNS.items():
            match = pattern.search(text)
            # The message names the kind and offset only: repeating the token would leak it.
            if match:
                violations.append(
                    f"{where} contains a {kind} at offset {match.start()}; "
                    "keep tokens in Secrets Manager"
                )
    return violations
