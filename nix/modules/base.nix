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
in
{
  options.devserver = {
    base.enable = lib.mkEnableOption "the devserver base system (user, SSH with GitHub keys, zsh, git, docker, Nix housekeeping)";

    ssh.keysTimeoutSeconds = lib.mkOption {
      type = lib.types.ints.between 1 20;
      default = 5;
      description = "How long sshd waits for https://github.com/<githubUser>.keys before using the cached copy.";
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
    };
  };

  config = lib.mkIf cfg.base.enable {
    users.mutableUsers = false;
    users.users.${userName} = {
      isNormalUser = true;
      description = lib.mkIf (cfg.user.fullName != null) cfg.user.fullName;
      extraGroups = [ "wheel" ] ++ lib.optional cfg.docker.enable "docker";
      shell = pkgs.zsh;
    };

    # Passwordless sudo for wheel only: the account has no password at all.
    security.sudo.enable = true;
    security.sudo.wheelNeedsPassword = false;
    security.sudo.execWheelOnly = true;

    services.openssh = {
      enable = true;
      settings = {
        PermitRootLogin = "prohibit-password";
        PasswordAuthentication = false;
        KbdInteractiveAuthentication = false;
      };
      # sshd passes the requested login (%u); the helper answers only for our user.
      authorizedKeysCommand = "${lib.getExe githubAuthorizedKeys} %u ${userName} ${cfg.githubUser} ${keysCacheDir} ${toString cfg.ssh.keysTimeoutSeconds}";
      authorizedKeysCommandUser = "devserver-keys";
    };

    # A dedicated unprivileged account owns the key cache, so a GitHub outage falls back to the last good copy.
    users.users.devserver-keys = {
      isSystemUser = true;
      group = "devserver-keys";
      description = "Fetches GitHub SSH keys for sshd";
    };
    users.groups.devserver-keys = { };
    systemd.tmpfiles.rules = [ "d ${keysCacheDir} 0755 devserver-keys devserver-keys -" ];

    programs.zsh.enable = true;
    programs.starship = {
      enable = lib.mkDefault true;
      settings = lib.mkDefault (builtins.fromTOML (builtins.readFile ../config/starship.toml));
    };

    programs.git = {
      enable = true;
      lfs.enable = true;
    };

    virtualisation.docker = lib.mkIf cfg.docker.enable {
      enable = true;
      autoPrune = {
        enable = true;
        dates = "daily";
        flags = [ "--all" ];
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
      randomizedDelaySec = "30min";
      allowReboot = false;
    };
    # Refresh only the shared flake (nixpkgs follows it); `nix flake update <input>` replaces the deprecated --update-input.
    systemd.services.nixos-upgrade.preStart = lib.mkIf cfg.autoUpgrade.enable ''
      ${lib.getExe config.nix.package} flake update ${lib.escapeShellArg cfg.autoUpgrade.sharedInput} --flake ${lib.escapeShellArg cfg.autoUpgrade.flakeDir}
    '';
  };
}
