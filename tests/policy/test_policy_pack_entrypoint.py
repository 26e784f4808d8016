"""The pack as the Pulumi CLI runs it (`python -m pulumi.policy`), spoken to over gRPC.

No Pulumi CLI is needed: this is the same entry point and analyzer protocol the CLI uses for
`--policy-pack policy`, so a broken import or wiring in `policy/__main__.py` fails here.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from google.protobuf import empty_pb2, struct_pb2
from pulumi.runtime.proto import analyzer_pb2, analyzer_pb2_grpc

POLICY_DIR = Path(__file__).resolve().parents[2] / "policy"


@pytest.fixture(scope="module")
def analyzer() -> Iterator[analyzer_pb2_grpc.AnalyzerStub]:
    # The engine address is parsed but unused until a program calls back; any value will do.
    server = subprocess.Popen(
        [sys.executable, "-u", "-m", "pulumi.policy", "127.0.0.1:0", str(POLICY_DIR)],
        stdout=subprocess.PIPE,
    )
    try:
        assert server.stdout is not None
        port = int(server.stdout.readline())
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            yield analyzer_pb2_grpc.AnalyzerStub(channel)
    finally:
        server.terminate()
        server.wait(timeout=10)


def analyze(
    stub: analyzer_pb2_grpc.AnalyzerStub,
    resource_type: str,
    props: dict[str, object],
    *,
    protect: bool = False,
) -> dict[str, analyzer_pb2.AnalyzeDiagnostic]:
    properties = struct_pb2.Struct()
    properties.update(props)
    request = analyzer_pb2.AnalyzeRequest(
        type=resource_type,
        properties=properties,
        urn=f"urn:pulumi:dev::devserver::{resource_type}::under-test",
        name="under-test",
        options=analyzer_pb2.AnalyzerResourceOptions(protect=protect),
    )
    return {d.policyName: d for d in stub.Analyze(request).diagnostics}


def test_pack_announces_its_policies_as_mandatory(analyzer: analyzer_pb2_grpc.AnalyzerStub) -> None:
    info = analyzer.GetAnalyzerInfo(empty_pb2.Empty())
    assert info.name == "devserver-aws"
    assert {p.name: p.enforcementLevel for p in info.policies} == dict.fromkeys(
        [
            "ec2-imdsv2-required",
            "ebs-volumes-encrypted",
            "no-ssh-from-anywhere",
            "iam-least-privilege",
            "home-volume-protected",
            "no-token-in-user-data",
            "no-ssh-from-anywhere-in-pieces",
        ],
        analyzer_pb2.MANDATORY,
    )


def test_pack_blocks_an_imdsv1_instance_with_an_unencrypted_root(
    analyzer: analyzer_pb2_grpc.AnalyzerStub,
) -> None:
    diagnostics = analyze(
        analyzer,
        "aws:ec2/instance:Instance",
        {
            "metadataOptions": {"httpTokens": "optional", "httpPutResponseHopLimit": 1},
            "rootBlockDevice": {"encrypted": False},
        },
    )
    assert sorted(diagnostics) == ["ebs-volumes-encrypted", "ec2-imdsv2-required"]
    assert all(d.enforcementLevel == analyzer_pb2.MANDATORY for d in diagnostics.values())
    assert "httpTokens must be 'required'" in diagnostics["ec2-imdsv2-required"].message


def test_pack_passes_the_instance_the_devserver_program_registers(
    analyzer: analyzer_pb2_grpc.AnalyzerStub,
) -> None:
    diagnostics = analyze(
        analyzer,
        "aws:ec2/instance:Instance",
        {
            "metadataOptions": {"httpTokens": "required", "httpPutResponseHopLimit": 1},
            "rootBlockDevice": {"encrypted": True, "volumeSize": 30},
            "userData": "#!/bin/sh\necho first boot\n",
        },
    )
    assert diagnostics == {}


def test_pack_sees_the_protect_option_of_the_home_volume(
    analyzer: analyzer_pb2_grpc.AnalyzerStub,
) -> None:
    home = {"encrypted": True, "tags": {"devserver:role": "home"}}
    assert list(analyze(analyzer, "aws:ebs/volume:Volume", home)) == ["home-volume-protected"]
    assert analyze(analyzer, "aws:ebs/volume:Volume", home, protect=True) == {}


def test_pack_blocks_ssh_split_into_separate_rules_of_one_group(
    analyzer: analyzer_pb2_grpc.AnalyzerStub,
) -> None:
    group_type = "aws:ec2/securityGroup:SecurityGroup"
    rule_type = "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule"
    group_urn = f"urn:pulumi:dev::devserver::{group_type}::devserver-ssh"

    def resource(
        type_: str, name: str, props: dict[str, object], parent: str = ""
    ) -> analyzer_pb2.AnalyzerResource:
        properties = struct_pb2.Struct()
        properties.update(props)
        return analyzer_pb2.AnalyzerResource(
            type=type_,
            properties=properties,
            urn=f"urn:pulumi:dev::devserver::{type_}::{name}" if parent else group_urn,
            name=name,
            options=analyzer_pb2.AnalyzerResourceOptions(),
            parent=parent,
        )

    def stack(*halves: str) -> list[str]:
        rules = [
            resource(
                rule_type,
                f"half-{i}",
                {"ipProtocol": "tcp", "fromPort": 22, "toPort": 22, "cidrIpv4": cidr},
                group_urn,
            )
            for i, cidr in enumerate(halves)
        ]
        request = analyzer_pb2.AnalyzeStackRequest(
            resources=[resource(group_type, "devserver-ssh", {}), *rules]
        )
        return [
            d.message
            for d in analyzer.AnalyzeStack(request).diagnostics
            if d.policyName == "no-ssh-from-anywhere-in-pieces"
        ]

    (message,) = stack(*(f"{i}.0.0.0/8" for i in range(256)))
    assert group_urn in message and "whole internet (0.0.0.0/0)" in message
    assert stack("203.0.113.7/32", "198.51.100.0/24") == []
