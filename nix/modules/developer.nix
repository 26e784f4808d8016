# Developer tooling: direnv + nix-direnv, GC roots for dev shells, home-manager with the git identity.
{ config, lib, ... }:
let
  cfg = config.devserver;
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

    home-manager = {
      useGlobalPkgs = lib.mkDefault true;
      useUserPackages = lib.mkDefault true;
      # An existing dotfile is moved aside rather than failing the switch on the persistent /home.
      backupFileExtension = lib.mkDefault "hm-backup";
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
