# Machine rules: preset, arch, spot, spotMaxPrice, instance type (checked with EC2), disk sizes.

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

from components.lookups import AwsLookupError
from components.settings.declaration import SERVER, Key
from components.settings.model import ARCHES, MachineSpec, SettingsError
from components.settings.reader import Chain, Context, DictSource, Reader, Source

PRESETS_DIR = Path(__file__).resolve().parent.parent.parent / "presets"
DEFAULT_PRESET = "x86"
MIN_HOME_VOLUME_GIB = 10
MIN_ROOT_VOLUME_GIB = 20
# EBS gp3 volumes go up to 16 TiB.
MAX_VOLUME_GIB = 16384
INSTANCE_TYPE_RE = re.compile(r"[a-z][a-z0-9-]*\.[a-z0-9]+")
PRICE_RE = re.compile(r"\d+(?:\.\d+)?")


def available_presets() -> list[str]:
    """The preset names: one YAML file each in presets/."""
    return sorted(p.stem for p in PRESETS_DIR.glob("*.yaml"))


def load_preset(name: str) -> dict[str, Any]:
    """A preset's values, keyed like the stack config keys they stand in for."""
    values = yaml.safe_load((PRESETS_DIR / f"{name}.yaml").read_text(encoding="utf-8"))
    if not isinstance(values, dict) or set(values) != set(MACHINE_KEYS):
        raise SettingsError(f"presets/{name}.yaml must set exactly {', '.join(MACHINE_KEYS)}")
    return values


def machine_spec(r: Reader, ctx: Context) -> MachineSpec | None:
    """The rule of every machine key at once: the preset fills what the stack leaves unset."""
    presets = available_presets()
    preset = r.text("preset", default=DEFAULT_PRESET)
    sources: list[Source] = [r.source]
    if preset in presets:
        sources.append(DictSource(load_preset(preset), f"{{key}} of presets/{preset}.yaml"))
    else:
        r.fail(r.label("preset"), preset, f"one of {', '.join(presets)} (the files in presets/)")
    m = Reader(Chain(*sources), r.errors)
    arch = m.text("arch", allowed="x86_64 or aarch64")
    if arch is not None and arch not in ARCHES:
        m.fail(m.label("arch"), arch, "x86_64 or aarch64")
    spot = m.boolean("spot")
    arch_default = _arch_default_type(r.source, sources[1:], arch, spot)
    if arch_default is not None:
        m = Reader(Chain(r.source, arch_default, *sources[1:]), r.errors)
    instance_type = m.text("instanceType", INSTANCE_TYPE_RE, "an EC2 instance type like m7i.xlarge")
    root = m.integer("rootVolumeGiB", MIN_ROOT_VOLUME_GIB, MAX_VOLUME_GIB)
    home = m.integer("homeVolumeGiB", MIN_HOME_VOLUME_GIB, MAX_VOLUME_GIB)
    max_price = _spot_max_price(m, spot, ctx.prefix)
    if arch not in ARCHES or None in (spot, instance_type, root, home):
        return None
    machine = MachineSpec(
        arch, bool(spot), str(instance_type), int(root or 0), int(home or 0), max_price
    )
    _check_instance_type(m, machine, ctx)
    return machine


def _spot_max_price(m: Reader, spot: bool | None, prefix: str) -> str | None:
    """The spot price cap; on an on-demand machine it is a mistake, fixed in the stack config."""
    allowed = "a positive price in USD per hour, e.g. 0.08"
    max_price = m.text("spotMaxPrice", PRICE_RE, allowed, number_ok=True)
    if max_price is not None and float(max_price) <= 0:
        m.fail(m.label("spotMaxPrice"), max_price, allowed)
    if max_price is not None and spot is False:
        # The fix is in the stack config (never in a preset file), whichever source set spot.
        m.errors.append(
            f"{m.label('spotMaxPrice')} is set to {max_price!r} but the machine is on-demand "
            f"({m.label('spot')} is false): remove {m.label('spotMaxPrice')}, or set "
            f"{prefix}spot to true (or {prefix}preset to a -spot preset)"
        )
    return max_price


