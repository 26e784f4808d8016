# Base system: the developer's account, SSH with GitHub keys, shell, git, docker, Nix housekeeping, auto-upgrade.
{
  config,
  lib,
  pkgs,
  ...
}:
let
  cfg = config.devserver;
  userName = cfg.user.name;

  # The key-fetching helper sshd runs; a file in the repo so it is tested on its own.
  githubAuthorizedKeys = pkgs.writeShellApplication {
    name = "devserver-github-authorized-keys";
    runtimeInputs = [
      pkgs.curl
      pkgs.coreutils
      pkgs.gnugrep
    ];
    text = builtins.readFile ../scripts/github-authorized-keys.sh;
  };
  keysCacheDir = "/var/cache/devserver-ssh-keys";
  # sshd refuses an AuthorizedKeysCommand with a group-writable path component (openssh misc.c
  # subprocess -> safe_path) and /nix/store is 1775 root:nixbld, so sshd runs this root-owned
  # 0755 copy under /etc (environment.etc with a mode is a copy, not a store symlink), as
  # nixpkgs' google-oslogin and sssd modules do.
  keysCommandPath = "/etc/ssh/devserver-github-authorized-keys";

  # The nightly upgrade's guard rails: skip while a deployment runs, keep flake.lock in step with
  # the running system, and roll back a new system that fails the login check.
  upgradeFlakeLock = pkgs.writeShellApplication {
    name = "devserver-upgrade-flake-lock";
    runtimeInputs = [
      pkgs.coreutils
      pkgs.util-linux
      config.nix.package
      config.systemd.package
    ];
    text = builtins.readFile ../scripts/upgrade-flake-lock.sh;
  };
  flakeDirArg = lib.escapeShellArg cfg.autoUpgrade.flakeDir;
  # The check apply-flake.sh runs after a deployment's switch, run after the nightly switch too.
  verifyLogin = pkgs.writeShellApplication {
    name = "devserver-verify-login";
    runtimeInputs = [
      pkgs.coreutils
      pkgs.gawk
      pkgs.getent
      pkgs.gnugrep
      pkgs.util-linux
      # `sshd -T` must be the sshd that serves the machine.
      config.services.openssh.package
      config.systemd.package
    ];
    text = builtins.readFile ../scripts/verify-login.sh;
  };
  verifyLoginArgs = lib.escapeShellArgs (
    [
      "--user"
      userName
    ]
    ++ lib.optionals (cfg.deploy.rootAuthorizedKeys != [ ]) [
      "--deploy-public-key"
      (lib.head cfg.deploy.rootAuthorizedKeys)
    ]
    # On EC2 the upgrade also checks that /home is the volume, as a deployment does.
    ++ lib.optionals ((cfg.ec2.enable or false) && (cfg.homeVolume.enable or false)) [
      "--home-device"
      cfg.homeVolume.device
    ]
  );
