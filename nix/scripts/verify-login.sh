#!/usr/bin/env bash
# Checks, the way sshd itself would decide, that the developer can log in with their GitHub keys
# and that root still accepts the deploy key. Run as root on the dev server: by apply-flake.sh
# after a switch (which rolls back when this fails) and by Pulumi's <name>-verify-login step.
#
# Usage: verify-login.sh --user USER [--deploy-public-key 'ssh-ed25519 AAAA... [comment]']
#                        [--home-device PATH]
#
# With --home-device it also checks that /home is mounted from that device and that USER's home is
# on it: a login must never land in a directory on the root disk that the volume later hides.
#
# For USER it asks sshd for the effective settings (`sshd -T -C user=USER,...`), then checks the
# AuthorizedKeysCommand the way openssh's subprocess() does before running it (absolute path,
# safe_path: a root-owned regular file, no group- or world-writable file or directory up to /,
# symlinks resolved), runs it as AuthorizedKeysCommandUser with sshd's minimal environment, and
# requires at least one public key in its output. It also checks the account (exists, the only
# passwd entry with its uid, a shell, a home directory it owns). Exit 0: all good; 1: usage; 2: a check failed (reasons on stderr).
#
# Env (tests override these; the defaults are the real machine):
#   DEVSERVER_SSHD_CONFIG (sshd's own default), DEVSERVER_ROOT_HOME (/root),
#   DEVSERVER_KEYS_TIMEOUT (30 s for the keys command).
# External commands (sshd, systemctl, getent, setpriv, timeout, awk, paste) come from PATH.
set -euo pipefail

readonly prog=verify-login
user=
deploy_public_key=
home_device=
root_home=${DEVSERVER_ROOT_HOME:-/root}
keys_timeout=${DEVSERVER_KEYS_TIMEOUT:-30}
sshd_args=()
if [[ -n ${DEVSERVER_SSHD_CONFIG:-} ]]; then
	sshd_args=(-f "$DEVSERVER_SSHD_CONFIG")
fi

log() {
	printf '[%s] %s\n' "$prog" "$*" >&2
}

usage() {
	printf 'usage: %s --user USER [--deploy-public-key KEY] [--home-device PATH]\n' "$prog"
}

while (($# > 0)); do
	case $1 in
	--user | --deploy-public-key | --home-device)
		if (($# < 2)); then
			log "ERROR: $1 needs a value"
			exit 1
		fi
		case $1 in
		--user) user=$2 ;;
		--deploy-public-key) deploy_public_key=$2 ;;
		--home-device) home_device=$2 ;;
		esac
		shift 2
		;;
	-h | --help)
		usage
		exit 0
		;;
	*)
		log "ERROR: unknown argument '$1' ($(usage))"
		exit 1
		;;
	esac
done
if ! [[ $user =~ ^[a-z_][a-z0-9_-]{0,30}$ ]]; then
	log "ERROR: --user must be a login name ([a-z_][a-z0-9_-], at most 31 characters), got '$user'"
	exit 1
fi
deploy_key_material=
if [[ -n $deploy_public_key ]]; then
	read -r _ deploy_key_material _ <<<"$deploy_public_key" || true
	if ! [[ $deploy_key_material =~ ^[A-Za-z0-9+/]+=*$ ]]; then
		log "ERROR: --deploy-public-key must look like 'ssh-ed25519 AAAA... [comment]'"
		exit 1
	fi
fi

problems=()
problem() {
	log "FAIL: $*"
	problems+=("$*")
}

# Effective sshd settings for one connection, as "keyword value" lines (sshd -T lowercases keywords).
sshd_settings() {
	sshd -T "${sshd_args[@]}" -C "user=$1,host=localhost,addr=127.0.0.1"
}
setting() {
	local wanted=$1 keyword value
	while read -r keyword value; do
		if [[ $keyword == "$wanted" ]]; then
			printf '%s\n' "$value"
			return 0
		fi
	done <<<"$2"
	return 0
}

