#!/usr/bin/env bash
# Offline Nix checks for CI: parse every .nix file, evaluate what needs no nixpkgs, and grep for leaked secrets.
#
# Works with Debian's nix-bin (Nix 2.8), an empty NIX_PATH and no network. Full NixOS evaluation
# (`nix flake check`) needs nixpkgs and runs in the GitHub workflow instead.
set -euo pipefail

repo_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
nix_dir="$repo_root/nix"
export NIX_PATH=
nix_opts=(--option experimental-features '' --option allow-import-from-derivation false)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

fail() {
  echo "nix/check.sh: FAIL: $*" >&2
  exit 1
}

# 1. Every .nix file in the repository parses.
parsed=0
while IFS= read -r -d '' file; do
  nix-instantiate "${nix_opts[@]}" --parse "$file" >/dev/null || fail "cannot parse ${file#"$repo_root"/}"
  parsed=$((parsed + 1))
done < <(find "$repo_root" \( -name .git -o -name node_modules -o -name .venv -o -name venv -o -name result \) -prune \
  -o -type f -name '*.nix' -print0)
((parsed > 0)) || fail "no .nix files found under $repo_root"

# 2. Evaluate what needs no nixpkgs.
evaluated=0
eval_true() {
  local what=$1 expr=$2 out
  out=$(nix-instantiate "${nix_opts[@]}" --eval --strict -E "$expr") || fail "$what: evaluation failed"
  [[ "$out" == true ]] || fail "$what: expected true, got $out"
  evaluated=$((evaluated + 1))
}

# The shared flake pins the release in one place and makes every input follow its nixpkgs.
eval_true "nix/flake.nix inputs" "
  let f = import $nix_dir/flake.nix; in
  builtins.match \"github:NixOS/nixpkgs/nixos-[0-9][0-9]\\\\.[0-9][0-9]\" f.inputs.nixpkgs.url != null
  && builtins.match \".*/release-[0-9][0-9]\\\\.[0-9][0-9]\" f.inputs.home-manager.url != null
  && builtins.substring 0 0 f.description == \"\"
  && f.inputs.home-manager.inputs.nixpkgs.follows == \"nixpkgs\"
  && f.inputs.vscode-server.url == \"github:nix-community/nixos-vscode-server\"
  && f.inputs.vscode-server.inputs.nixpkgs.follows == \"nixpkgs\"
  && builtins.isFunction f.outputs"

# home-manager must track the same release as nixpkgs.
eval_true "nix/flake.nix release match" "
  let f = import $nix_dir/flake.nix;
      rel = url: builtins.head (builtins.match \".*-([0-9][0-9]\\\\.[0-9][0-9])\" url);
  in rel f.inputs.nixpkgs.url == rel f.inputs.home-manager.url"

# The fake host is plain data and sets every option the template sets, root's deploy key included
# (immutable users need one for NixOS's lock-out assertion).
eval_true "nix/hosts/sample.nix" "
  let h = import $nix_dir/hosts/sample.nix; in
  h.devserver.user.name == \"alice\" && h.devserver.idleStop.minutes > 0
  && builtins.substring 0 16 h.devserver.homeVolume.device == \"/dev/disk/by-id/\"
  && builtins.length h.devserver.deploy.rootAuthorizedKeys == 1
  && h.devserver.token.secretId != null && h.devserver.token.region == \"eu-west-1\"
  && !(h.devserver.token ? secretArn)"

eval_true "nix/config/starship.toml" "
  builtins.isAttrs (builtins.fromTOML (builtins.readFile $nix_dir/config/starship.toml))"

# The host template: every placeholder exactly once, then a sample render evaluated through `outputs`
# with a stand-in nixosSystem that returns its arguments.
template="$nix_dir/templates/host/flake.nix"
for placeholder in sharedFlake hostName system user fullName email githubUser githubUserId region \
  tokenSecretId idleStopMinutes stateVersion personalFlake; do
  count=$(grep -o "\"@${placeholder}@\"" "$template" | wc -l)
  [[ "$count" -eq 1 ]] || fail "templates/host/flake.nix: \"@${placeholder}@\" appears $count times, expected 1"
done
leftover=$(grep -o '"@[A-Za-z]*@"' "$template" | sort -u | grep -cvE '"@(sharedFlake|hostName|system|user|fullName|email|githubUser|githubUserId|region|tokenSecretId|idleStopMinutes|stateVersion|personalFlake)@"' || true)
[[ "$leftover" -eq 0 ]] || fail "templates/host/flake.nix has placeholders outside the contract"

# Values AWS returns are not placeholders: the flake reads them from machine.json beside it.
machine_json='{"homeDevice": "/dev/disk/by-id/nvme-Amazon_Elastic_Block_Store_vol0123456789abcdef0",
  "rootAuthorizedKeys": ["ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIFAKEFAKEFAKEFAKE devserver-deploy"]}'
