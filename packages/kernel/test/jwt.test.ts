import { randomUUID } from 'node:crypto';
import { SignJWT } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  issueToken,
  MemoryRevocationStore,
  numericSubject,
  RedisRevocationStore,
  TokenError,
  verifyToken,
} from '../src/jwt.js';
import { connectRedis, type Redis, waitForRedis } from '../src/redis.js';
import { testRedisUrl } from '../src/testing.js';

const redisUrl = await testRedisUrl();

const SECRET = 'a-test-secret-of-enough-length-0123456789';
const ISSUER = 'rag-assistant';
const AUDIENCE = 'rag-users';
const VERIFY = { secret: SECRET, issuer: ISSUER, audience: AUDIENCE };
const UUID_V4 = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;

function decodePart(token: string, index: number): Record<string, unknown> {
  return JSON.parse(Buffer.from(token.split('.')[index] ?? '', 'base64url').toString('utf8'));
}

function encodePart(value: object): string {
  return Buffer.from(JSON.stringify(value)).toString('base64url');
}

/** A token signed with our secret but with claims and header of the test's choosing. */
async function craft(claims: Record<string, unknown>, alg = 'HS256', secret = SECRET): Promise<string> {
  return new SignJWT(claims).setProtectedHeader({ alg }).sign(new TextEncoder().encode(secret));
}

function validClaims(overrides: Record<string, unknown> = {}): Record<string, unknown> {
  const now = Math.floor(Date.now() / 1000);
  return { sub: '7', iss: ISSUER, aud: AUDIENCE, iat: now, exp: now + 900, jti: randomUUID(), ...overrides };
}

async function reasonOf(promise: Promise<unknown>): Promise<string> {
  try {
    await promise;
  } catch (error) {
    if (error instanceof TokenError) return error.reason;
    throw error;
  }
  return 'accepted';
}

describe('issueToken / verifyToken', () => {
  it('issues an HS256 token with exactly sub, iss, aud, iat, exp and a UUID v4 jti, and verifies it', async () => {
    const before = Math.floor(Date.now() / 1000);
    const { token, claims } = await issueToken({
      secret: SECRET,
      subject: '42',
      issuer: ISSUER,
      audience: AUDIENCE,
      expiresInSeconds: 900,
    });
    expect(decodePart(token, 0)).toEqual({ alg: 'HS256', typ: 'JWT' });
    const payload = decodePart(token, 1);
    expect(Object.keys(payload).sort()).toEqual(['aud', 'exp', 'iat', 'iss', 'jti', 'sub']);
    expect(payload).toEqual(claims);
    expect(claims.sub).toBe('42');
    expect(claims.iat).toBeGreaterThanOrEqual(before);
    expect(claims.exp).toBe(claims.iat + 900);
    expect(claims.jti).toMatch(UUID_V4);
    expect(await verifyToken(token, VERIFY)).toEqual(claims);
    const second = await issueToken({
      secret: SECRET,
      subject: '42',
      issuer: ISSUER,
      audience: AUDIENCE,
      expiresInSeconds: 900,
    });
    expect(second.claims.jti).not.toBe(claims.jti);
  });

  it('refuses alg none, other algorithms, bad signatures, wrong issuer or audience and expired tokens', async () => {
    const good = await craft(validClaims());
    expect(await reasonOf(verifyToken(good, VERIFY))).toBe('accepted');
    const unsigned = `${encodePart({ alg: 'none', typ: 'JWT' })}.${encodePart(validClaims())}.`;
    expect(await reasonOf(verifyToken(unsigned, VERIFY))).toBe('invalid');
    expect(await reasonOf(verifyToken(await craft(validClaims(), 'HS512'), VERIFY))).toBe('invalid');
    expect(await reasonOf(verifyToken(await craft(validClaims(), 'HS256', `${SECRET}x`), VERIFY))).toBe(
      'invalid',
    );
    const [header, , signature] = good.split('.');
    const tampered = `${header}.${encodePart(validClaims({ sub: '1' }))}.${signature}`;
    expect(await reasonOf(verifyToken(tampered, VERIFY))).toBe('invalid');
    expect(await reasonOf(verifyToken(await craft(validClaims({ iss: 'other' })), VERIFY))).toBe('invalid');
    expect(await reasonOf(verifyToken(await craft(validClaims({ aud: 'other' })), VERIFY))).toBe('invalid');
    const past = Math.floor(Date.now() / 1000) - 3600;
    const expired = await craft(validClaims({ iat: past, exp: past + 60 }));
    expect(await reasonOf(verifyToken(expired, VERIFY))).toBe('invalid');
    const { exp: _omitted, ...withoutExp } = validClaims();
    expect(await reasonOf(verifyToken(await craft(withoutExp), VERIFY))).toBe('invalid');
    expect(await reasonOf(verifyToken('not.a.token', VERIFY))).toBe('invalid');
    expect(await reasonOf(verifyToken('', VERIFY))).toBe('missing');
  });

  it('reports a signed token without the claims we issue as a payload problem', async () => {
    const { jti: _jti, ...withoutJti } = validClaims();
    expect(await reasonOf(verifyToken(await craft(withoutJti), VERIFY))).toBe('payload');
    expect(await reasonOf(verifyToken(await craft(validClaims({ sub: 7 })), VERIFY))).toBe('payload');
  });

  it('numericSubject accepts positive integer ids only', () => {
    expect(numericSubject({ sub: '42' })).toBe(42);
    for (const sub of ['abc', '0', '-1', '1.5', '', '007', ' 7', '99999999999999999999']) {
      let reason = 'accepted';
      try {
        numericSubject({ sub });
      } catch (error) {
        reason = error instanceof TokenError ? error.reason : 'other';
      }
      expect(reason, sub).toBe('payload');
    }
  });
});

