/**
 * The admin UI's password, stored only as a scrypt hash: `scrypt$N$r$p$salt$hash` (salt and hash
 * base64url). `herald admin hash-password` writes one; `admin.ui.passwordHash` holds it. The
 * parameters travel with the hash so they can be raised later without invalidating old hashes.
 */
import { randomBytes, scrypt, timingSafeEqual, type ScryptOptions } from 'node:crypto';

/** Cost of new hashes: N = 2^15 with r = 8 uses 32 MiB a verification, which is what makes offline guessing expensive. */
const N = 1 << 15;
const R = 8;
const P = 1;
const KEY_BYTES = 32;
/** Refuse hashes whose parameters would make one verification take unbounded memory or time. */
const MAX_N = 1 << 20;

function derive(password: string, salt: Buffer, n: number, r: number, p: number): Promise<Buffer> {
  const options: ScryptOptions = { N: n, r, p, maxmem: 256 * n * r + (1 << 20) };
  return new Promise((resolve, reject) => scrypt(password, salt, KEY_BYTES, options, (err, key) => (err ? reject(err) : resolve(key))));
}

export async function hashPassword(password: string): Promise<string> {
  const salt = randomBytes(16);
  const key = await derive(password, salt, N, R, P);
  return `scrypt$${N}$${R}$${P}$${salt.toString('base64url')}$${key.toString('base64url')}`;
}

interface ParsedHash {
  n: number;
  r: number;
  p: number;
  salt: Buffer;
  key: Buffer;
}

/** The parts of a stored hash, or a reason it cannot be used (for start-up, so it names the key). */
export function parsePasswordHash(stored: string): ParsedHash | string {
  const parts = stored.split('$');
  if (parts.length !== 6 || parts[0] !== 'scrypt') return 'not a scrypt$N$r$p$salt$hash string from `herald admin hash-password`';
  const [n, r, p] = parts.slice(1, 4).map(Number) as [number, number, number];
  if (!Number.isInteger(Math.log2(n)) || n < 1024 || n > MAX_N) return `N must be a power of two from 1024 to ${MAX_N}`;
  if (!(r >= 1 && r <= 32 && p >= 1 && p <= 16)) return 'r must be 1–32 and p 1–16';
  const key = Buffer.from(parts[5]!, 'base64url');
  if (key.length !== KEY_BYTES) return `the hash must be ${KEY_BYTES} bytes`;
  return { n, r, p, salt: Buffer.from(parts[4]!, 'base64url'), key };
}

/** Whether `password` matches the stored hash; the final comparison takes constant time. */
export async function verifyPassword(stored: ParsedHash, password: string): Promise<boolean> {
  const key = await derive(password, stored.salt, stored.n, stored.r, stored.p);
  return timingSafeEqual(key, stored.key);
}
