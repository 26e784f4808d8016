# Host flake for one dev server (/etc/nixos/flake.nix). Pulumi renders it by replacing each
# @name@ placeholder, with its surrounding quotes, by a Nix value; on a hand-made host edit the values.
# A line ending in `# @<part>` is kept only when that part is on (components/host_flake.py).
# Values AWS returns (home volume, deploy key) are in ./machine.json beside it, written by Pulumi.
# The shared flake is a remote reference (devserver:flake), or `path:./shared`: the operator's nix/,
# pushed by the deployment into ./shared.
{
  description = "NixOS dev server host";

  inputs = {
    devserver.url = "@sharedFlake@";
    # One nixpkgs for the host and the shared modules; refreshing devserver moves both.
    nixpkgs.follows = "devserver/nixpkgs";
    # A person's own layer over the shared modules (devserver:personalFlake), on the host's nixpkgs. # @personal
    personal.url = "@personalFlake@"; # @personal
    personal.inputs.nixpkgs.follows = "nixpkgs"; # @personal
  };

  outputs =
    { nixpkgs, devserver, ... }@inputs:
    let
      hostName = "@hostName@";
      user = "@user@";
      # The personal flake's modules, whichever it has, imported after (over) the shared ones.
      personal = inputs.personal or { };
      personalNixos = if personal ? nixosModules.default then [ personal.nixosModules.default ] else [ ];
      personalHome =
        if personal ? homeManagerModules.default then
          [ personal.homeManagerModules.default ]
        else if personal ? homeModules.default then
          [ personal.homeModules.default ]
        else
          [ ];
      # Unknown until AWS creates the machine, so kept out of this file: see machine.json.
      machine = builtins.fromJSON (builtins.readFile ./machine.json);
    in
    {
      nixosConfigurations.${hostName} = nixpkgs.lib.nixosSystem {
        modules = [
          devserver.nixosModules.devserver
          {
            nixpkgs.hostPlatform = "@system@";
            networking.hostName = hostName;
            system.stateVersion = "@stateVersion@";
            devserver = {
              user = {
                name = user;
                fullName = "@fullName@";
                email = "@email@";
              };
              githubUser = "@githubUser@";
              githubUserId = "@githubUserId@";
              homeVolume.device = machine.homeDevice;
              deploy.rootAuthorizedKeys = machine.rootAuthorizedKeys;
              token = {
                secretId = "@tokenSecretId@";
                region = "@region@";
              };
              idleStop.minutes = "@idleStopMinutes@";
              # The nightly upgrade follows the personal flake too.
              autoUpgrade.extraInputs = [ "personal" ]; # @personal
              # The binary cache this machine substitutes from (the stack's own, or a team's), if any.
              binaryCache = machine.binaryCache or { };
            };
          }
        ]
        ++ personalNixos
        # For this server's developer only (not home-manager.sharedModules, which is every user).
        ++ (if personalHome == [ ] then [ ] else [ { home-manager.users.${user}.imports = personalHome; } ]);
      };
    };
}
