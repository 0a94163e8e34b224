#!/usr/bin/env bash
# Starts the three-node example cluster (packages/server/configs/cluster-node{1,2,3}.json, engine redis, ports
# 8081-8083) and nginx in front of it (deploy/nginx/herald.conf: HTTP + WebSocket on :8080).
# PID files and logs go to $HERALD_RUN_DIR (default /tmp/herald-cluster); packages/server/scripts/cluster-down.sh
# stops exactly those processes. See docs/cluster.md.
#
#   packages/server/scripts/cluster-up.sh                  # L7 (HTTP/WebSocket aware) on :8080
#   HERALD_NGINX_L4=1 packages/server/scripts/cluster-up.sh   # plus the L4 stream{} listener on :8090
#   HERALD_NO_NGINX=1 packages/server/scripts/cluster-up.sh   # nodes only
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
RUN="${HERALD_RUN_DIR:-/tmp/herald-cluster}"
CLI="$REPO/dist/cli/herald.js"
mkdir -p "$RUN"

if [ ! -f "$CLI" ]; then
  echo "building Herald (npm run build)…"
  (cd "$REPO/../.." && npm run build --silent)
fi

if command -v redis-cli >/dev/null 2>&1; then
  redis-cli -u "${HERALD_REDIS_URL:-redis://127.0.0.1:6379}" ping >/dev/null 2>&1 || { echo "Redis does not answer at ${HERALD_REDIS_URL:-redis://127.0.0.1:6379}; start it first" >&2; exit 1; }
fi

alive() { [ -f "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }

for i in 1 2 3; do
  pidfile="$RUN/node$i.pid"
  if alive "$pidfile"; then echo "node$i already running (pid $(cat "$pidfile"))"; continue; fi
  log="$RUN/node$i.log"
  : > "$log"
  (cd "$REPO" && exec node "$CLI" serve --config "configs/cluster-node$i.json" >>"$log" 2>&1) &
  echo $! > "$pidfile"
  for _ in $(seq 1 150); do
    grep -q 'Herald listening' "$log" && break
    if ! alive "$pidfile"; then echo "node$i exited during start-up:" >&2; tail -5 "$log" >&2; exit 1; fi
    sleep 0.1
  done
  grep -q 'Herald listening' "$log" || { echo "node$i did not start within 15 s (see $log)" >&2; exit 1; }
  echo "node$i up on 127.0.0.1:808$i (pid $(cat "$pidfile"), log $log)"
done

if [ "${HERALD_NO_NGINX:-}" = "1" ]; then exit 0; fi
command -v nginx >/dev/null 2>&1 || { echo "nginx not found (Debian: apt-get install nginx); nodes are up without it" >&2; exit 1; }
NGX="$RUN/nginx"
mkdir -p "$NGX/logs" "$NGX/tmp"
CONF="$REPO/../../deploy/nginx/herald.conf"
if [ "${HERALD_NGINX_L4:-}" = "1" ]; then
  sed 's/^#L4 //' "$CONF" > "$NGX/nginx-herald-l4.conf"
  CONF="$NGX/nginx-herald-l4.conf"
fi
echo "$CONF" > "$RUN/nginx.conf.path"
if alive "$NGX/logs/nginx.pid"; then
  echo "nginx already running (pid $(cat "$NGX/logs/nginx.pid"))"
else
  nginx -p "$NGX" -c "$CONF" -t -q
  nginx -p "$NGX" -c "$CONF"
  for _ in $(seq 1 50); do alive "$NGX/logs/nginx.pid" && break; sleep 0.1; done
  echo "nginx up: http://127.0.0.1:8080 (ws://127.0.0.1:8080/ws)$([ "${HERALD_NGINX_L4:-}" = "1" ] && echo ', L4 on :8090') (pid $(cat "$NGX/logs/nginx.pid"))"
fi
