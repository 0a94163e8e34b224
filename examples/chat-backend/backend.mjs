/**
 * A small chat backend that Herald asks and tells: it answers Herald's proxy hooks (who a
 * connection is, who may join a room, what a chat line becomes, two RPC methods, token refresh)
 * when Herald signed the request, receives Herald's signed webhooks (who is online), and publishes through the server SDK (the
 * "joined" notices). See README.md beside this file.
 *
 * Run:  HERALD_URL=http://127.0.0.1:8080 HERALD_API_KEY=… WEBHOOK_SECRET=… HOOK_SECRET=… node backend.mjs
 */
import { randomBytes } from 'node:crypto';
import { createServer } from 'node:http';
import { pathToFileURL } from 'node:url';
import { HeraldError, HeraldServerClient, proxyAnswer, proxyHandler, verifyWebhook } from '@herald/server';

/** Rooms are channels `chat:<room>`; `staff` is for the users in `staff`, every other room is open. */
const ROOMS = ['lobby', 'random', 'staff'];
const BANNED = /\b(spam|scam)\b/gi;
const MAX_TEXT = 500;
const SESSION_TTL_SEC = 600;

/**
 * @param {object} options
 * @param {number} [options.port] where to listen (0: any free port)
 * @param {string} [options.host]
 * @param {Record<string, string>} options.webhookSecrets Herald's `webhooks.endpoints[].secrets`, as `{kid: secret}`
 * @param {Record<string, string>} options.hookSecrets Herald's `proxy.signing.secrets`, as `{kid: secret}`: hook requests not signed with one are answered 401
 * @param {string[]} [options.staff] users allowed into `chat:staff`
 * @param {number} [options.sessionTtlSec] how long a connection's rights last before Herald asks the refresh hook
 */