def _arch_default_type(
    own: Source, preset: list[Source], arch: str | None, spot: bool | None
) -> Source | None:
    """An arch set without an instance type gets that arch's default type: the instance type of
    the preset with the same arch and pricing (so `arch: aarch64` alone means m7g, not m7i)."""
    if own.get("arch") is None or own.get("instanceType") is not None or not preset:
        return None
    found = preset[0].get("arch")
    if arch not in ARCHES or (found is not None and found[0] == arch):
        return None
    matching = [
        (name, values)
        for name in available_presets()
        if (values := load_preset(name))["arch"] == arch
    ]
    matching.sort(key=lambda item: item[1]["spot"] != spot)
    if not matching:
        return None
    name, values = matching[0]
    return DictSource(
        {"instanceType": values["instanceType"]},
        f"{{key}} of presets/{name}.yaml (the {arch} default)",
    )


def _check_instance_type(r: Reader, spec: MachineSpec, ctx: Context) -> None:
    """Ask EC2, not a hand-written family list, whether the type fits the machine."""
    label = r.label("instanceType")
    try:
        info = ctx.types.instance_type(spec.instance_type)
    except AwsLookupError as err:
        r.errors.append(
            f"{label} must be an instance type EC2 offers, got {spec.instance_type!r}: {err}"
        )
        return
    if spec.ec2_architecture not in info.architectures:
        r.errors.append(
            f"{label} {spec.instance_type!r} runs {'/'.join(info.architectures)}, but "
            f"{r.label('arch')} is {spec.arch!r}: choose a {spec.arch} instance type "
            f"(e.g. {'m7g.xlarge' if spec.arch == 'aarch64' else 'm7i.xlarge'}) or change the arch"
        )
    if info.hypervisor != "nitro":
        r.errors.append(
            f"{label} must be a Nitro instance type (EBS appears as NVMe and /home is mounted by "
            f"its NVMe id), got {spec.instance_type!r} ({info.hypervisor or 'unknown'} hypervisor)"
        )
    if spec.spot and not info.spot_supported:
        r.errors.append(
            f"{label} {spec.instance_type!r} is not offered as spot; "
            f"set {r.label('spot')} to false or pick another type"
        )


# The keys this module's rules check, declared once (keys.py collects them; order = check order).
KEYS = (
    Key(
        "preset",
        "string",
        SERVER,
        machine_spec,
        "Machine preset, one of presets/*.yaml (x86, x86-spot, graviton, graviton-spot). The keys "
        "below override it.",
        default=DEFAULT_PRESET,
    ),
    Key(
        "arch",
        "string",
        SERVER,
        machine_spec,
        "x86_64 or aarch64 (overrides the preset). Switching it replaces the machine and keeps "
        "/home.",
        default="",
        shown_default="the preset's",
        details="Set without `instanceType`, it takes that arch's preset type "
        "(`aarch64` → m7g.xlarge).",
        preset=True,
    ),
    Key(
        "spot",
        "string",
        SERVER,
        machine_spec,
        '"true" for a persistent spot request that stops on interruption, "false" for on-demand; '
        "empty = the preset's choice.",
        default="",
        shown_default="the preset's",
        preset=True,
    ),
    Key(
        "spotMaxPrice",
        "string",
        SERVER,
        machine_spec,
        'Highest spot price in USD per hour, e.g. "0.08" (a YAML number is fine). Defaults to the '
        "on-demand price.",
        default="",
        shown_default="the on-demand price",
        details="Refused on an on-demand machine.",
    ),
    Key(
        "instanceType",
        "string",
        SERVER,
        machine_spec,
        "EC2 instance type; must be a Nitro type of the chosen arch (overrides the preset).",
        default="",
        shown_default="the preset's",
        details="Checked with EC2 (`get_instance_type`): it must run the arch, be Nitro, and "
        "offer spot if spot.",
        preset=True,
    ),
    Key(
        "rootVolumeGiB",
        "integer",
        SERVER,
        machine_spec,
        "Size of the encrypted gp3 root volume (the Nix store), at least 20 (0 = the preset's "
        "size).",
        default=0,
        shown_default="the preset's (`0`)",
        preset=True,
    ),
    Key(
        "homeVolumeGiB",
        "integer",
        SERVER,
        machine_spec,
        "Size of the encrypted gp3 /home volume, at least 10 (0 = the preset's size). It may "
        "grow, never shrink.",
        default=0,
        shown_default="the preset's (`0`)",
        details="With `homeVolumeId` it must be unset or the adopted volume's size.",
        preset=True,
    ),
)
# What every presets/*.yaml sets.
MACHINE_KEYS = tuple(k.name for k in KEYS if k.preset)
