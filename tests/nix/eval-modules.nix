# Evaluates the devserver NixOS modules with only nixpkgs' lib: undeclared NixOS options are accepted
# freely, packages are fakes. Used by test_module_eval.py; the real NixOS evaluation is `nix flake check`.
{
  libPath,
  # Extra module (as an attrset) layered over the sample host, e.g. a bad value to test an assertion.
  overrides ? { },
}:
let
  lib = import libPath;
  repo = ../..;

  fakePackage = name: {
    type = "derivation";
    inherit name;
    outPath = "/nix/store/00000000000000000000000000000000-${name}";
    meta.mainProgram = name;
  };
  # writeShellApplication keeps its text so tests can see what the machine would run.
  pkgs = {
    writeShellApplication = args: fakePackage args.name // { inherit (args) text runtimeInputs; };
  }
  // lib.genAttrs [
    "awscli2"
    "bash"
    "coreutils"
    "curl"
    "gawk"
    "gh"
    "gnugrep"
    "iproute2"
    "jq"
    "nix"
    "nixfmt"
    "systemd"
    "zsh"
  ] fakePackage;

  freeform = lib.types.lazyAttrsOf lib.types.anything;
  freeformWith =
    options:
    lib.mkOption {
      type = lib.types.submodule {
        freeformType = freeform;
        inherit options;
      };
      default = { };
    };
  listOption =
    elemType:
    lib.mkOption {
      type = lib.types.listOf elemType;
      default = [ ];
    };

  # Declares only what several modules define together (lists merge by concatenation here).
  nixosStub = {
    config._module.freeformType = freeform;
    options = {
      assertions = listOption lib.types.anything;
      systemd = freeformWith { tmpfiles = freeformWith { rules = listOption lib.types.str; }; };
      system = freeformWith {
        stateVersion = lib.mkOption { type = lib.types.str; };
      };
    };
    config = {
      nix.package = pkgs.nix;
      systemd.package = pkgs.systemd;
    };
  };

  # The shared flake's outputs with stand-in inputs (the knot through `self` tied by hand).
  flake = import (repo + "/nix/flake.nix");
  outputs = flake.outputs {
    self = outputs;
    nixpkgs = {
      lib = lib // {
        nixosSystem = args: { config.system.build.toplevel.nixosSystemArgs = args; };
      };
      legacyPackages = lib.genAttrs [ "x86_64-linux" "aarch64-linux" ] (_: pkgs);
    };
    home-manager.nixosModules.home-manager = { };
    vscode-server.homeModules.default = {
      vscodeServerHomeModuleStandIn = true;
    };
  };

  evaluated = lib.evalModules {
    specialArgs = {
      modulesPath = toString ./fake-modulesPath;
    };
    modules = [
      nixosStub
      { _module.args.pkgs = pkgs; }
      # Exactly what a host flake imports.
      outputs.nixosModules.devserver
      (repo + "/nix/hosts/sample.nix")
      # Forced so a test's value replaces the sample host's instead of conflicting with it.
      (lib.mapAttrsRecursive (_: lib.mkForce) overrides)
    ];
  };
  config = evaluated.config;
  user = config.devserver.user.name;
  service = name: config.systemd.services.${name} or null;
in
{
  flakeOutputs = {
    nixosModules = builtins.attrNames outputs.nixosModules;
    templates = builtins.attrNames outputs.templates;
    templatePath = toString outputs.templates.host.path;
    checks = lib.mapAttrs (_: builtins.attrNames) outputs.checks;
    # The nixpkgs.hostPlatform each check's sample host is built for.
    checkPlatforms = lib.mapAttrs (
      _: c: (lib.last c.sample-host.nixosSystemArgs.modules).nixpkgs.hostPlatform
    ) outputs.checks;
    formatter = lib.mapAttrs (_: f: f.name) outputs.formatter;
  };
  homeManagerSharedModules = config.home-manager.sharedModules;
  failedAssertions = map (a: a.message) (lib.filter (a: !a.assertion) config.assertions);
  home = config.fileSystems."/home" or null;
  swap = config.zramSwap or null;
  openssh = config.services.openssh;
  user = config.users.users.${user};
  mutableUsers = config.users.mutableUsers;
  sudo = config.security.sudo;
  docker = config.virtualisation.docker or null;
  nixSettings = config.nix.settings;
  nixExtraOptions = config.nix.extraOptions or "";
  nixGc = config.nix.gc;
  tmpfiles = config.systemd.tmpfiles.rules;
  autoUpgrade = config.system.autoUpgrade or null;
  upgradePreStart = (service "nixos-upgrade").preStart or null;
  tokenService = service "devserver-github-token";
  idleStopService = service "devserver-idle-stop";
  homeManagerUser = config.home-manager.users.${user};
  direnv = config.programs.direnv;
  zshInit = config.programs.zsh.interactiveShellInit or "";
  systemPackages = map (p: p.name) (config.environment.systemPackages or [ ]);
  # Every string the configuration holds, for "no token anywhere" checks.
  allText = builtins.toJSON (
    lib.filterAttrs (n: _: n != "_module") (
      builtins.removeAttrs config [
        "assertions"
      ]
    )
  );
}
