#!/usr/bin/env bash
# Applies /etc/nixos/flake.nix on a dev server (run as root by Pulumi over SSH) and rolls back
# to the previous generation if the switch breaks the machine or the path Pulumi deploys through.
#
# Usage: apply-flake.sh --host HOST [--secret-id ARN --region REGION] [--home-device PATH]
#                       [--deploy-public-key 'ssh-ed25519 AAAA...'] [--token-script PATH]
#
# Exit codes: 0 applied and verified; 1 usage or setup error; 2 home device never appeared;
# 3 token fetch failed; 4 nixos-rebuild failed and the system did not change; 5 the new system
# failed (switch or verification) and the previous generation is active again; 6 rollback failed;
# 7 verification failed but the switch changed nothing (same generation), so nothing to roll back.
#
# Env (tests override these; the defaults are the real machine):
#   DEVSERVER_FLAKE_DIR (/etc/nixos), DEVSERVER_SYSTEM_PROFILE (/nix/var/nix/profiles/system),
#   DEVSERVER_RUN_DIR (/run/devserver), DEVSERVER_ROOT_HOME (/root),
#   DEVSERVER_HOME_DEVICE_TIMEOUT (300 s), DEVSERVER_HOME_DEVICE_POLL (2 s).
#
# External commands (nixos-rebuild, nix-env, nix, systemctl, findmnt, sshd) come from PATH.
set -euo pipefail

readonly prog=apply-flake
script_dir=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd)

host=
secret_id=
region=
home_device=
deploy_public_key=
token_script=$script_dir/fetch-github-token.sh

flake_dir=${DEVSERVER_FLAKE_DIR:-/etc/nixos}
system_profile=${DEVSERVER_SYSTEM_PROFILE:-/nix/var/nix/profiles/system}
run_dir=${DEVSERVER_RUN_DIR:-/run/devserver}
root_home=${DEVSERVER_ROOT_HOME:-/root}
device_timeout=${DEVSERVER_HOME_DEVICE_TIMEOUT:-300}
device_poll=${DEVSERVER_HOME_DEVICE_POLL:-2}
token_file=$run_dir/nix-access-tokens.conf
deploy_conf=$run_dir/nix-deploy.conf

log() {
	printf '[%s] %s\n' "$prog" "$*" >&2
}

step() {
	printf '\n[%s] ==> %s\n' "$prog" "$*" >&2
}

fail() {
	local code=$1
	shift
	printf '[%s] ERROR: %s\n' "$prog" "$*" >&2
	exit "$code"
}

usage() {
	printf 'usage: %s --host HOST [--secret-id ARN --region REGION] [--home-device PATH] [--deploy-public-key KEY] [--token-script PATH]\n' "$prog"
}

while (($# > 0)); do
	case $1 in
	--host | --secret-id | --region | --home-device | --deploy-public-key | --token-script)
		(($# >= 2)) || fail 1 "$1 needs a value"
		case $1 in
		--host) host=$2 ;;
		--secret-id) secret_id=$2 ;;
		--region) region=$2 ;;
		--home-device) home_device=$2 ;;
		--deploy-public-key) deploy_public_key=$2 ;;
		--token-script) token_script=$2 ;;
		esac
		shift 2
		;;
	-h | --help)
		usage
		exit 0
		;;
	*) fail 1 "unknown argument '$1' ($(usage))" ;;
	esac
done

# HOST becomes a flake attribute name: keep it to what a NixOS hostName allows.
[[ $host =~ ^[A-Za-z0-9][A-Za-z0-9-]*$ ]] || fail 1 "--host must be a host name (letters, digits, '-'), got '$host'"
if [[ -n $secret_id && -z $region ]]; then
	fail 1 "--secret-id needs --region"
fi
if [[ -n $deploy_public_key ]]; then
	read -r _ deploy_key_material _ <<<"$deploy_public_key" || true
	[[ ${deploy_key_material:-} =~ ^[A-Za-z0-9+/]+=*$ ]] ||
		fail 1 "--deploy-public-key must look like 'ssh-ed25519 AAAA... [comment]'"
fi
[[ $device_timeout =~ ^[0-9]+$ && $device_poll =~ ^[0-9]+([.][0-9]+)?$ ]] ||
	fail 1 "DEVSERVER_HOME_DEVICE_TIMEOUT/_POLL must be numbers of seconds"
