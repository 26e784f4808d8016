#!/usr/bin/env bash
# The nightly upgrade's guard rails around `nixos-rebuild switch --flake /etc/nixos`:
#   guard   (preStart, first) refuses to start while apply-flake.sh holds the deploy lock; otherwise
#           records the running generation and marks the run as this upgrade's own;
#   save    (preStart, before `nix flake update`) copies the lock aside;
#   verify  (postStart, after the switch) runs the login check given as the remaining arguments;
#           when it fails it activates the recorded generation again and fails the unit;
#   restore (ExecStopPost, which systemd runs after success and failure alike, with
#           $SERVICE_RESULT) acts only on a run its guard let through: after a failure it activates
#           the recorded generation again when the profile moved (a switch that failed after
#           activating never reaches ExecStartPost), then puts the lock back, so flake.lock always
#           describes the system that runs; after success it drops the copy.
# apply-flake.sh takes the same lock and then waits until nixos-upgrade.service is inactive; the
# unit is "activating" before `guard` runs, so one of the two always sees the other. A run the
# guard refused touches nothing, not even a stale flake.lock.pre-upgrade: a deployment holds the
# lock and may be installing /etc/nixos/flake.lock at that very moment.
#
# Usage: upgrade-flake-lock.sh guard|save|restore FLAKE_DIR
#        upgrade-flake-lock.sh verify FLAKE_DIR CHECK_COMMAND [ARGS...]
# Env (tests): DEVSERVER_RUN_DIR (/run/devserver), DEVSERVER_SYSTEM_PROFILE
# (/nix/var/nix/profiles/system), DEVSERVER_SYSTEMD_DIR (/run/systemd/system),
# DEVSERVER_DEPLOY_LOCK_WAIT (seconds guard waits for the deploy lock, 5).
set -euo pipefail

if [[ $# -lt 2 || ! $1 =~ ^(guard|save|verify|restore)$ || ($1 == verify && $# -lt 3) ]]; then
	echo "usage: $0 guard|save|restore FLAKE_DIR | verify FLAKE_DIR CHECK_COMMAND [ARGS...]" >&2
	exit 2
fi
action=$1
lock=$2/flake.lock
saved=$2/flake.lock.pre-upgrade
# Marks "there was no lock": a lock the failed upgrade created is removed, not kept.
absent=$2/flake.lock.pre-upgrade-absent
shift 2
run_dir=${DEVSERVER_RUN_DIR:-/run/devserver}
deploy_lock=$run_dir/deploy.lock
previous_file=$run_dir/upgrade-previous-generation
# Written by a guard that let the run through; restore acts on nothing without it.
started_file=$run_dir/upgrade-started
system_profile=${DEVSERVER_SYSTEM_PROFILE:-/nix/var/nix/profiles/system}
systemd_dir=${DEVSERVER_SYSTEMD_DIR:-/run/systemd/system}

# Activates generation $1 (a "system-N-link" name) again, in its own unit as nixos-rebuild does:
# the activation may restart this very service.
activate_previous() {
	local previous=$1
	[[ $previous =~ -([0-9]+)-link$ ]] || return 1
	nix-env --profile "$system_profile" --switch-generation "${BASH_REMATCH[1]}" || return 1
	if [[ -d $systemd_dir ]]; then
		NIXOS_INSTALL_BOOTLOADER=0 systemd-run -E LOCALE_ARCHIVE -E NIXOS_INSTALL_BOOTLOADER \
			--collect --no-ask-password --pipe --quiet --wait --service-type=exec \
			--unit=nixos-rebuild-switch-to-configuration "$system_profile/bin/switch-to-configuration" switch
	else
		NIXOS_INSTALL_BOOTLOADER=0 "$system_profile/bin/switch-to-configuration" switch
	fi
}

restore_lock() {
	if [[ -e $saved ]]; then
		mv -f -- "$saved" "$lock"
		echo "nixos-upgrade failed ($1): restored the previous $lock"
	elif [[ -e $absent ]]; then
		rm -f -- "$lock" "$absent"
		echo "nixos-upgrade failed ($1): removed the $lock it created"
	fi
}

case $action in
guard)
	install -d -m 0755 -- "$run_dir"
	# A short wait rides out a momentary holder (idle-stop's probe each minute, which the timers
	# can start at the same instant); a deployment holds the lock for minutes and is still seen.
	if ! flock --timeout "${DEVSERVER_DEPLOY_LOCK_WAIT:-5}" "$deploy_lock" true; then
		echo "nixos-upgrade: a Pulumi deployment (apply-flake.sh) holds $deploy_lock; skipping this upgrade" >&2
		exit 1
	fi
	readlink -- "$system_profile" >"$previous_file"
	: >"$started_file"
	;;
save)
	rm -f -- "$saved" "$absent"
	if [[ -e $lock ]]; then
		cp -p -- "$lock" "$saved"
	else
		: >"$absent"
	fi
	;;
verify)
	previous=$(cat -- "$previous_file" 2>/dev/null || true)
	if "$@"; then
		echo "nixos-upgrade: the new system passed the login check"
		exit 0
	fi
	current=$(readlink -- "$system_profile" || true)
	if [[ ! $previous =~ -([0-9]+)-link$ || $current == "$previous" ]]; then
		echo "nixos-upgrade: the login check failed and there is no other generation to go back to (running $current)" >&2
		exit 1
	fi
	echo "nixos-upgrade: the login check failed; activating $previous again" >&2
	activate_previous "$previous"
	echo "nixos-upgrade: rolled back to $previous because the login check failed" >&2
	exit 1
	;;
restore)
	if [[ ! -e $started_file ]]; then
		# The guard refused (or never ran): whatever lies in FLAKE_DIR belongs to someone else.
		echo "nixos-upgrade did not get past its guard (${SERVICE_RESULT:-unknown}): nothing to restore"
		exit 0
	fi
	previous=$(cat -- "$previous_file" 2>/dev/null || true)
	rm -f -- "$started_file" "$previous_file"
	result=${SERVICE_RESULT:-unknown}
	if [[ $result == success ]]; then
		rm -f -- "$saved" "$absent"
		exit 0
	fi
	current=$(readlink -- "$system_profile" || true)
	if [[ $previous =~ -[0-9]+-link$ && $current != "$previous" ]]; then
		echo "nixos-upgrade failed ($result) after switching to $current; activating $previous again" >&2
		status=0
		activate_previous "$previous" || status=$?
		# Decided by the result, not the exit code: switch-to-configuration exits 4 when a unit
		# failed, yet the generation is active and the boot default; the lock follows the profile.
		if [[ $(readlink -- "$system_profile" || true) != "$previous" ]]; then
			# The system runs the new generation: keep the lock it was built from, so they agree.
			rm -f -- "$saved" "$absent"
			echo "nixos-upgrade: rolling back to $previous FAILED; the system runs $(readlink -- "$system_profile" || true) and $lock is the updated lock it was built from" >&2
			exit 1
		fi
		if ((status != 0)); then
			restore_lock "$result"
			echo "nixos-upgrade: rolled back to $previous (the boot default again, its lock restored), but its activation exited $status: some units failed, see systemctl --failed" >&2
			exit 1
		fi
		echo "nixos-upgrade: rolled back to $previous" >&2
	fi
	restore_lock "$result"
	;;
esac
