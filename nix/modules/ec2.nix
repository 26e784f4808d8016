# EC2 host: nixpkgs' Amazon image module, /home on the persistent EBS volume by a stable name, zram swap.
{
  config,
  lib,
  pkgs,
  utils,
  modulesPath,
  ...
}:
let
  cfg = config.devserver;
  # Kernel names (/dev/xvdX, /dev/nvmeXnY) move between boots and instance types; these do not.
  stablePrefixes = [
    "/dev/disk/by-id/"
    "/dev/disk/by-label/"
    "/dev/disk/by-uuid/"
    "/dev/disk/by-path/"
  ];
  isStable = device: lib.any (prefix: lib.hasPrefix prefix device) stablePrefixes;

  # Accounts whose home lives on the volume: activation creates them on the root disk before
  # the volume is mounted over /home (NixOS/nixpkgs#6481), so they are made again on the volume.
  homeUsers = lib.filter (u: u.enable && u.createHome && lib.hasPrefix "/home/" u.home) (
    lib.attrValues config.users.users
  );
  # home-manager's NixOS module names its unit home-manager-<escaped user> (nixos/default.nix).
  homeManagerUnits = map (u: "home-manager-${utils.escapeSystemdPath u.name}.service") (
    lib.filter (u: (config.home-manager.users or { }) ? ${u.name}) homeUsers
  );
  nologinMessage = "The /home volume (${cfg.homeVolume.device}) is not mounted, so logins are refused: a home on the root disk would be hidden once the volume appears. Check that the EBS volume is attached, then as root: systemctl start home.mount systemd-user-sessions.service";
  # The unit's script (systemd.services.<name>.script runs under `set -e`); tested as plain shell.
  homeDirsScript = ''
    # Never create anything on the root disk: /home must be the volume by now. Logins wait for this
    # unit (systemd-user-sessions requires it), so until the volume is there pam_nologin (added to
    # sshd's account stack below) refuses every user but root, with this message (SSM's shell does
    # not use PAM and stays open).
    if ! mountpoint -q /home; then
      echo "/home is not a mount point; creating nothing" >&2
      printf '%s\n' ${lib.escapeShellArg nologinMessage} > "''${DEVSERVER_NOLOGIN_FILE:-/run/nologin}"
      exit 1
    fi
  ''
  + lib.concatMapStrings (u: ''
    if [ -e ${lib.escapeShellArg u.home} ] || [ -L ${lib.escapeShellArg u.home} ]; then
      echo ${lib.escapeShellArg "${u.home} exists; left as it is"}
    else
      install -d -m ${u.homeMode} -o ${lib.escapeShellArg u.name} -g ${lib.escapeShellArg u.group} ${lib.escapeShellArg u.home}
      echo ${lib.escapeShellArg "created ${u.home} on the /home volume"}
    fi
  '') homeUsers;