export async function startChatBackend(options) {
  const staff = new Set(options.staff ?? []);
  const sessionTtlSec = options.sessionTtlSec ?? SESSION_TTL_SEC;
  /** Login sessions: the `sid` cookie → user name. A real backend keeps these in its database. */
  const sessions = new Map();
  /** Who is online, from webhooks: connection id → user. */
  const online = new Map();
  /** Webhook event ids already handled: delivery is at least once. */
  const seenEvents = new Set();
  /** Refresh hook calls by user, to show connections being extended. */
  const refreshes = new Map();
  /** @type {HeraldServerClient | undefined} */
  let herald;

  /** What a connection of `user` may do, until when. */
  function rightsOf(user) {
    return {
      expiresAt: nowSec() + sessionTtlSec,
      channels: ROOMS.filter((room) => room !== 'staff' || staff.has(user)).map((room) => `chat:${room}`),
      info: { name: user, staff: staff.has(user) },
    };
  }

  const hooks = proxyHandler({
    connect(req) {
      const user = sessions.get(req.cookies?.sid ?? '');
      if (!user) return proxyAnswer.refuse('login_required', 'log in at POST /login first');
      return proxyAnswer.connect({ user, ...rightsOf(user) });
    },
    subscribe(req) {
      // Asked for channels the connect answer did not grant: only `chat:staff`, for a non-staff user.
      if (req.channel === 'chat:staff' && !staff.has(req.user)) throw new HeraldError('not_member', 'the staff room is for staff');
      return ROOMS.includes(req.channel.slice('chat:'.length)) ? proxyAnswer.allow() : proxyAnswer.refuse('no_such_room', `there is no room ${req.channel}`);
    },
    publish(req) {
      const text = typeof req.payload?.text === 'string' ? req.payload.text.trim() : '';
      if (!text) return proxyAnswer.refuse('empty_message', 'a chat line needs "text"');
      if (text.length > MAX_TEXT) return proxyAnswer.refuse('message_too_long', `at most ${MAX_TEXT} characters`);
      return proxyAnswer.publish({ text: text.replace(BANNED, (w) => '*'.repeat(w.length)), from: req.user, at: Date.now() });
    },
    rpc(req) {
      if (req.method === 'rooms.list') return proxyAnswer.rpc(ROOMS.filter((room) => room !== 'staff' || staff.has(req.user)));
      if (req.method === 'users.online') return proxyAnswer.rpc([...new Set(online.values())].sort());
      return proxyAnswer.refuse('unknown_method', `no method ${req.method}`);
    },
    refresh(req) {
      refreshes.set(req.user, (refreshes.get(req.user) ?? 0) + 1);
      // The login session still exists: extend; logged out: the connection ends at its expiry.
      const stillLoggedIn = [...sessions.values()].includes(req.user);
      if (!stillLoggedIn) return proxyAnswer.refuse('logged_out', 'the session ended');
      // Rights left out of a refresh answer become empty, as in a token: restate them.
      return proxyAnswer.refresh(rightsOf(req.user));
    },
  }, { secrets: options.hookSecrets });

  async function onEvent(event) {
    const { type, data } = event;
    if (type === 'connection.opened' && data.user) {
      // Judged without this connection, so a redelivery after a failed publish publishes again.
      const firstConnection = ![...online].some(([id, user]) => user === data.user && id !== data.connectionId);
      online.set(data.connectionId, data.user);
      // Derived from the event id, so a redelivered webhook publishes nothing new: Herald drops
      // a repeated msgId within its idempotency window.
      if (firstConnection && herald) await herald.publishToChannel('chat:lobby', 'notice', { text: `${data.user} joined`, from: 'system', at: Date.now() }, { msgId: `joined-${event.id}` });
    } else if (type === 'connection.closed') {
      online.delete(data.connectionId);
    }
  }

  const server = createServer((req, res) => {
    if (req.method === 'POST' && req.url === '/login') return login(req, res);
    if (req.method === 'POST' && req.url === '/logout') return logout(req, res);
    if (req.url === '/herald/hooks') return hooks(req, res);
    if (req.method === 'POST' && req.url === '/herald/events') return webhook(req, res);
    res.writeHead(404).end();
  });

  /** Demo login: any name of 1–32 letters, digits, `_` or `-`; no password. */
  function login(req, res) {
    readBody(req, 4096).then((raw) => {
      const name = safeJson(raw)?.name;
      if (typeof name !== 'string' || !/^[A-Za-z0-9_-]{1,32}$/.test(name)) return json(res, 400, { error: 'name: 1–32 letters, digits, _ or -' });
      const sid = randomBytes(18).toString('base64url');
      sessions.set(sid, name);
      res.writeHead(204, { 'set-cookie': `sid=${sid}; HttpOnly; SameSite=Strict; Path=/` }).end();
    }, () => json(res, 413, { error: 'body too large' }));
  }

  function logout(req, res) {
    const sid = /(?:^|;\s*)sid=([^;]+)/.exec(req.headers.cookie ?? '')?.[1];
    if (sid) sessions.delete(sid);
    res.writeHead(204).end();
  }

  function webhook(req, res) {
    readBody(req, 1024 * 1024).then(async (raw) => {
      const verified = verifyWebhook(req.headers, raw, options.webhookSecrets, { toleranceSec: 300 });
      if (!verified.ok) return json(res, 401, { error: verified.reason });
      if (seenEvents.has(verified.eventId)) return res.writeHead(204).end();
      try {
        await onEvent(verified.event);
      } catch (err) {
        // Not marked as seen: answering 500 makes Herald deliver the event again later.
        console.error(`chat-backend: ${verified.event.type} ${verified.eventId}: ${err.message}`);
        return json(res, 500, { error: 'could not handle the event' });
      }
      seenEvents.add(verified.eventId);
      res.writeHead(204).end();
    }, () => json(res, 413, { error: 'body too large' }));
  }

  await new Promise((resolve) => server.listen(options.port ?? 0, options.host ?? '127.0.0.1', resolve));
  const url = `http://${options.host ?? '127.0.0.1'}:${server.address().port}`;
  return {
    url,
    /** Where Herald's `proxy.*.url` point. */
    hooksUrl: `${url}/herald/hooks`,
    /** Where Herald's `webhooks.endpoints[].url` points. */
    eventsUrl: `${url}/herald/events`,
    /** Lets the backend publish: Herald's URL and one of its `api.keys` with the publish scope. */
    useHerald(heraldUrl, apiKey) {
      herald = new HeraldServerClient({ url: heraldUrl, apiKey });
    },
    onlineUsers: () => [...new Set(online.values())].sort(),
    refreshesOf: (user) => refreshes.get(user) ?? 0,
    close: () => new Promise((resolve) => server.close(() => resolve())),
  };
}

function nowSec() {
  return Math.floor(Date.now() / 1000);
}

function readBody(req, max) {
  return new Promise((resolve, reject) => {
    const chunks = [];
    let size = 0;
    req.on('data', (chunk) => {
      size += chunk.length;
      if (size > max) {
        req.destroy();
        reject(new Error('too large'));
      } else chunks.push(chunk);
    });
    req.on('end', () => resolve(Buffer.concat(chunks)));
    req.on('error', reject);
  });
}

function safeJson(raw) {
  try {
    return JSON.parse(raw.toString('utf8'));
  } catch {
    return undefined;
  }
}

function json(res, status, body) {
  res.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify(body));
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  const need = (name) => {
    const value = process.env[name];
    if (!value) {
      console.error(`chat-backend: set ${name}`);
      process.exit(2);
    }
    return value;
  };
  const backend = await startChatBackend({
    port: Number(process.env.PORT ?? 3000),
    webhookSecrets: { [process.env.WEBHOOK_KID ?? 'chat-1']: need('WEBHOOK_SECRET') },
    hookSecrets: { [process.env.HOOK_KID ?? 'hooks-1']: need('HOOK_SECRET') },
    staff: (process.env.STAFF ?? '').split(',').filter(Boolean),
  });
  backend.useHerald(need('HERALD_URL'), need('HERALD_API_KEY'));
  console.log(`chat-backend listening on ${backend.url} (hooks ${backend.hooksUrl}, webhooks ${backend.eventsUrl})`);
}
