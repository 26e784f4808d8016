#!/usr/bin/env bash
# Applies the host flake Pulumi staged on a dev server (run as root by Pulumi over SSH) and rolls
# back to the previous generation if the switch breaks the machine or the path Pulumi deploys through.
#
# Usage: apply-flake.sh --host HOST --user USER [--secret-id ID --region REGION]
#                       [--home-device PATH] [--deploy-public-key 'ssh-ed25519 AAAA...']
#                       [--token-script PATH] [--shared-input NAME] [--shared-bundle PATH]
#                       [--also-update NAME]... [--substituter URL --trusted-public-key NAME:KEY]
#
# Pulumi copies flake.nix and writes machine.json into the staging directory; this script adds a
# copy of /etc/nixos/flake.lock, refreshes the shared input (default `devserver`) there, so a
# re-apply builds the shared flake's current commit, and builds and switches from the staging
# directory (a plain `path:` flake). With --shared-bundle (no `devserver:flake`: Pulumi pushed the
# operator's nix/), the bundle is unpacked into the staging directory's shared/, which the host
# flake names `path:./shared`; without a flake.lock of its own it keeps the pins the machine has
# (pushed-flake-lock.nix). After the switch verify-login.sh checks that the developer
# USER (GitHub keys through sshd's AuthorizedKeysCommand) and root (deploy key) can log in; a
# failure rolls back. Only a verified switch installs flake.nix, machine.json and flake.lock into
# /etc/nixos, so the nightly upgrade never builds a configuration that was rejected here.
#
# Exit codes: 0 applied and verified; 1 usage or setup error; 2 home device never appeared;
# 3 token fetch failed; 4 nixos-rebuild failed and the system did not change; 5 the new system
# failed (switch or verification) and the previous generation is active again (the message lists any
# unit its activation left failed, e.g. a /home that stayed mounted); 6 rollback failed;
# 7 verification failed but the switch changed nothing (same generation), so nothing to roll back;
# 8 the shared flake input could not be updated (nothing was changed); 9 the verified system is
# running but /etc/nixos could not be updated (the nightly upgrade would build the old flake);
# 10 another deployment or the nightly nixos-upgrade kept running past the lock timeout;
# 11 the pushed shared flake bundle is damaged (nothing was changed).
#
# --substituter/--trusted-public-key: a binary cache (the stack's own, or a team's) this switch
# already substitutes from, before the new system's nix.conf names it (the stock AMI's does not).
#
# Where the time goes: each phase's seconds (waitForSsh = the machine's uptime when this starts,
# lock, homeVolume, token, flakeInputs, realise, activation, loginCheck, install) are logged, kept
# in DEVSERVER_PHASES_FILE and printed as the last stdout line `DEVSERVER_PHASES {json}` for the
# deployment's `deployPhases` output. realise ends when nixos-rebuild moves the system profile
# (after building, before switch-to-configuration); activation is the rest of the switch (null
# when the profile did not move: an unchanged system).
#
# Env (tests override these; the defaults are the real machine):
#   DEVSERVER_FLAKE_DIR (/etc/nixos), DEVSERVER_STAGE_DIR (/var/lib/devserver/deploy/host),
#   DEVSERVER_SYSTEM_PROFILE (/nix/var/nix/profiles/system), DEVSERVER_SYSTEMD_DIR
#   (/run/systemd/system: when present, activation runs in its own unit via systemd-run),
#   DEVSERVER_RUN_DIR (/run/devserver), DEVSERVER_ROOT_HOME (/root, read by verify-login.sh),
#   DEVSERVER_HOME_DEVICE_TIMEOUT (300 s), DEVSERVER_HOME_DEVICE_POLL (2 s),
#   DEVSERVER_LOCK_TIMEOUT (1800 s), DEVSERVER_LOCK_POLL (5 s), DEVSERVER_PHASES_FILE
#   (/var/lib/devserver/deploy/last-phases), DEVSERVER_UPTIME_FILE (/proc/uptime).
#
# External commands (nixos-rebuild, nix-env, nix, nix-build, nixos-version, systemd-run, systemctl,
# findmnt, sshd, getent, setpriv) come from PATH.
set -euo pipefail

readonly prog=apply-flake
script_dir=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd)

