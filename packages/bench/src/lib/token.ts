/** Connection tokens for the benchmark: HS256 JWTs as Herald's `auth.jwt.hmacSecret` expects. */
import { SignJWT } from 'jose';

/** Herald wants an HMAC secret of at least 16 characters. */
export const BENCH_SECRET = 'bench-secret-0123456789abcdef-0123456789';
export const BENCH_API_KEY = 'bench-key';

export async function makeToken(secret: string, sub: string, channels: string[] = ['*'], tags?: Record<string, string>): Promise<string> {
  return new SignJWT(tags ? { channels, tags } : { channels })
    .setProtectedHeader({ alg: 'HS256' })
    .setSubject(sub)
    .setIssuedAt()
    .setExpirationTime('1h')
    .sign(new TextEncoder().encode(secret));
}
