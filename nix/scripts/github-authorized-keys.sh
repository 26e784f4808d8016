#!/usr/bin/env bash
# sshd AuthorizedKeysCommand: print the GitHub public keys of one user, falling back to a cached copy.
#
# Usage: github-authorized-keys.sh REQUESTED_USER LOCAL_USER GITHUB_USER CACHE_DIR [TIMEOUT_SECONDS [GITHUB_USER_ID]]
#
# Answers only when REQUESTED_USER (sshd's %u) is LOCAL_USER. A 200 or 404 from GitHub is
# authoritative (keys removed on GitHub are revoked here too); a timeout, network error or
# other HTTP status serves the last good copy so a GitHub outage cannot lock the user out.
#
# A login is a name GitHub frees on a rename; GITHUB_USER_ID (the numeric id, `curl
# https://api.github.com/users/<login>`) pins the account: keys are offered only while
# GET /users/<login> answers that id (the last good answer counts during an outage).
#
# sshd asks once per offered key and VS Code gives up after 15 s: a cache younger than
# FRESH_SECONDS answers at once, and a stale one is refreshed with a short timeout.
#
# Test overrides (sshd runs this with an empty env): DEVSERVER_GITHUB_URL (https://github.com),
# DEVSERVER_GITHUB_API_URL (https://api.github.com), DEVSERVER_KEYS_FRESH_SECONDS (60).
# Only an explicit http:// override allows plain HTTP; an https URL never follows a redirect to http.
set -euo pipefail

