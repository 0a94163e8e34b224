#!/usr/bin/env bash
# Per-node figures behind the capacity model in docs/cluster.md, measured on loopback and bounded:
#  - RSS and heap per idle WebSocket connection (one node, engine redis, N connections, each
#    authenticated and subscribed to one of 100 channels);
#  - Redis commands per idle connection per second (presence refresh) and Redis memory per
#    connection;
#  - Redis commands per publish, by pattern (channel, user, broadcast), from INFO commandstats
#    deltas (the same numbers `redis-cli info commandstats` prints).
# It starts its own redis-server (port $MEASURE_REDIS_PORT, no persistence) and one Herald node
# (port $MEASURE_PORT), and stops both by PID on exit. Nothing else is touched.
#
#   packages/server/scripts/cluster-measure.sh              # N=5000
#   MEASURE_CONNECTIONS=2000 packages/server/scripts/cluster-measure.sh
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
N="${MEASURE_CONNECTIONS:-5000}"
PORT="${MEASURE_PORT:-8095}"
RPORT="${MEASURE_REDIS_PORT:-6395}"
PUBLISHES="${MEASURE_PUBLISHES:-200}"
IDLE_S="${MEASURE_IDLE_SECONDS:-20}"
RUN="$(mktemp -d /tmp/herald-measure.XXXXXX)"
[ "$N" -le 10000 ] || { echo "MEASURE_CONNECTIONS is capped at 10000 (loopback, bounded)" >&2; exit 1; }
[ -f "$REPO/dist/cli/herald.js" ] || (cd "$REPO/../.." && npm run build --silent)

NPORT="${MEASURE_NATS_PORT:-4295}"
NMPORT="${MEASURE_NATS_MONITOR_PORT:-8295}"
REDIS_PID=""; HERALD_PID=""; NATS_PID=""
cleanup() {
  [ -n "$HERALD_PID" ] && kill -TERM "$HERALD_PID" 2>/dev/null || true
  [ -n "$NATS_PID" ] && kill -TERM "$NATS_PID" 2>/dev/null || true
  [ -n "$REDIS_PID" ] && kill -TERM "$REDIS_PID" 2>/dev/null || true
  wait 2>/dev/null || true
}
trap cleanup EXIT

redis-server --port "$RPORT" --bind 127.0.0.1 --save '' --appendonly no --daemonize no >"$RUN/redis.log" 2>&1 &
REDIS_PID=$!
for _ in $(seq 1 50); do redis-cli -p "$RPORT" ping >/dev/null 2>&1 && break; sleep 0.1; done

SECRET=measure-secret-0123456789abcdef-0123456789
KEY=measure-api-key
start_herald() { # extra --set flags
  (cd "$REPO" && exec node dist/cli/herald.js serve --port "$PORT" --host 127.0.0.1 --log-level warn \
    --set engine.type=redis --set "engine.redis.url=redis://127.0.0.1:$RPORT" --set engine.redis.prefix=m \
    --set "auth.jwt.hmacSecret=$SECRET" --set "api.keys=$KEY" --set server.nodeName=measure \
    --set limits.maxConnections=20000 --set limits.maxConnectionsPerIp=20000 "$@" >>"$RUN/herald.log" 2>&1) &
  HERALD_PID=$!
  for _ in $(seq 1 150); do curl -sf "http://127.0.0.1:$PORT/readyz" >/dev/null 2>&1 && break; sleep 0.1; done
}
stop_herald() { kill -TERM "$HERALD_PID"; wait "$HERALD_PID" 2>/dev/null || true; HERALD_PID=""; }

