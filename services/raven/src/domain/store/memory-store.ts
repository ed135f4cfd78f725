// Embedded store: the Redis key space re-created in process, with the same keys, fields and millisecond
// expiries, so both stores behave alike. Every operation is one synchronous section, hence atomic.
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
  type RavenStore,
  type UploadRecord,
} from './types.js';

type Entry =
  | { kind: 'hash'; value: Map<string, string>; expiresAtMs: number | null }
  | { kind: 'string'; value: string; expiresAtMs: number | null };

/** A live entry as seen by `entries()`: hash values as plain objects. */
export interface MemoryEntry {
  key: string;
  value: string | Record<string, string>;
  /** Absolute expiry (ms since epoch), null when the entry does not expire. */
  expiresAtMs: number | null;
}

export interface MemoryRavenStoreOptions {
  /** Key prefix, like REDIS_KEY_PREFIX (default `raven:`). */
  prefix?: string;
  /** Clock (ms since epoch); tests inject their own. */
  now?: () => number;
  /** How often expired entries are purged from memory (default 1000 ms). */
  purgeIntervalMs?: number;
}

export class MemoryRavenStore implements RavenStore {
  readonly #data = new Map<string, Entry>();
  readonly #prefix: string;
  readonly #now: () => number;
  readonly #purgeTimer: NodeJS.Timeout;

  constructor(options: MemoryRavenStoreOptions = {}) {
    this.#prefix = options.prefix ?? 'raven:';
    this.#now = options.now ?? Date.now;
    this.#purgeTimer = setInterval(() => this.purgeExpired(), options.purgeIntervalMs ?? 1000);
    this.#purgeTimer.unref();
  }