[[ -f $flake_dir/flake.nix ]] || fail 1 "$flake_dir/flake.nix is missing (Pulumi copies it before running this script)"

# A non-interactive SSH session may not have the NixOS system PATH; append so fakes on PATH win.
for dir in /run/wrappers/bin /run/current-system/sw/bin; do
	if [[ -d $dir && ":$PATH:" != *":$dir:"* ]]; then
		PATH=$PATH:$dir
	fi
done
export PATH

umask 077
# 0755 like the token unit's tmpfiles rule: files inside stay 0400, non-root nix can still stat them.
[[ -d $run_dir ]] || install -d -m 0755 -- "$run_dir"
trap 'rm -f -- "$deploy_conf" "$deploy_conf".tmp.*' EXIT

# --- 1. home volume -------------------------------------------------------------------------
if [[ -n $home_device ]]; then
	step "waiting up to ${device_timeout}s for the home volume $home_device (EBS attachment can lag boot)"
	deadline=$((SECONDS + device_timeout))
	until [[ -e $home_device ]]; do
		if ((SECONDS >= deadline)); then
			fail 2 "home volume device $home_device did not appear within ${device_timeout}s; is the EBS volume attached to this instance? Nothing was changed."
		fi
		sleep "$device_poll"
	done
	log "home volume device $home_device is present"
else
	log "no --home-device given: not waiting for or checking the /home volume"
fi

# --- 2. Nix configuration for this rebuild ----------------------------------------------------
# Nix reads /etc/nix/nix.conf, then every file in NIX_USER_CONF_FILES (colon-separated; it
# replaces ~/.config/nix/nix.conf), then NIX_CONFIG (nix src/libstore/globals.cc loadConfFile).
# `!include FILE` is skipped silently when FILE is missing and a read error is ignored too
# (src/libutil/configuration.cc parseConfigFiles), so the conf stays valid without a token.
# Settings from user conf files are forwarded to the root daemon over its socket, never argv/env.
# The stock AMI neither enables flakes nor includes the token file, hence this file; the token
# itself stays in the root-only token file and is referenced by path only.
step "writing the Nix configuration for this rebuild to $deploy_conf"
deploy_conf_tmp=$(mktemp -- "$deploy_conf.tmp.XXXXXX")
{
	printf 'experimental-features = nix-command flakes\n'
	if [[ -n $secret_id ]]; then
		printf '!include %s\n' "$token_file"
	fi
} >"$deploy_conf_tmp"
chmod 0400 -- "$deploy_conf_tmp"
mv -f -- "$deploy_conf_tmp" "$deploy_conf"
export NIX_USER_CONF_FILES=$deploy_conf
# A NIX_CONFIG from the caller would override the file above; this run does not need one.
unset NIX_CONFIG

