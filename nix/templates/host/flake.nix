# Host flake for one dev server (/etc/nixos/flake.nix). Pulumi renders it by replacing each
# @name@ placeholder, with its surrounding quotes, by a Nix value; on a hand-made host edit the values.
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
              homeVolume.device = "@homeDevice@";
              token = {
                secretArn = "@tokenSecretArn@";
                region = "@region@";
              };
              idleStop.minutes = "@idleStopMinutes@";
            };
          }
        ];
      };
    };
}