cd "$REPO"
measure() { node --input-type=module - "$1" "$N" "$PORT" "$RPORT" "$HERALD_PID" "$SECRET" "$KEY" "$PUBLISHES" "$IDLE_S" <<'JS'
import { readFileSync } from 'node:fs';
import { Redis } from 'ioredis';
import { SignJWT } from 'jose';
import { WebSocket } from 'ws';

const [mode, n, port, rport, pid, secret, key, publishes, idleS] = process.argv.slice(2);
const N = Number(n), P = Number(publishes);
const redis = new Redis(Number(rport), '127.0.0.1');
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const rssKiB = () => Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))[1]);
const stats = async () => (await fetch(`http://127.0.0.1:${port}/api/v1/stats`, { headers: { authorization: `Bearer ${key}` } })).json();
const token = (sub) => new SignJWT({ channels: ['*'] }).setProtectedHeader({ alg: 'HS256' }).setSubject(sub).setIssuedAt().setExpirationTime('1h').sign(new TextEncoder().encode(secret));
async function commandstats() {
  const out = {};
  for (const line of (await redis.info('commandstats')).split('\n')) {
    const m = /^cmdstat_([^:]+):calls=(\d+)/.exec(line);
    if (m) out[m[1]] = Number(m[2]);
  }
  return out;
}
const delta = (a, b, div) => Object.fromEntries(Object.keys(b).map((k) => [k, (b[k] - (a[k] ?? 0)) / div]).filter(([k, v]) => v > 0 && !['info', 'client|setname', 'client', 'ping'].includes(k)));
const sum = (o) => Object.values(o).reduce((x, y) => x + y, 0);
async function varz() {
  const v = await (await fetch(`http://127.0.0.1:${process.env.NMPORT}/varz`)).json();
  return { in_msgs: v.in_msgs, out_msgs: v.out_msgs };
}
const usedMemory = async () => Number(/used_memory:(\d+)/.exec(await redis.info('memory'))[1]);

async function open(sub, channel) {
  const ws = new WebSocket(`ws://127.0.0.1:${port}/ws`);
  ws.on('error', () => {});
  await new Promise((res, rej) => { ws.once('open', res); ws.once('error', rej); });
  const t = await token(sub);
  const reply = (id) => new Promise((res) => { const on = (d) => { const f = JSON.parse(String(d)); if (f.id === id) { ws.off('message', on); res(f); } }; ws.on('message', on); });
  ws.send(JSON.stringify({ type: 'connect', id: 1, token: t }));
  if ((await reply(1)).type !== 'connected') throw new Error('connect failed');
  if (channel) { ws.send(JSON.stringify({ type: 'subscribe', id: 2, channel })); await reply(2); }
  ws.on('message', (d) => { if (String(d) === '{"type":"ping"}') ws.send('{"type":"pong"}'); });
  return ws;
}
async function publish(body) {
  const r = await fetch(`http://127.0.0.1:${port}/api/v1/publish`, { method: 'POST', headers: { 'content-type': 'application/json', authorization: `Bearer ${key}` }, body: JSON.stringify(body) });
  if (r.status !== 200) throw new Error(`publish ${r.status}`);
}

if (mode === 'nats-publish') {
  // The same publish patterns over engine nats: messages into / out of nats-server per publish,
  // from its monitoring endpoint (/varz in_msgs, out_msgs; JetStream API requests and acks count).
  const socks = [];
  for (let k = 0; k < 50; k++) socks.push(await open(`sub${k}`, 'm.7'));
  for (let k = 0; k < 10; k++) socks.push(await open(`user${k}`));
  await sleep(500);
  const patterns = [
    ['channel (50 subscribers)', (i) => ({ channel: 'm.7', eventType: 'e', payload: { i } })],
    ['channel (no subscriber)', (i) => ({ channel: 'm.empty', eventType: 'e', payload: { i } })],
    ['user (online)', (i) => ({ user: `user${i % 10}`, eventType: 'e', payload: { i } })],
    ['broadcast', (i) => ({ broadcast: true, eventType: 'e', payload: { i } })],
  ];
  for (const [name, body] of patterns) {
    const a = await varz();
    for (let i = 0; i < P; i++) await publish(body(i));
    await sleep(200);
    const b = await varz();
    console.log(`per publish, ${name}: ${((b.in_msgs - a.in_msgs) / P).toFixed(2)} msgs into nats-server, ${((b.out_msgs - a.out_msgs) / P).toFixed(2)} out`);
  }
  for (const ws of socks) ws.terminate();
  await redis.quit();
  process.exit(0);
}

