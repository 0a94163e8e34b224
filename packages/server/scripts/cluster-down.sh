#!/usr/bin/env bash
# Stops what packages/server/scripts/cluster-up.sh started, by the PID files in $HERALD_RUN_DIR (default
# /tmp/herald-cluster): nginx first (no new connections), then each node with SIGTERM (a graceful
# drain: clients get 4001 and reconnect elsewhere), SIGKILL after HERALD_STOP_TIMEOUT seconds.
set -uo pipefail

RUN="${HERALD_RUN_DIR:-/tmp/herald-cluster}"
TIMEOUT="${HERALD_STOP_TIMEOUT:-15}"

# Only signal a PID that is still the process we started (PIDs get reused).
ours() { ps -p "$1" -o args= 2>/dev/null | grep -q "$2"; }

stop_pidfile() { # pidfile, pattern, signal
  local pidfile="$1" pattern="$2" sig="$3" pid
  [ -f "$pidfile" ] || return 0
  pid="$(cat "$pidfile")"
  if ! ours "$pid" "$pattern"; then rm -f "$pidfile"; return 0; fi
  kill "-$sig" "$pid"
  for _ in $(seq 1 $((TIMEOUT * 10))); do ours "$pid" "$pattern" || break; sleep 0.1; done
  if ours "$pid" "$pattern"; then echo "pid $pid still running after ${TIMEOUT}s: SIGKILL"; kill -KILL "$pid"; fi
  rm -f "$pidfile"
  echo "stopped $pattern (pid $pid)"
}

stop_pidfile "$RUN/nginx/logs/nginx.pid" "nginx" QUIT
for i in 1 2 3; do stop_pidfile "$RUN/node$i.pid" "herald.js serve" TERM & done
wait
