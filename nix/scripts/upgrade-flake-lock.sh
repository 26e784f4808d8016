#!/usr/bin/env bash
# The nightly upgrade's guard rails around `nixos-rebuild switch --flake /etc/nixos`:
#   guard   (preStart, first) refuses to start while apply-flake.sh holds the deploy lock, and
#           records the running generation for `verify`;
#   save    (preStart, before `nix flake update`) copies the lock aside;
#   verify  (postStart, after the switch) runs the login check given as the remaining arguments;
#           when it fails it activates the recorded generation again and fails the unit;
#   restore (ExecStopPost, which systemd also runs after a failed start) puts the lock back unless
#           systemd reports SERVICE_RESULT=success, and drops the copy either way.
# apply-flake.sh takes the same lock and then waits until nixos-upgrade.service is inactive; the
# unit is "activating" before `guard` runs, so one of the two always sees the other.
#
# Usage: upgrade-flake-lock.sh guard|save|restore FLAKE_DIR
#        upgrade-flake-lock.sh verify FLAKE_DIR CHECK_COMMAND [ARGS...]
# Env (tests): DEVSERVER_RUN_DIR (/run/devserver), DEVSERVER_SYSTEM_PROFILE
# (/nix/var/nix/profiles/system), DEVSERVER_SYSTEMD_DIR (/run/systemd/system).
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
system_profile=${DEVSERVER_SYSTEM_PROFILE:-/nix/var/nix/profiles/system}
systemd_dir=${DEVSERVER_SYSTEMD_DIR:-/run/systemd/system}

case $action in
guard)
	install -d -m 0755 -- "$run_dir"
	if ! flock --nonblock "$deploy_lock" true; then
		echo "nixos-upgrade: a Pulumi deployment (apply-flake.sh) holds $deploy_lock; skipping this upgrade" >&2
		exit 1
	fi
	readlink -- "$system_profile" >"$previous_file"
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
	nix-env --profile "$system_profile" --switch-generation "${BASH_REMATCH[1]}"
	# In its own unit, as nixos-rebuild does: the activation may restart this very service.
	if [[ -d $systemd_dir ]]; then
		NIXOS_INSTALL_BOOTLOADER=0 systemd-run -E LOCALE_ARCHIVE -E NIXOS_INSTALL_BOOTLOADER \
			--collect --no-ask-password --pipe --quiet --wait --service-type=exec \
			--unit=nixos-rebuild-switch-to-configuration "$system_profile/bin/switch-to-configuration" switch
	else
		NIXOS_INSTALL_BOOTLOADER=0 "$system_profile/bin/switch-to-configuration" switch
	fi
	echo "nixos-upgrade: rolled back to $previous because the login check failed" >&2
	exit 1
	;;
restore)
	rm -f -- "$previous_file"
	result=${SERVICE_RESULT:-unknown}
	if [[ $result == success ]]; then
		rm -f -- "$saved" "$absent"
	elif [[ -e $saved ]]; then
		mv -f -- "$saved" "$lock"
		echo "nixos-upgrade failed ($result): restored the previous $lock"
	elif [[ -e $absent ]]; then
		rm -f -- "$lock" "$absent"
		echo "nixos-upgrade failed ($result): removed the $lock it created"
	fi
	;;
esac
