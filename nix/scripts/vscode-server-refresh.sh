#!/usr/bin/env bash
# Removes VS Code servers on the kept /home that can no longer run on this machine, so the next
# Remote-SSH connection downloads a fresh one (which nixos-vscode-server's auto-fix then patches).
#
# Usage: vscode-server-refresh.sh INSTALL_DIR...   (e.g. ~/.vscode-server; run as the developer)
#
# Why: auto-fix-vscode-server skips every server directory that has a `.nixos-patched` marker. Its
# `node` is then a wrapper script naming /nix/store paths of the machine that patched it, and the
# directory name (Stable-<commit>) is the same for every architecture. After an arch switch (a new
# root disk) or once Nix GC removed those paths, the kept server fails on the first login.
# A server is stale when its `node` wrapper names a store path that does not exist, or when its
# Node.js binary (node.patched, or node itself) is an ELF file for another architecture.
# Only server directories are removed (a download cache); extensions and settings stay.
# Env (tests): DEVSERVER_MACHINE (`uname -m`).
set -euo pipefail

machine=${DEVSERVER_MACHINE:-$(uname -m)}
case $machine in
x86_64) wanted_elf=62 ;;
aarch64 | arm64) wanted_elf=183 ;;
*) wanted_elf= ;;
esac

# ELF e_machine (bytes 18-19, little-endian on both architectures), or nothing for a non-ELF file.
elf_machine() {
	local magic
	magic=$(head -c 4 -- "$1" 2>/dev/null | od -An -c | tr -d ' ') || return 0
	[[ $magic == '177ELF' ]] || return 0
	od -An -tu2 -j18 -N2 -- "$1" | tr -d ' '
}

# Prints why SERVER_DIR cannot run here, or nothing.
stale_reason() {
	local dir=$1 node=$1/node path binary found
	[[ -e $node || -L $node ]] || return 0
	if [[ -f $node ]] && [[ -z $(elf_machine "$node") ]]; then
		# A wrapper script: every store path it names must exist.
		while read -r path; do
			if [[ ! -e $path ]]; then
				printf 'its node wrapper names %s, which is not in this machine'"'"'s store' "$path"
				return 0
			fi
		done < <(grep -oE '/nix/store/[a-z0-9]{32}-[^/"'"'"' ]+' -- "$node" | sort -u)
	fi
	for binary in "$dir/node.patched" "$node"; do
		[[ -f $binary ]] || continue
		found=$(elf_machine "$binary")
		if [[ -n $found && -n $wanted_elf && $found != "$wanted_elf" ]]; then
			printf '%s is built for another architecture (ELF machine %s, this machine is %s)' "${binary##*/}" "$found" "$machine"
			return 0
		fi
	done
}

removed=0
for install in "$@"; do
	[[ -d $install ]] || continue
	# Older layout: INSTALL/bin/<commit>; current: INSTALL/cli/servers/<Stable-commit>/server.
	for server in "$install"/bin/*/ "$install"/cli/servers/*/server/; do
		[[ -d $server ]] || continue
		server=${server%/}
		reason=$(stale_reason "$server")
		[[ -n $reason ]] || continue
		doomed=$server
		[[ ${server##*/} == server ]] && doomed=${server%/server}
		rm -rf -- "$doomed"
		removed=$((removed + 1))
		echo "devserver: removed the VS Code server $doomed: $reason; VS Code installs it again at the next connection"
	done
done
echo "devserver: $removed stale VS Code server(s) removed"
