#!/usr/bin/env bash
# sshd AuthorizedKeysCommand: print the GitHub public keys of one user, falling back to a cached copy.
#
# Usage: github-authorized-keys.sh REQUESTED_USER LOCAL_USER GITHUB_USER CACHE_DIR [TIMEOUT_SECONDS]
#
# Answers only when REQUESTED_USER (sshd's %u) is LOCAL_USER. A 200 or 404 from GitHub is
# authoritative (keys removed on GitHub are revoked here too); a timeout, network error or
# other HTTP status serves the last good copy so a GitHub outage cannot lock the user out.
# DEVSERVER_GITHUB_URL overrides https://github.com for tests (sshd runs this with an empty env).
set -euo pipefail

if [[ $# -lt 4 || $# -gt 5 ]]; then
  echo "usage: $0 REQUESTED_USER LOCAL_USER GITHUB_USER CACHE_DIR [TIMEOUT_SECONDS]" >&2
  exit 2
fi
requested_user=$1
local_user=$2
github_user=$3
cache_dir=$4
timeout_seconds=${5:-5}
base_url=${DEVSERVER_GITHUB_URL:-https://github.com}

# Any other login gets no keys from us (sshd then denies it).
if [[ "$requested_user" != "$local_user" ]]; then
  exit 0
fi

cache_file="$cache_dir/$github_user.keys"
body=$(mktemp)
trap 'rm -f "$body"' EXIT

status=$(curl --silent --show-error --location --proto '=https,http' \
  --connect-timeout "$timeout_seconds" --max-time "$timeout_seconds" \
  --output "$body" --write-out '%{http_code}' \
  "$base_url/$github_user.keys" 2>/dev/null) || status=000

case "$status" in
200)
  # Keep only lines that look like public keys; GitHub answers one per line.
  grep -E '^(ssh-|ecdsa-|sk-)[A-Za-z0-9@.-]+ [A-Za-z0-9+/=]+' "$body" >"$body.keys" || true
  if [[ -w "$cache_dir" ]]; then
    mv -f "$body.keys" "$cache_file.tmp" && mv -f "$cache_file.tmp" "$cache_file"
    cat "$cache_file"
  else
    cat "$body.keys"
    rm -f "$body.keys"
  fi
  ;;
404)
  # The account is gone or renamed: forget its keys.
  rm -f "$cache_file"
  echo "github-authorized-keys: $base_url/$github_user.keys answered 404; no keys" >&2
  ;;
*)
  if [[ -r "$cache_file" ]]; then
    echo "github-authorized-keys: GitHub unreachable (HTTP $status); using cached keys" >&2
    cat "$cache_file"
  else
    echo "github-authorized-keys: GitHub unreachable (HTTP $status) and no cached keys in $cache_dir" >&2
  fi
  ;;
esac
