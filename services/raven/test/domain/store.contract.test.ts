import { randomBytes, randomUUID } from 'node:crypto';
import {
  connectRedis,
  isRedisUnavailable,
  type Redis,
  validateRedisUrl,
  waitForRedis,
} from '@quintet/kernel/redis';
import { testRedisUrl } from '@quintet/kernel/testing';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { MemoryRavenStore } from '../../src/domain/store/memory-store.js';
import { RedisRavenStore } from '../../src/domain/store/redis-store.js';
import { type RavenStore, UPLOAD_FIELDS, type UploadRecord } from '../../src/domain/store/types.js';

const url = await testRedisUrl();

interface Stored {
  value: string | Record<string, string>;
  /** Remaining time to live in ms; -1 = no expiry. */
  pttl: number;
}

interface StoreHarness {
  store: RavenStore;
  /** The key prefix the store writes under. */
  prefix: string;
  /** Every live key under the prefix, with its value and TTL. */
  dump(): Promise<Map<string, Stored>>;
  dispose(): Promise<void>;
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

function newRecord(overrides: Partial<UploadRecord> = {}, expiresAtMs = Date.now() + 60_000): UploadRecord {
  return {
    v: 1,
    state: 'active',
    salt: randomBytes(16).toString('base64url'),
    blob: `${Math.floor(expiresAtMs / 1000)}-${randomBytes(12).toString('hex')}.bin`,
    meta: randomBytes(64).toString('base64url'),
    pw: false,
    uses: 1,
    uses_total: 1,
    previewed: false,
    created_at: new Date().toISOString(),
    expires_at: new Date(expiresAtMs).toISOString(),
    ...overrides,
  };
}

function newId(): string {
  return randomBytes(9).toString('base64url');
}

function storeContract(name: string, makeHarness: () => Promise<StoreHarness>) {
  describe(name, () => {
    let h: StoreHarness;
    let store: RavenStore;

    const create = async (overrides: Partial<UploadRecord> = {}, ttlMs = 60_000) => {
      const expiresAtMs = Date.now() + ttlMs;
      const id = newId();
      const record = newRecord({ uses_total: overrides.uses ?? 1, ...overrides }, expiresAtMs);
      expect(await store.createUpload(id, record, expiresAtMs)).toBe(true);
      return { id, record, expiresAtMs };
    };

    const entry = async (key: string) => (await h.dump()).get(`${h.prefix}${key}`);

    beforeAll(async () => {
      h = await makeHarness();
      store = h.store;
    });
    afterAll(async () => {
      await h?.dispose();
    });

    it('creates an upload only if the id is free', async () => {
      const { id, record, expiresAtMs } = await create({ uses: 2 });
      const other = newRecord({ uses: 9, uses_total: 9 }, expiresAtMs);
      expect(await store.createUpload(id, other, expiresAtMs)).toBe(false);
      expect(await store.getUpload(id)).toEqual(record);
      expect(await store.hasBlobReference(record.blob)).toBe(true);
      expect(await store.hasBlobReference(other.blob)).toBe(false);
      expect(await store.getUpload(newId())).toBeNull();
    });

    it('stores exactly the documented keys and fields, both expiring at the upload expiry', async () => {
      const before = new Set((await h.dump()).keys());
      const { id, record } = await create({ uses: 3, pw: true });
      const after = await h.dump();
      const added = [...after.keys()].filter((key) => !before.has(key)).sort();
      expect(added).toEqual([`${h.prefix}blob:${record.blob}`, `${h.prefix}upload:${id}`].sort());

      const upload = after.get(`${h.prefix}upload:${id}`);
      expect(Object.keys(upload?.value ?? {}).sort()).toEqual([...UPLOAD_FIELDS].sort());
      expect(upload?.value).toEqual({
        v: '1',
        state: 'active',
        salt: record.salt,
        blob: record.blob,
        meta: record.meta,
        pw: '1',
        uses: '3',
        uses_total: '3',
        previewed: '0',
        created_at: record.created_at,
        expires_at: record.expires_at,
      });
      expect(after.get(`${h.prefix}blob:${record.blob}`)?.value).toBe('1');
      for (const key of added) {
        const pttl = after.get(key)?.pttl ?? 0;
        expect(pttl, key).toBeGreaterThan(58_000);
        expect(pttl, key).toBeLessThanOrEqual(60_000);
      }
    });

    it('makes an expired upload and its blob reference disappear', async () => {
      const { id, record } = await create({ uses: 2 }, 250);
      expect(await store.getUpload(id)).not.toBeNull();
      await sleep(350);
      expect(await store.getUpload(id)).toBeNull();
      expect(await store.hasBlobReference(record.blob)).toBe(false);
      expect(await store.consume(id)).toEqual({ kind: 'unknown' });
      expect(await store.preview(id)).toBe('unknown');
      expect(await store.burn(id)).toEqual({ kind: 'unknown' });
      const keys = [...(await h.dump()).keys()];
      expect(keys.filter((key) => key.includes(id) || key.includes(record.blob))).toEqual([]);
    });

    it('consumes exactly `uses` times, then leaves a tombstone until the expiry', async () => {
      const { id, record } = await create({ uses: 3 });
      const first = await store.consume(id);
      expect(first).toEqual({ kind: 'ok', record, remaining: 2, burned: false });
      expect(await store.release(id)).toBeNull();
      expect(await store.consume(id)).toMatchObject({ kind: 'ok', remaining: 1, burned: false });
      expect(await store.release(id)).toBeNull();
      const last = await store.consume(id);
      // The last use still hands out everything needed to decrypt and shred.
      expect(last).toEqual({ kind: 'ok', record: { ...record, uses: 1 }, remaining: 0, burned: true });

      const tombstone = { ...record, state: 'burned', uses: 0, meta: null, salt: null };
      expect(await store.getUpload(id)).toEqual(tombstone);
      expect(await store.consume(id)).toEqual({ kind: 'exhausted', record: tombstone });
      // The blob stays referenced while its last reader streams; releasing hands it over for shredding once.
      expect(await store.hasBlobReference(record.blob)).toBe(true);
      expect(await store.release(id)).toBe(record.blob);
      expect(await store.hasBlobReference(record.blob)).toBe(false);

      const dump = await h.dump();
      expect(dump.has(`${h.prefix}blob:${record.blob}`)).toBe(false);
      const hash = dump.get(`${h.prefix}upload:${id}`);
      expect(Object.keys(hash?.value ?? {}).sort()).toEqual(
        UPLOAD_FIELDS.filter((f) => f !== 'meta' && f !== 'salt').sort(),
      );
      expect(hash?.pttl).toBeGreaterThan(55_000);
    });

    it('hands the blob of a burned upload to the last reader to finish, not to the one that took the last use', async () => {
      const { id, record } = await create({ uses: 2 });
      expect(await store.consume(id)).toMatchObject({ kind: 'ok', burned: false });
      expect(await store.consume(id)).toMatchObject({ kind: 'ok', burned: true });
      // The last use's download ends first: the first one is still streaming the blob.
      expect(await store.release(id)).toBeNull();
      expect(await store.hasBlobReference(record.blob)).toBe(true);
      expect(await store.release(id)).toBe(record.blob);
      expect(await store.release(id)).toBeNull();
      expect(await store.release(newId())).toBeNull();
    });

    it('defers the shred of a deleted upload until its downloads finish', async () => {
      const { id, record } = await create({ uses: 3 });
      expect(await store.consume(id)).toMatchObject({ kind: 'ok' });
      expect(await store.burn(id)).toEqual({ kind: 'burned', blob: null });
      expect(await store.consume(id)).toMatchObject({ kind: 'exhausted' });
      expect(await store.hasBlobReference(record.blob)).toBe(true);
      expect(await store.release(id)).toBe(record.blob);
      expect(await store.hasBlobReference(record.blob)).toBe(false);
      expect(await store.burn(id)).toEqual({ kind: 'burned', blob: null });
    });

    it('answers unknown for an id that never existed', async () => {
      expect(await store.consume(newId())).toEqual({ kind: 'unknown' });
      expect(await store.preview(newId())).toBe('unknown');
      expect(await store.burn(newId())).toEqual({ kind: 'unknown' });
    });

    it('hands out exactly 5 of 50 concurrent consumes of a uses=5 upload', async () => {
      const { id, record } = await create({ uses: 5 });
      const results = await Promise.all(Array.from({ length: 50 }, () => store.consume(id)));
      const ok = results.filter((r) => r.kind === 'ok');
      expect(ok).toHaveLength(5);
      expect(results.filter((r) => r.kind === 'exhausted')).toHaveLength(45);
      expect(ok.map((r) => r.remaining).sort()).toEqual([0, 1, 2, 3, 4]);
      expect(ok.filter((r) => r.burned)).toHaveLength(1);
      for (const r of ok) {
        expect(r.record.meta).toBe(record.meta);
        expect(r.record.salt).toBe(record.salt);
      }
      const released = await Promise.all(ok.map(() => store.release(id)));
      expect(released.filter((blob) => blob !== null)).toEqual([record.blob]);
      expect(await store.hasBlobReference(record.blob)).toBe(false);
    });

    it('flips previewed exactly once under concurrency and keeps the TTL', async () => {
      const { id } = await create({ uses: 2 });
      const results = await Promise.all(Array.from({ length: 20 }, () => store.preview(id)));
      expect(results.filter((r) => r === 'flipped')).toHaveLength(1);
      expect(results.filter((r) => r === 'already')).toHaveLength(19);
      expect((await store.getUpload(id))?.previewed).toBe(true);
      expect(await store.preview(id)).toBe('already');
      expect((await entry(`upload:${id}`))?.pttl).toBeGreaterThan(55_000);
    });

    it('burns idempotently: the first call returns the blob, later ones null', async () => {
      const { id, record } = await create({ uses: 4 });
      expect(await store.burn(id)).toEqual({ kind: 'burned', blob: record.blob });
      expect(await store.burn(id)).toEqual({ kind: 'burned', blob: null });
      expect(await store.getUpload(id)).toEqual({
        ...record,
        state: 'burned',
        uses: 0,
        meta: null,
        salt: null,
      });
      expect(await store.consume(id)).toMatchObject({ kind: 'exhausted' });
      expect(await store.hasBlobReference(record.blob)).toBe(false);
      expect((await entry(`upload:${id}`))?.pttl).toBeGreaterThan(55_000);

      const used = await create({ uses: 1 });
      await store.consume(used.id);
      await store.release(used.id);
      expect(await store.burn(used.id)).toEqual({ kind: 'burned', blob: null });
    });

    it('counts failures, refreshes their TTL and blocks at the limit', async () => {
      const client = `198.51.100.${Math.floor(Math.random() * 250)}-${randomUUID()}`;
      expect(await store.blockedFor(client)).toBe(0);
      expect(await store.recordFailure(client, 3, 30, 120)).toEqual({ count: 1, blocked: false });
      expect((await entry(`fails:${client}`))?.pttl).toBeGreaterThan(29_000);
      expect(await store.recordFailure(client, 3, 60, 120)).toEqual({ count: 2, blocked: false });
      // Refreshed on each failure.
      expect((await entry(`fails:${client}`))?.pttl).toBeGreaterThan(59_000);
      expect(await store.blockedFor(client)).toBe(0);
      expect(await store.recordFailure(client, 3, 60, 120)).toEqual({ count: 3, blocked: true });
      const blocked = await store.blockedFor(client);
      expect(blocked).toBeGreaterThanOrEqual(119);
      expect(blocked).toBeLessThanOrEqual(120);
      const block = await entry(`block:${client}`);
      expect(block?.value).toBe('1');
      expect(block?.pttl).toBeGreaterThan(119_000);
      expect(block?.pttl).toBeLessThanOrEqual(120_000);
      expect(await store.blockedFor(`${client}-other`)).toBe(0);
    });

    it('ends a block when its window has passed', async () => {
      const client = `block-${randomUUID()}`;
      expect(await store.recordFailure(client, 1, 60, 1)).toEqual({ count: 1, blocked: true });
      expect(await store.blockedFor(client)).toBe(1);
      await sleep(1100);
      expect(await store.blockedFor(client)).toBe(0);
    });

    it('keeps the first KDF parameters, without a TTL', async () => {
      expect(await store.getKdf()).toBeNull();
      const first = { salt: randomBytes(16).toString('base64url'), log2n: 15, r: 8, p: 1 };
      const second = { salt: randomBytes(16).toString('base64url'), log2n: 17, r: 8, p: 2 };
      expect(await store.ensureKdf(first)).toEqual(first);
      expect(await store.ensureKdf(second)).toEqual(first);
      expect(await store.getKdf()).toEqual(first);
      expect(await entry('kdf')).toEqual({
        value: { salt: first.salt, log2n: '15', r: '8', p: '1' },
        pttl: -1,
      });
    });

    it('lets one owner at a time hold the sweep lock', async () => {
      expect(await store.acquireSweepLock('a', 60_000)).toBe(true);
      expect(await store.acquireSweepLock('b', 60_000)).toBe(false);
      expect(await store.acquireSweepLock('a', 60_000)).toBe(false);
      const lock = await entry('sweep:lock');
      expect(lock?.value).toBe('a');
      expect(lock?.pttl).toBeGreaterThan(59_000);
      await store.releaseSweepLock('b'); // not the owner: no effect
      expect(await store.acquireSweepLock('b', 60_000)).toBe(false);
      await store.releaseSweepLock('a');
      expect(await store.acquireSweepLock('b', 200)).toBe(true);
      await sleep(300);
      // An owner that died without releasing loses the lock when it expires.
      expect(await store.acquireSweepLock('c', 60_000)).toBe(true);
      await store.releaseSweepLock('c');
      expect(await entry('sweep:lock')).toBeUndefined();

      const contenders = await Promise.all(
        Array.from({ length: 10 }, (_, i) => store.acquireSweepLock(`w${i}`, 60_000)),
      );
      expect(contenders.filter(Boolean)).toHaveLength(1);
    });

    it('writes a heartbeat with its TTL', async () => {
      const instance = `host-${randomUUID()}`;
      const before = Date.now();
      await store.heartbeat(instance, 30);
      const beat = await entry(`health:heartbeat:${instance}`);
      expect(typeof beat?.value).toBe('string');
      expect(Date.parse(String(beat?.value))).toBeGreaterThanOrEqual(before - 1000);
      expect(beat?.pttl).toBeGreaterThan(29_000);
      expect(beat?.pttl).toBeLessThanOrEqual(30_000);
    });

    it('answers ping', async () => {
      await expect(store.ping()).resolves.toBeUndefined();
    });

    it('gives every key but the KDF parameters a TTL', async () => {
      for (const [key, stored] of await h.dump()) {
        if (key === `${h.prefix}kdf`) continue;
        expect(stored.pttl, key).toBeGreaterThan(0);
      }
    });
  });
}

// ---------------------------------------------------------------- embedded store

storeContract('MemoryRavenStore', async () => {
  const store = new MemoryRavenStore({ purgeIntervalMs: 50 });
  return {
    store,
    prefix: 'raven:',
    async dump() {
      const now = Date.now();
      return new Map(
        store
          .entries()
          .map((e) => [e.key, { value: e.value, pttl: e.expiresAtMs === null ? -1 : e.expiresAtMs - now }]),
      );
    },
    dispose: () => store.close(),
  };
});

describe('MemoryRavenStore clock', () => {
  let clock = Date.UTC(2030, 0, 1);
  const store = new MemoryRavenStore({ now: () => clock, prefix: 'p:', purgeIntervalMs: 60_000 });
  afterEach(() => {
    clock = Date.UTC(2030, 0, 1);
  });
  afterAll(() => store.close());

  it('hides an entry from the exact millisecond it expires, and purges it', async () => {
    const expiresAtMs = clock + 5000;
    const record = newRecord({ uses: 2, uses_total: 2 }, expiresAtMs);
    expect(await store.createUpload('x', record, expiresAtMs)).toBe(true);
    await store.recordFailure('ip', 1, 10, 3);
    clock = expiresAtMs - 1;
    expect(await store.getUpload('x')).toEqual(record);
    expect(await store.blockedFor('ip')).toBe(0);
    clock = expiresAtMs;
    expect(await store.getUpload('x')).toBeNull();
    expect(await store.hasBlobReference(record.blob)).toBe(false);
    // The id is free again once the record expired.
    expect(await store.createUpload('x', record, expiresAtMs + 1000)).toBe(true);
    clock = expiresAtMs + 20_000;
    store.purgeExpired();
    expect(store.entries()).toEqual([]);
  });

  it('reports a block in whole seconds, rounded up', async () => {
    await store.recordFailure('ip2', 1, 10, 3);
    expect(await store.blockedFor('ip2')).toBe(3);
    clock += 2001;
    expect(await store.blockedFor('ip2')).toBe(1);
    clock += 999;
    expect(await store.blockedFor('ip2')).toBe(0);
  });
});

// ---------------------------------------------------------------- Redis store

describe.skipIf(!url)('RedisRavenStore (Redis test server)', () => {
  const base = `test:raven-store:${process.pid}:${randomUUID()}:`;
  const clients: Redis[] = [];
  let admin: Redis;

  const open = async (commandTimeoutMs = 2000) => {
    const client = connectRedis(url ?? '', { commandTimeoutMs, name: 'raven-store-test' });
    clients.push(client);
    await waitForRedis(client, 5000);
    return client;
  };

  beforeAll(async () => {
    admin = await open();
  });

  afterAll(async () => {
    if (admin) {
      let cursor = '0';
      do {
        const [next, keys] = await admin.scan(cursor, 'MATCH', `${base}*`, 'COUNT', 500);
        cursor = next;
        if (keys.length > 0) await admin.del(...keys);
      } while (cursor !== '0');
    }
    for (const client of clients) client.disconnect();
  });

  let run = 0;
  storeContract('contract', async () => {
    const prefix = `${base}${++run}:`;
    const store = new RedisRavenStore(await open(), prefix);
    return {
      store,
      prefix,
      async dump() {
        const out = new Map<string, Stored>();
        let cursor = '0';
        do {
          const [next, keys] = await admin.scan(cursor, 'MATCH', `${prefix}*`, 'COUNT', 500);
          cursor = next;
          for (const key of keys) {
            const type = await admin.type(key);
            const value = type === 'hash' ? await admin.hgetall(key) : await admin.get(key);
            const pttl = await admin.pttl(key);
            if (value !== null && pttl !== -2) out.set(key, { value, pttl });
          }
        } while (cursor !== '0');
        return out;
      },
      dispose: () => store.close(),
    };
  });

  it('uses the key names of the data model under the default prefix layout', async () => {
    const prefix = `${base}layout:`;
    const store = new RedisRavenStore(await open(), prefix);
    const expiresAtMs = Date.now() + 60_000;
    const record = newRecord({ uses: 1 }, expiresAtMs);
    await store.createUpload('abc', record, expiresAtMs);
    expect(await admin.pexpiretime(`${prefix}upload:abc`)).toBe(expiresAtMs);
    expect(await admin.pexpiretime(`${prefix}blob:${record.blob}`)).toBe(expiresAtMs);
    await store.recordFailure('203.0.113.7', 1, 60, 60);
    expect(await admin.exists(`${prefix}fails:203.0.113.7`, `${prefix}block:203.0.113.7`)).toBe(2);
    await store.close();
  });

  it('fails fast while the server is paused, with an error recognised as unavailable, then recovers', async () => {
    const store = new RedisRavenStore(await open(300), `${base}pause:`);
    const { id } = await (async () => {
      const expiresAtMs = Date.now() + 60_000;
      const newUpload = newId();
      await store.createUpload(newUpload, newRecord({ uses: 2, uses_total: 2 }, expiresAtMs), expiresAtMs);
      return { id: newUpload };
    })();

    await admin.call('CLIENT', 'PAUSE', '1500', 'ALL');
    const started = Date.now();
    const error = await store.getUpload(id).then(
      () => null,
      (e: unknown) => e,
    );
    const elapsed = Date.now() - started;
    expect(error).toBeInstanceOf(Error);
    expect(isRedisUnavailable(error)).toBe(true);
    expect(elapsed).toBeLessThan(1000);

    await sleep(Math.max(0, 1600 - (Date.now() - started)));
    await expect(store.ping()).resolves.toBeUndefined();
    expect(await store.consume(id)).toMatchObject({ kind: 'ok', remaining: 1 });
    await store.close();
  });
});

// ---------------------------------------------------------------- connection handling (no server needed)

describe('Redis connection helpers', () => {
  it('accepts only redis:// and rediss:// URLs, naming REDIS_URL', () => {
    expect(() => validateRedisUrl('redis://127.0.0.1:6379/0')).not.toThrow();
    expect(() => validateRedisUrl('rediss://user:pw@cache.example:6380')).not.toThrow();
    for (const bad of ['http://127.0.0.1:6379', 'localhost:6379', '', 'redis://host/abc']) {
      expect(() => validateRedisUrl(bad), bad).toThrow(/REDIS_URL/);
    }
  });

  it('fails fast against a closed port and gives up waiting after the deadline', async () => {
    const client = connectRedis('redis://127.0.0.1:1', { commandTimeoutMs: 300 });
    try {
      const started = Date.now();
      await expect(waitForRedis(client, 500)).rejects.toThrow(/Redis not reachable within 500 ms/);
      expect(Date.now() - started).toBeLessThan(1500);
      const error = await client.get('k').then(
        () => null,
        (e: unknown) => e,
      );
      expect(isRedisUnavailable(error)).toBe(true);
      const store = new RedisRavenStore(client, 'raven:');
      const fail = await store.consume('x').then(
        () => null,
        (e: unknown) => e,
      );
      expect(isRedisUnavailable(fail)).toBe(true);
    } finally {
      client.disconnect();
    }
  });

  it('does not mistake ordinary errors for unavailability', () => {
    expect(
      isRedisUnavailable(new Error('WRONGTYPE Operation against a key holding the wrong kind of value')),
    ).toBe(false);
    expect(isRedisUnavailable('Command timed out')).toBe(false);
    expect(isRedisUnavailable(new Error('wrapped', { cause: new Error('Command timed out') }))).toBe(true);
  });
});
