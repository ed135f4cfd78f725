// Short-lived HS256 access tokens (jose) and their revocation list: in memory, or in Redis with each entry
// expiring when the token itself would have.
import { randomUUID } from 'node:crypto';
import type { Redis } from 'ioredis';
import { jwtVerify, SignJWT } from 'jose';

/** The claims of an access token — exactly these, nothing else (no personal data). */
export interface TokenClaims {
  sub: string;
  iss: string;
  aud: string;
  iat: number;
  exp: number;
  jti: string;
}

/**
 * Why a token was refused: `missing` — no token at all; `invalid` — bad signature, expired, wrong issuer,
 * audience or algorithm, malformed; `payload` — signed and current, but its claims are not what we issue.
 */
export type TokenErrorReason = 'missing' | 'invalid' | 'payload';

export class TokenError extends Error {
  readonly reason: TokenErrorReason;

  constructor(reason: TokenErrorReason, message?: string, options?: ErrorOptions) {
    super(message ?? `token ${reason}`, options);
    this.name = 'TokenError';
    this.reason = reason;
  }
}

const ALGORITHM = 'HS256';

export interface IssueTokenOptions {
  secret: string;
  subject: string;
  issuer: string;
  audience: string;
  expiresInSeconds: number;
}

/** Signs a token with claims exactly sub, iss, aud, iat, exp (= iat + expiresInSeconds) and a UUID v4 jti. */
export async function issueToken(
  options: IssueTokenOptions,
): Promise<{ token: string; claims: TokenClaims }> {
  if (!Number.isInteger(options.expiresInSeconds) || options.expiresInSeconds <= 0)
    throw new RangeError('expiresInSeconds must be a positive integer');
  const iat = Math.floor(Date.now() / 1000);
  const claims: TokenClaims = {
    sub: options.subject,
    iss: options.issuer,
    aud: options.audience,
    iat,
    exp: iat + options.expiresInSeconds,
    jti: randomUUID(),
  };
  const token = await new SignJWT({ ...claims })
    .setProtectedHeader({ alg: ALGORITHM, typ: 'JWT' })
    .sign(secretKey(options.secret));
  return { token, claims };
}

export interface VerifyTokenOptions {
  secret: string;
  issuer: string;
  audience: string;
}

/**
 * Verifies signature (HS256 only: `none` and every other algorithm are refused), `exp`, `iss` and `aud`;
 * throws TokenError('missing') for an empty token, ('invalid') for any failed check and ('payload') when a
 * claim we issue is absent or of the wrong type.
 */
export async function verifyToken(token: string, options: VerifyTokenOptions): Promise<TokenClaims> {
  if (token === '') throw new TokenError('missing', 'no token');
  let payload: Record<string, unknown>;
  try {
    const verified = await jwtVerify(token, secretKey(options.secret), {
      algorithms: [ALGORITHM],
      issuer: options.issuer,
      audience: options.audience,
      requiredClaims: ['exp'],
    });
    payload = verified.payload;
  } catch (error) {
    throw new TokenError('invalid', error instanceof Error ? error.message : 'invalid token', {
      cause: error,
    });
  }
  const { sub, iss, aud, iat, exp, jti } = payload;
  if (
    typeof sub !== 'string' ||
    typeof iss !== 'string' ||
    typeof aud !== 'string' ||
    typeof iat !== 'number' ||
    typeof exp !== 'number' ||
    typeof jti !== 'string' ||
    jti === ''
  )
    throw new TokenError('payload', 'token claims are incomplete');
  return { sub, iss, aud, iat, exp, jti };
}

/** The subject as a positive integer id (a user id); TokenError('payload') otherwise. */
export function numericSubject(claims: Pick<TokenClaims, 'sub'>): number {
  if (!/^[1-9]\d{0,15}$/.test(claims.sub)) throw new TokenError('payload', 'token subject is not numeric');
  const id = Number(claims.sub);
  if (!Number.isSafeInteger(id)) throw new TokenError('payload', 'token subject is not numeric');
  return id;
}

function secretKey(secret: string): Uint8Array {
  if (secret === '') throw new RangeError('the token secret must not be empty');
  return new TextEncoder().encode(secret);
}

/** Revoked token ids, each kept until the token's own expiry (after which the token is refused anyway). */
export interface RevocationStore {
  revoke(jti: string, expiresAt: Date): Promise<void>;
  isRevoked(jti: string): Promise<boolean>;
}

/** Revocations of one process; expired entries are purged as new ones arrive. */
export class MemoryRevocationStore implements RevocationStore {
  private readonly expiries = new Map<string, number>();

  async revoke(jti: string, expiresAt: Date): Promise<void> {
    const now = Date.now();
    this.purge(now);
    if (expiresAt.getTime() > now) this.expiries.set(jti, expiresAt.getTime());
  }

  async isRevoked(jti: string): Promise<boolean> {
    const expiresAt = this.expiries.get(jti);
    if (expiresAt === undefined) return false;
    if (expiresAt > Date.now()) return true;
    this.expiries.delete(jti);
    return false;
  }

  /** Entries currently held (expired ones not yet purged included). */
  get size(): number {
    return this.expiries.size;
  }

  /** Drops every entry whose token has expired. */
  purge(now = Date.now()): void {
    for (const [jti, expiresAt] of this.expiries) if (expiresAt <= now) this.expiries.delete(jti);
  }
}

/**
 * Revocations shared by every instance: key `<prefix>revoked:<jti>` with a TTL of the token's remaining
 * lifetime. Redis errors propagate, so the caller can refuse the request (503) instead of letting a revoked
 * token through.
 */
export class RedisRevocationStore implements RevocationStore {
  constructor(
    private readonly redis: Redis,
    private readonly prefix = '',
  ) {}

  async revoke(jti: string, expiresAt: Date): Promise<void> {
    const remainingMs = expiresAt.getTime() - Date.now();
    if (remainingMs <= 0) return;
    await this.redis.set(this.key(jti), '1', 'PX', remainingMs);
  }

  async isRevoked(jti: string): Promise<boolean> {
    return (await this.redis.exists(this.key(jti))) === 1;
  }

  private key(jti: string): string {
    return `${this.prefix}revoked:${jti}`;
  }
}
