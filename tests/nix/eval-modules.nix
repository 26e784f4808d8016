# Evaluates the devserver NixOS modules with only nixpkgs' lib: undeclared NixOS options are accepted
# freely, packages are fakes. Used by test_module_eval.py; the real NixOS evaluation is `nix flake check`.
# Where a stub stands in for a NixOS module it carries that module's rules: `users` below is
# nixpkgs nixos/modules/config/users-groups.nix (005ab72f) cut down to what the modules touch.
{
  libPath,
  # Extra module (as an attrset) layered over the sample host, e.g. a bad value to test an assertion.
  overrides ? { },
  # Extra module layered at normal priority, as a host flake would write it (opinions must yield).
  host ? { },
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
    writeShellScript = name: text: fakePackage name // { inherit text; };
  }
  // lib.genAttrs [
    "awscli2"
    "bash"
    "coreutils"
    "curl"
    "gawk"
    "getent"
    "gh"
    "gnugrep"
    "iproute2"
    "jq"
    "nix"
    "nixfmt"
    "nixfmt-tree"
    "nixos-rebuild"
    "pam"
    "procps"
    "shadow"
    "systemd"
    "util-linux"
    "zsh"
  ] fakePackage;

  # nixpkgs nixos/lib/utils.nix escapeSystemdPath, for unit names built from user names.
  utils.escapeSystemdPath =
    s:
    lib.replaceStrings [ "/" "-" " " ] [ "-" "\\x2d" "\\x20" ] (
      lib.removeSuffix "/" (lib.removePrefix "/" s)
    );

  # users-groups.nix: allowsLogin, the user submodule's options and derived defaults.
  allowsLogin =
    hash:
    hash == ""
    || !(lib.elem hash [
      null
      "!"
      "!!"
      "*"
    ]);
  userModule =
    { name, config, ... }:
    {
      freeformType = freeform;
      options = {
        enable = lib.mkOption {
          type = lib.types.bool;
          default = true;
        };
        name = lib.mkOption {
          type = lib.types.passwdEntry lib.types.str;
          apply =
            x:
            assert (
              builtins.stringLength x < 32 || abort "Username '${x}' is longer than 31 characters which is not allowed!"
            );
            x;
        };
        description = lib.mkOption {
          type = lib.types.passwdEntry lib.types.str;
          default = "";
        };
        uid = lib.mkOption {
          type = lib.types.nullOr lib.types.int;
          default = null;
        };
        isSystemUser = lib.mkOption {
          type = lib.types.bool;
          default = false;
        };
        isNormalUser = lib.mkOption {
          type = lib.types.bool;
          default = false;
        };
        group = lib.mkOption {
          type = lib.types.str;
          default = "";
        };
        extraGroups = listOption lib.types.str;
        home = lib.mkOption {
          type = lib.types.passwdEntry lib.types.path;
          default = "/var/empty";
        };
        homeMode = lib.mkOption {
          type = lib.types.strMatching "[0-7]{1,5}";
          default = "700";
        };
        createHome = lib.mkOption {
          type = lib.types.bool;
          default = false;
        };
        shell = lib.mkOption {
          type = lib.types.anything;
          default = pkgs.shadow;
        };
        hashedPassword = lib.mkOption {
          type = lib.types.nullOr (lib.types.passwdEntry lib.types.str);
          default = null;
        };
        password = lib.mkOption {
          type = lib.types.nullOr lib.types.str;
          default = null;
        };
        hashedPasswordFile = lib.mkOption {
          type = lib.types.nullOr lib.types.str;
          default = null;
        };
        linger = lib.mkOption {
          type = lib.types.nullOr lib.types.bool;
          default = null;
        };
        openssh.authorizedKeys = {
          keys = listOption lib.types.singleLineStr;
          keyFiles = listOption lib.types.path;
        };
      };
      config = lib.mkMerge [
        { name = lib.mkDefault name; }
        (lib.mkIf config.isNormalUser {
          group = lib.mkDefault "users";
          createHome = lib.mkDefault true;
          home = lib.mkDefault "/home/${config.name}";
        })
      ];
    };
  usersStub =
    { config, ... }:
    let
      cfg = config.users;
    in
    {
      options.users = {
        mutableUsers = lib.mkOption {
          type = lib.types.bool;
          default = true;
        };
        allowNoPasswordLogin = lib.mkOption {
          type = lib.types.bool;
          default = false;
        };
        users = lib.mkOption {
          type = lib.types.attrsOf (lib.types.submodule userModule);
          default = { };
        };
        groups = lib.mkOption {
          type = lib.types.attrsOf freeform;
          default = { };
        };
      };
      config.users.users.root = {
        uid = 0;
        group = "root";
        home = "/root";
      };
      config.assertions = [
        {
          # users-groups.nix: the lock-out guard, word for word in its logic.
          assertion =
            !cfg.mutableUsers
            -> !cfg.allowNoPasswordLogin
            -> lib.any lib.id (
              lib.mapAttrsToList (
                name: u:
                (name == "root" || u.group == "wheel" || lib.elem "wheel" u.extraGroups)
                && (
                  allowsLogin u.hashedPassword
                  || u.password != null
                  || u.hashedPasswordFile != null
                  || u.openssh.authorizedKeys.keys != [ ]
                  || u.openssh.authorizedKeys.keyFiles != [ ]
                )
              ) cfg.users
              ++ [ (config.security.googleOsLogin.enable or false) ]
            );
          message = "Neither the root account nor any wheel user has a password or SSH authorized key.";
        }
      ]
      ++ lib.flatten (
        lib.mapAttrsToList (name: u: [
          {
            assertion = lib.xor u.isSystemUser u.isNormalUser;
            message = "Exactly one of users.users.${name}.isSystemUser and users.users.${name}.isNormalUser must be set.";
          }
          {
            assertion = u.group != "";
            message = "users.users.${name}.group is unset.";
          }
        ]) (lib.filterAttrs (name: _: name != "root") cfg.users)
      );
    };

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
  nixosStub =
    { config, ... }:
    {
    config._module.freeformType = freeform;
    options = {
      assertions = listOption lib.types.anything;
      systemd = freeformWith { tmpfiles = freeformWith { rules = listOption lib.types.str; }; };
      system = freeformWith {
        stateVersion = lib.mkOption { type = lib.types.str; };
        # nixos/modules/tasks/auto-upgrade.nix as NixOS/nixpkgs#409185 left it (raboof/nixpkgs
        # 7762d59b, merged 2025-05, so in nixos-25.11 and 26.05): the options the devserver modules
        # read, with upstream's types and defaults; `flags` and the unit's `script` are built below.
        # (Later revisions default `upgrade` to false when a flake is set; true is the stricter test.)
        autoUpgrade = freeformWith {
          upgrade = lib.mkOption {
            type = lib.types.bool;
            default = true;
          };
          operation = lib.mkOption {
            type = lib.types.enum [
              "switch"
              "boot"
            ];
            default = "switch";
          };
          flake = lib.mkOption {
            type = lib.types.nullOr lib.types.str;
            default = null;
          };
          channel = lib.mkOption {
            type = lib.types.nullOr lib.types.str;
            default = null;
          };
          flags = listOption lib.types.str;
          allowReboot = lib.mkOption {
            type = lib.types.bool;
            default = false;
          };
        };
      };
      # nixos/modules/programs/zsh/zsh.nix: `lines`, so several modules' snippets concatenate.
      programs = freeformWith {
        zsh = freeformWith {
          interactiveShellInit = lib.mkOption {
            type = lib.types.lines;
            default = "";
          };
        };
      };
    };
    config = {
      # auto-upgrade.nix: the unit's script (without the reboot window) runs
      # `nixos-rebuild <operation> <flags ++ upgradeFlag>`, upgradeFlag = `--upgrade` when
      # `channel == null && upgrade`.
      systemd.services.nixos-upgrade =
        let
          cfg = config.system.autoUpgrade;
          nixosRebuild = "${pkgs.nixos-rebuild}/bin/nixos-rebuild";
          upgradeFlag = lib.optional (cfg.channel == null && cfg.upgrade) "--upgrade";
        in
        lib.mkIf (cfg.enable or false) {
          script =
            if cfg.allowReboot then
              ''
                ${nixosRebuild} boot ${toString (cfg.flags ++ upgradeFlag)}
                ${nixosRebuild} ${cfg.operation} ${toString cfg.flags}
              ''
            else
              ''
                ${nixosRebuild} ${cfg.operation} ${toString (cfg.flags ++ upgradeFlag)}
              '';
        };
      # auto-upgrade.nix: a flake gets `--refresh --flake <flake>`.
      system.autoUpgrade.flags =
        let
          cfg = config.system.autoUpgrade;
        in
        lib.mkIf (cfg.flake != null) [
          "--refresh"
          "--flake ${cfg.flake}"
        ];
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
    home-manager.nixosModules.home-manager = homeManagerStub;
    vscode-server.homeModules.default = {
      vscodeServerHomeModuleStandIn = true;
    };
  };

  # Stands in for home-manager's NixOS module (nix-community/home-manager release-26.05 @ dd71501f,
  # nixos/common.nix options and nixos/default.nix `baseUnit`): the backup options with their
  # upstream types and defaults, and the environment they become in home-manager-<user>.service,
  # which modules/files/check-link-targets.sh and the link step read.
  homeManagerStub =
    { config, ... }:
    let
      cfg = config.home-manager;
    in
    {
      options.home-manager = {
        backupCommand = lib.mkOption {
          type = lib.types.nullOr (lib.types.either lib.types.str lib.types.path);
          default = null;
        };
        backupFileExtension = lib.mkOption {
          type = lib.types.nullOr lib.types.str;
          default = null;
        };
        overwriteBackup = lib.mkEnableOption "forced overwriting of existing backup files";
        unitEnvironment = lib.mkOption {
          type = lib.types.attrsOf lib.types.str;
          readOnly = true;
          description = "Stand-in output: the backup part of baseUnit's environment.";
        };
      };
      config.home-manager.unitEnvironment = lib.mkMerge [
        (lib.mkIf (cfg.backupCommand != null) {
          HOME_MANAGER_BACKUP_COMMAND = toString cfg.backupCommand;
        })
        (lib.mkIf (cfg.backupFileExtension != null) {
          HOME_MANAGER_BACKUP_EXT = cfg.backupFileExtension;
        })
        (lib.mkIf cfg.overwriteBackup { HOME_MANAGER_BACKUP_OVERWRITE = "1"; })
      ];
    };

  # Stands in for nixpkgs nixos/modules/security/pam.nix @ 000b5872: a service's `rules.<type>.<name>`
  # (enable, order, control, modulePath, args) and sshd's default account stack, which holds only
  # `unix` on this host (ldap, mysql, kanidm, sss, krb5, oslogin, systemd_home are off). Upstream
  # numbers rules `mkDefault (10000 + index * 100)` in list order; `unix` is the 9th account rule.
  # `rendered` is formatRules "account": enabled rules by ascending order, "account control path args".
  pamRule = lib.types.submodule {
    options = {
      enable = lib.mkOption {
        type = lib.types.bool;
        default = true;
      };
      order = lib.mkOption { type = lib.types.int; };
      control = lib.mkOption { type = lib.types.str; };
      modulePath = lib.mkOption { type = lib.types.str; };
      args = listOption lib.types.str;
    };
  };
  pamStub = {
    options.security = freeformWith {
      pam = freeformWith {
        services = lib.mkOption {
          type = lib.types.attrsOf (
            lib.types.submodule {
              options.rules = freeformWith {
                account = lib.mkOption {
                  type = lib.types.attrsOf pamRule;
                  default = { };
                };
              };
            }
          );
          default = { };
        };
      };
    };
    config.security.pam.services.sshd.rules.account.unix = {
      control = "required";
      modulePath = "pam_unix.so";
      order = lib.mkDefault (10000 + 9 * 100);
    };
  };
  renderAccount =
    rules:
    map (r: lib.concatStringsSep " " ([ "account" r.control r.modulePath ] ++ r.args)) (
      lib.sort (a: b: a.order < b.order) (lib.filter (r: r.enable) (lib.attrValues rules))
    );

  # Stands in for nixpkgs' amazon-ssm-agent module (nixos/modules/services/misc/amazon-ssm-agent.nix
  # @ 136283b5): when enabled it declares ssm-user as a normal user in its own group, which the
  # users stand-in above then checks like any other account.
  ssmAgentStub =
    { config, ... }:
    {
      options.services.amazon-ssm-agent.enable = lib.mkOption {
        type = lib.types.bool;
        default = false;
      };
      config = lib.mkIf config.services.amazon-ssm-agent.enable {
        users.users.ssm-user = {
          isNormalUser = true;
          group = "ssm-user";
        };
        users.groups.ssm-user = { };
      };
    };

  # Stands in for nixpkgs' sshd module (nixos/modules/services/networking/ssh/sshd.nix, current
  # master as indexed): authorizedKeysInHomedir defaults to true and adds %h/.ssh/authorized_keys
  # before /etc/ssh/authorized_keys.d/%u; sshd_config gets "AuthorizedKeysFile <files joined by
  # spaces>" (toString of the list).
  sshdStub =
    { config, ... }:
    let
      cfg = config.services.openssh;
    in
    {
      options.services.openssh = {
        authorizedKeysInHomedir = lib.mkOption {
          type = lib.types.bool;
          default = true;
        };
        authorizedKeysFiles = listOption lib.types.str;
      };
      config.services.openssh.authorizedKeysFiles = lib.mkIf (cfg.enable or false) (
        lib.optional cfg.authorizedKeysInHomedir "%h/.ssh/authorized_keys"
        ++ [ "/etc/ssh/authorized_keys.d/%u" ]
      );
    };

  evaluated = lib.evalModules {
    specialArgs = {
      modulesPath = toString ./fake-modulesPath;
      inherit utils;
    };
    modules = [
      nixosStub
      usersStub
      pamStub
      ssmAgentStub
      sshdStub
      { _module.args.pkgs = pkgs; }
      # Exactly what a host flake imports.
      outputs.nixosModules.devserver
      (repo + "/nix/hosts/sample.nix")
      # Forced so a test's value replaces the sample host's instead of conflicting with it.
      (lib.mapAttrsRecursive (_: lib.mkForce) overrides)
      host
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
  homeManagerEnvironment = config.home-manager.unitEnvironment;
  failedAssertions = map (a: a.message) (lib.filter (a: !a.assertion) config.assertions);
  home = config.fileSystems."/home" or null;
  swap = config.zramSwap or null;
  openssh = config.services.openssh;
  # The line sshd.nix renders into sshd_config from the evaluated settings.
  sshdAuthorizedKeysFile = "AuthorizedKeysFile ${toString config.services.openssh.authorizedKeysFiles}";
  user = config.users.users.${user};
  users = lib.mapAttrs (_: u: {
    inherit (u)
      name
      description
      group
      extraGroups
      home
      homeMode
      createHome
      linger
      uid
      ;
    authorizedKeys = u.openssh.authorizedKeys.keys;
  }) config.users.users;
  etc = lib.mapAttrs (_: f: { inherit (f) mode text; }) (config.environment.etc or { });
  homeDirsService = service "devserver-home-dirs";
  homeGrowService = service "devserver-home-grow";
  # sshd's PAM account stack as pam.nix renders it into /etc/pam.d/sshd.
  sshdPamAccount = renderAccount config.security.pam.services.sshd.rules.account;
  vscodeRefreshService = service "devserver-vscode-server-refresh";
  ssmAgent = config.services.amazon-ssm-agent.enable or null;
  ssmAgentPath = (service "amazon-ssm-agent").path or null;
  upgradeService = service "nixos-upgrade";
  mutableUsers = config.users.mutableUsers;
  sudo = config.security.sudo;
  docker = config.virtualisation.docker or null;
  nixSettings = config.nix.settings;
  nixExtraOptions = config.nix.extraOptions or "";
  nixGc = config.nix.gc;
  tmpfiles = config.systemd.tmpfiles.rules;
  autoUpgrade = config.system.autoUpgrade or null;
  upgradePreStart = (service "nixos-upgrade").preStart or null;
  # auto-upgrade.nix's own flags for a flake (nixpkgs @ 22278867 as indexed): --refresh --flake <f>.
  upgradeFlags = config.system.autoUpgrade.flags or null;
  tokenService = service "devserver-github-token";
  tokenTimer = config.systemd.timers.devserver-github-token or null;
  # What region would be without the sample host's explicit value.
  tokenRegionDefault = evaluated.options.devserver.token.region.default;
  idleStopService = service "devserver-idle-stop";
  homeManagerUser = config.home-manager.users.${user};
  direnv = config.programs.direnv;
  git = config.programs.git;
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
