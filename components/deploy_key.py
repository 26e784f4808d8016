"""The SSH key Pulumi deploys with: generated and kept as a Pulumi secret, or given in config."""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_aws as aws
import pulumi_tls as tls


@dataclass(frozen=True)
class DeployKeyArgs:
    """An OpenSSH private key from config (a secret), or None to generate one."""

    tags: dict[str, str]
    private_key: pulumi.Output[str] | None = None


class DeployKey(pulumi.ComponentResource):
    """An ed25519 key: EC2 puts its public half in root's authorized_keys on the NixOS AMI."""

    key_name: pulumi.Output[str]
    """The EC2 key pair to launch the machine with."""
    private_key: pulumi.Output[str]
    """The OpenSSH private key (a secret) pulumi-command connects with."""
    public_key: pulumi.Output[str]
    """The OpenSSH public key, checked on the machine after every switch."""

    def __init__(
        self, name: str, args: DeployKeyArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("devserver:deploy:DeployKey", name, None, opts)
        if args.private_key is None:
            generated = tls.PrivateKey(
                f"{name}-deploy-key", algorithm="ED25519", opts=pulumi.ResourceOptions(parent=self)
            )
            private_key = generated.private_key_openssh
            public_key = generated.public_key_openssh
        else:
            private_key = args.private_key
            derived = tls.get_public_key_output(private_key_openssh=private_key)
            # Derived from a secret, so Pulumi marks it secret; a public key is not.
            public_key = pulumi.Output.unsecret(derived.public_key_openssh)
        key_pair = aws.ec2.KeyPair(
            f"{name}-deploy",
            public_key=public_key.apply(str.strip),
            tags=args.tags,
            opts=pulumi.ResourceOptions(parent=self),
        )
        self.key_name = key_pair.key_name
        self.private_key = pulumi.Output.secret(private_key)
        self.public_key = public_key.apply(str.strip)
        self.register_outputs({"key_name": self.key_name, "public_key": self.public_key})
