# EC2 host: nixpkgs' Amazon image module, /home on the persistent EBS volume by a stable name, zram swap.
{
  config,
  lib,
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
      # A missing or slow volume must not drop the boot into emergency mode: SSH stays reachable.
      options = [
        "nofail"
        "x-systemd.device-timeout=90s"
        "noatime"
      ];
    };

    zramSwap = lib.mkIf (cfg.zram.memoryPercent > 0) {
      enable = true;
      memoryPercent = cfg.zram.memoryPercent;
    };
  };
}
