# Host flake for one dev server (/etc/nixos/flake.nix). Pulumi renders it by replacing each
# @name@ placeholder, with its surrounding quotes, by a Nix value; on a hand-made host edit the values.
# Values AWS returns (home volume, deploy key) are in ./machine.json beside it, written by Pulumi.
{
  description = "NixOS dev server host";

  inputs = {
    devserver.url = "@sharedFlake@";
    # One nixpkgs for the host and the shared modules; refreshing devserver moves both.
    nixpkgs.follows = "devserver/nixpkgs";
  };

  outputs =
    { nixpkgs, devserver, ... }:
    let
      hostName = "@hostName@";
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
                name = "@user@";
                fullName = "@fullName@";
                email = "@email@";
              };
              githubUser = "@githubUser@";
              homeVolume.device = machine.homeDevice;
              deploy.rootAuthorizedKeys = machine.rootAuthorizedKeys;
              token = {
                secretId = "@tokenSecretId@";
                region = "@region@";
              };
              idleStop.minutes = "@idleStopMinutes@";
            };
          }
        ];
      };
    };
}