if [[ $# -lt 4 || $# -gt 6 ]]; then
  echo "usage: $0 REQUESTED_USER LOCAL_USER GITHUB_USER CACHE_DIR [TIMEOUT_SECONDS [GITHUB_USER_ID]]" >&2
  exit 2
fi
requested_user=$1
local_user=$2
github_user=$3
cache_dir=$4
timeout_seconds=${5:-5}
github_user_id=${6:-}
base_url=${DEVSERVER_GITHUB_URL:-https://github.com}
api_url=${DEVSERVER_GITHUB_API_URL:-https://api.github.com}
fresh_seconds=${DEVSERVER_KEYS_FRESH_SECONDS:-60}
# A stale cache is refreshed with at most this wait, so a slow GitHub costs seconds, not a login.
stale_timeout=2

log() { echo "github-authorized-keys: $*" >&2; }

# Any other login gets no keys from us (sshd then denies it).
if [[ "$requested_user" != "$local_user" ]]; then
  exit 0
fi
if [[ -n "$github_user_id" && ! "$github_user_id" =~ ^[0-9]+$ ]]; then
  log "GitHub user id '$github_user_id' is not a number; no keys"
  exit 0
fi

cache_file="$cache_dir/$github_user.keys"
# The GitHub user id GET /users/<login> last answered (written only when an id is pinned).
id_file="$cache_dir/$github_user.id"
# Touched after a failed refresh: GitHub is not asked again until the cache would be stale anyway.
tried_file="$cache_dir/$github_user.tried"
writable=false
[[ -d "$cache_dir" && -w "$cache_dir" ]] && writable=true

age() { # seconds since FILE was modified; a large number when it is missing
  local mtime
  mtime=$(stat -c %Y "$1" 2>/dev/null) || {
    echo 999999999
    return
  }
  echo $(($(date +%s) - mtime))
}

# The id check (when pinned) is what makes the cache trustworthy at all.
id_ok() {
  [[ -z "$github_user_id" ]] || [[ -r "$id_file" && "$(cat "$id_file")" == "$github_user_id" ]]
}

serve_cache() { # $1: why the cache is used (empty: say nothing)
  if [[ -r "$cache_file" ]] && id_ok; then
    [[ -n "$1" ]] && log "$1; using cached keys"
    cat "$cache_file"
  elif [[ -r "$cache_file" ]]; then
    log "${1:-cache}: cached keys not offered: $github_user is not verified as GitHub user id $github_user_id"
  else
    log "${1:-cache}: no cached keys in $cache_dir"
  fi
}

forget() {
  rm -f "$cache_file" "$id_file" "$tried_file"
}

# write_atomic FILE: stdin to FILE through a temporary file beside it (never in /tmp); best
# effort: a full disk leaves the old file and no temporary one, and never blocks a login.
write_atomic() {
  local tmp
  tmp=$(mktemp "$cache_dir/.$github_user.XXXXXXXX" 2>/dev/null) || {
    log "cache $1 not updated (cannot create a temporary file)"
    return 0
  }
  if ! { cat >"$tmp" && chmod 0644 "$tmp" && mv -f "$tmp" "$1"; } 2>/dev/null; then
    rm -f "$tmp"
    log "cache $1 not updated (disk full or read-only?)"
  fi
  return 0
}

# get URL TIMEOUT: sets $status and $body; no file anywhere.
get() {
  local proto='=https' out
  # Plain HTTP only when a test override names an http:// URL; redirects stay on the same terms.
  [[ "$1" == http://* ]] && proto='=http'
  out=$(curl --silent --location --proto "$proto" --proto-redir "$proto" \
    --connect-timeout "$2" --max-time "$2" \
    --header 'Accept: application/vnd.github+json' \
    --write-out '\n%{http_code}' "$1" 2>/dev/null) || true
  status=${out##*$'\n'}
  body=${out%$'\n'*}
  [[ "$out" == *$'\n'* && "$status" =~ ^[0-9]{3}$ ]] || {
    status=000
    body=
  }
}

# A fresh cache answers at once; so does one whose refresh failed a moment ago.
if [[ -r "$cache_file" ]] && id_ok &&
  { (($(age "$cache_file") < fresh_seconds)) || (($(age "$tried_file") < fresh_seconds)); }; then
  cat "$cache_file"
  exit 0
fi

timeout=$timeout_seconds
if [[ -r "$cache_file" ]] && ((stale_timeout < timeout)); then
  timeout=$stale_timeout
fi

refresh_failed() { # $1: why
  $writable && { touch "$tried_file" 2>/dev/null || true; }
  serve_cache "$1"
  exit 0
}

if [[ -n "$github_user_id" ]]; then
  get "$api_url/users/$github_user" "$timeout"
  case "$status" in
  200)
    # The user object's top-level "id" (GitHub REST "Get a user").
    seen=$(printf '%s' "$body" | grep -oE '"id"[[:space:]]*:[[:space:]]*[0-9]+' | head -n 1 | grep -oE '[0-9]+$' || true)
    if [[ "$seen" != "$github_user_id" ]]; then
      forget
      log "GitHub login $github_user now belongs to user id ${seen:-unknown}, not the pinned $github_user_id (renamed account?); no keys"
      exit 0
    fi
    if $writable; then
      printf '%s' "$seen" | write_atomic "$id_file"
    fi
    ;;
  404)
    forget
    log "$api_url/users/$github_user answered 404 (account renamed or deleted); no keys"
    exit 0
    ;;
  *)
    refresh_failed "GitHub API unreachable (HTTP $status) checking user id $github_user_id"
    ;;
  esac
fi

get "$base_url/$github_user.keys" "$timeout"
case "$status" in
200)
  # Keep only lines that look like public keys; GitHub answers one per line.
  keys=$(printf '%s\n' "$body" | grep -E '^(ssh-|ecdsa-|sk-)[A-Za-z0-9@.-]+ [A-Za-z0-9+/=]+' || true)
  [[ -n "$keys" ]] && keys+=$'\n'
  # Keys first: a cache that cannot be written must never lock the developer out.
  printf '%s' "$keys"
  if $writable; then
    printf '%s' "$keys" | write_atomic "$cache_file"
    rm -f "$tried_file"
  fi
  ;;
404)
  # The account is gone or renamed: forget its keys.
  forget
  log "$base_url/$github_user.keys answered 404; no keys"
  ;;
*)
  refresh_failed "GitHub unreachable (HTTP $status)"
  ;;
esac
