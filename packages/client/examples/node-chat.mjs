// Runnable example (Node 20): subscribe to a channel, publish through the outbox, call a server
// method, and watch the client survive a server restart.
//
//   npm run build && npm start            # in the repository root: a dev server on :8080
//   node client/examples/node-chat.mjs    # in another terminal
//   curl -s localhost:8080/api/v1/publish -H 'authorization: Bearer dev-api-key' \
//        -H 'content-type: application/json' -d '{"channel":"demo:chat","eventType":"say","payload":{"text":"hi"}}'
//
// Stop and restart the server: the client reconnects, resubscribes and recovers what it missed.
import WebSocket from 'ws';
import { HeraldClient } from '../dist/herald-client.js';

const url = process.env.HERALD_URL ?? 'ws://127.0.0.1:8080/ws';
const client = new HeraldClient({ url, WebSocket, token: process.env.HERALD_TOKEN });

client.on('state', (s) => console.log('state:', s.status, s.status === 'reconnecting' ? `(retry ${s.attempt} in ${s.delay} ms)` : ''));
client.on('error', (e) => console.warn('error:', e.code, e.message));
client.on('message', (m, ctx) => console.log(`[${ctx.target}]`, m.eventType, m.payload));

const chat = client.subscribe('demo:chat');
chat.on('message', (m, ctx) => console.log(`#demo:chat @${ctx.offset}`, m.eventType, m.payload));
chat.on('recoveryFailed', () => console.log('missed messages could not be recovered: reload state here'));

await client.connect();
console.log('echo says:', await client.request('echo', { ping: Date.now() }, { timeout: 2000 }));
const result = await client.publish('demo:chat', 'say', { text: 'hello from node' });
console.log('published at offset', result.position?.offset);

process.on('SIGINT', () => {
  client.close();
  process.exit(0);
});
