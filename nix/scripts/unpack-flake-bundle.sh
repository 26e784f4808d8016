#!/usr/bin/env bash
# Unpacks the shared flake Pulumi pushes from the operator's checkout (components/shared_flake.py)
# into a fresh directory. The bundle is text, so `pulumi preview --diff` shows every changed line:
#
#   # devserver flake bundle v1 sha256=<hex of everything after this line> files=<n> (...)
#   === <path relative to the flake> <0644|0755>
#   |<a line of the file, without its newline>
#   \ no newline at end of file        (only when the file's last line has none)
#
# Usage: unpack-flake-bundle.sh BUNDLE DEST
# DEST is replaced: removed, then made again with only the bundle's files. Exit 0 unpacked;
# 1 usage; 2 the bundle is damaged (wrong header, digest or a path outside DEST): DEST is untouched.
set -euo pipefail

readonly prog=unpack-flake-bundle
fail() {
	local code=$1
	shift
	printf '[%s] ERROR: %s\n' "$prog" "$*" >&2
	exit "$code"
}

(($# == 2)) || fail 1 "usage: $prog BUNDLE DEST"
bundle=$1
dest=$2
[[ -f $bundle ]] || fail 1 "$bundle is not a file"
[[ -n $dest && $dest != / ]] || fail 1 "DEST must be a directory to replace, got '$dest'"

IFS= read -r header <"$bundle" || fail 2 "$bundle is empty"
[[ $header =~ ^"# devserver flake bundle v1 sha256="([0-9a-f]{64})" files="([0-9]+)( |$) ]] ||
	fail 2 "$bundle does not start with a v1 bundle header"
want=${BASH_REMATCH[1]}
count=${BASH_REMATCH[2]}
got=$(tail -n +2 -- "$bundle" | sha256sum | cut -d' ' -f1)
[[ $got == "$want" ]] || fail 2 "$bundle is damaged: its body has sha256 $got, the header says $want"

# Unpack beside DEST and rename over it, so a failure half-way leaves the previous DEST.
work=$(mktemp -d -- "${dest%/}.unpack.XXXXXX")
trap 'rm -rf -- "$work"' EXIT
files=0
out=
open_file() {
	local path=$1 mode=$2
	# The same rule components/shared_flake.py applies before it pushes.
	[[ $path =~ ^[A-Za-z0-9_+][A-Za-z0-9._+-]*(/[A-Za-z0-9_+][A-Za-z0-9._+-]*)*$ ]] ||
		fail 2 "unsafe path '$path' in $bundle"
	[[ $mode == 0644 || $mode == 0755 ]] || fail 2 "mode '$mode' of $path is not 0644 or 0755"
	out=$work/$path
	[[ ! -e $out ]] || fail 2 "$path appears twice in $bundle"
	mkdir -p -- "$(dirname -- "$out")"
	: >"$out"
	chmod "$mode" -- "$out"
	files=$((files + 1))
}

{
	IFS= read -r _ # the header, checked above
	while IFS= read -r line; do
		case $line in
		'=== '*)
			read -r _ path mode <<<"$line"
			open_file "$path" "$mode"
			;;
		'|'*)
			[[ -n $out ]] || fail 2 "a content line before the first file header in $bundle"
			printf '%s\n' "${line:1}" >>"$out"
			;;
		'\ no newline at end of file')
			[[ -s $out ]] || fail 2 "a no-newline marker after an empty file in $bundle"
			truncate -s -1 -- "$out"
			;;
		*) fail 2 "unexpected line in $bundle: '${line:0:60}'" ;;
		esac
	done
} <"$bundle"
((files == count)) || fail 2 "$bundle holds $files files, its header says $count"

rm -rf -- "$dest"
mv -- "$work" "$dest"
chmod 0755 -- "$dest"
trap - EXIT
printf '[%s] unpacked %s files into %s\n' "$prog" "$files" "$dest" >&2
