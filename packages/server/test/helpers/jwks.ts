/** A JWKS served by a real node:http server, and keys to sign test tokens with. */
import { exportJWK, generateKeyPair, SignJWT, type JWK, type JWTPayload } from 'jose';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';

export interface SigningKey {
  kid: string;
  alg: 'ES256' | 'RS256';
  jwk: JWK;
  privateKey: CryptoKey;
}

export async function makeKey(kid: string, alg: SigningKey['alg']): Promise<SigningKey> {
  const { publicKey, privateKey } = await generateKeyPair(alg, { extractable: true });
  return { kid, alg, privateKey, jwk: { ...(await exportJWK(publicKey)), kid, alg, use: 'sig' } };
}

export function sign(key: SigningKey, claims: JWTPayload = {}, kid = key.kid): Promise<string> {
  return new SignJWT({ channels: ['*'], ...claims }).setProtectedHeader({ alg: key.alg, kid }).setSubject('alice').setIssuedAt().setExpirationTime('1h').sign(key.privateKey);
}

/** A key server: serves `keys` with an optional Cache-Control header and counts the requests. */
export class JwksServer {
  keys: JWK[] = [];
  cacheControl: string | undefined;
  requests = 0;
  private server: Server | undefined;
  port = 0;

  async start(port = 0): Promise<this> {
    const server = createServer((_req, res) => {
      this.requests++;
      res.writeHead(200, { 'content-type': 'application/json', ...(this.cacheControl ? { 'cache-control': this.cacheControl } : {}) });
      res.end(JSON.stringify({ keys: this.keys }));
    });
    await new Promise<void>((resolve) => server.listen(port, '127.0.0.1', resolve));
    this.server = server;
    this.port = (server.address() as AddressInfo).port;
    return this;
  }

  get url(): string {
    return `http://127.0.0.1:${this.port}/.well-known/jwks.json`;
  }

  async stop(): Promise<void> {
    const server = this.server;
    this.server = undefined;
    if (!server) return;
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }
}