in
{
  options.devserver = {
    base.enable = lib.mkEnableOption "the devserver base system (user, SSH with GitHub keys, zsh, git, docker, Nix housekeeping)";

    ssh.keysTimeoutSeconds = lib.mkOption {
      type = lib.types.ints.between 1 20;
      default = 5;
      description = "How long sshd waits for https://github.com/<githubUser>.keys before using the cached copy.";
    };

    deploy.rootAuthorizedKeys = lib.mkOption {
      type = lib.types.listOf lib.types.str;
      default = [ ];
      example = [ "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIExampleOnly devserver-deploy" ];
      description = ''
        Public keys allowed to log in as root (the Pulumi deploy key), declared as
        `users.users.root.openssh.authorizedKeys.keys`. With immutable users NixOS needs root or a
        wheel user to have a password or a declared key; this is that key.
      '';
    };

    docker.enable = lib.mkOption {
      type = lib.types.bool;
      default = true;
      description = "Whether to run Docker (with a nightly prune) and put the user in the docker group.";
    };

    autoUpgrade = {
      enable = lib.mkOption {
        type = lib.types.bool;
        default = true;
        description = "Whether to rebuild nightly from the host flake, refreshing the shared flake input.";
      };
      flakeDir = lib.mkOption {
        type = lib.types.str;
        default = "/etc/nixos";
        description = "Directory of the host flake; the upgrade switches to its `nixosConfigurations.<networking.hostName>`.";
      };
      sharedInput = lib.mkOption {
        type = lib.types.str;
        default = "devserver";
        description = "Name of the host flake's input that points at this shared flake; refreshed on every upgrade.";
      };
      dates = lib.mkOption {
        type = lib.types.str;
        default = "04:00";
        description = "systemd calendar expression for the nightly upgrade.";
      };
      extraInputs = lib.mkOption {
        type = lib.types.listOf (lib.types.strMatching "[A-Za-z][A-Za-z0-9_-]*");
        default = [ ];
        example = [ "personal" ];
        description = "More host flake inputs refreshed with the shared one on every upgrade (the personal flake).";
      };
    };
  };

  config = lib.mkIf cfg.base.enable {
    # Immutable users need root or a wheel user with a password or declared key (nixpkgs
    # users-groups.nix); root's deploy key is declared rather than setting
    # users.allowNoPasswordLogin, so the assertion keeps guarding against a real lock-out and the
    # deploy access is part of the configuration instead of a file the AMI happened to leave.
    users.mutableUsers = lib.mkDefault false;
    # mkMerge, not separate attribute paths: a bad user.name of "root" must reach the assertion in
    # options.nix instead of failing as a duplicate attribute.
    users.users = lib.mkMerge [
      { root.openssh.authorizedKeys.keys = cfg.deploy.rootAuthorizedKeys; }
      {
        ${userName} = {
          isNormalUser = true;
          # A new instance reuses the old /home volume: a fixed uid keeps the files the user's. Not
          # 1000: the image's ssm-user is a normal user created first, so it takes 1000 (normal uids
          # count up from 1000 in update-users-groups.pl, which keeps an existing user's uid).
          uid = lib.mkDefault 2000;
          description = lib.mkIf (cfg.user.fullName != null) cfg.user.fullName;
          extraGroups = [ "wheel" ] ++ lib.optional cfg.docker.enable "docker";
          shell = pkgs.zsh;
        };
      }
      # A dedicated unprivileged account owns the key cache, so a GitHub outage falls back to the last good copy.
      {
        devserver-keys = {
          isSystemUser = true;
          group = "devserver-keys";
          description = "Fetches GitHub SSH keys for sshd";
        };
      }
      # execWheelOnly makes sudo executable by wheel only, which would break the sudo rule
      # nixpkgs' amazon-ssm-agent module gives ssm-user; SSM Session Manager is the break-glass path.
      (lib.mkIf (config.services.amazon-ssm-agent.enable or false) {
        ssm-user.extraGroups = [ "wheel" ];
      })
    ];

    # Passwordless sudo for wheel only: the account has no password at all.
    security.sudo.enable = lib.mkDefault true;
    security.sudo.wheelNeedsPassword = lib.mkDefault false;
    security.sudo.execWheelOnly = lib.mkDefault true;

    services.openssh = {
      enable = true;
      settings = {
        PermitRootLogin = lib.mkDefault "prohibit-password";
        PasswordAuthentication = lib.mkDefault false;
        KbdInteractiveAuthentication = lib.mkDefault false;
      };
      # sshd passes the requested login (%u); the helper answers only for our user.
      # The pinned GitHub user id, when set, is the helper's sixth argument.
      authorizedKeysCommand = "${keysCommandPath} %u ${userName} ${cfg.githubUser} ${keysCacheDir} ${toString cfg.ssh.keysTimeoutSeconds}${
        lib.optionalString (cfg.githubUserId != null) " ${toString cfg.githubUserId}"
      }";
      authorizedKeysCommandUser = "devserver-keys";
      # GitHub is the only source of the developer's keys: sshd.nix otherwise adds
      # %h/.ssh/authorized_keys, where a key on the kept /home would outlive its revocation at
      # GitHub (and root's /root/.ssh/authorized_keys from EC2 metadata the deploy key's rotation).
      # Root's deploy key is declared (rootAuthorizedKeys -> /etc/ssh/authorized_keys.d/root).
      # Not mkDefault: a host that wants home files back must say so with lib.mkForce.
      authorizedKeysInHomedir = false;
    };
    environment.etc.${lib.removePrefix "/etc/" keysCommandPath} = {
      mode = "0755";
      text = ''
        #!/bin/sh
        exec ${lib.getExe githubAuthorizedKeys} "$@"
      '';
    };

    users.groups.devserver-keys = { };
    systemd.tmpfiles.rules = [ "d ${keysCacheDir} 0755 devserver-keys devserver-keys -" ];

    programs.zsh.enable = true;
    programs.starship = {
      enable = lib.mkDefault true;
      settings = lib.mkDefault (builtins.fromTOML (builtins.readFile ../config/starship.toml));
    };

    programs.git = {
      enable = lib.mkDefault true;
      lfs.enable = lib.mkDefault true;
    };

    virtualisation.docker = lib.mkIf cfg.docker.enable {
      enable = true;
      autoPrune = {
        enable = lib.mkDefault true;
        dates = lib.mkDefault "daily";
        flags = lib.mkDefault [ "--all" ];
      };
    };

    nix.settings = {
      experimental-features = [
        "nix-command"
        "flakes"
      ];
      trusted-users = [
        "root"
        "@wheel"
      ];
      auto-optimise-store = lib.mkDefault true;
    };
    nix.gc = {
      automatic = lib.mkDefault true;
      dates = lib.mkDefault "weekly";
      options = lib.mkDefault "--delete-older-than 14d";
    };

    system.autoUpgrade = lib.mkIf cfg.autoUpgrade.enable {
      enable = true;
      flake = "${cfg.autoUpgrade.flakeDir}#${config.networking.hostName}";
      dates = cfg.autoUpgrade.dates;
      randomizedDelaySec = lib.mkDefault "30min";
      allowReboot = lib.mkDefault false;
      # Never `--upgrade`: it would `nix-channel --update` root's channels every night, moving the
      # channel apply-flake.sh's first-deploy fallback builds from; the flake pins everything.
      # (auto-upgrade.nix's `upgrade`, NixOS/nixpkgs#409185, in 25.11 onwards.)
      upgrade = lib.mkDefault false;
    };
    systemd.services.nixos-upgrade = lib.mkIf cfg.autoUpgrade.enable {
      # Refresh only the shared flake (nixpkgs follows it); `nix flake update <input>` replaces the
      # deprecated --update-input. The lock is saved first so a failed upgrade leaves it as it was.
      # guard first: while apply-flake.sh holds the deploy lock the upgrade is skipped, untouched.
      preStart = ''
        ${lib.getExe upgradeFlakeLock} guard ${flakeDirArg}
        ${lib.getExe upgradeFlakeLock} save ${flakeDirArg}
        ${lib.getExe config.nix.package} flake update ${
          lib.escapeShellArgs ([ cfg.autoUpgrade.sharedInput ] ++ cfg.autoUpgrade.extraInputs)
        } --flake ${flakeDirArg}
      '';
      # After the switch (ExecStartPost of a oneshot): the same login check as a deployment; a
      # failure activates the previous generation and fails the unit, so the lock is put back too.
      postStart = "${lib.getExe upgradeFlakeLock} verify ${flakeDirArg} ${lib.getExe verifyLogin} ${verifyLoginArgs}";
      # Runs after success and failure alike (also a failed preStart or a switch that failed after
      # activating, which never reaches postStart); $SERVICE_RESULT says which. It rolls back a
      # moved profile and puts the lock back, so flake.lock always describes the running system.
      serviceConfig.ExecStopPost = "${lib.getExe upgradeFlakeLock} restore ${flakeDirArg}";
      # systemd spawns ExecStopPost with TimeoutStopSec (service.c service_enter_stop_post), 90 s by
      # default: a rollback's full switch may take longer, and a killed restore leaves the lock
      # unrestored. Bounded, so a hung rollback cannot block deployments and idle stop for ever.
      serviceConfig.TimeoutStopSec = lib.mkDefault "30min";
    };
  };
}
