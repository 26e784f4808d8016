#!/usr/bin/env bash
# Keeps a host flake's flake.lock in step with the system actually built by the nightly upgrade:
# `save DIR` (preStart, before `nix flake update`) copies the lock aside; `restore DIR`
# (ExecStopPost, which systemd also runs after a failed start) puts it back unless systemd reports
# SERVICE_RESULT=success, and drops the copy either way.
#
# Usage: upgrade-flake-lock.sh save|restore FLAKE_DIR
set -euo pipefail

if [[ $# -ne 2 || ($1 != save && $1 != restore) ]]; then
	echo "usage: $0 save|restore FLAKE_DIR" >&2
	exit 2
fi
lock=$2/flake.lock
saved=$2/flake.lock.pre-upgrade
# Marks "there was no lock": a lock the failed upgrade created is removed, not kept.
absent=$2/flake.lock.pre-upgrade-absent

case $1 in
save)
	rm -f -- "$saved" "$absent"
	if [[ -e $lock ]]; then
		cp -p -- "$lock" "$saved"
	else
		: >"$absent"
	fi
	;;
restore)
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