if (mode === 'publish') {
  // Commands per publish do not depend on how many connections there are (fan-out is local), so
  // this phase uses 60 connections on a node whose presence refresh is made rare
  // (presenceTtlMs 1 h): nothing but the publishes moves the counters.
  const socks = [];
  for (let k = 0; k < 50; k++) socks.push(await open(`sub${k}`, 'm:7'));
  for (let k = 0; k < 10; k++) socks.push(await open(`user${k}`));
  await sleep(500);
  const patterns = [
    ['channel (50 subscribers)', (i) => ({ channel: 'm:7', eventType: 'e', payload: { i } })],
    ['channel (no subscriber)', (i) => ({ channel: 'm:empty', eventType: 'e', payload: { i } })],
    ['user (online)', (i) => ({ user: `user${i % 10}`, eventType: 'e', payload: { i } })],
    ['user (at-least-once, inbox)', (i) => ({ user: `user${i % 10}`, eventType: 'e', payload: { i }, delivery: 'at-least-once' })],
    ['broadcast', (i) => ({ broadcast: true, eventType: 'e', payload: { i } })],
  ];
  for (const [name, body] of patterns) {
    const a = await commandstats();
    for (let i = 0; i < P; i++) await publish(body(i));
    await sleep(200);
    const b = await commandstats();
    const d = delta(a, b, P);
    console.log(`per publish, ${name}: ${sum(d).toFixed(2)} Redis commands ${JSON.stringify(d)}`);
  }
  for (const ws of socks) ws.terminate();
  await redis.quit();
  process.exit(0);
}

// Warm up (JIT, first allocations), then the baseline.
const warm = await open('warm', 'm:warm');
for (let i = 0; i < 50; i++) await publish({ channel: 'm:warm', eventType: 'w', payload: i });
await sleep(1000);
const rss0 = rssKiB(), heap0 = (await stats()).heapUsedBytes, mem0 = await usedMemory();
const t0 = Date.now();
const sockets = [];
for (let i = 0; i < N; i += 200) {
  const batch = [];
  for (let k = i; k < Math.min(N, i + 200); k++) batch.push(open(`user${k}`, `m:${k % 100}`));
  sockets.push(...(await Promise.all(batch)));
}
const openMs = Date.now() - t0;
await sleep(3000);
const rss1 = rssKiB(), s1 = await stats(), mem1 = await usedMemory();
console.log(`connections: ${s1.connections} open (${N} measured + 1 warm-up), opened in ${openMs} ms`);
console.log(`node RSS: ${(rss0 / 1024).toFixed(1)} MiB -> ${(rss1 / 1024).toFixed(1)} MiB = ${((rss1 - rss0) * 1024 / N / 1024).toFixed(1)} KiB per idle connection`);
console.log(`node heap used: ${((s1.heapUsedBytes - heap0) / N / 1024).toFixed(1)} KiB per connection`);
console.log(`Redis used_memory: ${((mem1 - mem0) / N).toFixed(0)} bytes per connection (presence)`);

const c0 = await commandstats();
await sleep(Number(idleS) * 1000);
const c1 = await commandstats();
const idle = delta(c0, c1, Number(idleS) * N);
console.log(`idle Redis commands per connection per second: ${sum(idle).toFixed(4)} ${JSON.stringify(idle)}`);

for (const ws of sockets) ws.terminate();
warm.terminate();
await redis.quit();
JS
}

echo "== commands per publish (presence refresh made rare) =="
start_herald --set engine.redis.presenceTtlMs=3600000
measure publish
stop_herald
if command -v nats-server >/dev/null 2>&1; then
  echo "== NATS messages per publish (engine nats, one node) =="
  nats-server -a 127.0.0.1 -p "$NPORT" -m "$NMPORT" -js -sd "$RUN/js" >"$RUN/nats.log" 2>&1 &
  NATS_PID=$!
  for _ in $(seq 1 50); do curl -sf "http://127.0.0.1:$NMPORT/varz" >/dev/null 2>&1 && break; sleep 0.1; done
  start_herald --set engine.type=nats --set "engine.nats.servers=nats://127.0.0.1:$NPORT" --set engine.nats.prefix=m
  NMPORT="$NMPORT" measure nats-publish
  stop_herald
  kill -TERM "$NATS_PID"; wait "$NATS_PID" 2>/dev/null || true; NATS_PID=""
fi
echo "== $N idle connections (default presenceTtlMs 30 s: refresh every 10 s) =="
start_herald
measure idle