# --- 3. GitHub token --------------------------------------------------------------------------
if [[ -n $secret_id ]]; then
	step "fetching the GitHub token from $secret_id with the instance role"
	[[ -f $token_script ]] || fail 1 "token script $token_script not found (use --token-script)"
	if ! command -v aws >/dev/null; then
		# The stock NixOS AMI has no AWS CLI: borrow awscli2 from nixpkgs for this one run.
		log "aws CLI not on PATH (the stock AMI has none): building nixpkgs#awscli2"
		awscli_out=$(nix build --no-link --print-out-paths nixpkgs#awscli2) ||
			fail 3 "could not build nixpkgs#awscli2 to read the token"
		PATH=$awscli_out/bin:$PATH
	fi
	bash "$token_script" --secret-id "$secret_id" --region "$region" --output "$token_file" ||
		fail 3 "could not fetch the GitHub token from $secret_id; nothing was changed"
else
	log "no --secret-id given: building without a GitHub token (public flakes only)"
fi

# --- 4. switch ----------------------------------------------------------------------------------
previous_generation=$(readlink -- "$system_profile") ||
	fail 1 "cannot read the current system generation from $system_profile"
[[ $previous_generation =~ -([0-9]+)-link$ ]] ||
	fail 1 "$system_profile points to '$previous_generation', not a profile generation link"
previous_number=${BASH_REMATCH[1]}
step "switching to $flake_dir#$host (current generation: $previous_generation)"

# Roll back to exactly the recorded generation, the way `nixos-rebuild --rollback` does it
# (move the profile, activate it) but without evaluating the new flake or guessing "previous".
rollback() {
	local reason=$1 now
	step "rolling back to $previous_generation: $reason"
	if nix-env --profile "$system_profile" --switch-generation "$previous_number" &&
		"$system_profile/bin/switch-to-configuration" switch; then
		now=$(readlink -- "$system_profile" || true)
		if [[ $now == "$previous_generation" ]]; then
			fail 5 "$reason. The previous generation $previous_generation is active again."
		fi
		fail 6 "$reason. Rolled back, but $system_profile now points to '$now', not $previous_generation; check the machine over SSH."
	fi
	fail 6 "$reason. Rolling back to $previous_generation ALSO failed; the machine may be unreachable, check it from the EC2 serial console."
}

# Output goes straight to our stdout/stderr (no pipe), so Pulumi streams it line by line.
rebuild_status=0
nixos-rebuild switch --flake "$flake_dir#$host" || rebuild_status=$?
current_generation=$(readlink -- "$system_profile" || true)
if ((rebuild_status != 0)); then
	if [[ $current_generation == "$previous_generation" ]]; then
		fail 4 "nixos-rebuild switch failed (exit $rebuild_status) before activating anything; $previous_generation is still active (see the nixos-rebuild output above)"
	fi
	rollback "nixos-rebuild switch failed (exit $rebuild_status) while activating $current_generation"
fi
log "switched to $current_generation"

# --- 5. verify the new system ---------------------------------------------------------------
step "verifying that the new system keeps SSH, /home and the deploy login working"
problems=()

# NixOS names the unit sshd.service; with startWhenNeeded it is socket-activated instead.
if ! systemctl is-active --quiet sshd.service && ! systemctl is-active --quiet sshd.socket; then
	problems+=("sshd is not active (neither sshd.service nor sshd.socket)")
fi

if [[ -n $home_device ]]; then
	home_source=$(findmnt --noheadings --nofsroot --output SOURCE --mountpoint /home || true)
	if [[ -z $home_source ]]; then
		problems+=("/home is not a mount point")
	elif [[ $(readlink -f -- "$home_source") != "$(readlink -f -- "$home_device")" ]]; then
		problems+=("/home is mounted from $home_source, not from the home volume $home_device")
	fi
fi

# Ask sshd itself for the settings that apply to root's connection from Pulumi.
if sshd_config=$(sshd -T -C user=root,host=localhost,addr=127.0.0.1); then
	permit_root_login=
	pubkey_authentication=
	authorized_keys_files=()
	while read -r keyword value; do
		case $keyword in
		permitrootlogin) permit_root_login=$value ;;
		pubkeyauthentication) pubkey_authentication=$value ;;
		authorizedkeysfile) read -r -a authorized_keys_files <<<"$value" ;;
		esac
	done <<<"$sshd_config"
	if [[ -z $permit_root_login || $permit_root_login == no ]]; then
		problems+=("sshd would refuse root logins (permitrootlogin '${permit_root_login:-unset}')")
	fi
	if [[ $pubkey_authentication != yes ]]; then
		problems+=("sshd public key authentication is '${pubkey_authentication:-unset}', not yes")
	fi
	if [[ -n $deploy_public_key ]]; then
		found=false
		for pattern in "${authorized_keys_files[@]}"; do
			# sshd tokens: %% is '%', %u the user, %h the home; relative paths are under the home.
			path=${pattern//%%/$'\001'}
			path=${path//%u/root}
			path=${path//%h/$root_home}
			path=${path//$'\001'/%}
			[[ $path == /* ]] || path=$root_home/$path
			if [[ -f $path ]] && grep -qF -- "$deploy_key_material" "$path"; then
				found=true
				log "deploy key found in $path"
				break
			fi
		done
		if [[ $found != true ]]; then
			problems+=("the deploy public key is in none of root's authorized keys files (${authorized_keys_files[*]:-none})")
		fi
	fi
else
	problems+=("sshd -T could not evaluate the new sshd configuration")
fi

if ((${#problems[@]} > 0)); then
	summary=
	for problem in "${problems[@]}"; do
		log "verification failed: $problem"
		summary+=${summary:+; }$problem
	done
	if [[ $current_generation == "$previous_generation" ]]; then
		fail 7 "the system failed verification ($summary), but the switch did not change the generation ($current_generation): nothing to roll back"
	fi
	rollback "the new system failed verification: $summary"
fi
step "applied $flake_dir#$host as $current_generation and verified it"
