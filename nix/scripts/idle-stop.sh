#!/usr/bin/env bash
# Power the machine off once no SSH or Session Manager session has been open and the CPU has been
# quiet for N minutes.
#
# Run every minute by a systemd timer. Every input is an environment variable so tests can fake it:
#   IDLE_STOP_MINUTES         minutes of idleness before poweroff (required, > 0)
#   IDLE_STOP_LOAD_THRESHOLD  1-minute load average at or below which the CPU counts as idle (0.5)
#   IDLE_STOP_LOADAVG_FILE    file in /proc/loadavg format (/proc/loadavg)
#   IDLE_STOP_SSH_PORT        sshd port for the default session count (22)
#   IDLE_STOP_SESSIONS_CMD    shell command printing one line per established SSH connection
#   IDLE_STOP_SSM_SESSIONS_CMD shell command printing one line per SSM Session Manager session
#                             (pgrep of ssm-session-worker, one per session); exit 1 with no
#                             output means none, as pgrep reports it
#   IDLE_STOP_DEPLOY_LOCK     the lock apply-flake.sh holds while deploying (/run/devserver/deploy.lock)
#   IDLE_STOP_UPGRADE_STATE_CMD shell command printing nixos-upgrade.service's ActiveState
#                             (systemctl show --property=ActiveState --value nixos-upgrade.service)
#   IDLE_STOP_POWEROFF_CMD    shell command that stops the machine (systemctl poweroff)
#   IDLE_STOP_STATE_FILE      where the idle-since timestamp lives (/run/devserver-idle-stop/idle-since)
#   IDLE_STOP_NOW             current time in epoch seconds (date +%s)
set -euo pipefail

log() { echo "idle-stop: $*"; }

minutes=${IDLE_STOP_MINUTES:-}
if ! [[ "$minutes" =~ ^[0-9]+$ ]] || ((minutes == 0)); then
  echo "idle-stop: IDLE_STOP_MINUTES must be a positive integer, got '${minutes}'" >&2
  exit 2
fi
threshold=${IDLE_STOP_LOAD_THRESHOLD:-0.5}
loadavg_file=${IDLE_STOP_LOADAVG_FILE:-/proc/loadavg}
ssh_port=${IDLE_STOP_SSH_PORT:-22}
sessions_cmd=${IDLE_STOP_SESSIONS_CMD:-"ss -Htn state established '( sport = :${ssh_port} )'"}
# amazon-ssm-agent runs one ssm-session-worker per Session Manager session (break-glass shell).
ssm_sessions_cmd=${IDLE_STOP_SSM_SESSIONS_CMD:-"pgrep -f '(^|/)ssm-session-worker( |\$)'"}
deploy_lock=${IDLE_STOP_DEPLOY_LOCK:-/run/devserver/deploy.lock}
upgrade_state_cmd=${IDLE_STOP_UPGRADE_STATE_CMD:-systemctl show --property=ActiveState --value nixos-upgrade.service}
poweroff_cmd=${IDLE_STOP_POWEROFF_CMD:-systemctl poweroff}
state_file=${IDLE_STOP_STATE_FILE:-/run/devserver-idle-stop/idle-since}
now=${IDLE_STOP_NOW:-$(date +%s)}

# When we cannot tell, the machine counts as busy: a wrong poweroff costs more than an idle hour.
if ! sessions_out=$(bash -c "$sessions_cmd"); then
  log "cannot count SSH sessions ($sessions_cmd failed); staying up"
  rm -f "$state_file"
  exit 0
fi
sessions=$(grep -c . <<<"$sessions_out" || true)
ssm_status=0
ssm_out=$(bash -c "$ssm_sessions_cmd") || ssm_status=$?
if ((ssm_status > 1)) || { ((ssm_status == 1)) && [[ -n $ssm_out ]]; }; then
  log "cannot count Session Manager sessions ($ssm_sessions_cmd exited $ssm_status); staying up"
  rm -f "$state_file"
  exit 0
fi
ssm_sessions=$(grep -c . <<<"$ssm_out" || true)

# A deployment (apply-flake.sh holds the deploy lock) or the nightly upgrade is work even when
# nobody is logged in and the CPU waits on the network: a poweroff half-way leaves a half-switched
# system.
# --shared: a probe, not a claim (the upgrade's guard also only probes, and waits briefly).
if [[ -e $deploy_lock ]] && ! flock --nonblock --shared "$deploy_lock" true; then
  log "a deployment holds $deploy_lock; staying up"
  rm -f "$state_file"
  exit 0
fi
upgrade_state=$(bash -c "$upgrade_state_cmd" 2>/dev/null || echo unknown)
if [[ $upgrade_state =~ ^(activating|active|deactivating|reloading)$ ]]; then
  log "nixos-upgrade.service is $upgrade_state; staying up"
  rm -f "$state_file"
  exit 0
fi

load1=""
if [[ -r "$loadavg_file" ]]; then
  read -r load1 _ <"$loadavg_file" || true
fi
if ! [[ "$load1" =~ ^[0-9]+(\.[0-9]+)?$ ]]; then
  log "cannot read load from $loadavg_file; staying up"
  rm -f "$state_file"
  exit 0
fi

if ((sessions > 0 || ssm_sessions > 0)) || awk -v l="$load1" -v t="$threshold" 'BEGIN { exit !(l > t) }'; then
  # Activity resets the clock.
  rm -f "$state_file"
  exit 0
fi

idle_since=""
if [[ -r "$state_file" ]]; then
  read -r idle_since <"$state_file" || true
fi
if ! [[ "$idle_since" =~ ^[0-9]+$ ]] || ((idle_since > now)); then
  mkdir -p "$(dirname "$state_file")"
  echo "$now" >"$state_file"
  log "idle (0 SSH and 0 Session Manager sessions, load $load1); powering off after $minutes minutes"
  exit 0
fi

idle_seconds=$((now - idle_since))
if ((idle_seconds >= minutes * 60)); then
  log "idle for $((idle_seconds / 60)) minutes (limit $minutes); powering off"
  rm -f "$state_file"
  bash -c "$poweroff_cmd"
fi
