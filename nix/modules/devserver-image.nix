# The dev server image: base + developer, VS Code server patched for NixOS, gh, EDITOR for VS Code terminals.
{ config, lib, pkgs, ... }:
let
  cfg = config.devserver;
in
{
  options.devserver.image = {
    enable = lib.mkEnableOption "the complete dev server (turns on base and developer too)";
    vscodeServer.enable = lib.mkOption {
      type = lib.types.bool;
      default = true;
      description = "Whether to patch VS Code Remote-SSH's server for NixOS (nixos-vscode-server, for the user only).";
    };
  };

  config = lib.mkIf cfg.image.enable {
    devserver.base.enable = lib.mkDefault true;
    devserver.developer.enable = lib.mkDefault true;

    environment.systemPackages = [
      pkgs.gh
      pkgs.curl
      pkgs.jq
    ];

    # Start the user's systemd manager at boot so the VS Code patcher watches before the first
    # connection; set only when needed, since linger = false would actively disable lingering.
    users.users.${cfg.user.name}.linger = lib.mkIf cfg.image.vscodeServer.enable (lib.mkDefault true);

    # The homeModules.default of nixos-vscode-server is added by the flake (home-manager.sharedModules).
    home-manager.users.${cfg.user.name} = {
      services.vscode-server.enable = cfg.image.vscodeServer.enable;
    };

    # Only VS Code's integrated terminal sets TERM_PROGRAM=vscode; plain SSH keeps the default editor.
    programs.zsh.interactiveShellInit = ''
      if [[ "''${TERM_PROGRAM:-}" == vscode ]]; then
        export EDITOR="code --wait" VISUAL="code --wait"
      fi
    '';
  };
}
