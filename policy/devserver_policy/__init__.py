"""Policy rules for nixos-devserver stacks: pure checks in `rules`, Pulumi wiring in `policies`."""