  async ensureKdf(params: KdfParamsRecord): Promise<KdfParamsRecord> {
    const key = `${this.#prefix}kdf`;
    const existing = this.#hash(key);
    if (existing) return decodeKdf(Object.fromEntries(existing)) ?? params;
    this.#data.set(key, {
      kind: 'hash',
      value: new Map(Object.entries(encodeKdf(params))),
      expiresAtMs: null,
    });
    return { ...params };
  }

  async getKdf(): Promise<KdfParamsRecord | null> {
    const hash = this.#hash(`${this.#prefix}kdf`);
    return hash ? decodeKdf(Object.fromEntries(hash)) : null;
  }

  async createUpload(id: string, record: UploadRecord, expiresAtMs: number): Promise<boolean> {
    const key = this.#uploadKey(id);
    if (this.#live(key)) return false;
    const fields = new Map(Object.entries(encodeUpload(record)));
    this.#data.set(key, { kind: 'hash', value: fields, expiresAtMs });
    this.#data.set(this.#blobKey(record.blob), { kind: 'string', value: '1', expiresAtMs });
    return true;
  }

  async getUpload(id: string): Promise<UploadRecord | null> {
    const hash = this.#hash(this.#uploadKey(id));
    return hash ? decodeUpload(Object.fromEntries(hash)) : null;
  }

  async consume(id: string): Promise<ConsumeResult> {
    const hash = this.#hash(this.#uploadKey(id));
    if (!hash) return { kind: 'unknown' };
    const before = decodeUpload(Object.fromEntries(hash));
    if (!before) return { kind: 'unknown' };
    const uses = Number(hash.get('uses') ?? 0);
    if (hash.get('state') !== 'active' || !(uses > 0)) return { kind: 'exhausted', record: before };
    const remaining = uses - 1;
    hash.set('uses', String(remaining));
    hash.set('readers', String(Number(hash.get('readers') ?? 0) + 1));
    const burned = remaining <= 0;
    if (burned) this.#toTombstone(hash);
    return { kind: 'ok', record: before, remaining, burned };
  }

  async release(id: string): Promise<string | null> {
    const hash = this.#hash(this.#uploadKey(id));
    if (!hash) return null;
    const readers = Number(hash.get('readers') ?? 0) - 1;
    if (readers > 0) {
      hash.set('readers', String(readers));
      return null;
    }
    hash.delete('readers');
    return hash.get('state') === 'burned' ? this.#dropBlobReference(hash) : null;
  }

  async preview(id: string): Promise<PreviewResult> {
    const hash = this.#hash(this.#uploadKey(id));
    const flag = hash?.get('previewed');
    if (!hash || flag === undefined) return 'unknown';
    if (flag === '1') return 'already';
    hash.set('previewed', '1');
    return 'flipped';
  }

  async burn(id: string): Promise<BurnResult> {
    const hash = this.#hash(this.#uploadKey(id));
    if (!hash) return { kind: 'unknown' };
    if (hash.get('state') === 'burned') return { kind: 'burned', blob: null };
    hash.set('uses', '0');
    this.#toTombstone(hash);
    if (Number(hash.get('readers') ?? 0) > 0) return { kind: 'burned', blob: null };
    return { kind: 'burned', blob: this.#dropBlobReference(hash) };
  }

  async recordFailure(
    client: string,
    limit: number,
    failTtlSeconds: number,
    blockSeconds: number,
  ): Promise<FailureResult> {
    const now = this.#now();
    const key = `${this.#prefix}fails:${client}`;
    const entry = this.#live(key);
    const count = (entry?.kind === 'string' ? Number(entry.value) || 0 : 0) + 1;
    this.#data.set(key, { kind: 'string', value: String(count), expiresAtMs: now + failTtlSeconds * 1000 });
    const blocked = count >= limit;
    if (blocked) {
      this.#data.set(`${this.#prefix}block:${client}`, {
        kind: 'string',
        value: '1',
        expiresAtMs: now + blockSeconds * 1000,
      });
    }
    return { count, blocked };
  }

  async blockedFor(client: string): Promise<number> {
    const entry = this.#live(`${this.#prefix}block:${client}`);
    if (!entry) return 0;
    return entry.expiresAtMs === null ? 1 : Math.max(1, ceilSeconds(entry.expiresAtMs - this.#now()));
  }

  async hasBlobReference(blobName: string): Promise<boolean> {
    return this.#live(this.#blobKey(blobName)) !== undefined;
  }

  async heartbeat(instanceId: string, ttlSeconds: number): Promise<void> {
    const now = this.#now();
    this.#data.set(`${this.#prefix}health:heartbeat:${instanceId}`, {
      kind: 'string',
      value: new Date(now).toISOString(),
      expiresAtMs: now + ttlSeconds * 1000,
    });
  }

  async acquireSweepLock(owner: string, ttlMs: number): Promise<boolean> {
    const key = `${this.#prefix}sweep:lock`;
    if (this.#live(key)) return false;
    this.#data.set(key, { kind: 'string', value: owner, expiresAtMs: this.#now() + ttlMs });
    return true;
  }

  async releaseSweepLock(owner: string): Promise<void> {
    const key = `${this.#prefix}sweep:lock`;
    const entry = this.#live(key);
    if (entry?.kind === 'string' && entry.value === owner) this.#data.delete(key);
  }

  async ping(): Promise<void> {}

  async close(): Promise<void> {
    clearInterval(this.#purgeTimer);
  }

  /** Every live entry with its value and absolute expiry (for tests and diagnostics). */
  entries(): MemoryEntry[] {
    const out: MemoryEntry[] = [];
    for (const key of [...this.#data.keys()].sort()) {
      const entry = this.#live(key);
      if (!entry) continue;
      const value = entry.kind === 'hash' ? Object.fromEntries(entry.value) : entry.value;
      out.push({ key, value, expiresAtMs: entry.expiresAtMs });
    }
    return out;
  }

  /** Drops expired entries from memory (they are already invisible); runs on a timer. */
  purgeExpired(): void {
    const now = this.#now();
    for (const [key, entry] of this.#data) {
      if (entry.expiresAtMs !== null && entry.expiresAtMs <= now) this.#data.delete(key);
    }
  }

  #uploadKey(id: string): string {
    return `${this.#prefix}upload:${id}`;
  }

  #blobKey(blobName: string): string {
    return `${this.#prefix}blob:${blobName}`;
  }

  /** The entry unless it has expired (an expired entry is deleted on sight). */
  #live(key: string): Entry | undefined {
    const entry = this.#data.get(key);
    if (entry === undefined) return undefined;
    if (entry.expiresAtMs !== null && entry.expiresAtMs <= this.#now()) {
      this.#data.delete(key);
      return undefined;
    }
    return entry;
  }

  #hash(key: string): Map<string, string> | undefined {
    const entry = this.#live(key);
    return entry?.kind === 'hash' ? entry.value : undefined;
  }

  /** state=burned, meta and salt removed; the hash keeps its expiry (and the blob reference stays for now). */
  #toTombstone(hash: Map<string, string>): void {
    hash.set('state', 'burned');
    hash.delete('meta');
    hash.delete('salt');
  }

  /** Deletes the blob reference; returns the blob when this call removed it (so it is shredded once). */
  #dropBlobReference(hash: Map<string, string>): string | null {
    const blob = hash.get('blob') ?? null;
    if (blob === null || !this.#data.delete(this.#blobKey(blob))) return null;
    return blob;
  }
}
