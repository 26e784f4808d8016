"""A small model of the Pulumi engine that replays a stack's life, step after step, under the mocks.

Each step runs the real `__main__.py` (tests/program.py) and classifies every resource the way the
engine would: create, same, update, replace or delete. State is carried between steps like the
engine carries it: a resource that is not replaced keeps its id and its outputs, so a value AWS
chose once (a volume id, an address) stays what it was. The rules it applies, each from upstream
(docs/upstream-facts.md, "Deployment lifecycle (issue 10)"):

- a changed input in REPLACE_ON[type] replaces the resource (terraform-provider-aws `ForceNew`;
  pulumi-command `triggers`, `replaceOnChanges`); any other changed input is an update;
- `ignoreChanges` keeps the old value, also in a replacement;
- `deleteBeforeReplace` deletes the old resource first; `protect` refuses any delete or replace
  (a protected resource fails the whole `destroy` at preview); `retainOnDelete` only forgets it;
- a remote.Command runs `create` on create and replace, and on update runs `update`, or `create`
  again when no `update` is set (pulumi-command commandController.go); a CopyToRemote update copies
  only when its source or remote path changed (copyController.go).
- tags: pulumi-aws computes an instance's `tagsAll` from its config tags only (pulumi/pulumi-aws
  `provider/tags.go` applyTags), and terraform-provider-aws sets `tags_all` in every plan
  (`verify.SetTagsDiff`), so a tag another resource (`aws.ec2.Tag`) put on a Pulumi-managed
  instance, once a refresh read it into the state's `tagsAll`, is deleted (DeleteTags) by the
  instance's next update, while the Tag resource, unchanged, does not put it back
  (terraform-provider-aws website/docs/r/ec2_tag.html.markdown: "perpetual difference");
- the world moves between steps too (`refresh`): a stopped instance reads back no public IP;
  the instances in the state are what EC2 holds, so the program's instance lookups see them;
- time passes (`Engine.advance`): a persistent spot request launched without ValidUntil ends 7
  days after launch (the EC2 API reference's older `SpotMarketOptions` text, "The default end
  date is 7 days from the current date"; kubernetes/kops#4424 saw it happen), and EC2 restarts an
  interrupted machine only while its request is open; DLM stops managing the snapshots of a
  schedule whose name changes (EBS User Guide, "Considerations for modifying policies");
- `pulumi destroy --exclude-protected` (what scripts/down runs) targets every resource except the
  protected ones and their transitive dependencies (pulumi/pulumi `getProtectedExcludes`); a
  dependency is an explicit `dependsOn` or an input holding another resource's id.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pulumi

from tests.program import (
    REGION,
    FakeAws,
    ProgramRun,
    Registered,
    comparable,
    reset_runtime,
    run_program,
    stack_config,
)

INSTANCE = "aws:ec2/instance:Instance"
VOLUME = "aws:ebs/volume:Volume"
EIP = "aws:ec2/eip:Eip"
TAG = "aws:ec2/tag:Tag"
DLM_POLICY = "aws:dlm/lifecyclePolicy:LifecyclePolicy"
STATE = "aws:ec2transitgateway/instanceState:InstanceState"
# A persistent spot request without ValidUntil ends this many days after launch (see above).
SPOT_REQUEST_DEFAULT_DAYS = 7
COMMAND = "command:remote:Command"
COPY = "command:remote:CopyToRemote"
# Inputs whose change replaces the resource. Dotted names are nested properties.
REPLACE_ON: dict[str, frozenset[str]] = {
    # ec2_instance.go: ami, associate_public_ip_address, availability_zone, key_name, subnet_id,
    # instance_market_options, root_block_device.{encrypted,kms_key_id} are ForceNew;
    # instance_type is not (the provider stops, modifies and starts the instance).
    INSTANCE: frozenset(
        {
            "ami",
            "associatePublicIpAddress",
            "availabilityZone",
            "keyName",
            "subnetId",
            "instanceMarketOptions",
            "rootBlockDevice.encrypted",
            "rootBlockDevice.kmsKeyId",
        }
    ),
    "aws:ebs/volume:Volume": frozenset(
        {"availabilityZone", "encrypted", "kmsKeyId", "snapshotId", "outpostArn"}
    ),
    "aws:ec2/volumeAttachment:VolumeAttachment": frozenset(
        {"deviceName", "instanceId", "volumeId"}
    ),
    # ec2_eip.go: `instance` is not ForceNew (an update disassociates, then associates).
    "aws:ec2/eip:Eip": frozenset(
        {"domain", "address", "publicIpv4Pool", "networkBorderGroup", "ipamPoolId"}
    ),
    "aws:ec2transitgateway/instanceState:InstanceState": frozenset({"instanceId"}),
    # ec2_tag.go: resource_id and key are ForceNew, value is updated in place.
    TAG: frozenset({"resourceId", "key"}),
    "aws:ec2/keyPair:KeyPair": frozenset({"keyName", "keyNamePrefix", "publicKey"}),
    "aws:secretsmanager/secret:Secret": frozenset({"name", "namePrefix"}),
    "aws:secretsmanager/secretVersion:SecretVersion": frozenset({"secretId"}),
    "aws:ec2/securityGroup:SecurityGroup": frozenset(
        {"name", "namePrefix", "vpcId", "description"}
    ),
    "aws:iam/role:Role": frozenset({"name", "namePrefix", "path"}),
    "aws:iam/instanceProfile:InstanceProfile": frozenset({"name", "namePrefix", "path"}),
    "tls:index/privateKey:PrivateKey": frozenset({"algorithm", "ecdsaCurve", "rsaBits"}),
    COMMAND: frozenset({"triggers"}),
    COPY: frozenset({"triggers"}),
    # components/spot_request.py: its own diff looks at these two and replaces on either.
    "pulumi-python:dynamic:Resource": frozenset({"spotInstanceRequestId", "region"}),
}
# Resources whose provider diffs only these inputs (a dynamic provider's own diff).
DIFF_ONLY = {"pulumi-python:dynamic:Resource": REPLACE_ON["pulumi-python:dynamic:Resource"]}


def _camel(name: str) -> str:
    return re.sub(r"_([a-z])", lambda m: m.group(1).upper(), name)


@dataclass
class Entry:
    """One resource in the state file: what it was created with and what the provider returned."""

    type: str
    name: str
    id: str
    inputs: dict[str, Any]
    outputs: dict[str, Any]
    protect: bool = False
    retain: bool = False
    deps: frozenset[tuple[str, str]] = frozenset()
    """The resources it depends on: explicit `dependsOn`, or an input holding their id."""
    born: int = 0
    """The day it was created (a replacement is born again)."""


@dataclass(frozen=True)
class Change:
    """What one step does to one resource."""

    type: str
    name: str
    op: str
    """create, same, update, replace or delete."""
    props: tuple[str, ...] = ()
    """The inputs that changed (for update and replace)."""
    note: str = ""
    """What it means on the machine: `runs create`, `runs update`, `copies`, `retained` ..."""

    @property
    def reruns(self) -> bool:
        """A remote command whose `create` runs again in this step."""
        return self.type == COMMAND and self.note == "runs create"


class StatefulAws(FakeAws):
    """FakeAws that knows the state before the step and diffs each registration against it."""

    def __init__(
        self,
        state: dict[tuple[str, str], Entry],
        generation: int,
        day: int = 0,
        deleted_tags: set[tuple[str, str]] | None = None,
    ) -> None:
        super().__init__()
        self.day = day
        self.deleted_tags = deleted_tags if deleted_tags is not None else set()
        """(resource id, key) of tags an instance's tagsAll diff deleted from EC2."""
        self.before = state
        self.after: dict[tuple[str, str], Entry] = {}
        self.changes: list[Change] = []
        self.refused: list[str] = []
        self.generation = generation

    def instances(self) -> dict[str, dict[str, Any]]:
        """What EC2 holds: the tables' instances plus every instance in the stack's state."""
        live = dict(super().instances())
        for e in self.before.values():
            if e.type == INSTANCE:
                live[e.id] = {
                    "tags": e.inputs.get("tags") or {},
                    "state": e.outputs.get("instanceState") or "running",
                    "stateReasonCode": e.outputs.get("stateReasonCode"),
                    "lifecycle": "spot" if e.inputs.get("instanceMarketOptions") else None,
                    "instanceType": e.inputs.get("instanceType"),
                    "subnetId": e.inputs.get("subnetId"),
                    "keyName": e.inputs.get("keyName"),
                    "ami": e.inputs.get("ami"),
                    "networkInterfaceId": e.outputs.get("primaryNetworkInterfaceId"),
                    "eniTags": {},
                }
        enis = {x["networkInterfaceId"]: x for x in live.values() if x.get("networkInterfaceId")}
        # aws_ec2_tag resources add their tag to the instance (or its primary ENI) they name,
        # unless an instance update deleted it since.
        for e in self.before.values():
            rid, key = e.inputs.get("resourceId"), e.inputs.get("key")
            if e.type != TAG or (rid, key) in self.deleted_tags:
                continue
            if rid in live:
                live[rid]["tags"] = {**live[rid]["tags"], key: e.inputs.get("value")}
            elif rid in enis:
                enis[rid]["eniTags"] = {**enis[rid]["eniTags"], key: e.inputs.get("value")}
        return live

    def volumes(self) -> dict[str, tuple[str, bool, int, dict[str, str]]]:
        """What EC2 holds: the tables' volumes plus the stack's own home volumes."""
        found = dict(super().volumes())
        for e in self.before.values():
            if e.type == VOLUME:
                i = e.inputs
                found[e.id] = (i.get("availabilityZone"), True, i.get("size"), i.get("tags") or {})
        return found

    def elastic_ips(self) -> dict[str, dict[str, str]]:
        """What EC2 holds: the tables' Elastic IPs plus the stack's own."""
        found = dict(super().elastic_ips())
        found.update(
            {e.id: e.inputs.get("tags") or {} for e in self.before.values() if e.type == EIP}
        )
        return found

    def key_pairs(self) -> dict[str, str]:
        """What EC2 holds: the tables' key pairs plus the stack's own."""
        pairs = dict(super().key_pairs())
        for e in self.before.values():
            if e.type == "aws:ec2/keyPair:KeyPair" and isinstance(e.inputs.get("publicKey"), str):
                pairs[e.outputs.get("keyName") or e.id] = e.inputs["publicKey"]
        return pairs

    def new_resource(self, args: pulumi.runtime.MockResourceArgs) -> tuple[str, dict[str, Any]]:
        key = (args.typ, args.name)
        old = self.before.get(key)
        opts = self.options.get(key) or pulumi.ResourceOptions()
        inputs = dict(args.inputs)
        # ignoreChanges: the old value stays, in an update and in a replacement alike; a path the
        # old inputs lack is dropped from the new ones (pulumi/pulumi processIgnoreChanges ->
        # resource.PropertyPath.Reset).
        for path in opts.ignore_changes or []:
            if old is not None:
                inputs = _reset(_path(path), old.inputs, inputs)
        args = pulumi.runtime.MockResourceArgs(
            args.typ, args.name, inputs, args.provider, args.resource_id, args.custom
        )
        if not args.custom:
            # Components: no provider, nothing to diff.
            return super().new_resource(args)
        changed = _changed(args.typ, old.inputs, inputs) if old else []
        op = "create" if old is None else _operation(args.typ, old.inputs, inputs, changed)
        if args.typ == INSTANCE and old is not None and op in ("same", "update"):
            # tagsAll as planned (the config tags) against the state's (what a refresh read):
            # an update, and the keys only the state has are deleted from EC2 (module docstring).
            before_all, after_all = old.outputs.get("tagsAll"), inputs.get("tags") or {}
            if before_all is not None and comparable(before_all) != comparable(after_all):
                changed, op = [*changed, "tagsAll"], "update"
                if not self.preview:
                    self.deleted_tags.update((old.id, k) for k in before_all if k not in after_all)
        if args.typ == TAG and op != "same" and not self.preview:
            # CreateTags puts the tag (back) on its resource.
            self.deleted_tags.discard((inputs.get("resourceId"), inputs.get("key")))
        if old is not None and op in ("same", "update"):
            rid, outputs = old.id, dict(old.outputs)
            if args.typ == INSTANCE and "instanceType" in changed:
                # The provider stops and starts the instance: EC2 gives it a new public IPv4.
                outputs.update(_auto_ip(self.generation))
            if args.typ == INSTANCE and op == "update":
                outputs["tagsAll"] = dict(inputs.get("tags") or {})
            self.resources.append(Registered(args.typ, args.name, inputs, outputs))
            returned: tuple[str, dict[str, Any]] = (rid, {**inputs, **outputs})
        else:
            if op == "replace" and old is not None and old.protect:
                self.refused.append(f"{args.typ} {args.name} (protected; replace)")
            rid, returned_state = super().new_resource(args)
            if op == "replace" and old is not None and not self.preview:
                rid, returned_state = _renew(args.typ, old.id, rid, returned_state, self.generation)
            outputs = {k: v for k, v in returned_state.items() if k not in inputs}
            returned = (rid, returned_state)
        self.changes.append(Change(args.typ, args.name, op, tuple(changed), _note(args, op, old)))
        self.after[key] = Entry(
            args.typ,
            args.name,
            returned[0],
            inputs,
            outputs,
            protect=bool(opts.protect),
            retain=bool(opts.retain_on_delete),
            deps=self._dependencies(opts, inputs),
            born=old.born if old is not None and op in ("same", "update") else self.day,
        )
        if op == "replace" and opts.delete_before_replace:
            self.changes[-1] = Change(
                args.typ,
                args.name,
                op,
                tuple(changed),
                _join(self.changes[-1].note, "delete first"),
            )
        return returned

    def _dependencies(
        self, opts: pulumi.ResourceOptions, inputs: dict[str, Any]
    ) -> frozenset[tuple[str, str]]:
        explicit = opts.depends_on if isinstance(opts.depends_on, list) else []
        found = {(r._type, r._name) for r in explicit if isinstance(r, pulumi.Resource)}  # type: ignore[attr-defined]
        ids = {e.id: key for key, e in self.after.items()}
        found |= {ids[v] for v in _strings(inputs) if v in ids}
        return frozenset(found)


