# Identity options shared by every devserver part: who the machine is for.
{ config, lib, ... }:
let
  cfg = config.devserver;
  # useradd's rule, minus uppercase: a lowercase letter or _, then [a-z0-9_-]; NixOS aborts on
  # names of 32 or more characters (users-groups.nix `name` apply), so at most 31.
  validUserName = name: builtins.match "[a-z_][a-z0-9_-]{0,30}" name != null;
  # The description is a passwd (GECOS) field: NixOS' passwdEntry type refuses ':' and newlines;
  # other control characters would corrupt /etc/passwd just the same.
  validFullName = name: builtins.match "[^:[:cntrl:]]*" name != null;
  # GitHub logins: alphanumerics and single inner hyphens, at most 39 characters.
  validGithubUser =
    name:
    builtins.match "[A-Za-z0-9]([A-Za-z0-9]|-[A-Za-z0-9]){0,38}" name != null
    && builtins.stringLength name <= 39;
  reservedUserNames = [
    "root"
    "nobody"
    "daemon"
    "sshd"
    "nixbld"
    # Accounts the devserver modules themselves define or extend (base.nix).
    "devserver-keys"
    "ssm-user"
  ];
in
{
  options.devserver = {
    user = {
      name = lib.mkOption {
        type = lib.types.str;
        example = "alice";
        description = "Login name of the developer who owns this machine.";
      };
      fullName = lib.mkOption {
        type = lib.types.nullOr lib.types.str;
        default = null;
        example = "Alice Example";
        description = "Full name: the account's description and the git author name (null leaves git unset).";
      };
      email = lib.mkOption {
        type = lib.types.nullOr lib.types.str;
        default = null;
        example = "alice@example.com";
        description = "Email address used as the git author email (null leaves it unset).";
      };
    };

    githubUser = lib.mkOption {
      type = lib.types.str;
      example = "octocat";
      description = ''
        GitHub account whose public SSH keys (https://github.com/<githubUser>.keys)
        may log in as {option}`devserver.user.name`.
      '';
    };

    githubUserId = lib.mkOption {
      type = lib.types.nullOr lib.types.ints.positive;
      default = null;
      example = 583231;
      description = ''
        Numeric id of the {option}`devserver.githubUser` account (`id` in
        `curl https://api.github.com/users/<githubUser>`). When set, sshd is offered the keys only
        while GitHub says the login still belongs to this id: a login is a name GitHub frees when
        an account is renamed, and someone else may register it. `null` trusts the name alone.
      '';
    };
  };

  # Only checked when some part uses the identity: importing the options alone asks nothing.
  config.assertions =
    lib.mkIf (cfg.base.enable or false || cfg.developer.enable or false || cfg.image.enable or false)
      [
        {
          assertion = validUserName cfg.user.name && !(lib.elem cfg.user.name reservedUserNames);
          message = "devserver.user.name = \"${cfg.user.name}\" is not a usable login name: use 1-31 characters of [a-z0-9_-] starting with a lowercase letter or _, and not one of ${lib.concatStringsSep ", " reservedUserNames}.";
        }
        {
          assertion = cfg.user.fullName == null || validFullName cfg.user.fullName;
          message = "devserver.user.fullName = ${builtins.toJSON cfg.user.fullName} cannot be the account description (a field of /etc/passwd): remove every ':', newline and control character.";
        }
        {
          assertion = validGithubUser cfg.githubUser;
          message = "devserver.githubUser = \"${cfg.githubUser}\" is not a GitHub login: use 1-39 letters, digits or single inner hyphens (the name in https://github.com/<name>.keys).";
        }
        {
          assertion = cfg.user.email == null || builtins.match "[^@ ]+@[^@ ]+" cfg.user.email != null;
          message = "devserver.user.email = \"${toString cfg.user.email}\" is not an email address: set it to something like alice@example.com, or null to leave git's email unset.";
        }
      ];
}
