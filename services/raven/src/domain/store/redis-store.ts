// Redis store: the keys of the data model under REDIS_KEY_PREFIX, every multi-step change one Lua script.
// Mutations after creation only use HSET/HINCRBY/HDEL on the upload hash, so its expiry is never lost.
import { type Redis, RedisScript } from '@quintet/kernel/redis';
import {
  type BurnResult,
  type ConsumeResult,
  ceilSeconds,
  decodeKdf,
  decodeUpload,
  encodeKdf,
  encodeUpload,
  type FailureResult,
  type KdfParamsRecord,
  type PreviewResult,
  pairsToObject,
  type RavenStore,
  type UploadRecord,
} from './types.js';

// KEYS: upload hash, blob reference. ARGV: expiry (epoch ms), then field/value pairs.
const CREATE = new RedisScript(`
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
redis.call('HSET', KEYS[1], unpack(ARGV, 2))
redis.call('PEXPIREAT', KEYS[1], ARGV[1])
redis.call('SET', KEYS[2], '1')
redis.call('PEXPIREAT', KEYS[2], ARGV[1])
return 1
`);

// KEYS: upload hash. Reply: {0} unknown | {1, fields} exhausted | {2, fields before the decrement, uses left}.
// The blob reference stays until the last reader releases (RELEASE).
const CONSUME = new RedisScript(`
local fields = redis.call('HGETALL', KEYS[1])
if #fields == 0 then return {0} end
local uses = tonumber(redis.call('HGET', KEYS[1], 'uses')) or 0
if redis.call('HGET', KEYS[1], 'state') ~= 'active' or uses <= 0 then return {1, fields} end
local left = redis.call('HINCRBY', KEYS[1], 'uses', -1)
redis.call('HINCRBY', KEYS[1], 'readers', 1)
if left <= 0 then
  redis.call('HSET', KEYS[1], 'state', 'burned')
  redis.call('HDEL', KEYS[1], 'meta', 'salt')
end
return {2, fields, left}
`);

// KEYS: upload hash. ARGV: blob reference key prefix. Reply: the blob to shred, or false.
const RELEASE = new RedisScript(`
if redis.call('EXISTS', KEYS[1]) == 0 then return false end
local readers = redis.call('HINCRBY', KEYS[1], 'readers', -1)
if readers > 0 then return false end
redis.call('HDEL', KEYS[1], 'readers')
if redis.call('HGET', KEYS[1], 'state') ~= 'burned' then return false end
local blob = redis.call('HGET', KEYS[1], 'blob')
if blob and redis.call('DEL', ARGV[1] .. blob) == 1 then return blob end
return false
`);

// KEYS: upload hash. Reply: 0 unknown, 1 flipped, 2 already previewed.
const PREVIEW = new RedisScript(`
local flag = redis.call('HGET', KEYS[1], 'previewed')
if not flag then return 0 end
if flag == '1' then return 2 end
redis.call('HSET', KEYS[1], 'previewed', '1')
return 1
`);

// KEYS: upload hash. ARGV: blob reference key prefix. Reply: {0} unknown | {1} tombstone already, or readers
// still streaming (the last one shreds) | {1, blob}.
const BURN = new RedisScript(`
if redis.call('EXISTS', KEYS[1]) == 0 then return {0} end
if redis.call('HGET', KEYS[1], 'state') == 'burned' then return {1} end
local blob = redis.call('HGET', KEYS[1], 'blob')
redis.call('HSET', KEYS[1], 'state', 'burned', 'uses', '0')
redis.call('HDEL', KEYS[1], 'meta', 'salt')
if (tonumber(redis.call('HGET', KEYS[1], 'readers')) or 0) > 0 then return {1} end
if blob then
  redis.call('DEL', ARGV[1] .. blob)
  return {1, blob}
end
return {1}
`);

// KEYS: fail counter, block key. ARGV: limit, counter TTL s, block s. Reply: {count, blocked 0/1}.
const FAIL = new RedisScript(`
local n = redis.call('INCR', KEYS[1])
redis.call('EXPIRE', KEYS[1], ARGV[2])
if n >= tonumber(ARGV[1]) then
  redis.call('SET', KEYS[2], '1', 'EX', ARGV[3])
  return {n, 1}
end
return {n, 0}
`);

// KEYS: kdf hash. ARGV: field/value pairs. Reply: the stored fields.
const ENSURE_KDF = new RedisScript(`
if redis.call('EXISTS', KEYS[1]) == 0 then redis.call('HSET', KEYS[1], unpack(ARGV)) end
return redis.call('HGETALL', KEYS[1])
`);

// KEYS: lock. ARGV: owner.
const RELEASE_LOCK = new RedisScript(`
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
`);

function asArray(reply: unknown): unknown[] {
  return Array.isArray(reply) ? reply : [];
}

function recordFrom(reply: unknown): UploadRecord {
  const record = decodeUpload(pairsToObject(asArray(reply)));
  if (!record) throw new Error('upload record without a blob field');
  return record;
}

