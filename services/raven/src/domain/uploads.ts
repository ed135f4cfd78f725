// The Raven Zero service layer: uploads (stream → sniff → hash → encrypt → blob + record) and key lookups
// (preview, download, status, delete) with failure accounting. Nothing here knows about HTTP.
//
// Password after the file: in multipart the password field may arrive after the file part, yet the file key
// depends on it. The key, its master secret and the lookup id are derived when the upload begins, and the file
// is encrypted while it streams with the no-password file key. When `finish` receives a password, the finished
// temp blob is decrypted and re-encrypted with the password-derived file key in a second streaming pass (one
// chunk in memory at a time), and the first temp blob is removed. The same pass is used on the (rare) lookup-id
// collision, where a new key means new file keys.
import { createHash, randomBytes } from 'node:crypto';
import type { WriteStream } from 'node:fs';
import { createReadStream, createWriteStream } from 'node:fs';
import { copyFile, mkdir, open, rename, unlink } from 'node:fs/promises';
import { availableParallelism } from 'node:os';
import { join } from 'node:path';
import { Readable, type Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { isRedisUnavailable } from '@quintet/kernel/redis';
import type { RavenConfig } from '../config.js';
import { blobExpiry, createBlobDecryptor, createBlobEncryptor, openBlobReader } from './blob.js';
import {
  AuthenticationError,
  decryptMeta,
  deriveMaster,
  encryptMeta,
  fromB64u,
  type KdfParams,
  lookupId,
  newKdfParams,
  toB64u,
  UPLOAD_SALT_BYTES,
  type UploadKeys,
  type UploadMeta,
  uploadKeys,
  wipe,
} from './crypto.js';
import { sanitizeFilename } from './filename.js';
import {
  type DownloadStream,
  IntegrityError,
  type LookupFailure,
  type Outcome,
  type PreviewInfo,
  type RavenService,
  type StatusInfo,
  type UploadOptions,
  type UploadReceipt,
  UploadRefusedError,
  type UploadSession,
} from './service-types.js';
import { shredFile } from './shred.js';
import { mimeAllowed, SNIFF_WINDOW_BYTES, sniffMime } from './sniff.js';
import type { RavenStore, UploadRecord } from './store/types.js';
import { isWellFormedKey, normalizeKey, type Wordlist } from './wordlist.js';

/** Attempts at a unique lookup id (new key each time) before an upload fails. */
export const MAX_KEY_ATTEMPTS = 10;

export type LookupEndpoint = 'preview' | 'download' | 'status' | 'delete';

/** Optional observation hooks (for Prometheus counters/histograms); none receives a key, filename or content. */
/** What a scrypt call derived: a looked-up or new upload's master key, a password key, or a reserved upload key. */
export type KdfPurpose = 'master' | 'password' | 'reserve';

export interface RavenServiceMetrics {
  /** one scrypt call finished */
  kdf?(purpose: KdfPurpose, seconds: number): void;
  /** the KDF queue was full */
  kdfSaturated?(): void;
  uploadCompleted?(size: number, mimeType: string): void;
  uploadRefused?(kind: UploadRefusedError['refusal']['kind']): void;
  lookupFailed?(endpoint: LookupEndpoint, kind: LookupFailure['kind']): void;
  clientBlocked?(): void;
  downloadStarted?(burned: boolean): void;
  integrityFailure?(): void;
  blobShredded?(reason: 'burned' | 'deleted' | 'refused'): void;
}

export type RavenLog = (event: string, fields: Record<string, unknown>) => void;

export interface RavenServiceDeps {
  config: RavenConfig;
  store: RavenStore;
  wordlist: Wordlist;
  /** clock, ms since epoch */
  now?: () => number;
  log?: RavenLog;
  metrics?: RavenServiceMetrics;
  /** scrypt calls running at once (default: available parallelism, at most 4 — the libuv pool) */
  kdfConcurrency?: number;
}

/** The bounded KDF queue is full. */
export class KdfSaturatedError extends Error {
  override readonly name = 'KdfSaturatedError';
}

/** A FIFO semaphore with a bound on running + waiting jobs. */
class KdfQueue {
  #running = 0;
  readonly #waiting: (() => void)[] = [];

  constructor(
    private readonly concurrency: number,
    private readonly maxPending: number,
  ) {}

  get pending(): number {
    return this.#running + this.#waiting.length;
  }

  /** Derivations that may run at once. */
  get slots(): number {
    return this.concurrency;
  }

  async run<T>(job: () => Promise<T>): Promise<T> {
    if (this.pending >= this.maxPending) throw new KdfSaturatedError('KDF queue is full');
    if (this.#running >= this.concurrency) {
      await new Promise<void>((resolve) => this.#waiting.push(resolve));
    } else {
      this.#running++;
    }
    try {
      return await job();
    } finally {
      const next = this.#waiting.shift();
      if (next) next();
      else this.#running--;
    }
  }
}

function errnoCode(err: unknown): string | undefined {
  const code = (err as NodeJS.ErrnoException | undefined)?.code;
  return typeof code === 'string' ? code : undefined;
}

function isDiskFull(err: unknown): boolean {
  const code = errnoCode(err);
  return code === 'ENOSPC' || code === 'EDQUOT';
}

async function unlinkQuietly(path: string): Promise<void> {
  try {
    await unlink(path);
  } catch {
    // already gone
  }
}

/** rename, falling back to copy + unlink across file systems. */
async function moveFile(from: string, to: string): Promise<void> {
  try {
    await rename(from, to);
  } catch (err) {
    if (errnoCode(err) !== 'EXDEV') throw err;
    try {
      await copyFile(from, to);
    } catch (copyErr) {
      await unlinkQuietly(to);
      throw copyErr;
    }
    await unlink(from);
  }
}

/** Streams `from` (RZB1 under `oldKey`) into `to` (RZB1 under `newKey`); memory is one chunk. */
async function reencryptBlob(from: string, oldKey: Buffer, to: string, newKey: Buffer): Promise<void> {
  try {
    await pipeline(
      createReadStream(from),
      createBlobDecryptor(oldKey),
      createBlobEncryptor(newKey),
      createWriteStream(to, { mode: 0o600 }),
    );
  } catch (err) {
    await unlinkQuietly(to);
    throw err;
  }
}

function uploadIdPrefix(id: string): string {
  return id.slice(0, 12);
}

interface Identity {
  key: string;
  master: Buffer;
  id: string;
  usalt: Buffer;
}

/** What a successful key lookup found. */
interface Found {
  key: string;
  id: string;
  kdf: KdfParams;
  master: Buffer;
  record: UploadRecord;
}

type Lookup = { ok: true; found: Found } | { ok: false; failure: LookupFailure };

function fail(failure: LookupFailure): { ok: false; failure: LookupFailure } {
  return { ok: false, failure };
}

export function createRavenService(deps: RavenServiceDeps): RavenService {
  const { config, store, wordlist } = deps;
  const now = deps.now ?? Date.now;
  const log: RavenLog = deps.log ?? (() => {});
  const metrics = deps.metrics ?? {};
  const kdfQueue = new KdfQueue(
    Math.max(1, deps.kdfConcurrency ?? Math.min(4, availableParallelism())),
    Math.max(1, config.kdfMaxQueue),
  );

  /** The KDF record is read on every derivation (never cached), re-created if the store lost it. */
  async function loadKdf(): Promise<KdfParams> {
    const existing = await store.getKdf();
    if (existing) return existing;
    return store.ensureKdf(newKdfParams(config.kdfLog2n));
  }

  async function timedKdf<T>(purpose: KdfPurpose, job: () => Promise<T>): Promise<T> {
    try {
      return await kdfQueue.run(async () => {
        const started = performance.now();
        try {
          return await job();
        } finally {
          metrics.kdf?.(purpose, (performance.now() - started) / 1000);
        }
      });
    } catch (err) {
      if (err instanceof KdfSaturatedError) metrics.kdfSaturated?.();
      throw err;
    } finally {
      // Once the queue is idle again the reserve may be topped up (it never delays a request).
      setImmediate(refillReserve);
    }
  }

  function deriveMasterQueued(key: string, kdf: KdfParams): Promise<Buffer> {
    return timedKdf('master', () => deriveMaster(key, kdf));
  }

  function keysFor(
    master: Buffer,
    usalt: Buffer,
    password: string | null,
    kdf: KdfParams,
  ): Promise<UploadKeys> {
    if (password === null) return uploadKeys(master, usalt, null, kdf);
    return timedKdf('password', () => uploadKeys(master, usalt, password, kdf));
  }

  // Upload keys derived ahead of time. An upload's key is random and owes nothing to its content, so the
  // scrypt derivation that makes up most of an upload's latency can run before the upload arrives. The reserve
  // is refilled in the background, one derivation at a time and only while no request waits for the KDF; an
  // entry is used once, and only with the KDF parameters it was derived with. Nothing of it is stored.
  const reserve: { kdf: KdfParams; key: string; master: Buffer }[] = [];
  let refilling = false;
  /** Set by the first upload: a server nobody uploads to derives nothing ahead. */
  let reserveWanted = false;
  let closed = false;

  function sameKdf(a: KdfParams, b: KdfParams): boolean {
    return a.salt === b.salt && a.log2n === b.log2n && a.r === b.r && a.p === b.p;
  }

  function takeReserved(kdf: KdfParams): { key: string; master: Buffer } | null {
    for (let entry = reserve.shift(); entry !== undefined; entry = reserve.shift()) {
      if (sameKdf(entry.kdf, kdf)) return entry;
      wipe(entry.master); // derived under parameters the store no longer has
    }
    return null;
  }

  function refillReserve(): void {
    if (!reserveWanted || refilling || closed || reserve.length >= config.uploadKeyReserve) return;
    // Requests first: the last of them to finish calls again. With a single slot a background derivation
    // would hold up the next request, so one-core servers keep no reserve.
    if (kdfQueue.pending > 0 || kdfQueue.slots < 2) return;
    refilling = true;
    void (async () => {
      try {
        const kdf = await loadKdf();
        const key = wordlist.generateKey(config.keyWords);
        const master = await timedKdf('reserve', () => deriveMaster(key, kdf));
        if (closed) wipe(master);
        else reserve.push({ kdf, key, master });
      } catch {
        // A busy KDF or an unreachable store: the next upload derives its own key.
        return;
      } finally {
        refilling = false;
      }
      refillReserve();
    })();
  }

  /** Wipes the reserved keys and stops refilling (shutdown). */
  function dropReserve(): void {
    closed = true;
    for (const entry of reserve.splice(0)) wipe(entry.master);
  }

  /** A fresh key whose lookup id is not in use (checked up front; `createUpload` re-checks atomically). */
  async function newIdentity(kdf: KdfParams): Promise<Identity> {
    for (let attempt = 0; attempt < MAX_KEY_ATTEMPTS; attempt++) {
      const reserved = takeReserved(kdf);
      const key = reserved?.key ?? wordlist.generateKey(config.keyWords);
      const master = reserved?.master ?? (await deriveMasterQueued(key, kdf));
      const id = lookupId(master);
      if ((await store.getUpload(id)) === null) {
        return { key, master, id, usalt: randomBytes(UPLOAD_SALT_BYTES) };
      }
      wipe(master);
    }
    throw new Error('could not generate a unique key');
  }

  function refusal(err: unknown): UploadRefusedError | null {
    if (err instanceof UploadRefusedError) return err;
    if (err instanceof KdfSaturatedError) return new UploadRefusedError({ kind: 'saturated' });
    if (isDiskFull(err)) return new UploadRefusedError({ kind: 'storage_full' });
    if (isRedisUnavailable(err)) return new UploadRefusedError({ kind: 'store_unavailable' });
    return null;
  }

  async function beginUpload(): Promise<UploadSession> {
    let kdf: KdfParams;
    let identity: Identity;
    let streamKeys: UploadKeys;
    try {
      kdf = await loadKdf();
      identity = await newIdentity(kdf);
      streamKeys = await keysFor(identity.master, identity.usalt, null, kdf);
    } catch (err) {
      const refused = refusal(err);
      if (refused) {
        metrics.uploadRefused?.(refused.refusal.kind);
        throw refused;
      }
      throw err;
    }
    log('file_upload_started', {});
    const upload = new Upload(kdf, identity, streamKeys);
    openUploads.add(upload);
    reserveWanted = true;
    refillReserve();
    return upload;
  }

  /** Uploads begun and neither finished nor aborted. */
  const openUploads = new Set<Upload>();

  /** Shutdown: uploads in progress are aborted (no partial file outlives it) and reserved keys wiped. */
  async function abortOpenUploads(): Promise<void> {
    dropReserve();
    await Promise.all([...openUploads].map((upload) => upload.abort()));
  }

  class Upload implements UploadSession {
    readonly #kdf: KdfParams;
    #identity: Identity;
    #keys: UploadKeys;
    readonly #random = randomBytes(16).toString('hex');
    readonly #tempBase: string;
    readonly #tempPath: string;
    readonly #hash = createHash('sha256');
    #received = 0;
    #window: Buffer[] = [];
    #windowBytes = 0;
    #mimeType: string | null = null;
    #encryptor: Transform | null = null;
    #out: WriteStream | null = null;
    #written: Promise<void> | null = null;
    #writeError: unknown = null;
    /** files this session may have created (removed by abort) */
    readonly #files = new Set<string>();
    #state: 'open' | 'finishing' | 'done' | 'aborted' = 'open';

    constructor(kdf: KdfParams, identity: Identity, keys: UploadKeys) {
      this.#kdf = kdf;
      this.#identity = identity;
      this.#keys = keys;
      // Provisional expiry in the temp name (the real one is known at finish); the random part stays.
      const provisional = now() + config.maxExpiryMinutes * 60_000;
      this.#tempBase = `${Math.trunc(provisional)}-${this.#random}.rzb`;
      this.#tempPath = join(config.tempPath, `${this.#tempBase}.part`);
    }

    async write(chunk: Buffer): Promise<void> {
      if (this.#state !== 'open') throw new Error('upload is not open');
      try {
        if (chunk.length === 0) return;
        this.#received += chunk.length;
        if (this.#received > config.maxFileSize) {
          throw new UploadRefusedError({
            kind: 'too_large',
            receivedBytes: this.#received,
            maxBytes: config.maxFileSize,
          });
        }
        this.#hash.update(chunk);
        if (this.#mimeType === null) {
          this.#window.push(chunk);
          this.#windowBytes += chunk.length;
          if (this.#windowBytes < SNIFF_WINDOW_BYTES) return;
          const held = Buffer.concat(this.#window);
          this.#window = [];
          this.#decideType(held, false);
          await this.#feed(held);
          return;
        }
        await this.#feed(chunk);
      } catch (err) {
        await this.#failWith(err);
      }
    }

    #decideType(held: Buffer, whole: boolean): void {
      const mime = sniffMime(held.subarray(0, SNIFF_WINDOW_BYTES), whole);
      if (!mimeAllowed(mime, config.allowedMimeTypes)) {
        throw new UploadRefusedError({ kind: 'type_not_allowed', mimeType: mime });
      }
      this.#mimeType = mime;
    }

    async #feed(data: Buffer): Promise<void> {
      if (this.#encryptor === null) {
        await mkdir(config.tempPath, { recursive: true });
        const encryptor = createBlobEncryptor(this.#keys.fileKey);
        this.#files.add(this.#tempPath);
        // Opened eagerly so that the file exists (and open errors surface) before the first byte is accepted.
        const handle = await open(this.#tempPath, 'wx', 0o600);
        const out = handle.createWriteStream();
        this.#encryptor = encryptor;
        this.#out = out;
        this.#written = pipeline(encryptor, out).catch((err: unknown) => {
          this.#writeError = err;
          throw err;
        });
        this.#written.catch(() => {});
      }
      if (this.#writeError !== null) throw this.#writeError;
      const encryptor = this.#encryptor;
      if (!encryptor.write(data)) {
        await Promise.race([
          new Promise<void>((resolve) => encryptor.once('drain', resolve)),
          this.#written as Promise<void>,
        ]);
      }
      if (this.#writeError !== null) throw this.#writeError;
    }

    /** Cleans up and rethrows the error as a refusal when it is one. */
    async #failWith(err: unknown): Promise<never> {
      await this.abort();
      const refused = refusal(err);
      if (refused) {
        metrics.uploadRefused?.(refused.refusal.kind);
        throw refused;
      }
      throw err;
    }

    async finish(options: UploadOptions, filename: string): Promise<UploadReceipt> {
      if (this.#state !== 'open') throw new Error('upload is not open');
      this.#state = 'finishing';
      // An empty password means none (the contract says null; this keeps a stray '' from locking the upload).
      const password = options.password === '' ? null : options.password;
      try {
        if (this.#received === 0) throw new UploadRefusedError({ kind: 'empty' });
        if (this.#mimeType === null) {
          const held = Buffer.concat(this.#window);
          this.#window = [];
          this.#decideType(held, true);
          await this.#feed(held);
        }
        (this.#encryptor as Transform).end();
        await this.#written;
        const sha256 = this.#hash.digest('hex');
        const mimeType = this.#mimeType as string;
        const size = this.#received;
        const name = sanitizeFilename(filename);

        // Second pass when a password was given (see the header comment).
        let blobSource = this.#tempPath;
        if (password !== null) {
          const pwKeys = await keysFor(this.#identity.master, this.#identity.usalt, password, this.#kdf);
          const second = join(config.tempPath, `${this.#tempBase}.pw.part`);
          this.#files.add(second);
          await reencryptBlob(this.#tempPath, this.#keys.fileKey, second, pwKeys.fileKey);
          await unlinkQuietly(this.#tempPath);
          this.#files.delete(this.#tempPath);
          wipe(this.#keys.fileKey, this.#keys.metaKey);
          this.#keys = pwKeys;
          blobSource = second;
        }

        const createdAtMs = now();
        const expiresAtMs = createdAtMs + options.expiryMinutes * 60_000;
        const blobName = `${Math.trunc(expiresAtMs)}-${this.#random}.rzb`;
        const blobPath = join(config.storagePath, blobName);
        const meta: UploadMeta = { filename: name, mime_type: mimeType, size, sha256 };

        await mkdir(config.storagePath, { recursive: true });
        this.#files.add(blobPath);
        await moveFile(blobSource, blobPath);
        this.#files.delete(blobSource);

        // Blob first, then the record; any failure from here on removes the blob.
        for (let attempt = 1; ; attempt++) {
          const record: UploadRecord = {
            v: 1,
            state: 'active',
            salt: toB64u(this.#identity.usalt),
            blob: blobName,
            meta: encryptMeta(this.#keys.metaKey, this.#identity.id, blobName, meta),
            pw: password !== null,
            uses: options.uses,
            uses_total: options.uses,
            previewed: false,
            created_at: new Date(createdAtMs).toISOString(),
            expires_at: new Date(expiresAtMs).toISOString(),
          };
          if (await store.createUpload(this.#identity.id, record, expiresAtMs)) break;
          if (attempt >= MAX_KEY_ATTEMPTS) throw new Error('could not generate a unique key');
          await this.#rekey(blobPath, password);
        }

        this.#state = 'done';
        openUploads.delete(this);
        this.#files.clear();
        const receipt: UploadReceipt = {
          key: this.#identity.key,
          filename: name,
          size,
          sha256,
          mimeType,
          createdAt: new Date(createdAtMs),
          expiresAt: new Date(expiresAtMs),
          uses: options.uses,
          passwordProtected: password !== null,
        };
        log('file_uploaded', {
          upload_id: uploadIdPrefix(this.#identity.id),
          size,
          mime_type: mimeType,
          expiry_minutes: options.expiryMinutes,
          uses: options.uses,
        });
        metrics.uploadCompleted?.(size, mimeType);
        this.#wipeSecrets();
        return receipt;
      } catch (err) {
        this.#state = 'open';
        return this.#failWith(err);
      }
    }

    /** The lookup id was taken meanwhile: new key, new keys, blob re-encrypted in place. */
    async #rekey(blobPath: string, password: string | null): Promise<void> {
      const next = await newIdentity(this.#kdf);
      const nextKeys = await keysFor(next.master, next.usalt, password, this.#kdf);
      const staging = join(config.tempPath, `${this.#random}.rekey.part`);
      this.#files.add(staging);
      await reencryptBlob(blobPath, this.#keys.fileKey, staging, nextKeys.fileKey);
      await moveFile(staging, blobPath);
      this.#files.delete(staging);
      this.#wipeSecrets();
      this.#identity = next;
      this.#keys = nextKeys;
    }

    #wipeSecrets(): void {
      wipe(this.#identity.master, this.#keys.fileKey, this.#keys.metaKey);
    }

    async abort(): Promise<void> {
      if (this.#state === 'done' || this.#state === 'aborted') return;
      this.#state = 'aborted';
      this.#window = [];
      this.#encryptor?.destroy();
      const out = this.#out;
      if (out !== null && !out.closed) {
        await new Promise<void>((resolve) => {
          out.once('close', () => resolve());
          out.destroy();
        });
      }
      await this.#written?.catch(() => {});
      await Promise.all([...this.#files].map((path) => unlinkQuietly(path)));
      openUploads.delete(this);
      this.#files.clear();
      this.#wipeSecrets();
    }
  }

  // ---------------------------------------------------------------- lookups

  async function countFailure(
    client: string,
    endpoint: LookupEndpoint,
    failure: LookupFailure,
  ): Promise<void> {
    metrics.lookupFailed?.(endpoint, failure.kind);
    log('lookup_failed', { endpoint, reason: failure.kind });
    const result = await store.recordFailure(
      client,
      config.downloadFailLimit,
      config.failCounterTtlSeconds,
      config.downloadBlockWindowSeconds,
    );
    if (result.blocked) {
      metrics.clientBlocked?.();
      log('ip_blocked', { ip: client, failures: result.count });
    }
  }

  async function failed(
    client: string,
    endpoint: LookupEndpoint,
    failure: LookupFailure,
  ): Promise<{ ok: false; failure: LookupFailure }> {
    await countFailure(client, endpoint, failure);
    return { ok: false, failure };
  }

  function isExpired(record: UploadRecord): boolean {
    const expires = Date.parse(record.expires_at);
    return !Number.isFinite(expires) || expires <= now();
  }

  /**
   * Block check, well-formedness (no KDF for malformed keys), derivation and record fetch. Unknown,
   * malformed and (unless `keepExpired`) expired keys are counted failures.
   */
  async function lookup(
    rawKey: string,
    client: string,
    endpoint: LookupEndpoint,
    keepExpired = false,
  ): Promise<Lookup> {
    const blocked = await store.blockedFor(client);
    if (blocked > 0) return fail({ kind: 'blocked', retryAfterSeconds: blocked });
    const key = normalizeKey(rawKey);
    if (!isWellFormedKey(key, wordlist)) return failed(client, endpoint, { kind: 'not_found' });
    const kdf = await loadKdf();
    const master = await deriveMasterQueued(key, kdf);
    const id = lookupId(master);
    const record = await store.getUpload(id);
    if (record === null || (!keepExpired && isExpired(record))) {
      wipe(master);
      return failed(client, endpoint, { kind: 'not_found' });
    }
    return { ok: true, found: { key, id, kdf, master, record } };
  }

  function isBurned(record: UploadRecord): boolean {
    return record.state === 'burned' || record.uses <= 0 || record.salt === null || record.meta === null;
  }

  type Unlocked = { ok: true; keys: UploadKeys; meta: UploadMeta } | { ok: false; failure: LookupFailure };

  /** Derives the upload's keys and opens its meta; a missing/wrong password is a counted failure. */
  async function unlock(
    found: Found,
    password: string | null,
    client: string,
    endpoint: LookupEndpoint,
  ): Promise<Unlocked> {
    const { record } = found;
    if (record.pw && password === null) return failed(client, endpoint, { kind: 'password_required' });
    const keys = await keysFor(
      found.master,
      fromB64u(record.salt as string),
      record.pw ? password : null,
      found.kdf,
    );
    try {
      return {
        ok: true,
        keys,
        meta: decryptMeta(keys.metaKey, found.id, record.blob, record.meta as string),
      };
    } catch (err) {
      wipe(keys.fileKey, keys.metaKey);
      if (!(err instanceof AuthenticationError)) throw err;
      if (record.pw) return failed(client, endpoint, { kind: 'invalid_password' });
      throw new IntegrityError('the stored metadata failed authentication');
    }
  }

  /** Store outages and a full KDF queue become outcomes; anything else propagates. */
  async function guarded<T>(run: () => Promise<Outcome<T>>): Promise<Outcome<T>> {
    try {
      return await run();
    } catch (err) {
      if (err instanceof KdfSaturatedError) return fail({ kind: 'saturated' });
      if (isRedisUnavailable(err)) return fail({ kind: 'store_unavailable' });
      throw err;
    }
  }

  /** A reader that cannot be released leaves its blob to the expired-blob sweep (the name carries the expiry). */
  function logReleaseFailure(uploadId: string, err: unknown): void {
    log('download_release_failed', {
      upload_id: uploadId,
      error: errnoCode(err) ?? String((err as Error)?.message ?? err),
    });
  }

  async function shredBlob(blob: string, reason: 'burned' | 'deleted'): Promise<void> {
    if (blobExpiry(blob) === null) return;
    try {
      await shredFile(join(config.storagePath, blob), config.secureShredPasses);
      metrics.blobShredded?.(reason);
    } catch (err) {
      // The sweeper retries: the blob's name carries its expiry, and it has no reference any more.
      log('shred_failed', { reason, error: errnoCode(err) ?? String((err as Error)?.message ?? err) });
    }
  }

  function previewInfo(found: Found, meta: UploadMeta, record: UploadRecord): PreviewInfo {
    return {
      key: found.key,
      filename: meta.filename,
      size: meta.size,
      mimeType: meta.mime_type,
      sha256: meta.sha256,
      createdAt: new Date(record.created_at),
      expiresAt: new Date(record.expires_at),
      uses: record.uses,
      usesTotal: record.uses_total,
      passwordProtected: record.pw,
    };
  }

  async function preview(
    rawKey: string,
    password: string | null,
    client: string,
  ): Promise<Outcome<PreviewInfo>> {
    return guarded(async () => {
      const looked = await lookup(rawKey, client, 'preview');
      if (!looked.ok) return looked;
      const { found } = looked;
      try {
        if (isBurned(found.record)) return fail({ kind: 'burned' });
        if (found.record.previewed) return fail({ kind: 'already_previewed' });
        const unlocked = await unlock(found, password, client, 'preview');
        if (!unlocked.ok) return unlocked;
        wipe(unlocked.keys.fileKey, unlocked.keys.metaKey);
        const flip = await store.preview(found.id);
        if (flip === 'unknown') return failed(client, 'preview', { kind: 'not_found' });
        if (flip === 'already') return fail({ kind: 'already_previewed' });
        log('preview_requested', { upload_id: uploadIdPrefix(found.id) });
        return { ok: true, value: previewInfo(found, unlocked.meta, found.record) };
      } finally {
        wipe(found.master);
      }
    });
  }

  async function download(
    rawKey: string,
    password: string | null,
    client: string,
  ): Promise<Outcome<DownloadStream>> {
    return guarded(async () => {
      const looked = await lookup(rawKey, client, 'download');
      if (!looked.ok) return looked;
      const { found } = looked;
      let keys: UploadKeys | null = null;
      try {
        if (isBurned(found.record)) return fail({ kind: 'burned' });
        const unlocked = await unlock(found, password, client, 'download');
        if (!unlocked.ok) return unlocked;
        keys = unlocked.keys;
        const { meta } = unlocked;
        const taken = await store.consume(found.id);
        if (taken.kind === 'unknown') return failed(client, 'download', { kind: 'not_found' });
        if (taken.kind === 'exhausted') return fail({ kind: 'burned' });
        const { burned } = taken;
        const blob = taken.record.blob;
        const uploadId = uploadIdPrefix(found.id);
        if (burned) log('file_burned', { upload_id: uploadId, reason: 'uses_exhausted' });

        // This download is a reader of the blob until its stream ends; the last reader of a burned upload
        // shreds it (an earlier use may still be streaming when the last use is taken, on any instance).
        let released = false;
        const release = async (): Promise<void> => {
          if (released) return;
          released = true;
          const toShred = await store.release(found.id);
          if (toShred !== null) await shredBlob(toShred, 'burned');
        };
        let reader: Awaited<ReturnType<typeof openBlobReader>>;
        try {
          // The name comes from the store; only a well-formed blob name is ever joined to STORAGE_PATH.
          if (blobExpiry(blob) === null) throw new AuthenticationError('the record names no valid blob');
          reader = await openBlobReader(join(config.storagePath, blob), keys.fileKey);
        } catch (err) {
          await release().catch((releaseError: unknown) => logReleaseFailure(uploadId, releaseError));
          if (!(err instanceof AuthenticationError) && errnoCode(err) !== 'ENOENT') throw err;
          metrics.integrityFailure?.();
          log('integrity_check_failed', {
            upload_id: uploadId,
            reason: err instanceof AuthenticationError ? 'authentication' : 'blob_missing',
          });
          throw new IntegrityError('The stored file failed authentication');
        }

        const expectedSha = meta.sha256;
        const { first, rest } = reader;
        async function* plaintext(): AsyncGenerator<Buffer> {
          const hash = createHash('sha256');
          try {
            hash.update(first);
            yield first;
            for await (const chunk of rest) {
              hash.update(chunk as Buffer);
              yield chunk as Buffer;
            }
            const actual = hash.digest('hex');
            if (actual !== expectedSha) {
              metrics.integrityFailure?.();
              log('integrity_check_failed', { upload_id: uploadId, reason: 'sha256_mismatch' });
              throw new IntegrityError('The stored file failed verification');
            }
            log('file_download_success', { upload_id: uploadId, size: meta.size });
          } finally {
            rest.destroy();
          }
        }
        const body = Readable.from(plaintext(), { objectMode: false });
        const finish = (): void => {
          rest.destroy();
          release().catch((releaseError: unknown) => logReleaseFailure(uploadId, releaseError));
        };
        body.once('close', finish);
        body.once('end', finish);
        metrics.downloadStarted?.(burned);
        return {
          ok: true,
          value: {
            key: found.key,
            filename: meta.filename,
            size: meta.size,
            mimeType: meta.mime_type,
            sha256: meta.sha256,
            body,
            burned,
          },
        };
      } finally {
        wipe(found.master);
        if (keys) wipe(keys.fileKey, keys.metaKey);
      }
    });
  }

  async function status(rawKey: string, client: string): Promise<Outcome<StatusInfo | null>> {
    return guarded(async () => {
      const looked = await lookup(rawKey, client, 'status', true);
      if (!looked.ok) {
        return looked.failure.kind === 'not_found' ? { ok: true, value: null } : looked;
      }
      const { found } = looked;
      wipe(found.master);
      const { record } = found;
      const state = isBurned(record) ? 'burned' : isExpired(record) ? 'expired' : 'active';
      return {
        ok: true,
        value: {
          key: found.key,
          status: state,
          remainingUses: state === 'burned' ? 0 : record.uses,
          expiresAt: new Date(record.expires_at),
          usesTotal: record.uses_total,
          previewed: record.previewed,
          passwordRequired: record.pw,
        },
      };
    });
  }

  async function remove(rawKey: string, password: string | null, client: string): Promise<Outcome<void>> {
    return guarded(async () => {
      const looked = await lookup(rawKey, client, 'delete');
      if (!looked.ok) return looked;
      const { found } = looked;
      try {
        if (!isBurned(found.record)) {
          const unlocked = await unlock(found, password, client, 'delete');
          if (!unlocked.ok) return unlocked;
          wipe(unlocked.keys.fileKey, unlocked.keys.metaKey);
        }
        const result = await store.burn(found.id);
        if (result.kind === 'unknown') return failed(client, 'delete', { kind: 'not_found' });
        if (result.blob !== null) {
          log('file_burned', { upload_id: uploadIdPrefix(found.id), reason: 'deleted' });
          await shredBlob(result.blob, 'deleted');
        }
        return { ok: true, value: undefined };
      } finally {
        wipe(found.master);
      }
    });
  }

  return {
    beginUpload,
    preview,
    download,
    status,
    remove,
    normalize: normalizeKey,
    abortOpenUploads,
  };
}