in
{
  # Importing is unconditional (imports cannot depend on config); this module is only for EC2 hosts.
  imports = [ "${modulesPath}/virtualisation/amazon-image.nix" ];

  options.devserver = {
    ec2.enable = lib.mkEnableOption "the EC2 specifics of a dev server (/home volume, zram swap)";

    homeVolume = {
      enable = lib.mkOption {
        type = lib.types.bool;
        default = true;
        description = "Whether to mount the persistent EBS volume at /home.";
      };
      device = lib.mkOption {
        type = lib.types.str;
        example = "/dev/disk/by-id/nvme-Amazon_Elastic_Block_Store_vol0123456789abcdef0";
        description = ''
          Stable path of the home volume: /dev/disk/by-id/... (built from the EBS volume id)
          or /dev/disk/by-label/...; never a kernel name such as /dev/nvme1n1.
        '';
      };
    };

    ssmAgent.enable = lib.mkOption {
      type = lib.types.bool;
      default = true;
      description = ''
        Whether to run the SSM agent (Session Manager break-glass shell). nixpkgs' amazon-image.nix
        sets `services.amazon-ssm-agent.enable = true` at normal priority, so a plain
        `services.amazon-ssm-agent.enable = false` conflicts with it; this option is the off switch.
        Whoever may call ssm:StartSession on the instance gets ssm-user with passwordless sudo
        (root); docs/security.md says who that is with the shipped policies and when to turn it off.
      '';
    };

    zram.memoryPercent = lib.mkOption {
      type = lib.types.ints.between 0 100;
      default = 50;
      description = "Size of the zram swap as a percentage of RAM (0 turns zram swap off).";
    };
  };

  config = lib.mkIf cfg.ec2.enable {
    assertions = [
      {
        assertion = !cfg.homeVolume.enable || isStable cfg.homeVolume.device;
        message = "devserver.homeVolume.device = \"${cfg.homeVolume.device}\" is a kernel device name that can change between boots and instance types: use /dev/disk/by-id/nvme-Amazon_Elastic_Block_Store_vol<id without dash> or /dev/disk/by-label/<label>.";
      }
    ];

    fileSystems."/home" = lib.mkIf cfg.homeVolume.enable {
      device = cfg.homeVolume.device;
      fsType = "ext4";
      # systemd-makefs formats only a device with no filesystem signature; existing data is never touched.
      autoFormat = true;
      # No autoResize: systemd-fstab-generator would order local-fs.target after
      # systemd-growfs@home.service (generator.c generator_hook_up_growfs), which waits for the
      # `nofail` mount, so sshd and SSM would wait out the device timeout. devserver-home-grow
      # below grows the filesystem instead, hanging off home.mount only.
      # A missing or slow volume must not drop the boot into emergency mode: SSH stays reachable.
      options = [
        "nofail"
        "x-systemd.device-timeout=90s"
        "noatime"
      ];
    };

    # Runs at every boot and on the switch that first mounts the volume, before anything that
    # needs a home: home-manager's per-user unit and user logins (systemd-user-sessions).
    systemd.services.devserver-home-dirs = lib.mkIf (cfg.homeVolume.enable && homeUsers != [ ]) {
      description = "Create missing home directories on the /home volume";
      wantedBy = [ "multi-user.target" ] ++ homeManagerUnits;
      # A login never lands in a home that is not the volume: no user sessions until this passed.
      requiredBy = [ "systemd-user-sessions.service" ];
      before = [ "systemd-user-sessions.service" ] ++ homeManagerUnits;
      # Wants, not RequiresMountsFor: it must run (and say why logins are refused) when the `nofail`
      # mount timed out; with Requires it would be skipped as a failed dependency.
      wants = [ "home.mount" ];
      after = [ "home.mount" ];
      path = [
        pkgs.util-linux
        pkgs.coreutils
      ];
      script = homeDirsScript;
      serviceConfig = {
        Type = "oneshot";
        RemainAfterExit = true;
      };
    };

    # NixOS's PAM stacks have no pam_nologin (nixos/modules/security/pam.nix; nixpkgs#53989 was
    # closed unmerged) and OpenSSH checks nologin itself only without PAM, so /run/nologin would stop
    # nobody. sshd runs the account stack after a key is accepted: before pam_unix, a non-root user
    # is refused while /run/nologin exists; root (deploys) passes with the message shown.
    security.pam.services.sshd.rules.account.nologin = lib.mkIf cfg.homeVolume.enable {
      control = "required";
      modulePath = "${pkgs.pam}/lib/security/pam_nologin.so";
      order = config.security.pam.services.sshd.rules.account.unix.order - 10;
    };

    # A volume grown in AWS (homeVolumeGiB raised) is grown into at every mount, online (ext4), by
    # systemd's own systemd-growfs; pulled in by home.mount and bound to it, so nothing waits on it
    # when the volume is late. A shrink is refused on the AWS side.
    systemd.services.devserver-home-grow = lib.mkIf cfg.homeVolume.enable {
      description = "Grow the /home filesystem to the size of its volume";
      wantedBy = [ "home.mount" ];
      bindsTo = [ "home.mount" ];
      after = [ "home.mount" ];
      # As systemd-growfs@.service: early-boot safe, stopped at shutdown.
      unitConfig.DefaultDependencies = false;
      conflicts = [ "shutdown.target" ];
      before = [ "shutdown.target" ];
      serviceConfig = {
        Type = "oneshot";
        RemainAfterExit = true;
        ExecStart = "${config.systemd.package}/lib/systemd/systemd-growfs /home";
      };
    };

    # Break-glass: SSM Session Manager reaches a shell when sshd or the keys path is broken (the
    # Pulumi program grants the role Session Manager's channel actions; see nix/README.md).
    # amazon-image.nix already turns the agent on at normal priority: only "off" needs a stronger one.
    services.amazon-ssm-agent.enable = lib.mkIf (!cfg.ssmAgent.enable) (lib.mkForce false);
    # A session shell is `sh` with the agent's own environment (amazon-ssm-agent
    # agent/session/shell/shell_unix.go: cmd.Env = os.Environ()), whose PATH NixOS builds from the
    # unit's `path` only: without the setuid wrappers there is no `sudo -i`.
    # Guarded by the agent's real state: a host may also turn it off with lib.mkForce false.
    systemd.services.amazon-ssm-agent = lib.mkIf config.services.amazon-ssm-agent.enable {
      path = [
        "/run/wrappers"
        "/run/current-system/sw"
      ];
    };

    zramSwap = lib.mkIf (cfg.zram.memoryPercent > 0) {
      enable = true;
      memoryPercent = cfg.zram.memoryPercent;
    };
  };
}
