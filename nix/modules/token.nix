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
  isArn = id: lib.hasPrefix "arn:" id;
  arnParts = if cfg.secretId == null then [ ] else lib.splitString ":" cfg.secretId;
  arnRegion =
    if cfg.secretId != null && isArn cfg.secretId && lib.length arnParts > 3 then
      lib.elemAt arnParts 3
    else
      null;
  # What GetSecretValue's SecretId accepts: a full ARN, or a name of 1-512 [A-Za-z0-9/_+=.@-].
  validSecretId =
    id:
    if isArn id then
      builtins.match "arn:aws[a-z-]*:secretsmanager:[a-z0-9-]+:[0-9]{12}:secret:.+" id != null
    else
      builtins.match "[A-Za-z0-9/_+=.@-]{1,512}" id != null;

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
  imports = [
    (lib.mkRenamedOptionModule
      [ "devserver" "token" "secretArn" ]
      [ "devserver" "token" "secretId" ]
    )
  ];

  options.devserver.token = {
    secretId = lib.mkOption {
      type = lib.types.nullOr lib.types.str;
      default = null;
      example = "devserver/dev/alice/github-token";
      description = ''
        Secrets Manager secret holding a read-only GitHub token, read with the instance role at
        boot: its name or its full ARN (what GetSecretValue's SecretId takes). The Pulumi program
        uses the name, known before the secret exists. null: no token unit, public flakes only.
      '';
    };
    region = lib.mkOption {
      type = lib.types.nullOr lib.types.str;
      default = arnRegion;
      defaultText = lib.literalMD "the region inside {option}`devserver.token.secretId` when it is an ARN, else null (then it must be set)";
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

  config = lib.mkIf (cfg.secretId != null) {
    assertions = [
      {
        assertion = validSecretId cfg.secretId;
        message = "devserver.token.secretId = \"${cfg.secretId}\" is neither a Secrets Manager secret name (1-512 of A-Z a-z 0-9 / _ + = . @ -) nor a secret ARN (arn:aws:secretsmanager:<region>:<account>:secret:<name>-<6 chars>); use null for no token.";
      }
      {
        assertion = cfg.region != null && builtins.match "[a-z]{2}(-gov|-iso[a-z]*)?-[a-z]+-[0-9]+" cfg.region != null;
        message = "devserver.token.region = ${builtins.toJSON cfg.region} is not an AWS region such as eu-west-1: set it to the secret's region (it is only implied when devserver.token.secretId is an ARN).";
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
      # Started by its timer, not wanted by multi-user.target: a target gets an implicit After= on
      # every unit it wants (systemd.target(5)), so an unreachable Secrets Manager would hold boot
      # completion through every retry. Nothing requires it; the nightly upgrade waits for it.
      startAt = cfg.refreshInterval;
      # Never give up: the restart delay grows from RestartSec to RestartMaxDelaySec.
      startLimitIntervalSec = 0;
      serviceConfig = {
        Type = "oneshot";
        ExecStart = lib.escapeShellArgs [
          (lib.getExe fetchGithubToken)
          "--secret-id"
          cfg.secretId
          "--region"
          (toString cfg.region)
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
        # "-": a missing directory is skipped instead of failing the unit (systemd.exec(5)).
        ReadWritePaths = [ "-${tokenDir}" ];
        NoNewPrivileges = true;
      };
    };

    # At boot too (timers.target does not wait for the service the timer starts).
    systemd.timers.devserver-github-token.timerConfig.OnBootSec = "0";

    # The nightly upgrade (also run at boot when its timer was missed) fetches private flakes:
    # it starts the token unit and waits for it; Wants, so a token failure does not block it.
    systemd.services.nixos-upgrade = lib.mkIf (config.system.autoUpgrade.enable or false) {
      wants = [ "devserver-github-token.service" ];
      after = [ "devserver-github-token.service" ];
    };
  };
}
