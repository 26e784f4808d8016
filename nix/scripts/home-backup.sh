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
# Never give up on a taken name: after this command, success or not, home-manager's link step runs
# `ln -Tsf` over TARGET (modules/files.nix linkGeneration), so a file left in place would be lost.
for ((n = 1; ; n++)); do
	backup=$target.hm-backup-$stamp
	((n == 1)) || backup=$backup-$n
	# -e or -L: a dangling symlink of that name is taken too.
	[[ -e $backup || -L $backup ]] && continue
	# -T --no-clobber: a name taken between the check and the move is never overwritten (nor
	# entered, were it a directory); the next name is tried.
	mv -T --no-clobber -- "$target" "$backup" 2>/dev/null || true
	[[ -e $target || -L $target ]] || break
	if [[ ! -e $backup && ! -L $backup ]]; then
		# Not a taken name: TARGET's directory refuses changes, so the link step's `ln` fails too.
		echo "devserver: could not move $target aside (to $backup)" >&2
		exit 1
	fi
done
message="home-manager manages ${target/#"$HOME"/\~}: your version was moved to ${backup/#"$HOME"/\~}"
echo "devserver: $message"
state_dir=${XDG_STATE_HOME:-$HOME/.local/state}/devserver
if mkdir -p -- "$state_dir" 2>/dev/null; then
	printf '%s %s\n' "$stamp" "$message" >>"$state_dir/moved-dotfiles.log" || true
fi