host=
user=
shared_input=devserver
secret_id=
region=
home_device=
deploy_public_key=
token_script=$script_dir/fetch-github-token.sh
shared_bundle=
# More host inputs refreshed with the shared one (the personal flake, `personal`).
also_update=()
substituter=
trusted_public_key=

flake_dir=${DEVSERVER_FLAKE_DIR:-/etc/nixos}
stage_dir=${DEVSERVER_STAGE_DIR:-/var/lib/devserver/deploy/host}
systemd_dir=${DEVSERVER_SYSTEMD_DIR:-/run/systemd/system}
system_profile=${DEVSERVER_SYSTEM_PROFILE:-/nix/var/nix/profiles/system}
run_dir=${DEVSERVER_RUN_DIR:-/run/devserver}
device_timeout=${DEVSERVER_HOME_DEVICE_TIMEOUT:-300}
device_poll=${DEVSERVER_HOME_DEVICE_POLL:-2}
lock_timeout=${DEVSERVER_LOCK_TIMEOUT:-1800}
lock_poll=${DEVSERVER_LOCK_POLL:-5}
phases_file=${DEVSERVER_PHASES_FILE:-/var/lib/devserver/deploy/last-phases}
uptime_file=${DEVSERVER_UPTIME_FILE:-/proc/uptime}
token_file=$run_dir/nix-access-tokens.conf
deploy_conf=$run_dir/nix-deploy.conf
# The files that make the host flake (and shared/, a pushed shared flake); /etc/nixos gets them
# only after a verified switch.
readonly flake_files=(flake.nix machine.json flake.lock)
stage_lock=$stage_dir/flake.lock
# `nix eval --file F --argstr ...` never calls F's top-level function (src/nix/eval.cc: AutoCall::No),
# so --apply calls it; the values travel in the environment, never spliced into Nix code.
readonly apply_lock_file='f: f { lockFile = builtins.getEnv "DEVSERVER_EVAL_LOCK"; }'
readonly apply_lock_file_input='f: f { lockFile = builtins.getEnv "DEVSERVER_EVAL_LOCK"; input = builtins.getEnv "DEVSERVER_EVAL_INPUT"; }'

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
	printf 'usage: %s --host HOST --user USER [--secret-id ID --region REGION] [--home-device PATH] [--deploy-public-key KEY] [--token-script PATH] [--shared-input NAME] [--shared-bundle PATH] [--also-update NAME]... [--substituter URL --trusted-public-key NAME:KEY]\n' "$prog"
}

# --- where the time goes --------------------------------------------------------------------------
# EPOCHREALTIME (bash 5) in microseconds, whatever the locale's decimal separator.
now_us() {
	local t=$EPOCHREALTIME
	printf '%s' "${t//[.,]/}"
}
phase_names=()
phase_values=()
phase_started=$(now_us)
# seconds NAME MICROSECONDS: record a phase as seconds with one decimal.
seconds() {
	phase_names+=("$1")
	phase_values+=("$(printf '%d.%d' $(($2 / 1000000)) $((($2 % 1000000) / 100000)))")
	log "phase $1: ${phase_values[-1]} s"
}
# phase_done NAME: the phase that started at the previous boundary ends now.
phase_done() {
	local now
	now=$(now_us)
	seconds "$1" $((now - phase_started))
	phase_started=$now
}
phases_json() {
	local i json='{'
	for i in "${!phase_names[@]}"; do
		json+="\"${phase_names[i]}\": ${phase_values[i]}, "
	done
	printf '%s"binaryCache": %s}' "$json" "$([[ -n $substituter ]] && echo true || echo false)"
}

