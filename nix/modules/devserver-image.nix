# The dev server image: base + developer, VS Code server patched for NixOS, gh, EDITOR for VS Code terminals.
{ config, lib, pkgs, ... }:
let
  cfg = config.devserver;
  userName = cfg.user.name;
  # Absolute: in a system unit %h is root's home whatever User= says (systemd.unit(5), specifiers).
  userHome = config.users.users.${userName}.home;
  # Drops VS Code servers on the kept /home that this machine cannot run (a file in the repo).
  vscodeServerRefresh = pkgs.writeShellApplication {
    name = "devserver-vscode-server-refresh";
    runtimeInputs = [
      pkgs.coreutils
      pkgs.gnugrep
    ];
    text = builtins.readFile ../scripts/vscode-server-refresh.sh;
  };
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

    # nixos-vscode-server's auto-fix skips a server it already patched, whose `node` wrapper names
    # the store paths (and architecture) of the machine that patched it: after an arch switch onto
    # the same /home, or once GC removed those paths, the first VS Code login would fail. Before any
    # session and before the user's manager (which runs auto-fix), stale servers are removed.
    systemd.services.devserver-vscode-server-refresh = lib.mkIf cfg.image.vscodeServer.enable {
      description = "Remove VS Code servers this machine cannot run";
      wantedBy = [ "multi-user.target" ];
      after = [ "devserver-home-dirs.service" ];
      before = [
        "systemd-user-sessions.service"
      ]
      # The lingering manager runs auto-fix; its unit is named by uid (pinned in base.nix).
      ++ lib.optional (
        config.users.users.${userName}.uid or null != null
      ) "user@${toString config.users.users.${userName}.uid}.service";
      unitConfig.RequiresMountsFor = userHome;
      # Boot only: a switch (deploy, nightly upgrade) must never restart it under a connected VS
      # Code, whose running server it could remove (NixOS restarts changed units by default).
      restartIfChanged = false;
      serviceConfig = {
        Type = "oneshot";
        RemainAfterExit = true;
        User = userName;
        ExecStart = "${lib.getExe vscodeServerRefresh} ${
          lib.escapeShellArgs [
            "${userHome}/.vscode-server"
            "${userHome}/.vscode-server-insiders"
          ]
        }";
      };
    };

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