# openssh misc.c safe_path(): the canonical path is a regular file owned by root, and neither it
# nor any directory above it up to / is owned by another user or writable by group or others.
unsafe_reason() {
	local path=$1 real dir owner mode
	if ! real=$(readlink -e -- "$path"); then
		printf 'realpath %s failed' "$path"
		return 0
	fi
	if [[ ! -f $real ]]; then
		printf '%s is not a regular file' "$real"
		return 0
	fi
	read -r owner mode < <(stat -c '%u %a' -- "$real")
	if [[ $owner != 0 ]] || (((8#$mode & 8#022) != 0)); then
		printf 'bad ownership or modes for file %s' "$real"
		return 0
	fi
	dir=$real
	while [[ $dir != / ]]; do
		dir=$(dirname -- "$dir")
		read -r owner mode < <(stat -c '%u %a' -- "$dir")
		if [[ $owner != 0 ]] || (((8#$mode & 8#022) != 0)); then
			printf 'bad ownership or modes for directory %s' "$dir"
			return 0
		fi
	done
}

# --- sshd is serving ------------------------------------------------------------------------
# NixOS names the unit sshd.service; with startWhenNeeded it is socket-activated instead.
if ! systemctl is-active --quiet sshd.service && ! systemctl is-active --quiet sshd.socket; then
	problem "sshd is not active (neither sshd.service nor sshd.socket)"
fi

# --- the developer's account ------------------------------------------------------------------
home=
uid=
if passwd_line=$(getent passwd "$user"); then
	IFS=: read -r _ _ uid _ _ home shell <<<"$passwd_line"
	if [[ ! -x $shell ]]; then
		problem "$user's login shell '$shell' is not an executable file (sshd refuses such accounts)"
	fi
	# Two accounts on one uid share every file and process: sshd, ps and ls can show either name.
	uid_owners=$(getent passwd | awk -F: -v uid="$uid" '$3 == uid { print $1 }' | paste -sd, -) || true
	if [[ $uid_owners != "$user" ]]; then
		problem "uid $uid must belong to $user alone, but getent passwd lists it for: ${uid_owners:-nobody}"
	fi
	if [[ ! -d $home ]]; then
		problem "$user's home directory $home does not exist"
	elif [[ $(stat -c %u -- "$home") != "$uid" ]]; then
		problem "$user's home directory $home is owned by uid $(stat -c %u -- "$home"), not by $user (uid $uid)"
	fi
else
	problem "user $user does not exist"
fi

# --- /home is the volume ---------------------------------------------------------------------------
if [[ -n $home_device ]]; then
	home_source=$(findmnt --noheadings --nofsroot --output SOURCE --mountpoint /home || true)
	if [[ -z $home_source ]]; then
		problem "/home is not a mount point: the home volume $home_device is not mounted, so a login would land on the root disk"
	elif [[ $(readlink -f -- "$home_source") != "$(readlink -f -- "$home_device")" ]]; then
		problem "/home is mounted from $home_source, not from the home volume $home_device"
	elif [[ -n $home && $home == /home/* ]] &&
		[[ $(findmnt --noheadings --output TARGET --target "$home" || true) != /home ]]; then
		problem "$user's home $home is not on the /home volume"
	fi
fi

# --- the developer's key path, as sshd runs it --------------------------------------------------
if settings=$(sshd_settings "$user"); then
	if [[ $(setting pubkeyauthentication "$settings") != yes ]]; then
		problem "sshd public key authentication is off for $user"
	fi
	command_line=$(setting authorizedkeyscommand "$settings")
	command_user=$(setting authorizedkeyscommanduser "$settings")
	if [[ -z $command_line || $command_line == none ]]; then
		problem "sshd has no AuthorizedKeysCommand for $user, so GitHub keys are never asked for"
	else
		read -r -a words <<<"$command_line"
		argv=()
		for word in "${words[@]}"; do
			# sshd's tokens for this command: %% %u %U %h; others depend on the offered key.
			word=${word//%%/$'\001'}
			word=${word//%u/$user}
			word=${word//%U/$uid}
			word=${word//%h/$home}
			if [[ $word == *%* ]]; then
				problem "AuthorizedKeysCommand uses a token verify-login cannot emulate: '$word'"
			fi
			argv+=("${word//$'\001'/%}")
		done
		if [[ ${argv[0]} != /* ]]; then
			problem "AuthorizedKeysCommand path is not absolute: ${argv[0]} (sshd refuses it)"
		elif reason=$(unsafe_reason "${argv[0]}") && [[ -n $reason ]]; then
			# The very message sshd logs (misc.c subprocess) before offering no keys at all.
			problem "Unsafe AuthorizedKeysCommand \"${argv[0]}\": $reason"
		elif [[ -z $command_user || $command_user == none ]] || ! command_pw=$(getent passwd "$command_user"); then
			problem "AuthorizedKeysCommandUser '${command_user:-unset}' does not exist"
		else
			IFS=: read -r _ _ _ _ _ command_home _ <<<"$command_pw"
			# sshd gives the command an empty environment plus these (misc.c subprocess).
			keys_status=0
			keys=$(timeout "$keys_timeout" setpriv --reuid="$command_user" --regid="$(id -g "$command_user")" \
				--init-groups -- env -i PATH=/usr/bin:/bin:/usr/sbin:/sbin USER="$command_user" \
				LOGNAME="$command_user" HOME="$command_home" "${argv[@]}" </dev/null) || keys_status=$?
			key_count=0
			while read -r line; do
				[[ $line =~ ^(ssh-|ecdsa-|sk-)[A-Za-z0-9@.-]+\ [A-Za-z0-9+/=]+ ]] && key_count=$((key_count + 1))
			done <<<"$keys"
			if ((keys_status != 0)); then
				problem "AuthorizedKeysCommand for $user exited with status $keys_status"
			elif ((key_count == 0)); then
				problem "AuthorizedKeysCommand for $user printed no public key (GitHub down and no cached keys, or no keys on GitHub)"
			else
				log "ok: $key_count public key(s) for $user from ${argv[0]} run as $command_user"
			fi
		fi
	fi
else
	problem "sshd -T could not evaluate the sshd configuration for $user"
fi

# --- root's deploy path -------------------------------------------------------------------------
if root_settings=$(sshd_settings root); then
	permit_root_login=$(setting permitrootlogin "$root_settings")
	if [[ -z $permit_root_login || $permit_root_login == no ]]; then
		problem "sshd would refuse root logins (permitrootlogin '${permit_root_login:-unset}')"
	fi
	if [[ $(setting pubkeyauthentication "$root_settings") != yes ]]; then
		problem "sshd public key authentication is off for root"
	fi
	if [[ -n $deploy_key_material ]]; then
		read -r -a authorized_keys_files <<<"$(setting authorizedkeysfile "$root_settings")"
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
				log "ok: deploy key found in $path"
				break
			fi
		done
		if [[ $found != true ]]; then
			problem "the deploy public key is in none of root's authorized keys files (${authorized_keys_files[*]:-none})"
		fi
	fi
else
	problem "sshd -T could not evaluate the sshd configuration for root"
fi

if ((${#problems[@]} > 0)); then
	summary=
	for p in "${problems[@]}"; do
		summary+=${summary:+; }$p
	done
	printf '[%s] ERROR: login check failed: %s\n' "$prog" "$summary" >&2
	exit 2
fi
log "ok: $user and root can log in"
