# Stand-in for nixpkgs' Amazon image module in the nixpkgs-free module evaluation (eval-modules.nix).
# It carries the definitions of nixos/modules/virtualisation/amazon-image.nix that the devserver
# modules meet, at the priority upstream gives them (read at NixOS/nixpkgs 34a09096 and at
# DeterminateSystems/nixpkgs b6860cd7, a fork tracking master: the same lines in both):
# plain (normal-priority) definitions, so a host's plain `false`/"no" conflicts with them.
{ lib, ... }:
{
  # services.amazon-ssm-agent.enable is declared by ssmAgentStub in eval-modules.nix.
  options.services.openssh.settings.PermitRootLogin = lib.mkOption {
    type = lib.types.enum [
      "yes"
      "without-password"
      "prohibit-password"
      "forced-commands-only"
      "no"
    ];
    default = "prohibit-password";
    description = "nixos/modules/services/networking/ssh/sshd.nix: settings.PermitRootLogin.";
  };

  config = {
    # "Amazon-issued AMIs include the SSM Agent by default, so we do the same."
    services.amazon-ssm-agent.enable = true;
    services.openssh.enable = true;
    services.openssh.settings.PermitRootLogin = "prohibit-password";
    boot.growPartition = true;
    fileSystems."/" = {
      device = "/dev/disk/by-label/nixos";
      fsType = "ext4";
      autoResize = true;
    };
  };
}
