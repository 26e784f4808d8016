# The one lookup object the program asks, composed of the lookups of each AWS area.

from __future__ import annotations

from components.lookups.elastic_ips import ElasticIpLookups
from components.lookups.images import ImageLookups
from components.lookups.instances import InstanceLookups
from components.lookups.network import NetworkLookups
from components.lookups.volumes import VolumeLookups


class AwsLookups(InstanceLookups, ImageLookups, NetworkLookups, VolumeLookups, ElasticIpLookups):
    """The invokes the program makes, behind one small typed surface (and one cache)."""
