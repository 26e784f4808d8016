{
  description = "nixos-devserver: NixOS modules for personal development servers on AWS EC2";

  inputs = {
    nixpkgs.url = "github:NixOS/nixpkgs/nixos-26.05";
    home-manager = {
      url = "github:nix-community/home-manager/release-26.05";
      inputs.nixpkgs.follows = "nixpkgs";
    };
    vscode-server = {
      url = "github:nix-community/nixos-vscode-server";
      inputs.nixpkgs.follows = "nixpkgs";
    };
  };

  outputs =
    {
      self,
      nixpkgs,
      home-manager,
      vscode-server,
    }:
    let
      lib = nixpkgs.lib;
      systems = [
        "x86_64-linux"
        "aarch64-linux"
      ];
      forAllSystems = lib.genAttrs systems;

      # Each part by name; the flake wires third-party modules in here so module files stay plain NixOS modules.
      parts = {
        options = ./modules/options.nix;
        base = ./modules/base.nix;
        developer = {
          imports = [
            home-manager.nixosModules.home-manager
            ./modules/developer.nix
          ];
        };
        image = {
          imports = [ ./modules/devserver-image.nix ];
          home-manager.sharedModules = [ vscode-server.homeModules.default ];
        };
        ec2 = ./modules/ec2.nix;
        token = ./modules/token.nix;
        idleStop = ./modules/idle-stop.nix;
        binaryCache = ./modules/binary-cache.nix;
      };
      portable = [
        parts.options
        parts.base
        parts.developer
        parts.image
        parts.token
        parts.idleStop
        parts.binaryCache
      ];

      # A fake host: what the Pulumi-rendered host flake sets, with obviously fake values.
      sampleHost =
        system:
        lib.nixosSystem {
          modules = [
            self.nixosModules.devserver
            ./hosts/sample.nix
            { nixpkgs.hostPlatform = system; }
          ];
        };
    in
    {
      nixosModules = parts // {
        # Everything that works on any NixOS host; nothing is switched on until devserver.image.enable.
        default = {
          imports = portable;
        };
        # The EC2 dev server: every part, switched on.
        devserver = {
          imports = portable ++ [ parts.ec2 ];
          devserver.image.enable = lib.mkDefault true;
          devserver.ec2.enable = lib.mkDefault true;
        };
      };

      templates = {
        host = {
          path = ./templates/host;
          description = "Per-machine host flake (/etc/nixos) that imports nixosModules.devserver";
        };
        default = self.templates.host;
      };

      checks = forAllSystems (system: {
        sample-host = (sampleHost system).config.system.build.toplevel;
      });

      nixosConfigurations = {
        sample-x86_64 = sampleHost "x86_64-linux";
        sample-aarch64 = sampleHost "aarch64-linux";
      };

      # `nix fmt` with no arguments formats the tree; plain nixfmt on a directory is deprecated.
      formatter = forAllSystems (system: nixpkgs.legacyPackages.${system}.nixfmt-tree);
    };
}