while (($# > 0)); do
	case $1 in
	--host | --user | --secret-id | --region | --home-device | --deploy-public-key | --token-script | --shared-input | --shared-bundle | --also-update | --substituter | --trusted-public-key)
		(($# >= 2)) || fail 1 "$1 needs a value"
		case $1 in
		--host) host=$2 ;;
		--user) user=$2 ;;
		--shared-input) shared_input=$2 ;;
		--secret-id) secret_id=$2 ;;
		--region) region=$2 ;;
		--home-device) home_device=$2 ;;
		--deploy-public-key) deploy_public_key=$2 ;;
		--token-script) token_script=$2 ;;
		--shared-bundle) shared_bundle=$2 ;;
		--also-update) also_update+=("$2") ;;
		--substituter) substituter=$2 ;;
		--trusted-public-key) trusted_public_key=$2 ;;
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
# NixOS refuses login names of 32 characters or more (users-groups.nix).
[[ $user =~ ^[a-z_][a-z0-9_-]{0,30}$ ]] || fail 1 "--user must be the developer's login name ([a-z_][a-z0-9_-], at most 31 characters), got '$user'"
[[ $shared_input =~ ^[A-Za-z][A-Za-z0-9_-]*$ ]] || fail 1 "--shared-input must be a flake input name, got '$shared_input'"
for name in "${also_update[@]}"; do
	[[ $name =~ ^[A-Za-z][A-Za-z0-9_-]*$ ]] || fail 1 "--also-update must be a flake input name, got '$name'"
done
if [[ -n $secret_id && -z $region ]]; then
	fail 1 "--secret-id needs --region"
fi
if [[ -n $deploy_public_key ]]; then
	read -r _ deploy_key_material _ <<<"$deploy_public_key" || true
	[[ ${deploy_key_material:-} =~ ^[A-Za-z0-9+/]+=*$ ]] ||
		fail 1 "--deploy-public-key must look like 'ssh-ed25519 AAAA... [comment]'"
