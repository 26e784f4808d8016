# A binary cache this machine trusts (the stack's own S3 cache, or a team's): substitute from it first.
{ config, lib, ... }:
let
  cfg = config.devserver.binaryCache;
  # Nix store URLs this module accepts: an S3 bucket (read with the instance role through the AWS
  # SDK's default credential chain) or an HTTPS cache. Never plain HTTP, never a local path.
  validUrl = url: builtins.match "(s3://[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]|https://[^[:space:]]+)(\\?[^[:space:]]*)?" url != null;
  # Nix public keys are `<name>:<base64 of the 32-byte Ed25519 key>` (libutil signature/local-keys.cc).
  validKey = key: builtins.match "[A-Za-z0-9][A-Za-z0-9._-]*:[A-Za-z0-9+/]{43}=" key != null;
in
{
  options.devserver.binaryCache = {
    url = lib.mkOption {
      type = lib.types.nullOr lib.types.str;
      default = null;
      example = "s3://devserver-cache-20261203abcdef?region=eu-west-1";
      description = ''
        Nix store URL of a binary cache to substitute from, ahead of cache.nixos.org (the cache's
        nix-cache-info sets its priority). null: cache.nixos.org only. The machine only reads it.
      '';
    };
    publicKey = lib.mkOption {
      type = lib.types.nullOr lib.types.str;
      default = null;
      example = "devserver-alice-1:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=";
      description = ''
        The public key (`name:base64`) whose signatures make the cache's paths trusted; Nix
        refuses every path from it that this key did not sign (`require-sigs` stays on).
      '';
    };
  };

  config = lib.mkMerge [
    {
      assertions = [
        {
          assertion = cfg.url == null || validUrl cfg.url;
          message = "devserver.binaryCache.url = ${builtins.toJSON cfg.url} is not a binary cache URL: use s3://<bucket>?region=<region> or https://…";
        }
        {
          assertion = (cfg.url == null) == (cfg.publicKey == null);
          message = "devserver.binaryCache.url and devserver.binaryCache.publicKey go together: a cache without its key is never trusted, a key without a cache is unused.";
        }
        {
          assertion = cfg.publicKey == null || validKey cfg.publicKey;
          message = "devserver.binaryCache.publicKey = ${builtins.toJSON cfg.publicKey} is not a Nix public key: expected <name>:<base64 of 32 bytes>.";
        }
      ];
    }
    # NixOS's nix.nix defines substituters (cache.nixos.org, mkAfter) and its key at normal
    # priority, so these lists merge with them: cache.nixos.org stays, as a fallback.
    (lib.mkIf (cfg.url != null && cfg.publicKey != null) {
      nix.settings = {
        substituters = [ cfg.url ];
        trusted-public-keys = [ cfg.publicKey ];
      };
    })
  ];
}