# Optional parts: a line ending in `# @personal` goes when there is no personal flake.
render() {
  local secret_id=$1 out=$2 personal=${3:-}
  mkdir -p "$(dirname "$out")"
  printf '%s\n' "$machine_json" >"$(dirname "$out")/machine.json"
  local parts=(-e 's|[[:space:]]*# @personal$||')
  [[ -n $personal ]] || parts=(-e '/# @personal$/d')
  sed "${parts[@]}" -e 's|"@sharedFlake@"|"github:acme/infra?dir=nix"|' \
    -e 's|"@personalFlake@"|"github:alice-gh/dotfiles"|' \
    -e 's|"@hostName@"|"devserver-alice"|' \
    -e 's|"@system@"|"aarch64-linux"|' \
    -e 's|"@user@"|"alice"|' \
    -e 's|"@fullName@"|"Alice Example"|' \
    -e 's|"@email@"|"alice@example.com"|' \
    -e 's|"@githubUser@"|"octocat"|' \
    -e 's|"@githubUserId@"|583231|' \
    -e 's|"@region@"|"eu-west-1"|' \
    -e "s|\"@tokenSecretId@\"|$secret_id|" \
    -e 's|"@idleStopMinutes@"|45|' \
    -e 's|"@stateVersion@"|"26.05"|' \
    "$template" >"$out"
  nix-instantiate "${nix_opts[@]}" --parse "$out" >/dev/null || fail "rendered template does not parse ($secret_id)"
}
render '"devserver/dev/devserver/github-token"' "$work/with-token/flake.nix"
render 'null' "$work/no-token/flake.nix"
render 'null' "$work/personal/flake.nix" personal
if grep -nE '"@[A-Za-z]+@"|# @[A-Za-z]+$' "$work/no-token/flake.nix" "$work/personal/flake.nix"; then
  fail "a rendered template still holds a placeholder or a part marker"
fi

template_expr() {
  local file=$1 token_check=$2
  echo "
  let
    f = import $file;
    sharedModule = { devserverStub = true; };
    o = f.outputs ({
      self = { };
      nixpkgs.lib.nixosSystem = args: args;
      devserver.nixosModules.devserver = sharedModule;
    } // (if f.inputs ? personal then {
      personal.nixosModules.default = \"personal-nixos\";
      personal.homeManagerModules.default = \"personal-home\";
    } else { }));
    c = o.nixosConfigurations.devserver-alice;
    host = builtins.elemAt c.modules 1;
    d = host.devserver;
  in
  f.inputs.devserver.url == \"github:acme/infra?dir=nix\"
  && f.inputs.nixpkgs.follows == \"devserver/nixpkgs\"
  && builtins.attrNames o.nixosConfigurations == [ \"devserver-alice\" ]
  && builtins.head c.modules == sharedModule
  && host.nixpkgs.hostPlatform == \"aarch64-linux\"
  && host.networking.hostName == \"devserver-alice\"
  && host.system.stateVersion == \"26.05\"
  && d.user == { name = \"alice\"; fullName = \"Alice Example\"; email = \"alice@example.com\"; }
  && d.githubUser == \"octocat\"
  && d.homeVolume.device == \"/dev/disk/by-id/nvme-Amazon_Elastic_Block_Store_vol0123456789abcdef0\"
  && d.deploy.rootAuthorizedKeys == [ \"ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIFAKEFAKEFAKEFAKE devserver-deploy\" ]
  && d.token.region == \"eu-west-1\"
  && d.idleStop.minutes == 45
  && ($token_check)"
}
eval_true "rendered template (token)" "$(template_expr "$work/with-token/flake.nix" \
  'd.token.secretId == "devserver/dev/devserver/github-token"')"
eval_true "rendered template (no token)" "$(template_expr "$work/no-token/flake.nix" \
  'd.token.secretId == null && builtins.length c.modules == 2 && !(f.inputs ? personal)
   && !(d ? autoUpgrade)')"
# The personal layer: an input on the host's nixpkgs, its NixOS module after the shared ones and its
# home-manager module for the developer only.
eval_true "rendered template (personal flake)" "$(template_expr "$work/personal/flake.nix" \
  'f.inputs.personal.url == "github:alice-gh/dotfiles"
   && f.inputs.personal.inputs.nixpkgs.follows == "nixpkgs"
   && builtins.elemAt c.modules 2 == "personal-nixos"
   && (builtins.elemAt c.modules 3).home-manager.users.alice.imports == [ "personal-home" ]
   && d.autoUpgrade.extraInputs == [ "personal" ]')"

# 3. No kernel device name for the home volume and no literal token anywhere under nix/.
xvd_pattern='/dev/xv''d[a-z]'
if hits=$(grep -rnE "$xvd_pattern" "$nix_dir"); then
  fail "kernel device names must not be used (mount by /dev/disk/by-id or by-label):
$hits"
fi
# GitHub token prefixes, and an access-tokens line whose value is not a shell expansion, printf %s or <token>.
token_pattern='(gh[pousr]_[A-Za-z0-9]{20,}|github_pat_[A-Za-z0-9_]{20,}|access-tokens *= *github\.com=[^$<%"[:space:]])'
if hits=$(grep -rnE "$token_pattern" "$nix_dir" "$repo_root/tests/nix" 2>/dev/null); then
  fail "something that looks like a GitHub token is in the tree:
$hits"
fi
# A Nix binary cache signing key (`name:` + base64 of 64 bytes) belongs in Secrets Manager and the
# stack's state only (components/binary_cache.py), never in a file the machine or CI checks out.
signing_key_pattern='[A-Za-z0-9][A-Za-z0-9._-]*:[A-Za-z0-9+/]{86}=='
if hits=$(grep -rnE "$signing_key_pattern" "$nix_dir" "$repo_root/tests/nix" "$repo_root/.github" 2>/dev/null); then
  fail "something that looks like a Nix signing key is in the tree:
$hits"
fi
scanned=$(find "$nix_dir" -type f | wc -l)

echo "nix/check.sh: OK: $parsed .nix files parsed, $evaluated expressions evaluated, $scanned files under nix/ scanned for device names, tokens and signing keys"