export class RedisRavenStore implements RavenStore {
  readonly #redis: Redis;
  readonly #prefix: string;

  /** The store owns `redis` from here on: `close()` quits it. */
  constructor(redis: Redis, prefix = 'raven:') {
    this.#redis = redis;
    this.#prefix = prefix;
  }

  async ensureKdf(params: KdfParamsRecord): Promise<KdfParamsRecord> {
    const args = Object.entries(encodeKdf(params)).flat();
    const reply = await ENSURE_KDF.run(this.#redis, [`${this.#prefix}kdf`], args);
    const stored = decodeKdf(pairsToObject(asArray(reply)));
    if (!stored) throw new Error('KDF parameters without a salt');
    return stored;
  }

  async getKdf(): Promise<KdfParamsRecord | null> {
    return decodeKdf(await this.#redis.hgetall(`${this.#prefix}kdf`));
  }

  async createUpload(id: string, record: UploadRecord, expiresAtMs: number): Promise<boolean> {
    const args = [Math.trunc(expiresAtMs), ...Object.entries(encodeUpload(record)).flat()];
    const reply = await CREATE.run(this.#redis, [this.#uploadKey(id), this.#blobKey(record.blob)], args);
    return Number(reply) === 1;
  }

  async getUpload(id: string): Promise<UploadRecord | null> {
    return decodeUpload(await this.#redis.hgetall(this.#uploadKey(id)));
  }

  async consume(id: string): Promise<ConsumeResult> {
    const reply = asArray(await CONSUME.run(this.#redis, [this.#uploadKey(id)], [this.#blobKey('')]));
    const kind = Number(reply[0]);
    if (kind === 1) return { kind: 'exhausted', record: recordFrom(reply[1]) };
    if (kind === 2) {
      const remaining = Number(reply[2]);
      return { kind: 'ok', record: recordFrom(reply[1]), remaining, burned: remaining <= 0 };
    }
    return { kind: 'unknown' };
  }

  async release(id: string): Promise<string | null> {
    const reply = await RELEASE.run(this.#redis, [this.#uploadKey(id)], [this.#blobKey('')]);
    return typeof reply === 'string' ? reply : null;
  }

  async preview(id: string): Promise<PreviewResult> {
    const reply = Number(await PREVIEW.run(this.#redis, [this.#uploadKey(id)], []));
    return reply === 1 ? 'flipped' : reply === 2 ? 'already' : 'unknown';
  }

  async burn(id: string): Promise<BurnResult> {
    const reply = asArray(await BURN.run(this.#redis, [this.#uploadKey(id)], [this.#blobKey('')]));
    if (Number(reply[0]) !== 1) return { kind: 'unknown' };
    return { kind: 'burned', blob: reply[1] === undefined || reply[1] === null ? null : String(reply[1]) };
  }

  async recordFailure(
    client: string,
    limit: number,
    failTtlSeconds: number,
    blockSeconds: number,
  ): Promise<FailureResult> {
    const keys = [`${this.#prefix}fails:${client}`, `${this.#prefix}block:${client}`];
    const reply = asArray(await FAIL.run(this.#redis, keys, [limit, failTtlSeconds, blockSeconds]));
    return { count: Number(reply[0]), blocked: Number(reply[1]) === 1 };
  }

  async blockedFor(client: string): Promise<number> {
    const pttl = await this.#redis.pttl(`${this.#prefix}block:${client}`);
    if (pttl === -2) return 0;
    // -1 (no expiry) cannot happen for keys written here; still count it as blocked.
    return pttl < 0 ? 1 : Math.max(1, ceilSeconds(pttl));
  }

  async hasBlobReference(blobName: string): Promise<boolean> {
    return (await this.#redis.exists(this.#blobKey(blobName))) === 1;
  }

  async heartbeat(instanceId: string, ttlSeconds: number): Promise<void> {
    const key = `${this.#prefix}health:heartbeat:${instanceId}`;
    await this.#redis.set(key, new Date().toISOString(), 'EX', ttlSeconds);
  }

  async acquireSweepLock(owner: string, ttlMs: number): Promise<boolean> {
    return (await this.#redis.set(`${this.#prefix}sweep:lock`, owner, 'PX', ttlMs, 'NX')) === 'OK';
  }

  async releaseSweepLock(owner: string): Promise<void> {
    await RELEASE_LOCK.run(this.#redis, [`${this.#prefix}sweep:lock`], [owner]);
  }

  async ping(): Promise<void> {
    await this.#redis.ping();
  }

  async close(): Promise<void> {
    try {
      await this.#redis.quit();
    } catch {
      this.#redis.disconnect();
    }
  }

  #uploadKey(id: string): string {
    return `${this.#prefix}upload:${id}`;
  }

  #blobKey(blobName: string): string {
    return `${this.#prefix}blob:${blobName}`;
  }
}