describe('MemoryRevocationStore', () => {
  it('remembers a revoked jti until the token expires, then forgets it', async () => {
    const store = new MemoryRevocationStore();
    await store.revoke('a', new Date(Date.now() + 60_000));
    await store.revoke('short', new Date(Date.now() + 50));
    await store.revoke('already-expired', new Date(Date.now() - 1000));
    expect(await store.isRevoked('a')).toBe(true);
    expect(await store.isRevoked('short')).toBe(true);
    expect(await store.isRevoked('already-expired')).toBe(false);
    expect(await store.isRevoked('b')).toBe(false);
    expect(store.size).toBe(2);
    await new Promise((resolve) => setTimeout(resolve, 80));
    await store.revoke('c', new Date(Date.now() + 60_000)); // purges expired entries
    expect(store.size).toBe(2);
    expect(await store.isRevoked('short')).toBe(false);
    expect(await store.isRevoked('a')).toBe(true);
  });
});

describe.skipIf(redisUrl === null)('RedisRevocationStore', () => {
  let redis: Redis;
  const prefix = `test:${randomUUID()}:`;

  beforeAll(async () => {
    redis = connectRedis(redisUrl as string, { commandTimeoutMs: 1000 });
    await waitForRedis(redis, 2000);
  });

  afterAll(async () => {
    const keys = await redis.keys(`${prefix}*`);
    if (keys.length > 0) await redis.del(...keys);
    redis.disconnect();
  });

  it('stores <prefix>revoked:<jti> with the remaining lifetime as TTL', async () => {
    const store = new RedisRevocationStore(redis, prefix);
    const jti = randomUUID();
    await store.revoke(jti, new Date(Date.now() + 30_000));
    const ttl = await redis.pttl(`${prefix}revoked:${jti}`);
    expect(ttl).toBeGreaterThan(28_000);
    expect(ttl).toBeLessThanOrEqual(30_000);
    expect(await store.isRevoked(jti)).toBe(true);
    expect(await store.isRevoked(randomUUID())).toBe(false);
    await store.revoke('gone', new Date(Date.now() - 1));
    expect(await redis.exists(`${prefix}revoked:gone`)).toBe(0);
    await store.revoke('brief', new Date(Date.now() + 60));
    await new Promise((resolve) => setTimeout(resolve, 120));
    expect(await store.isRevoked('brief')).toBe(false);
  });

  it('lets Redis errors reach the caller', async () => {
    const unreachable = connectRedis('redis://127.0.0.1:1', { commandTimeoutMs: 200 });
    try {
      const store = new RedisRevocationStore(unreachable, prefix);
      await expect(store.isRevoked('x')).rejects.toThrow();
      await expect(store.revoke('x', new Date(Date.now() + 1000))).rejects.toThrow();
    } finally {
      unreachable.disconnect();
    }
  });
});
