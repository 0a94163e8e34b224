/**
 * Assembles a Herald server: fastify for HTTP, the gateway for WebSocket upgrades, the node for
 * everything in between. `startHerald` is the programmatic entry point the CLI and tests use.
 */
import Fastify, { type FastifyInstance } from 'fastify';
import swagger from '@fastify/swagger';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Ajv } from 'ajv';
import type { Logger } from 'pino';
import { resolveConfig, type DeepPartial, type HeraldConfig } from './config.js';
import { Gateway } from './gateway.js';
import { apiRoutes } from './http/api-routes.js';
import { ApiKeyring } from './http/api-key.js';
import { publishFastPath } from './http/publish-fast-path.js';
import { readJsonAsset } from './assets.js';
import { frameworkErrors, installErrorHandling } from './http/error-handler.js';
import { installJsonBodyParser } from './http/json-body.js';
import { opsRoutes } from './http/ops-routes.js';
import { readableSchemaNames } from './http/openapi-names.js';
import { pollRoutes } from './http/poll-routes.js';
import { adminUi } from './http/admin-ui/index.js';
import { applyConnectionCap, clientErrorHandler, httpServerOptions, refuseRequest } from './http/http-limits.js';
import { trustedHops } from './http/client-ip.js';
import { HandshakeDeadline } from './handshake-deadline.js';
import { ErrorCode } from '@herald/protocol';
import { createEngines } from './engine/index.js';
import { Webhooks } from './webhooks/index.js';
import { defaultNodeName, HeraldNode, type NodeEngines, type PublishRequest, type PublishResult } from './node.js';
import { startIngest } from './ingest/ingest.js';
import { directSendAvailable, sendOne } from './transport/direct-send.js';
import { checkInternalsOnce, internalsAllowed } from './transport/internals.js';

import { HERALD_VERSION } from './version.js';

/** What each scope of an `api.keys` entry reaches (api-key.ts), for the OpenAPI document. */
const SCOPES = 'A plain string key of api.keys, or one with scope admin, reaches every route; scope publish only the two publish routes (with channels, only to matching channels); scope read only the GET routes. Outside its scope: 403 api_key_scope.';

export { HERALD_VERSION };

export interface HeraldServer {
  readonly config: Readonly<HeraldConfig>;
  readonly app: FastifyInstance;
  readonly node: HeraldNode;
  readonly port: number;
  /** `http://host:port` */
  readonly url: string;
  /** `ws://host:port/ws` */
  readonly wsUrl: string;
  publish(req: PublishRequest): Promise<PublishResult>;
  /** Graceful: stop accepting, mark not ready, flush, close clients with 4001, then exit the server. */
  shutdown(deadlineMs?: number): Promise<void>;
  /** Immediate close for tests: same as shutdown with no grace period. */
  close(): Promise<void>;
}

export interface StartOptions {
  /** A config already resolved, or layers to merge over the defaults. */
  config?: Readonly<HeraldConfig>;
  overrides?: DeepPartial<HeraldConfig> | Record<string, unknown>;
  engines?: NodeEngines;
}