fi
# The cache goes into a nix.conf line: only what a store URL and a Nix public key can hold.
if [[ -n $substituter || -n $trusted_public_key ]]; then
	[[ $substituter =~ ^(s3|https)://[A-Za-z0-9._~/:?=\&%+-]+$ ]] ||
		fail 1 "--substituter must be an s3:// or https:// binary cache URL (with --trusted-public-key), got '$substituter'"
	[[ $trusted_public_key =~ ^[A-Za-z0-9][A-Za-z0-9._-]*:[A-Za-z0-9+/]{43}=$ ]] ||
		fail 1 "--trusted-public-key must be a Nix public key NAME:BASE64 (with --substituter), got '$trusted_public_key'"
fi
[[ $device_timeout =~ ^[0-9]+$ && $device_poll =~ ^[0-9]+([.][0-9]+)?$ ]] ||
	fail 1 "DEVSERVER_HOME_DEVICE_TIMEOUT/_POLL must be numbers of seconds"
[[ $lock_timeout =~ ^[0-9]+$ && $lock_poll =~ ^[0-9]+([.][0-9]+)?$ ]] ||
	fail 1 "DEVSERVER_LOCK_TIMEOUT/_POLL must be numbers of seconds"
[[ -f $stage_dir/flake.nix ]] || fail 1 "$stage_dir/flake.nix is missing (Pulumi copies it before running this script)"
[[ -f $stage_dir/machine.json ]] || fail 1 "$stage_dir/machine.json is missing (Pulumi writes it before running this script)"
if [[ -n $shared_bundle && ! -f $shared_bundle ]]; then
	fail 1 "--shared-bundle $shared_bundle is missing (Pulumi copies it before running this script)"
fi

# The machine's uptime now is how long it took from boot until the deployment reached it.
read -r uptime _ <"$uptime_file" || fail 1 "cannot read $uptime_file"
[[ $uptime =~ ^([0-9]+)([.]([0-9]))?[0-9]*$ ]] || fail 1 "$uptime_file does not start with seconds: '$uptime'"
seconds waitForSsh $((BASH_REMATCH[1] * 1000000 + ${BASH_REMATCH[3]:-0} * 100000))

# A non-interactive SSH session may not have the NixOS system PATH; append so fakes on PATH win.
for dir in /run/wrappers/bin /run/current-system/sw/bin; do
	if [[ -d $dir && ":$PATH:" != *":$dir:"* ]]; then
		PATH=$PATH:$dir
	fi
done
export PATH

# A pushed nix/ is the relative input `path:./shared`: Nix 2.26 added those (rl-2.26.md), and the
# image's Nix runs the first switch (devserver:nixosRelease 25.05 or newer ships 2.28).
if [[ -n $shared_bundle ]]; then
	nix_version=$(nix --version) || fail 1 "nix --version failed; nothing was changed"
	log "$nix_version"
	if [[ ! $nix_version =~ ([0-9]+)\.([0-9]+) ]] ||
		((BASH_REMATCH[1] < 2 || (BASH_REMATCH[1] == 2 && BASH_REMATCH[2] < 26))); then
		fail 1 "the pushed nix/ (path:./shared) needs Nix 2.26 or newer on the machine, which has '$nix_version': boot a NixOS 25.05 or newer image (devserver:nixosRelease, devserver:amiId) or set devserver:flake; nothing was changed"
	fi
fi

umask 077
# 0755 like the token unit's tmpfiles rule: files inside stay 0400, non-root nix can still stat them.
[[ -d $run_dir ]] || install -d -m 0755 -- "$run_dir"
cleanup() {
	rm -f -- "$deploy_conf" "$deploy_conf".tmp.*
}
trap cleanup EXIT

# --- 0. one writer of the system at a time --------------------------------------------------------
# The nightly nixos-upgrade's guard (upgrade-flake-lock.sh) skips the upgrade while this lock is
# held; an upgrade that started first is "activating" or later, and this run waits for it.
step "taking $run_dir/deploy.lock and waiting for any running nixos-upgrade (up to ${lock_timeout}s)"
exec 9>"$run_dir/deploy.lock"
flock --wait "$lock_timeout" 9 ||
	fail 10 "another deployment still holds $run_dir/deploy.lock after ${lock_timeout}s; nothing was changed"
lock_deadline=$((SECONDS + lock_timeout))
while upgrade_state=$(systemctl show --property=ActiveState --value nixos-upgrade.service) &&
	[[ $upgrade_state =~ ^(activating|active|deactivating|reloading)$ ]]; do
	((SECONDS < lock_deadline)) ||
		fail 10 "nixos-upgrade.service is still $upgrade_state after ${lock_timeout}s; nothing was changed"
	sleep "$lock_poll"
done
# The staged flake starts from the lock the running system was built from (none on a first apply).
rm -f -- "$stage_lock"
if [[ -e $flake_dir/flake.lock ]]; then
	cp -- "$flake_dir/flake.lock" "$stage_lock"
fi
# The pushed shared flake, fresh from the bundle; a shared/ left from an earlier push goes with it.
if [[ -n $shared_bundle ]]; then
	step "unpacking the pushed shared flake into $stage_dir/shared"
	bash "$script_dir/unpack-flake-bundle.sh" "$shared_bundle" "$stage_dir/shared" ||
		fail 11 "the pushed shared flake $shared_bundle could not be unpacked; nothing was changed"
else
	rm -rf -- "$stage_dir/shared"
fi

phase_done lock

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

phase_done homeVolume

# --- 2. Nix configuration for this rebuild ----------------------------------------------------
# Nix reads /etc/nix/nix.conf, then every file in NIX_USER_CONF_FILES (colon-separated; it
# replaces ~/.config/nix/nix.conf), then NIX_CONFIG (nix src/libstore/globals.cc loadConfFile).
# `!include FILE` is skipped silently when FILE is missing and a read error is ignored too
# (src/libutil/configuration.cc parseConfigFiles), so the conf stays valid without a token.
# Settings from user conf files are forwarded to the root daemon over its socket, never argv/env.
# The stock AMI neither enables flakes nor includes the token file, hence this file; the token
# itself stays in the root-only token file and is referenced by path only. A binary cache given
# here is used from this switch on: root is a trusted user of the daemon, which then takes the
# client's substituters and keys as given (nix src/libstore/daemon.cc); `extra-` appends them to
# the image's cache.nixos.org, and `require-sigs` stays on.
step "writing the Nix configuration for this rebuild to $deploy_conf"
deploy_conf_tmp=$(mktemp -- "$deploy_conf.tmp.XXXXXX")
{
	printf 'experimental-features = nix-command flakes\n'
	if [[ -n $secret_id ]]; then
		printf '!include %s\n' "$token_file"
	fi
	if [[ -n $substituter ]]; then
		printf 'extra-substituters = %s\n' "$substituter"
		printf 'extra-trusted-public-keys = %s\n' "$trusted_public_key"
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
		# The stock NixOS AMI has no AWS CLI: borrow awscli2 for this one run, always from a pinned,
		# public nixpkgs (never the global registry's unpinned nixpkgs-unstable), and without locking
		# the host flake: a private shared input cannot be locked before the token is here.
		awscli_out=
		if [[ -e $stage_lock ]] &&
			nixpkgs_ref=$(DEVSERVER_EVAL_LOCK=$stage_lock nix eval --impure --raw \
				--file "$script_dir/locked-nixpkgs.nix" --apply "$apply_lock_file"); then
			log "aws CLI not on PATH: building awscli2 from the nixpkgs the host flake pins, $nixpkgs_ref"
			awscli_out=$(nix build --no-link --print-out-paths "$nixpkgs_ref#awscli2") ||
				fail 3 "could not build $nixpkgs_ref#awscli2 to read the token"
		elif nixos_revision=$(nixos-version --revision) && [[ $nixos_revision =~ ^[0-9a-f]{40}$ ]]; then
			# Hydra-built images record the nixpkgs commit they were built from (system.nixos.revision).
			log "aws CLI not on PATH and no flake.lock yet: building awscli2 from the running system's nixpkgs $nixos_revision"
			awscli_out=$(nix build --no-link --print-out-paths "github:NixOS/nixpkgs/$nixos_revision#awscli2") ||
				fail 3 "could not build github:NixOS/nixpkgs/$nixos_revision#awscli2 to read the token"
		else
			log "aws CLI not on PATH, no flake.lock and no known nixpkgs revision: building awscli2 from root's <nixpkgs> channel"
			awscli_out=$(nix-build '<nixpkgs>' -A awscli2 --no-out-link) ||
				fail 3 "no aws CLI to read the token: nixos-version knows no nixpkgs revision and root's <nixpkgs> channel could not build awscli2 (put awscli2 on the image, or run nix-channel --update once)"
		fi
		PATH=$awscli_out/bin:$PATH
	fi
	bash "$token_script" --secret-id "$secret_id" --region "$region" --output "$token_file" ||
		fail 3 "could not fetch the GitHub token from $secret_id; nothing was changed"
else
	log "no --secret-id given: building without a GitHub token (public flakes only)"
fi

phase_done token

# --- 4. shared flake input -----------------------------------------------------------------------
# A re-apply must build the shared flake's current commit even when its reference is unchanged;
# only that input moves (nixpkgs follows it). `nix flake update <input>` replaced --update-input.
# A pushed flake without a flake.lock of its own starts from the pins the machine has, so an edit
# under nix/ changes what was edited, not nixpkgs; the derived lock is not installed, so the
# nightly upgrade still moves to the newest commits of the branches nix/flake.nix names.
derived_lock=
if [[ -n $shared_bundle && ! -e $stage_dir/shared/flake.lock && -e $stage_lock ]]; then
	pins=$(DEVSERVER_EVAL_LOCK=$stage_lock DEVSERVER_EVAL_INPUT=$shared_input nix eval --impure --raw \
		--file "$script_dir/pushed-flake-lock.nix" --apply "$apply_lock_file_input") ||
		fail 8 "could not read the machine's pins for '$shared_input' from $stage_lock; nothing was changed"
	if [[ -n $pins ]]; then
		printf '%s\n' "$pins" >"$stage_dir/shared/flake.lock"
		derived_lock=$stage_dir/shared/flake.lock
		log "the pushed flake has no flake.lock: keeping the pins of the machine's $flake_dir/flake.lock"
	fi
fi
if [[ -n $shared_bundle ]]; then
	step "locking the pushed shared flake (input '$shared_input', path:./shared)"
else
	step "updating the host flake's '$shared_input' input to the shared flake's current commit"
fi
# `nix flake update <input>...` refreshes only those (and their own inputs); the rest stays locked.
nix flake update "$shared_input" --flake "$stage_dir" "${also_update[@]}" ||
	fail 8 "could not update the '$shared_input' input of $stage_dir; nothing was changed"
if [[ -n $derived_lock ]]; then
	rm -f -- "$derived_lock"
fi

phase_done flakeInputs

# --- 5. switch ----------------------------------------------------------------------------------
previous_generation=$(readlink -- "$system_profile") ||
	fail 1 "cannot read the current system generation from $system_profile"
[[ $previous_generation =~ -([0-9]+)-link$ ]] ||
	fail 1 "$system_profile points to '$previous_generation', not a profile generation link"
previous_number=${BASH_REMATCH[1]}
step "switching to $stage_dir#$host (current generation: $previous_generation)"

# Activation in its own transient unit, the way nixos-rebuild-ng does it: a dropped SSH connection
# cannot kill it half-way (nixpkgs#39118). Without systemd (a container) it runs directly.
activate() {
	if [[ -d $systemd_dir ]]; then
		NIXOS_INSTALL_BOOTLOADER=0 systemd-run -E LOCALE_ARCHIVE -E NIXOS_INSTALL_BOOTLOADER \
			--collect --no-ask-password --pipe --quiet --wait --service-type=exec \
			--unit=nixos-rebuild-switch-to-configuration "$@"
	else
		NIXOS_INSTALL_BOOTLOADER=0 "$@"
	fi
}

# Roll back to exactly the recorded generation, the way `nixos-rebuild --rollback` does it
# (move the profile, activate it) but without evaluating the new flake or guessing "previous".
rollback() {
	local reason=$1 now status=0 failed home_state previous_dir
	step "rolling back to $previous_generation: $reason"
	nix-env --profile "$system_profile" --switch-generation "$previous_number" ||
		fail 6 "$reason. Rolling back to $previous_generation ALSO failed (nix-env could not move $system_profile); check the machine over SSH or Session Manager."
	# A previous generation without /home in its fstab (the stock image, before the first switch)
	# unmounts the volume; the developer's lingering user manager (VS Code's auto-fix) keeps it busy
	# and switch-to-configuration would fail with exit 4. Stop user managers first.
	previous_dir=$(dirname -- "$system_profile")/$previous_generation
	if findmnt --mountpoint /home >/dev/null 2>&1 && [[ -e $previous_dir/etc/fstab ]] &&
		! grep -qE '^[^#[:space:]]+[[:space:]]+/home[[:space:]]' "$previous_dir/etc/fstab"; then
		log "$previous_generation does not mount /home: stopping user managers so the volume can be unmounted"
		systemctl stop 'user@*.service' || true
	fi
	activate "$system_profile/bin/switch-to-configuration" switch || status=$?
	now=$(readlink -- "$system_profile" || true)
	if [[ $now != "$previous_generation" ]]; then
		fail 6 "$reason. Rolled back, but $system_profile now points to '$now', not $previous_generation; check the machine over SSH or Session Manager."
	fi
	if ((status == 0)); then
		fail 5 "$reason. The previous generation $previous_generation is active again."
	fi
	# switch-to-configuration exits 4 when units failed to start or stop; the configuration is
	# active all the same. Say exactly what is left, and whether the way in still works.
	failed=$(systemctl list-units --failed --plain --no-legend 2>/dev/null | awk '{ print $1 }' | paste -sd ' ' -) || true
	home_state=$(findmnt --noheadings --nofsroot --output SOURCE --mountpoint /home 2>/dev/null || true)
	home_state=${home_state:+/home is still mounted from $home_state (it stays until the next reboot)}
	if systemctl is-active --quiet sshd.service || systemctl is-active --quiet sshd.socket; then
		fail 5 "$reason. The previous generation $previous_generation is active again and sshd runs, but its activation reported problems (switch-to-configuration exit $status): failed units: ${failed:-none listed}${home_state:+; $home_state}. Inspect with: systemctl --failed; a reboot boots $previous_generation cleanly."
	fi
	fail 6 "$reason. $previous_generation is the boot default again, but its activation failed (switch-to-configuration exit $status) and sshd is not running: failed units: ${failed:-none listed}${home_state:+; $home_state}. Reach the machine through Session Manager or reboot it from the EC2 console."
}

# realise ends when nixos-rebuild moves the system profile (it sets the profile after the build,
# before switch-to-configuration): a watcher notes the moment, so nothing is evaluated twice.
profile_moved=$run_dir/profile-moved
rm -f -- "$profile_moved"
(
	while [[ $(readlink -- "$system_profile" 2>/dev/null || true) == "$previous_generation" ]]; do
		sleep 0.2
	done
	now_us >"$profile_moved"
) 9>&- &
profile_watcher=$!
# Output goes straight to our stdout/stderr (no pipe), so Pulumi streams it line by line.
rebuild_status=0
# 9>&-: nothing the activation starts may keep holding the deploy lock after this run.
nixos-rebuild switch --flake "$stage_dir#$host" 9>&- || rebuild_status=$?
kill "$profile_watcher" 2>/dev/null || true
wait "$profile_watcher" 2>/dev/null || true
switch_ended=$(now_us)
if [[ -s $profile_moved ]]; then
	moved=$(<"$profile_moved")
	seconds realise $((moved - phase_started))
	seconds activation $((switch_ended - moved))
else
	seconds realise $((switch_ended - phase_started))
	phase_names+=(activation)
	phase_values+=(null)
fi
rm -f -- "$profile_moved"
phase_started=$switch_ended
current_generation=$(readlink -- "$system_profile" || true)
if ((rebuild_status != 0)); then
	if [[ $current_generation == "$previous_generation" ]]; then
		fail 4 "nixos-rebuild switch failed (exit $rebuild_status) before activating anything; $previous_generation is still active (see the nixos-rebuild output above)"
	fi
	rollback "nixos-rebuild switch failed (exit $rebuild_status) while activating $current_generation"
fi
log "switched to $current_generation"

# --- 6. verify the new system ---------------------------------------------------------------
step "verifying that the new system keeps /home, the developer's login and the deploy login working"
problems=()

# /home from the volume, the developer's GitHub-key path and root's deploy key, checked the way
# sshd decides (the same check the nightly upgrade runs).
verify_args=(--user "$user")
if [[ -n $home_device ]]; then
	verify_args+=(--home-device "$home_device")
fi
if [[ -n $deploy_public_key ]]; then
	verify_args+=(--deploy-public-key "$deploy_public_key")
fi
if ! bash "$script_dir/verify-login.sh" "${verify_args[@]}"; then
	problems+=("verify-login.sh found that /home, $user's login or root's cannot be trusted (reasons above)")
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

phase_done loginCheck

# --- 7. install the verified flake into /etc/nixos --------------------------------------------
# Each file is written beside and renamed over (atomic per file); flake.nix goes last, so a crash
# half-way leaves the previous flake.nix, never a new flake.nix with an old machine.json.
step "installing the verified host flake into $flake_dir"
install -d -m 0755 -- "$flake_dir"
for name in "${flake_files[@]}"; do
	# A leftover from an interrupted run must not be installed in place of a file this run lacks.
	rm -f -- "$flake_dir/.$name.new"
	[[ -e $stage_dir/$name ]] || continue
	install -m 0644 -- "$stage_dir/$name" "$flake_dir/.$name.new" ||
		fail 9 "switched to and verified $current_generation, but could not write $flake_dir/.$name.new; $flake_dir still holds the previous host flake"
done
rm -rf -- "$flake_dir/.shared.new" "$flake_dir/.shared.old"
if [[ -d $stage_dir/shared ]]; then
	cp -R -- "$stage_dir/shared" "$flake_dir/.shared.new" ||
		fail 9 "switched to and verified $current_generation, but could not write $flake_dir/.shared.new; $flake_dir still holds the previous host flake"
fi
for name in machine.json flake.lock shared flake.nix; do
	[[ -e $flake_dir/.$name.new ]] || continue
	if [[ $name == shared ]]; then
		# A directory cannot be renamed over another: the old one steps aside first.
		if [[ -e $flake_dir/shared ]]; then
			mv -- "$flake_dir/shared" "$flake_dir/.shared.old" ||
				fail 9 "switched to and verified $current_generation, but could not move $flake_dir/shared aside"
		fi
	fi
	mv -f -- "$flake_dir/.$name.new" "$flake_dir/$name" ||
		fail 9 "switched to and verified $current_generation, but could not install $flake_dir/$name"
done
# The previous push, or one the host flake no longer names (a remote devserver:flake now).
rm -rf -- "$flake_dir/.shared.old"
if [[ ! -d $stage_dir/shared ]]; then
	rm -rf -- "$flake_dir/shared"
fi
phase_done install
step "applied $stage_dir#$host as $current_generation, verified it and installed it into $flake_dir"
# Kept for the deployment's later reads, and the last stdout line for this run's output.
phases=$(phases_json)
if install -d -m 0700 -- "$(dirname -- "$phases_file")" && printf 'DEVSERVER_PHASES %s\n' "$phases" >"$phases_file.new"; then
	mv -f -- "$phases_file.new" "$phases_file" || log "could not keep the phases in $phases_file"
fi
printf 'DEVSERVER_PHASES %s\n' "$phases"
