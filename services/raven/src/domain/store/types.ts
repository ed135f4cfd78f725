// The Raven store: upload records, blob references, failure counters and blocks, heartbeats and the sweep lock.
// Two implementations with the same semantics: in-process (embedded mode) and Redis (many instances).

/** The server-wide KDF parameters (`raven:kdf`), written once and never expiring. */
export interface KdfParamsRecord {
  /** base64url salt */
  salt: string;
  log2n: number;
  r: number;
  p: number;
}

export type UploadState = 'active' | 'burned';

/** One upload (`raven:upload:<id>`). `salt` and `meta` are gone (null) once the upload is burned. */
export interface UploadRecord {
  v: 1;
  state: UploadState;
  /** base64url per-upload salt */
  salt: string | null;
  /** blob file name */
  blob: string;
  /** encrypted metadata */
  meta: string | null;
  /** password protected */
  pw: boolean;
  /** uses remaining */
  uses: number;
  uses_total: number;
  previewed: boolean;
  /** ISO time */
  created_at: string;
  /** ISO time */
  expires_at: string;
}

export type ConsumeResult =
  | { kind: 'unknown' }
  | { kind: 'exhausted'; record: UploadRecord }
  /** `record` is as it was before this use was taken (with meta, salt and blob); `burned` = that was the last use. */
  | { kind: 'ok'; record: UploadRecord; remaining: number; burned: boolean };

export type PreviewResult = 'unknown' | 'flipped' | 'already';

/**
 * `blob` is the blob to shred now, or null when the upload already was a tombstone or downloads are still
 * reading it (the last of them to finish gets it from `release`).
 */
export type BurnResult = { kind: 'unknown' } | { kind: 'burned'; blob: string | null };

export interface FailureResult {
  count: number;
  /** The count reached the limit and the client is now blocked. */
  blocked: boolean;
}

export interface RavenStore {
  /** Stores `params` unless KDF parameters exist already; returns the stored ones either way. */
  ensureKdf(params: KdfParamsRecord): Promise<KdfParamsRecord>;
  getKdf(): Promise<KdfParamsRecord | null>;
  /**
   * Creates the upload record and its blob reference, both expiring at `expiresAtMs`, unless the id exists.
   * Returns false (and changes nothing) when it does.
   */
  createUpload(id: string, record: UploadRecord, expiresAtMs: number): Promise<boolean>;
  getUpload(id: string): Promise<UploadRecord | null>;
  /**
   * Takes one use atomically and registers the caller as a reader of the blob (the hash's `readers` field);
   * the last use turns the record into a tombstone. Every 'ok' must be followed by one `release`.
   */
  consume(id: string): Promise<ConsumeResult>;
  /**
   * Ends a reader registered by `consume`. When it was the last reader of a burned upload, the blob reference
   * is dropped and the blob is returned for shredding; otherwise null. A shred never overwrites a blob that
   * another download (on any instance) is still streaming.
   */
  release(id: string): Promise<string | null>;
  /** Flips `previewed` 0 → 1 atomically; 'flipped' only for the call that flipped it. */
  preview(id: string): Promise<PreviewResult>;
  /**
   * Turns the upload into a tombstone (state burned, no uses, no meta/salt). The blob reference is dropped
   * now, or by the `release` of the last download still reading it. Idempotent.
   */
  burn(id: string): Promise<BurnResult>;
  /** Counts a failed lookup (TTL refreshed); at `limit` the client is blocked for `blockSeconds`. */
  recordFailure(
    client: string,
    limit: number,
    failTtlSeconds: number,
    blockSeconds: number,
  ): Promise<FailureResult>;
  /** Seconds the client stays blocked (rounded up); 0 = not blocked. */
  blockedFor(client: string): Promise<number>;
  hasBlobReference(blobName: string): Promise<boolean>;
  heartbeat(instanceId: string, ttlSeconds: number): Promise<void>;
  /** Takes the sweep lock for `ttlMs` unless someone holds it. */
  acquireSweepLock(owner: string, ttlMs: number): Promise<boolean>;
  /** Releases the sweep lock if `owner` still holds it. */
  releaseSweepLock(owner: string): Promise<void>;
  /** Rejects when the store is not reachable. */
  ping(): Promise<void>;
  close(): Promise<void>;
}

/** The hash fields of an upload record, as stored. */
export const UPLOAD_FIELDS = [
  'v',
  'state',
  'salt',
  'blob',
  'meta',
  'pw',
  'uses',
  'uses_total',
  'previewed',
  'created_at',
  'expires_at',
] as const;

/** The record as hash fields (string values); null fields are left out. */
export function encodeUpload(record: UploadRecord): Record<string, string> {
  const fields: Record<string, string> = {
    v: String(record.v),
    state: record.state,
    blob: record.blob,
    pw: record.pw ? '1' : '0',
    uses: String(record.uses),
    uses_total: String(record.uses_total),
    previewed: record.previewed ? '1' : '0',
    created_at: record.created_at,
    expires_at: record.expires_at,
  };
  if (record.salt !== null) fields.salt = record.salt;
  if (record.meta !== null) fields.meta = record.meta;
  return fields;
}

/** Hash fields back into a record; null when the hash is empty. */
export function decodeUpload(fields: Readonly<Record<string, string>>): UploadRecord | null {
  if (fields.blob === undefined) return null;
  return {
    v: 1,
    state: fields.state === 'burned' ? 'burned' : 'active',
    salt: fields.salt ?? null,
    blob: fields.blob,
    meta: fields.meta ?? null,
    pw: fields.pw === '1',
    uses: Number(fields.uses ?? 0),
    uses_total: Number(fields.uses_total ?? 0),
    previewed: fields.previewed === '1',
    created_at: fields.created_at ?? '',
    expires_at: fields.expires_at ?? '',
  };
}

export function encodeKdf(params: KdfParamsRecord): Record<string, string> {
  return { salt: params.salt, log2n: String(params.log2n), r: String(params.r), p: String(params.p) };
}

export function decodeKdf(fields: Readonly<Record<string, string>>): KdfParamsRecord | null {
  if (fields.salt === undefined) return null;
  return { salt: fields.salt, log2n: Number(fields.log2n), r: Number(fields.r), p: Number(fields.p) };
}

/** Turns a flat [field, value, field, value, …] script reply into an object. */
export function pairsToObject(pairs: readonly unknown[]): Record<string, string> {
  const out: Record<string, string> = {};
  for (let i = 0; i + 1 < pairs.length; i += 2) out[String(pairs[i])] = String(pairs[i + 1]);
  return out;
}

/** Milliseconds to whole seconds, rounded up (a block with 0.2 s left still says 1). */
export function ceilSeconds(ms: number): number {
  return ms <= 0 ? 0 : Math.ceil(ms / 1000);
}
