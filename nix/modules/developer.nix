# Developer tooling: direnv + nix-direnv, GC roots for dev shells, home-manager with the git identity.
{
  config,
  lib,
  pkgs,
  ...
}:
let
  cfg = config.devserver;
  # home-manager's backupCommand: a dotfile the developer edited is moved to a name never taken
  # before and the move is logged (a file in the repo, tested on its own).
  homeBackup = pkgs.writeShellApplication {
    name = "devserver-home-backup";
    runtimeInputs = [ pkgs.coreutils ];
    text = builtins.readFile ../scripts/home-backup.sh;
  };
in
{
  options.devserver.developer = {
    enable = lib.mkEnableOption "developer tooling (direnv, nix-direnv, home-manager git identity)";
    homeStateVersion = lib.mkOption {
      type = lib.types.str;
      default = config.system.stateVersion;
      defaultText = lib.literalExpression "config.system.stateVersion";
      description = "home-manager `home.stateVersion` for the user; keep it when upgrading NixOS.";
    };
  };

  config = lib.mkIf cfg.developer.enable {
    programs.direnv = {
      enable = true;
      nix-direnv.enable = true;
    };

    # Dev shells survive garbage collection as long as their direnv GC root exists.
    nix.settings = {
      keep-outputs = true;
      keep-derivations = true;
    };

    # Tell the developer, once, at their next interactive login which dotfiles were moved and where.
    programs.zsh.interactiveShellInit = ''
      () {
        local log="''${XDG_STATE_HOME:-$HOME/.local/state}/devserver/moved-dotfiles.log"
        local seen="$log.seen"
        [[ -s $log && ( ! -e $seen || $log -nt $seen ) ]] || return 0
        print -r -- "devserver: home-manager moved dotfiles you had edited (merge what you need, then delete the copies):"
        command tail -n +$(( $(command cat -- "$seen" 2>/dev/null || print 0) + 1 )) -- "$log"
        command wc -l < "$log" >| "$seen"
      }
    '';

    home-manager = {
      useGlobalPkgs = lib.mkDefault true;
      useUserPackages = lib.mkDefault true;
      # An existing dotfile is moved aside rather than failing the switch on the persistent /home.
      # Not backupFileExtension: its second backup of the same file is refused ("would be
      # clobbered", check-link-targets.sh) and fails every later switch (see scripts/home-backup.sh).
      backupCommand = lib.mkDefault (lib.getExe homeBackup);
      users.${cfg.user.name} = {
        home.stateVersion = cfg.developer.homeStateVersion;
        # home-manager writes ~/.zshrc and ~/.zshenv: without them the first interactive login
        # lands in zsh-newuser-install's menu.
        programs.zsh.enable = lib.mkDefault true;
        programs.git = {
          enable = true;
          lfs.enable = true;
          settings = {
            user = lib.filterAttrs (_: v: v != null) {
              name = cfg.user.fullName;
              email = cfg.user.email;
            };
            init.defaultBranch = lib.mkDefault "main";
          };
        };
      };
    };
  };
}