def _path(text: str) -> list[str | int]:
    """A Pulumi property path (`a.b[0].c`, `tags["k"]`) as its segments, camelCased."""
    parts: list[str | int] = []
    for name, index, key in re.findall(r'([A-Za-z_][A-Za-z0-9_]*)|\[(\d+)\]|\["([^"]*)"\]', text):
        parts.append(_camel(name) if name else int(index) if index else key)
    return parts


def _reset(path: list[str | int], old: Any, new: dict[str, Any]) -> dict[str, Any]:
    """`new` with the value at `path` taken from `old` (or removed when `old` has none)."""

    def get(value: Any, keys: list[str | int]) -> tuple[bool, Any]:
        for k in keys:
            indexed = isinstance(k, int) and isinstance(value, list) and k < len(value)
            if indexed or (isinstance(k, str) and isinstance(value, dict) and k in value):
                value = value[k]
            else:
                return False, None
        return True, value

    found, value = get(old, path)
    result = json.loads(comparable(new))  # a deep copy (assets compare by content)
    result = {k: new[k] if k != path[0] else result[k] for k in new}
    parent_found, parent = get(result, path[:-1])
    if not parent_found and get(old, path[:-1])[0]:
        # The old inputs reach further along the path than the new ones: the engine refuses.
        raise ValueError(f"cannot ignore changes to {path}: elements of the path are missing")
    if not parent_found or not isinstance(parent, dict | list):
        return new
    last = path[-1]
    if found:
        parent[last] = value  # type: ignore[index]
    elif isinstance(parent, dict):
        parent.pop(last, None)  # type: ignore[arg-type]
    return result