export async function buildApp(config: Readonly<HeraldConfig>, engines?: NodeEngines): Promise<{ app: FastifyInstance; node: HeraldNode; gateway: Gateway; webhooks: Webhooks | undefined; setReady(v: boolean): void }> {
  // The publish fast path needs the node, which needs fastify's logger: bound once both exist.
  let fastPath: ((req: IncomingMessage, res: ServerResponse) => boolean) | undefined;
  const bodyLimit = Math.max(1 << 20, config.limits.maxMessageBytes * 4);
  // From the TCP accept, a socket has limits.handshakeTimeoutMs to complete its first request
  // head (then, if it is an upgrade, the rest of that time to be `connected`).
  const deadline = new HandshakeDeadline(config.limits.handshakeTimeoutMs, (socket) => {
    node.metrics.rejectedConnections.inc({ reason: 'handshake_timeout' });
    refuseRequest(socket, ErrorCode.CLIENT_TIMEOUT, 'the request did not arrive within limits.handshakeTimeoutMs');
  });
  const app = Fastify({
    // Node's HTTP server with Herald's deadlines and connection cap, and the publish fast path in front.
    serverFactory: (handler) => {
      const server = createServer(httpServerOptions(config), (req, res) => {
        deadline.settle(req.socket);
        if (fastPath?.(req, res) !== true) handler(req, res);
      });
      // No idle timeout on the socket: WebSockets are idle between messages (heartbeats watch them).
      server.setTimeout(0);
      applyConnectionCap(server, config);
      server.on('connection', deadline.watch);
      return server;
    },
    clientErrorHandler,
    frameworkErrors,
    // Path parameters go up to 255-character channels and 256-character user ids, percent-encoded
    // (up to three bytes a character); the routes' schemas then apply the documented limits.
    routerOptions: { maxParamLength: 1024 },
    logger: {
      level: config.log.level,
      redact: { paths: ['req.headers.authorization', 'req.headers["x-api-key"]'], censor: '[redacted]' },
    },
    bodyLimit,
    // The client is the address `trustProxy` hops from the right of X-Forwarded-For, as http/client-ip.ts derives it.
    trustProxy: trustedHops(config.server.trustProxy),
    ajv: { customOptions: { removeAdditional: false, coerceTypes: false, useDefaults: true, allErrors: false } },
  });
  const name = defaultNodeName(config);
  const engs = engines ?? (await createEngines(config, name, app.log));
  const node = new HeraldNode(config, app.log, engs, name);
  let webhooks: Webhooks | undefined;
  try {
    webhooks = await Webhooks.open({ config, engineType: config.engine.type, openOutbox: engs.openWebhookOutbox, events: node.lifecycle, registry: node.metrics.registry, log: app.log, node: name });
  } catch (err) {
    await node.close().catch(() => undefined);
    throw err;
  }
  // Before the node's close (which closes the engines): commit what was emitted, stop sending.
  app.addHook('onClose', async () => webhooks?.close());
  let ready = false;
  installErrorHandling(app);
  installJsonBodyParser(app, config.limits.maxJsonDepth);
  // The OpenAPI document of every route (also `npm run openapi`); opsRoutes serves it at /docs, behind ops.keys.
  await app.register(swagger, {
    openapi: {
      openapi: '3.0.3',
      info: { title: 'Herald server API', version: HERALD_VERSION, description: 'HTTP API for backends: publish, inspect and manage connections. Every error has the body {"error": {"code", "message", "temporary", "details"}}.' },
      components: {
        securitySchemes: {
          bearer: { type: 'http', scheme: 'bearer', description: `API key as a bearer token. ${SCOPES}` },
          apiKey: { type: 'apiKey', in: 'header', name: 'X-API-Key', description: `API key in a header. ${SCOPES}` },
        },
      },
    },
    transformObject: (documentObject) => ('openapiObject' in documentObject ? readableSchemaNames(documentObject.openapiObject) : documentObject.swaggerObject),
  });
  // The routes get the parts they use, not the node.
  await app.register(apiRoutes, {
    prefix: '/api/v1',
    config,
    rateLimits: node.rateLimits,
    publishing: node.publishing,
    fanout: node.hub.writes,
    admin: node.admin,
    receipts: node.delivery.receipts,
    deadLetters: webhooks,
    presence: node.channelPresence,
  });
  await app.register(pollRoutes, {
    prefix: '/poll/v1',
    config,
    verifier: node.verifier,
    anonymousIdentity: () => node.anonymousIdentity(),
    rateLimits: node.rateLimits,
    clientIps: node.clientIps,
    access: node.access,
    history: node.subscriptions,
    waits: node.dispatcher,
    inbox: node.inbox,
    acks: node.delivery,
  });
  if (config.admin.ui.enabled) await app.register(adminUi, { config, node });
  await app.register(opsRoutes, { config, metrics: node.metrics, ready: () => ready && !node.draining && node.verifier.keysLoaded });
  if (config.api.publishFastPath) {
    // Compiled as fastify compiles route schemas (its ajv defaults with our customOptions above).
    const ajv = new Ajv({ coerceTypes: false, useDefaults: true, removeAdditional: false, allErrors: false, addUsedSchema: false, strict: false });
    ajv.addSchema(readJsonAsset('api/publish.schema.json'));
    fastPath = publishFastPath({
      node,
      keyring: new ApiKeyring(config.api.keys),
      bodyLimit,
      validate: ajv.getSchema('herald:publish#/$defs/publishRequest')!,
      log: app.log as unknown as Logger,
    });
  }
  const gateway = new Gateway(node, deadline);
  app.server.on('upgrade', gateway.onUpgrade);
  app.addHook('onClose', async () => deadline.stop());
  return { app, node, gateway, webhooks, setReady: (v) => (ready = v) };
}

export async function startHerald(opts: StartOptions | DeepPartial<HeraldConfig> = {}): Promise<HeraldServer> {
  const o: StartOptions = 'config' in opts || 'overrides' in opts || 'engines' in opts ? (opts as StartOptions) : { overrides: opts as DeepPartial<HeraldConfig> };
  const config = o.config ?? resolveConfig(o.overrides ?? {});
  const { app, node, gateway, webhooks, setReady } = await buildApp(config, o.engines);
  let stopIngest: (() => Promise<void>) | undefined;
  try {
    // Before the first connection: which private Node and ws fields the write path may use.
    await checkInternalsOnce(sendOne, app.log);
    await node.start();
    stopIngest = await startIngest(node, config, app.log);
    webhooks?.start();
    await app.listen({ host: config.server.host, port: config.server.port });
  } catch (err) {
    // Release what was opened (engine connections, the store) so a failed start leaks nothing.
    await stopIngest?.();
    await app.close().catch(() => undefined);
    await node.close().catch(() => undefined);
    throw err;
  }
  const port = (app.server.address() as AddressInfo).port;
  const host = config.server.host === '0.0.0.0' || config.server.host === '::' ? '127.0.0.1' : config.server.host;
  setReady(true);
  const internals = internalsAllowed();
  const writes = !internals.rawSocket ? 'ws.send (the self-test refused ws WebSocket#_socket)'
    : !config.server.nativeSend ? 'socket.write (server.nativeSend is off)'
    : !directSendAvailable ? 'socket.write (native/herald-send is not built: it needs python3, make and a C compiler; then `npm rebuild herald`, or `npm run build` in a clone)'
    : !internals.descriptor ? 'socket.write (the self-test refused net.Socket#_handle.fd)'
    : 'native send(2)';
  app.log.info({ port, node: node.name, engine: config.engine.type, fanoutWrites: writes }, `Herald listening on http://${host}:${port} (WebSocket at /ws)`);
  let closing: Promise<void> | undefined;
  const shutdown = (deadlineMs = config.shutdown.drainTimeoutMs): Promise<void> =>
    (closing ??= (async () => {
      setReady(false);
      gateway.close();
      await stopIngest?.();
      await node.drain(deadlineMs);
      await app.close();
      await node.close();
    })());
  return {
    config,
    app,
    node,
    port,
    url: `http://${host}:${port}`,
    wsUrl: `ws://${host}:${port}/ws`,
    publish: (req) => node.publish(req),
    shutdown,
    close: () => shutdown(0),
  };
}
