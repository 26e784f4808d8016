# Idle auto-stop: power off when no SSH or Session Manager session and a quiet CPU have lasted devserver.idleStop.minutes.
{
  config,
  lib,
  pkgs,
  ...
}:
let
  cfg = config.devserver.idleStop;
  idleStop = pkgs.writeShellApplication {
    name = "devserver-idle-stop";
    runtimeInputs = [
      pkgs.bash
      pkgs.coreutils
      pkgs.gawk
      pkgs.gnugrep
      pkgs.iproute2
      # pgrep counts Session Manager sessions (ssm-session-worker processes).
      pkgs.procps
      # flock: the deploy lock apply-flake.sh holds.
      pkgs.util-linux
      config.systemd.package
    ];
    text = builtins.readFile ../scripts/idle-stop.sh;
  };
in
{
  options.devserver.idleStop = {
    minutes = lib.mkOption {
      type = lib.types.ints.unsigned;
      default = 0;
      example = 60;
      description = ''
        Power the machine off after this many minutes with no established SSH connection
        (VS Code Remote-SSH included), no SSM Session Manager session and a low CPU load;
        0 turns idle auto-stop off.
        On EC2 the instance's shutdown behaviour must be "stop" so /home and the machine survive.
      '';
    };
    loadThreshold = lib.mkOption {
      type = lib.types.str;
      default = "0.5";
      example = "1.5";
      description = "1-minute load average at or below which the CPU counts as idle (a decimal number).";
    };
  };

  config = lib.mkIf (cfg.minutes > 0) {
    assertions = [
      {
        assertion = builtins.match "[0-9]+(\\.[0-9]+)?" cfg.loadThreshold != null;
        message = "devserver.idleStop.loadThreshold = \"${cfg.loadThreshold}\" is not a decimal number such as 0.5.";
      }
    ];

    systemd.services.devserver-idle-stop = {
      description = "Power off an idle dev server";
      startAt = "minutely";
      environment = {
        IDLE_STOP_MINUTES = toString cfg.minutes;
        IDLE_STOP_LOAD_THRESHOLD = cfg.loadThreshold;
        IDLE_STOP_SSH_PORT = toString (lib.head (config.services.openssh.ports or [ 22 ]));
        IDLE_STOP_STATE_FILE = "/run/devserver-idle-stop/idle-since";
      };
      serviceConfig = {
        Type = "oneshot";
        ExecStart = lib.getExe idleStop;
        # The idle-since timestamp lives in /run: a reboot starts the count afresh.
        RuntimeDirectory = "devserver-idle-stop";
        RuntimeDirectoryPreserve = true;
      };
    };
  };
}