def _strings(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for v in value.values() for s in _strings(v)]
    if isinstance(value, list):
        return [s for v in value for s in _strings(v)]
    return []


def _join(*notes: str) -> str:
    return "; ".join(n for n in notes if n)


def _auto_ip(generation: int) -> dict[str, str]:
    octet = 100 + generation
    return {
        "publicIp": f"198.51.100.{octet}",
        "publicDns": f"ec2-198-51-100-{octet}.{REGION}.compute.amazonaws.com",
    }


def _renew(
    typ: str, old_id: str, rid: str, state: dict[str, Any], generation: int
) -> tuple[str, dict[str, Any]]:
    """A replacement is a new resource: a new id (and, for an instance, a new auto address)."""
    new_id = f"{rid}{generation:x}" if rid == old_id else rid
    renewed = {k: v.replace(old_id, new_id) if isinstance(v, str) else v for k, v in state.items()}
    if typ == INSTANCE:
        renewed.update(_auto_ip(generation))
    return new_id, renewed


def _changed(typ: str, old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    keys = DIFF_ONLY.get(typ) or (set(old) | set(new))
    return sorted(k for k in keys if comparable(old.get(k)) != comparable(new.get(k)))


def _operation(typ: str, old: dict[str, Any], new: dict[str, Any], changed: list[str]) -> str:
    if not changed:
        return "same"
    rules = REPLACE_ON.get(typ, frozenset())
    for prop in changed:
        if prop in rules:
            return "replace"
        for rule in rules:
            top, _, sub = rule.partition(".")
            if top == prop and sub:
                before, after = old.get(prop) or {}, new.get(prop) or {}
                if isinstance(before, list):
                    before, after = (before or [{}])[0], (after or [{}])[0]
                if comparable(before.get(sub)) != comparable(after.get(sub)):
                    return "replace"
    return "update"


def _schedule_names(inputs: dict[str, Any]) -> list[str]:
    return [x.get("name") for x in (inputs.get("policyDetails") or {}).get("schedules") or []]


def _note(args: pulumi.runtime.MockResourceArgs, op: str, old: Entry | None) -> str:
    """What a step does beyond its inputs: on the machine, to snapshots, to a stopped machine."""
    if args.typ == DLM_POLICY and op == "update" and old is not None:
        before, after = _schedule_names(old.inputs), _schedule_names(args.inputs)
        gone = [n for n in before if n not in after]
        if gone:
            return f"ORPHANS every snapshot of schedule {', '.join(gone)} (DLM drops them)"
    # ec2_instance.go modifyInstanceAttributeWithStopStart: stop, modify, start.
    moved = old is not None and old.inputs.get("instanceType") != args.inputs.get("instanceType")
    if args.typ == INSTANCE and op == "update" and moved:
        return "stop, modify, START (the machine runs whatever InstanceState says)"
    if args.typ == COMMAND:
        if op in ("create", "replace"):
            return "runs create"
        if op == "update":
            return "runs update" if args.inputs.get("update") else "runs create"
    if args.typ == COPY and op != "same":
        if op in ("create", "replace") or old is None:
            return "copies"
        moved = any(
            comparable(old.inputs.get(k)) != comparable(args.inputs.get(k))
            for k in ("source", "remotePath")
        )
        return "copies" if moved else "no copy (same source)"
    return ""


@dataclass
class StepResult:
    """One step: every resource's change, the run itself, and what the engine refused."""

    name: str
    changes: list[Change]
    run: ProgramRun | None = None
    refused: list[str] = field(default_factory=list)
    """What stopped the step before anything changed (the program's error, a protected delete)."""
    world: list[str] = field(default_factory=list)
    """What AWS holds after the step that no resource diff shows (day, spot request, state)."""

    def ops(self, op: str) -> set[str]:
        """Names of the resources with this operation."""
        return {c.name for c in self.changes if c.op == op}

    def touched(self) -> dict[str, str]:
        """Every resource that is not `same`, by name: its operation."""
        return {c.name: c.op for c in self.changes if c.op != "same"}

    def reruns(self) -> set[str]:
        """The remote commands whose `create` runs again."""
        return {c.name for c in self.changes if c.reruns}

    def change(self, name: str) -> Change:
        found = [c for c in self.changes if c.name == name]
        assert len(found) == 1, f"{self.name}: expected one change for {name}, got {found}\n{self}"
        return found[0]

    def __str__(self) -> str:
        rows = [f"== step: {self.name}" + (f"  REFUSED: {self.refused}" if self.refused else "")]
        rows += [
            f"  {c.op:<8} {c.type:<52} {c.name:<28} {','.join(c.props):<30} {c.note}"
            for c in sorted(self.changes, key=lambda c: (c.op == "same", c.type, c.name))
            if c.op != "same"
        ]
        same = sum(c.op == "same" for c in self.changes)
        return "\n".join([*rows, f"  ({same} unchanged)", *(f"  world: {w}" for w in self.world)])


class Engine:
    """The state of one stack across steps, and the operations a user runs on it."""

    def __init__(self, stack: str = "dev") -> None:
        self.stack = stack
        self.config: dict[str, Any] = stack_config(stack)
        self.secrets: dict[str, str] = {}
        self.state: dict[tuple[str, str], Entry] = {}
        self.generation = 0
        self.day = 0
        self.history: list[StepResult] = []
        self.deleted_tags: set[tuple[str, str]] = set()
        """Tags an instance update deleted from EC2 that a Tag resource still claims."""

    def set(
        self, config: dict[str, Any] | None = None, secrets: dict[str, str] | None = None
    ) -> None:
        """`pulumi config set` (plain or --secret)."""
        self.config.update(config or {})
        self.secrets.update(secrets or {})

    def up(self, name: str, *, preview: bool = False) -> StepResult:
        """`pulumi up` (or `pulumi preview`, which leaves the state as it was)."""
        self.generation += 1
        fake = StatefulAws(self.state, self.generation, self.day, self.deleted_tags)
        reset_runtime()
        try:
            run = run_program(
                base=self.config, secrets=dict(self.secrets), stack=self.stack, preview=preview,
                fake=fake, raise_errors=False,
            )  # fmt: skip
        finally:
            reset_runtime()
        if run.error is not None:
            # The program stopped (e.g. a SettingsError before any resource): nothing changes.
            result = StepResult(name, [], run, [f"program: {run.error}"], self.world())
            self.history.append(result)
            return result
        changes = [c for c in fake.changes]
        refused = list(fake.refused)
        for key, entry in self.state.items():
            if key not in fake.after:
                changes.append(_delete(entry))
                if entry.protect:
                    refused.append(f"{entry.type} {entry.name} (protected; delete)")
        if not preview and not refused:
            self.state = fake.after
        result = StepResult(name, changes, run, refused, self.world())
        self.history.append(result)
        return result

    def advance(self, days: int) -> None:
        """Time passes."""
        self.day += days

    def spot_request(self) -> str | None:
        """The state of the spot machine's persistent request today (None: not a spot machine)."""
        for e in self.state.values():
            spot = (e.inputs.get("instanceMarketOptions") or {}) if e.type == INSTANCE else {}
            if spot:
                until = (spot.get("spotOptions") or {}).get("validUntil")
                if until:
                    return f"open (ValidUntil {until})"
                end = e.born + SPOT_REQUEST_DEFAULT_DAYS
                return "open" if self.day < end else f"closed (expired on day {end})"
        return None

    def world(self) -> list[str]:
        found = [f"day {self.day}"]
        for e in self.state.values():
            if e.type == INSTANCE:
                state = e.outputs.get("instanceState") or "running"
                reason = e.outputs.get("stateReasonCode")
                found.append(f"{e.name} {state}" + (f" ({reason})" if reason else ""))
        request = self.spot_request()
        if request:
            found.append(f"spot request {request}")
        return found

    def interrupt(self) -> None:
        """EC2 interrupts the spot machine: it stops it (interruption behaviour `stop`)."""
        for e in self.state.values():
            if e.type == INSTANCE:
                e.outputs.update(
                    instanceState="stopped",
                    stateReasonCode="Server.SpotInstanceShutdown",
                    publicIp="",
                    publicDns="",
                )
            if e.type == STATE:
                e.inputs["state"] = "stopped"

    def capacity_returns(self) -> bool:
        """EC2 restarts an interrupted machine, which only an open request allows; True if so."""
        if not (self.spot_request() or "").startswith("open"):
            return False
        for e in self.state.values():
            if e.type == INSTANCE:
                e.outputs.update(instanceState="running", stateReasonCode=None, **_auto_ip(88))
            if e.type == STATE:
                e.inputs["state"] = "running"
        return True

    def refresh(self, reads: Callable[[dict[tuple[str, str], Entry]], None]) -> None:
        """`pulumi refresh` (or `up --refresh`): the state takes what AWS reports now, an
        instance's tagsAll included (every tag EC2 holds on it)."""
        held = StatefulAws(self.state, self.generation, self.day, self.deleted_tags).instances()
        for e in self.state.values():
            if e.type == INSTANCE and e.id in held:
                e.outputs["tagsAll"] = dict(held[e.id]["tags"])
        reads(self.state)

    def destroy(self, name: str, *, exclude_protected: bool = False) -> StepResult:
        """`pulumi destroy`: every resource deleted, or the whole run refused at preview when one
        is protected. With `--exclude-protected`, the protected resources and everything they
        depend on (transitively) are kept (`same`), and the rest is deleted."""
        if not exclude_protected:
            changes = [_delete(e) for e in self.state.values()]
            refused = [
                f"{e.type} {e.name} (protected; delete)" for e in self.state.values() if e.protect
            ]
            result = StepResult(name, changes, None, refused, self.world())
            self.history.append(result)
            return result
        kept = {k for k, e in self.state.items() if e.protect}
        todo = list(kept)
        while todo:
            for dep in self.state[todo.pop()].deps:
                if dep in self.state and dep not in kept:
                    kept.add(dep)
                    todo.append(dep)
        changes = [
            Change(e.type, e.name, "same", (), "kept (protected)") if k in kept else _delete(e)
            for k, e in self.state.items()
        ]
        self.state = {k: e for k, e in self.state.items() if k in kept}
        result = StepResult(name, changes, None, [], self.world())
        self.history.append(result)
        return result

    def entry_named(self, name: str) -> Entry:
        found = [e for e in self.state.values() if e.name == name]
        assert len(found) == 1, f"expected one {name} in state, got {len(found)}"
        return found[0]

    def entry(self, type_: str) -> Entry:
        found = [e for e in self.state.values() if e.type == type_]
        assert len(found) == 1, f"expected one {type_} in state, got {[e.name for e in found]}"
        return found[0]


def _delete(entry: Entry) -> Change:
    note = "retained: forgotten, kept in AWS" if entry.retain else ""
    return Change(entry.type, entry.name, "delete", (), note)


def machine_stopped(state: dict[tuple[str, str], Entry]) -> None:
    """What a refresh reads after idle auto-stop: no public IPv4, InstanceState `stopped`."""
    for entry in state.values():
        if entry.type == INSTANCE:
            entry.outputs.update(publicIp="", publicDns="", instanceState="stopped")
        if entry.type == "aws:ec2transitgateway/instanceState:InstanceState":
            entry.inputs["state"] = "stopped"


def machine_running_with_a_new_address(state: dict[tuple[str, str], Entry]) -> None:
    """What a refresh reads once the machine runs again: EC2 gave it a new public IPv4."""
    for entry in state.values():
        if entry.type == INSTANCE:
            entry.outputs.update(instanceState="running", **_auto_ip(77))
