# GitHub token for private flakes: a boot-time unit copies it from Secrets Manager into a root-only file nix.conf includes.
{
  config,
  lib,
  pkgs,
  ...
}:
let
  cfg = config.devserver.token;
  # The token only ever exists in this runtime file; Nix expressions see its path, never its value.
  tokenDir = "/run/devserver";
  tokenFile = "${tokenDir}/nix-access-tokens.conf";
  arnParts = if cfg.secretArn == null then [ ] else lib.splitString ":" cfg.secretArn;
  arnRegion = if lib.length arnParts > 3 then lib.elemAt arnParts 3 else "";

  fetchGithubToken = pkgs.writeShellApplication {
    name = "devserver-fetch-github-token";
    runtimeInputs = [
      pkgs.awscli2
      pkgs.coreutils
    ];
    text = builtins.readFile ../scripts/fetch-github-token.sh;
  };
in
{
  options.devserver.token = {
    secretArn = lib.mkOption {
      type = lib.types.nullOr lib.types.str;
      default = null;
      example = "arn:aws:secretsmanager:eu-west-1:123456789012:secret:devserver/alice/github-token-AbCdEf";
      description = ''
        ARN of the Secrets Manager secret holding a read-only GitHub token, read with the
        instance role at boot. null: no token unit, public flakes only.
      '';
    };
    region = lib.mkOption {
      type = lib.types.str;
      default = arnRegion;
      defaultText = lib.literalMD "the region inside {option}`devserver.token.secretArn`";
      example = "eu-west-1";
      description = "AWS region of the Secrets Manager endpoint used to read the secret.";
    };
    file = lib.mkOption {
      type = lib.types.str;
      default = tokenFile;
      readOnly = true;
      description = "Root-only file (mode 0400) with one line `access-tokens = github.com=<token>`; nix.conf `!include`s it.";
    };
    refreshInterval = lib.mkOption {
      type = lib.types.str;
      default = "hourly";
      description = "systemd calendar expression for re-reading the secret, so a rotated token reaches the machine.";
    };
  };

  config = lib.mkIf (cfg.secretArn != null) {
    assertions = [
      {
        assertion = builtins.match "arn:aws[a-z-]*:secretsmanager:[a-z0-9-]+:[0-9]{12}:secret:.+" cfg.secretArn != null;
        message = "devserver.token.secretArn = \"${cfg.secretArn}\" is not a Secrets Manager secret ARN: expected arn:aws:secretsmanager:<region>:<account>:secret:<name>-<6 chars>, or null for no token.";
      }
      {
        assertion = builtins.match "[a-z]{2}(-gov|-iso[a-z]*)?-[a-z]+-[0-9]+" cfg.region != null;
        message = "devserver.token.region = \"${cfg.region}\" is not an AWS region such as eu-west-1: set it to the secret's region.";
      }
    ];

    # !include ignores a missing file (before the first fetch, or with no network) and an unreadable
    # one (non-root clients); the directory stays 0755 because an untraversable one makes non-root
    # Nix clients drop the whole nix.conf silently.
    nix.extraOptions = ''
      !include ${tokenFile}
    '';
    systemd.tmpfiles.rules = [ "d ${tokenDir} 0755 root root -" ];

    systemd.services.devserver-github-token = {
      description = "Copy the GitHub token for private flakes from AWS Secrets Manager";
      wants = [ "network-online.target" ];
      after = [ "network-online.target" ];
      # Wanted, never required: a failed fetch is logged and retried, and boot goes on without it.
      wantedBy = [ "multi-user.target" ];
      startAt = cfg.refreshInterval;
      # Never give up: the restart delay grows from RestartSec to RestartMaxDelaySec.
      startLimitIntervalSec = 0;
      serviceConfig = {
        Type = "oneshot";
        ExecStart = lib.escapeShellArgs [
          (lib.getExe fetchGithubToken)
          "--secret-id"
          cfg.secretArn
          "--region"
          cfg.region
          "--output"
          tokenFile
        ];
        Restart = "on-failure";
        RestartSec = "15s";
        RestartSteps = 6;
        RestartMaxDelaySec = "10min";
        UMask = "0077";
        Environment = [ "HOME=/tmp" ];
        PrivateTmp = true;
        ProtectSystem = "strict";
        ProtectHome = true;
        ReadWritePaths = [ tokenDir ];
        NoNewPrivileges = true;
      };
    };
  };
}
