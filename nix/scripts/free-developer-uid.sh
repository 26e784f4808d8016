#!/usr/bin/env bash
# Activation step, before the `users` script: frees the developer's uid from ssm-user.
#
# Servers deployed while the developer's uid defaulted to 1000 share it with ssm-user, which the
# image's amazon-ssm-agent created first. update-users-groups.pl keeps an existing account's uid,
# so neither would ever move. ssm-user is declared by the amazon-ssm-agent module, so dropping its
# passwd/shadow lines makes the users script create it again on a free uid (its home directory is
# chowned to the new uid; it holds nothing of the developer's). Any other account that shares the
# uid is only reported: verify-login.sh refuses the switch then.
#
# Usage: free-developer-uid.sh USER [ETC_DIR]   (ETC_DIR defaults to /etc; tests pass another)
set -euo pipefail

if [[ $# -lt 1 || $# -gt 2 ]]; then
	echo "usage: $0 USER [ETC_DIR]" >&2
	exit 2
fi
user=$1
etc=${2:-/etc}
passwd=$etc/passwd
shadow=$etc/shadow

[[ -f $passwd ]] || exit 0
uid=$(awk -F: -v u="$user" '$1 == u { print $3 }' "$passwd")
# A developer account that does not exist yet gets its declared uid.
[[ -n $uid ]] || exit 0

# Rewrites FILE without NAME's line, keeping its owner and mode, renamed over in one step.
drop_line() {
	local file=$1 name=$2 tmp
	[[ -f $file ]] || return 0
	tmp=$(mktemp -- "$file.devserver.XXXXXX")
	awk -F: -v n="$name" '$1 != n' "$file" >"$tmp"
	chmod --reference="$file" -- "$tmp"
	chown --reference="$file" -- "$tmp"
	mv -f -- "$tmp" "$file"
}

while IFS= read -r other; do
	[[ -n $other ]] || continue
	if [[ $other == ssm-user ]]; then
		drop_line "$passwd" ssm-user
		drop_line "$shadow" ssm-user
		echo "devserver: ssm-user shared uid $uid with $user; it is created again on a free uid"
	else
		echo "devserver: WARNING: $other shares uid $uid with $user; not changed (verify-login.sh will refuse this)" >&2
	fi
done < <(awk -F: -v u="$user" -v id="$uid" '$1 != u && $3 == id { print $1 }' "$passwd")
