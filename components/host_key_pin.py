# The SSH host key a machine showed, as the tag on its network interface records it.
"""Read at plan time from the existing machine, so the deployment pins the key it saw before."""

from __future__ import annotations

from dataclasses import dataclass

from components.lookups import AwsLookups, ExistingInstance
from components.machine import HOST_KEY_TAG

# How the deployment's first SSH contact went, recorded with the key (see machine.HOST_KEY_TAG).
FIRST_USE, PINNED, NOT_DEPLOYED = "first-use", "pinned", "not-deployed"


@dataclass(frozen=True)
class HostKeyPin:
    """The host key a machine showed, as its tag records it."""

    instance_id: str
    mode: str
    key: str

    @property
    def pins_first_contact(self) -> bool:
        """A deployment (re)made after a stop or an interruption, or made with the pin already,
        connects with it; one that trusted the key on first use is left as it is (unchanged
        inputs: no SSH at all)."""
        return self.mode in (PINNED, NOT_DEPLOYED)


def pinned_host_key(machine: ExistingInstance | None, lookups: AwsLookups) -> HostKeyPin | None:
    """The pin on the machine's primary network interface, else where stacks before it kept it
    (a tag on the instance itself)."""
    if machine is None:
        return None
    eni = machine.network_interface_id
    value = dict(lookups.network_interface_tags(eni)).get(HOST_KEY_TAG) if eni else None
    mode, _, key = (value or machine.tag(HOST_KEY_TAG) or "").partition(" ")
    if mode not in (FIRST_USE, PINNED, NOT_DEPLOYED) or not key:
        return None
    return HostKeyPin(machine.id, mode, key)
