#!/usr/bin/env bash
# home-manager's backupCommand on the dev server: moves a dotfile the developer edited (a real file
# where home-manager wants its link) aside under a name that is never taken, and says where.
#
# Usage: home-backup.sh TARGET   (home-manager runs `$HOME_MANAGER_BACKUP_COMMAND "$targetPath"`)
#
# Why not backupFileExtension: home-manager refuses to back up over an existing TARGET.<ext>
# ("would be clobbered", modules/files/check-link-targets.sh), so the second edit of the same file
# failed home-manager-<user>.service, every switch and every nightly upgrade; overwriteBackup
# would silently drop the first edit instead. Here each backup gets its own name:
#   TARGET.hm-backup-<UTC time>[-N]
# Every move is printed (the unit's journal: journalctl -u home-manager-<user>) and appended to
# ${XDG_STATE_HOME:-~/.local/state}/devserver/moved-dotfiles.log, which the login shell shows once.
# Env (tests): DEVSERVER_BACKUP_TIME (UTC stamp, default `date -u +%Y%m%dT%H%M%SZ`).
set -euo pipefail

if (($# != 1)) || [[ -z $1 ]]; then
	echo "usage: $0 TARGET" >&2
	exit 2
fi
target=$1
stamp=${DEVSERVER_BACKUP_TIME:-$(date -u +%Y%m%dT%H%M%SZ)}
backup=$target.hm-backup-$stamp
n=1
# -e or -L: a dangling symlink of that name is taken too.
while [[ -e $backup || -L $backup ]]; do
	n=$((n + 1))
	backup=$target.hm-backup-$stamp-$n
done
# --no-clobber: a name taken between the check and the move is never overwritten.
mv --no-clobber -- "$target" "$backup"
if [[ -e $target || -L $target ]]; then
	echo "devserver: could not move $target aside (to $backup); it is left in place" >&2
	exit 1
fi
message="home-manager manages ${target/#"$HOME"/\~}: your version was moved to ${backup/#"$HOME"/\~}"
echo "devserver: $message"
state_dir=${XDG_STATE_HOME:-$HOME/.local/state}/devserver
if mkdir -p -- "$state_dir" 2>/dev/null; then
	printf '%s %s\n' "$stamp" "$message" >>"$state_dir/moved-dotfiles.log" || true
fi
