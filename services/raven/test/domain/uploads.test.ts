import { createHash, randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import type { Readable } from 'node:stream';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config.js';
import { startBackgroundJobs } from '../../src/domain/jobs.js';
import {
  IntegrityError,
  type RavenService,
  type UploadOptions,
  UploadRefusedError,
} from '../../src/domain/service-types.js';
import { MemoryRavenStore } from '../../src/domain/store/memory-store.js';
import type { RavenStore } from '../../src/domain/store/types.js';
import { createRavenService } from '../../src/domain/uploads.js';
import { loadWordlist } from '../../src/domain/wordlist.js';

const here = dirname(fileURLToPath(import.meta.url));
const wordlist = loadWordlist(resolve(here, '../../data/diceware_words.txt'));
const scratch = mkdtempSync(join(tmpdir(), 'raven-uploads-'));
afterAll(() => rmSync(scratch, { recursive: true, force: true }));

const PDF = Buffer.concat([Buffer.from('%PDF-1.4\n%âãÏÓ\n'), randomBytes(200_000)]);
const PNG = Buffer.concat([Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]), randomBytes(5000)]);

interface Harness {
  service: RavenService;
  store: MemoryRavenStore;
  storage: string;
  temp: string;
  logs: { event: string; fields: Record<string, unknown> }[];
  kdfCalls: { count: number };
  clock: { t: number };
  config: ReturnType<typeof loadConfig>;
}

let counter = 0;
function setup(env: Record<string, string> = {}, wrapStore?: (store: RavenStore) => RavenStore): Harness {
  const root = join(scratch, `h${counter++}`);
  const storage = join(root, 'storage');
  const temp = join(root, 'temp');
  const config = loadConfig({ KDF_LOG2_N: '12', STORAGE_PATH: storage, TEMP_PATH: temp, ...env });
  const clock = { t: Date.now() };
  const now = (): number => clock.t;
  const store = new MemoryRavenStore({ now });
  const logs: Harness['logs'] = [];
  const kdfCalls = { count: 0 };
  const service = createRavenService({
    config,
    store: wrapStore ? wrapStore(store) : store,
    wordlist,
    now,
    log: (event, fields) => logs.push({ event, fields }),
    metrics: { kdf: () => kdfCalls.count++ },
  });
  return { service, store, storage, temp, logs, kdfCalls, clock, config };
}

const defaults: UploadOptions = { expiryMinutes: 10, uses: 1, password: null };

async function upload(
  service: RavenService,
  data: Buffer,
  options: Partial<UploadOptions> = {},
  filename = 'doc.pdf',
  chunk = 7000,
) {
  const session = await service.beginUpload();
  try {
    for (let offset = 0; offset < data.length; offset += chunk) {
      await session.write(data.subarray(offset, offset + chunk));
    }
    return await session.finish({ ...defaults, ...options }, filename);
  } catch (err) {
    await session.abort();
    throw err;
  }
}

async function refusalOf(promise: Promise<unknown>): Promise<UploadRefusedError['refusal']> {
  try {
    await promise;
  } catch (err) {
    if (err instanceof UploadRefusedError) return err.refusal;
    throw err;
  }
  throw new Error('expected a refusal');
}

async function readAll(body: Readable): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const part of body) parts.push(part as Buffer);
  return Buffer.concat(parts);
}

function files(dir: string): string[] {
  return existsSync(dir) ? readdirSync(dir) : [];
}

async function waitFor(check: () => boolean, ms = 2000): Promise<void> {
  const until = Date.now() + ms;
  while (!check()) {
    if (Date.now() > until) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 10));
  }
}

function sha256(data: Buffer): string {
  return createHash('sha256').update(data).digest('hex');
}

describe('upload, preview, download, burn (cases 2-5, 10-12)', () => {
  it('serves every use then burns the upload and shreds its blob', async () => {
    const h = setup();
    const receipt = await upload(h.service, PDF, { uses: 3 });
    expect(receipt.key.split('-')).toHaveLength(3);
    expect(receipt.key.split('-').every((w) => wordlist.has(w))).toBe(true);
    expect(receipt).toMatchObject({
      filename: 'doc.pdf',
      size: PDF.length,
      sha256: sha256(PDF),
      mimeType: 'application/pdf',
      uses: 3,
      passwordProtected: false,
    });
    expect(receipt.expiresAt.getTime() - receipt.createdAt.getTime()).toBe(600_000);
    expect(files(h.storage)).toHaveLength(1);
    expect(files(h.temp)).toEqual([]);

    const status = await h.service.status(receipt.key.toUpperCase().replaceAll('-', ' '), 'c1');
    expect(status).toEqual({
      ok: true,
      value: {
        key: receipt.key,
        status: 'active',
        remainingUses: 3,
        expiresAt: receipt.expiresAt,
        usesTotal: 3,
        previewed: false,
        passwordRequired: false,
      },
    });

    const preview = await h.service.preview(receipt.key, null, 'c1');
    expect(preview).toEqual({
      ok: true,
      value: {
        key: receipt.key,
        filename: 'doc.pdf',
        size: PDF.length,
        mimeType: 'application/pdf',
        sha256: sha256(PDF),
        createdAt: receipt.createdAt,
        expiresAt: receipt.expiresAt,
        uses: 3,
        usesTotal: 3,
        passwordProtected: false,
      },
    });
    expect(await h.service.preview(receipt.key, null, 'c1')).toEqual({
      ok: false,
      failure: { kind: 'already_previewed' },
    });

    for (let i = 1; i <= 3; i++) {
      const result = await h.service.download(receipt.key, null, 'c1');
      if (!result.ok) throw new Error(`download ${i} failed: ${result.failure.kind}`);
      expect(result.value).toMatchObject({
        key: receipt.key,
        filename: 'doc.pdf',
        size: PDF.length,
        mimeType: 'application/pdf',
        sha256: sha256(PDF),
        burned: i === 3,
      });
      expect((await readAll(result.value.body)).equals(PDF)).toBe(true);
    }
    await waitFor(() => files(h.storage).length === 0);
    expect(await h.service.download(receipt.key, null, 'c1')).toEqual({
      ok: false,
      failure: { kind: 'burned' },
    });
    const after = await h.service.status(receipt.key, 'c1');
    expect(after.ok && after.value).toMatchObject({ status: 'burned', remainingUses: 0 });
    // Existing uploads (burned, second preview) are not failures.
    expect(await h.store.blockedFor('c1')).toBe(0);
    expect(h.store.entries().some((e) => e.key.startsWith('raven:fails:'))).toBe(false);
    expect(h.logs.map((l) => l.event)).toEqual(
      expect.arrayContaining(['file_upload_started', 'file_uploaded', 'preview_requested', 'file_burned']),
    );
  });

  it('shreds the blob of a burned upload when the body is destroyed early', async () => {
    const h = setup();
    const receipt = await upload(h.service, PDF);
    const result = await h.service.download(receipt.key, null, 'c1');
    if (!result.ok) throw new Error(result.failure.kind);
    expect(result.value.burned).toBe(true);
    result.value.body.destroy();
    await waitFor(() => files(h.storage).length === 0);
  });

  it('lets an earlier download finish intact when a later one takes the last use and ends first', async () => {
    const h = setup();
    const receipt = await upload(h.service, PDF, { uses: 2 });
    const earlier = await h.service.download(receipt.key, null, 'c1');
    const last = await h.service.download(receipt.key, null, 'c1');
    if (!earlier.ok || !last.ok) throw new Error('download refused');
    expect([earlier.value.burned, last.value.burned]).toEqual([false, true]);
    expect(sha256(await readAll(last.value.body))).toBe(receipt.sha256);
    // The blob must survive the last use's stream while the earlier one has not read a byte yet.
    await new Promise((r) => setTimeout(r, 100));
    expect(files(h.storage)).toHaveLength(1);
    expect(sha256(await readAll(earlier.value.body))).toBe(receipt.sha256);
    await waitFor(() => files(h.storage).length === 0);
  });

  it('deleting an upload mid-download lets that download finish, then shreds the blob', async () => {
    const h = setup();
    const receipt = await upload(h.service, PDF, { uses: 3 });
    const reading = await h.service.download(receipt.key, null, 'c1');
    if (!reading.ok) throw new Error(reading.failure.kind);
    expect(await h.service.remove(receipt.key, null, 'c1')).toEqual({ ok: true, value: undefined });
    expect(await h.service.download(receipt.key, null, 'c1')).toEqual({
      ok: false,
      failure: { kind: 'burned' },
    });
    expect(sha256(await readAll(reading.value.body))).toBe(receipt.sha256);
    await waitFor(() => files(h.storage).length === 0);
  });

  it('keeps keys, filenames and content out of the store and the logs (case 23)', async () => {
    const h = setup();
    const secretName = 'quarterly-secret-report.pdf';
    const receipt = await upload(h.service, PDF, { uses: 2 }, secretName);
    const dump = JSON.stringify(h.store.entries());
    const hash = createHash('sha256').update(PDF).digest();
    for (const needle of [
      receipt.key,
      secretName,
      receipt.sha256,
      hash.toString('base64'),
      hash.toString('base64url'),
      PDF.subarray(0, 32).toString('latin1'),
      PDF.subarray(1000, 1032).toString('base64'),
      ...receipt.key.split('-').filter((w) => w.length >= 5),
    ]) {
      expect(dump).not.toContain(needle);
      expect(JSON.stringify(h.logs)).not.toContain(needle);
    }
    const uploadEntry = h.store.entries().find((e) => e.key.startsWith('raven:upload:'));
    expect(uploadEntry?.expiresAtMs).toBe(receipt.expiresAt.getTime());
    const blobEntry = h.store.entries().find((e) => e.key.startsWith('raven:blob:'));
    expect(blobEntry?.expiresAtMs).toBe(receipt.expiresAt.getTime());
    // The blob on disk is ciphertext only.
    const [blobName] = files(h.storage);
    const onDisk = readFileSync(join(h.storage, blobName as string));
    expect(onDisk.subarray(0, 4).toString('latin1')).toBe('RZB1');
    expect(onDisk.includes(PDF.subarray(1000, 1064))).toBe(false);
  });

  it('deletes: tombstone, blob shredded, idempotent (case 31)', async () => {
    const h = setup();
    const receipt = await upload(h.service, PNG, { uses: 2 }, 'a.png');
    expect(await h.service.remove(receipt.key, null, 'c1')).toEqual({ ok: true, value: undefined });
    expect(files(h.storage)).toEqual([]);
    expect(await h.service.download(receipt.key, null, 'c1')).toEqual({
      ok: false,
      failure: { kind: 'burned' },
    });
    const status = await h.service.status(receipt.key, 'c1');
    expect(status.ok && status.value?.status).toBe('burned');
    expect(await h.service.remove(receipt.key, null, 'c1')).toEqual({ ok: true, value: undefined });
  });

  it('survives a lookup-id collision by re-keying the stored blob', async () => {
    let collide = 1;
    const h = setup({}, (store) => {
      const original = store.createUpload.bind(store);
      store.createUpload = async (id, record, expiresAtMs) => {
        if (collide-- > 0) return false;
        return original(id, record, expiresAtMs);
      };
      return store;
    });
    const receipt = await upload(h.service, PDF, { password: 'pw' });
    const result = await h.service.download(receipt.key, 'pw', 'c1');
    if (!result.ok) throw new Error(result.failure.kind);
    expect((await readAll(result.value.body)).equals(PDF)).toBe(true);
    expect(files(h.temp)).toEqual([]);
  });
});

describe('upload keys derived ahead (UPLOAD_KEY_RESERVE)', () => {
  function reserveHarness(
    env: Record<string, string>,
    kdfConcurrency = 2,
    wrapStore: (store: RavenStore) => RavenStore = (store) => store,
  ) {
    const root = join(scratch, `reserve${counter++}`);
    const config = loadConfig({
      KDF_LOG2_N: '12',
      STORAGE_PATH: join(root, 'storage'),
      TEMP_PATH: join(root, 'temp'),
      ...env,
    });
    const store = new MemoryRavenStore();
    const derived: string[] = [];
    const service = createRavenService({
      config,
      store: wrapStore(store),
      wordlist,
      kdfConcurrency,
      metrics: { kdf: (purpose) => derived.push(purpose) },
    });
    return { service, derived };
  }
  const count = (derived: string[], purpose: string) => derived.filter((entry) => entry === purpose).length;

  it('fills the reserve after the first upload; the next uploads take their keys from it', async () => {
    const { service, derived } = reserveHarness({ UPLOAD_KEY_RESERVE: '2' });
    await service.status(wordlist.generateKey(3), 'c1');
    await new Promise((resolve) => setTimeout(resolve, 50));
    expect(count(derived, 'reserve')).toBe(0); // nobody uploaded yet: nothing is derived ahead

    const first = await upload(service, PNG, {}, 'a.png');
    expect(count(derived, 'master')).toBe(2); // the lookup above and the first upload's own key
    await waitFor(() => count(derived, 'reserve') === 2);

    const second = await upload(service, PNG, {}, 'b.png');
    const third = await upload(service, PNG, {}, 'c.png');
    expect(count(derived, 'master')).toBe(2); // no derivation on their path
    await waitFor(() => count(derived, 'reserve') === 4); // topped up again
    await new Promise((resolve) => setTimeout(resolve, 50));
    expect(count(derived, 'reserve')).toBe(4); // and no further than the reserve's size

    // Reserved keys are ordinary keys: distinct, and each opens its own upload.
    expect(new Set([first.key, second.key, third.key]).size).toBe(3);
    for (const receipt of [first, second, third]) {
      const download = await service.download(receipt.key, null, 'c1');
      if (!download.ok) throw new Error(download.failure.kind);
      expect(sha256(await readAll(download.value.body))).toBe(receipt.sha256);
    }
  });

  it('drops reserved keys derived under KDF parameters the store no longer has', async () => {
    // The store's KDF record changes (as when a Redis that lost it re-creates it with a new salt).
    let salt: string | null = null;
    const { service, derived } = reserveHarness(
      { UPLOAD_KEY_RESERVE: '1' },
      2,
      (store) =>
        new Proxy(store, {
          get(target, property) {
            if (property === 'getKdf')
              return async () => {
                const real = await target.getKdf();
                return real && salt !== null ? { ...real, salt } : real;
              };
            const value = Reflect.get(target, property) as unknown;
            return typeof value === 'function' ? value.bind(target) : value;
          },
        }),
    );
    await upload(service, PNG, {}, 'a.png');
    await waitFor(() => count(derived, 'reserve') === 1);
    salt = randomBytes(16).toString('base64url');
    const before = count(derived, 'master');
    const receipt = await upload(service, PNG, {}, 'b.png');
    expect(count(derived, 'master')).toBe(before + 1); // the reserved key was not used
    const download = await service.download(receipt.key, null, 'c1');
    if (!download.ok) throw new Error(download.failure.kind);
    expect(sha256(await readAll(download.value.body))).toBe(receipt.sha256);
  });

  it('keeps no reserve with one KDF slot, or with UPLOAD_KEY_RESERVE=0, and none after shutdown', async () => {
    for (const [env, slots] of [
      [{ UPLOAD_KEY_RESERVE: '2' }, 1],
      [{ UPLOAD_KEY_RESERVE: '0' }, 2],
    ] as const) {
      const { service, derived } = reserveHarness(env, slots);
      await upload(service, PNG, {}, 'a.png');
      await upload(service, PNG, {}, 'b.png');
      await new Promise((resolve) => setTimeout(resolve, 100));
      expect(count(derived, 'reserve')).toBe(0);
      expect(count(derived, 'master')).toBe(2);
    }
    const { service, derived } = reserveHarness({ UPLOAD_KEY_RESERVE: '2' });
    await upload(service, PNG, {}, 'a.png');
    await service.abortOpenUploads();
    // A derivation already running when the service shut down may still finish; none starts afterwards.
    await new Promise((resolve) => setTimeout(resolve, 100));
    const atShutdown = count(derived, 'reserve');
    expect(atShutdown).toBeLessThanOrEqual(2);
    await upload(service, PNG, {}, 'b.png').catch(() => undefined);
    await new Promise((resolve) => setTimeout(resolve, 100));
    expect(count(derived, 'reserve')).toBe(atShutdown);
  });
});

describe('store outages (§7 dependency down)', () => {
  const down = (): Error => Object.assign(new Error('Connection is closed.'), { code: 'ECONNREFUSED' });

  it('an upload whose record cannot be written removes its blob and answers store_unavailable', async () => {
    const h = setup({}, (store) => {
      store.createUpload = async () => {
        throw down();
      };
      return store;
    });
    expect(await refusalOf(upload(h.service, PDF))).toEqual({ kind: 'store_unavailable' });
    expect(files(h.storage)).toEqual([]);
    expect(files(h.temp)).toEqual([]);
  });

  it('lookups answer store_unavailable', async () => {
    const h = setup({}, (store) => {
      store.blockedFor = async () => {
        throw down();
      };
      return store;
    });
    const key = wordlist.generateKey(3);
    expect(await h.service.status(key, 'c1')).toEqual({ ok: false, failure: { kind: 'store_unavailable' } });
    expect(await h.service.download(key, null, 'c1')).toEqual({
      ok: false,
      failure: { kind: 'store_unavailable' },
    });
  });
});

describe('passwords (case 28)', () => {
  it('an empty password means none', async () => {
    const h = setup();
    const receipt = await upload(h.service, PNG, { password: '' }, 'x.png');
    expect(receipt.passwordProtected).toBe(false);
    const result = await h.service.download(receipt.key, null, 'c1');
    if (!result.ok) throw new Error(result.failure.kind);
    expect((await readAll(result.value.body)).equals(PNG)).toBe(true);
  });

  it('missing and wrong passwords are failures and consume nothing', async () => {
    const h = setup();
    const receipt = await upload(h.service, PDF, { uses: 2, password: 'correct horse' });
    expect(receipt.passwordProtected).toBe(true);
    expect(files(h.temp)).toEqual([]);

    expect(await h.service.download(receipt.key, null, 'c1')).toEqual({
      ok: false,
      failure: { kind: 'password_required' },
    });
    expect(await h.service.download(receipt.key, 'wrong', 'c1')).toEqual({
      ok: false,
      failure: { kind: 'invalid_password' },
    });
    expect(await h.service.preview(receipt.key, null, 'c1')).toEqual({
      ok: false,
      failure: { kind: 'password_required' },
    });
    expect(await h.service.preview(receipt.key, 'nope', 'c1')).toEqual({
      ok: false,
      failure: { kind: 'invalid_password' },
    });
    expect(await h.service.remove(receipt.key, 'nope', 'c1')).toEqual({
      ok: false,
      failure: { kind: 'invalid_password' },
    });
    const status = await h.service.status(receipt.key, 'c1');
    expect(status.ok && status.value).toMatchObject({
      remainingUses: 2,
      previewed: false,
      passwordRequired: true,
    });
    const fails = h.store.entries().find((e) => e.key === 'raven:fails:c1');
    expect(fails?.value).toBe('5');

    const preview = await h.service.preview(receipt.key, 'correct horse', 'c1');
    expect(preview.ok && preview.value.filename).toBe('doc.pdf');
    const result = await h.service.download(receipt.key, 'correct horse', 'c1');
    if (!result.ok) throw new Error(result.failure.kind);
    expect((await readAll(result.value.body)).equals(PDF)).toBe(true);
    const later = await h.service.status(receipt.key, 'c1');
    expect(later.ok && later.value?.remainingUses).toBe(1);
  });
});

describe('upload refusals (cases 8, 9, 27)', () => {
  it('caps the size with the exact count of bytes received', async () => {
    const h = setup({ MAX_FILE_SIZE: '100' });
    const ok = await upload(h.service, Buffer.alloc(100, 'a'), {}, 'a.txt');
    expect(ok.size).toBe(100);
    expect(await refusalOf(upload(h.service, Buffer.alloc(101, 'a'), {}, 'a.txt'))).toEqual({
      kind: 'too_large',
      receivedBytes: 101,
      maxBytes: 100,
    });
    expect(await refusalOf(upload(h.service, Buffer.alloc(120, 'a'), {}, 'a.txt', 60))).toEqual({
      kind: 'too_large',
      receivedBytes: 120,
      maxBytes: 100,
    });
    expect(files(h.storage)).toHaveLength(1);
    expect(files(h.temp)).toEqual([]);
  });

  it('refuses types outside ALLOWED_MIME_TYPES, sniffed from the content', async () => {
    const h = setup({ ALLOWED_MIME_TYPES: 'image/*' });
    expect((await upload(h.service, PNG, {}, 'x.png')).mimeType).toBe('image/png');
    expect(await refusalOf(upload(h.service, Buffer.from('hello world\n'), {}, 'fake.png'))).toEqual({
      kind: 'type_not_allowed',
      mimeType: 'text/plain',
    });
    // Refused while streaming, as soon as 4,096 bytes are in.
    const session = await h.service.beginUpload();
    await session.write(Buffer.alloc(3000, 'x'));
    expect(await refusalOf(session.write(Buffer.alloc(3000, 'y')))).toEqual({
      kind: 'type_not_allowed',
      mimeType: 'text/plain',
    });
    await session.abort();
    expect(files(h.storage)).toHaveLength(1);
    expect(files(h.temp)).toEqual([]);
    expect(h.store.entries().filter((e) => e.key.startsWith('raven:upload:'))).toHaveLength(1);
  });

  it('refuses an empty file and stores nothing', async () => {
    const h = setup();
    expect(await refusalOf(upload(h.service, Buffer.alloc(0)))).toEqual({ kind: 'empty' });
    expect(files(h.storage)).toEqual([]);
    expect(files(h.temp)).toEqual([]);
    expect(h.store.entries().filter((e) => !e.key.endsWith('kdf'))).toEqual([]);
  });

  it('abort removes the partial file', async () => {
    const h = setup();
    const session = await h.service.beginUpload();
    await session.write(PDF.subarray(0, 100_000));
    expect(files(h.temp)).toHaveLength(1);
    await session.abort();
    await session.abort();
    expect(files(h.temp)).toEqual([]);
    expect(files(h.storage)).toEqual([]);
  });
});

describe('failed lookups and blocking (cases 11, 12, 13)', () => {
  it('unknown keys are failures; reaching the limit blocks the client only', async () => {
    const h = setup({ DOWNLOAD_FAIL_LIMIT: '3', DOWNLOAD_BLOCK_WINDOW: '1800' });
    const unknown = wordlist.generateKey(3);
    expect(await h.service.preview(unknown, null, 'bad')).toEqual({
      ok: false,
      failure: { kind: 'not_found' },
    });
    expect(await h.service.status(unknown, 'bad')).toEqual({ ok: true, value: null });
    expect(h.logs.some((l) => l.event === 'ip_blocked')).toBe(false);
    expect(await h.service.download(unknown, null, 'bad')).toEqual({
      ok: false,
      failure: { kind: 'not_found' },
    });
    expect(h.logs.filter((l) => l.event === 'ip_blocked')).toEqual([
      { event: 'ip_blocked', fields: { ip: 'bad', failures: 3 } },
    ]);
    for (const attempt of [
      h.service.download(unknown, null, 'bad'),
      h.service.preview(unknown, null, 'bad'),
      h.service.status(unknown, 'bad'),
      h.service.remove(unknown, null, 'bad'),
    ]) {
      const result = await attempt;
      expect(result.ok).toBe(false);
      if (!result.ok) {
        expect(result.failure.kind).toBe('blocked');
        if (result.failure.kind === 'blocked') {
          expect(result.failure.retryAfterSeconds).toBeGreaterThan(1790);
          expect(result.failure.retryAfterSeconds).toBeLessThanOrEqual(1800);
        }
      }
    }
    expect(await h.service.status(unknown, 'good')).toEqual({ ok: true, value: null });
  });

  it('a malformed key is not found, counts as a failure, and costs no KDF', async () => {
    const h = setup();
    const before = h.kdfCalls.count;
    for (const garbage of [
      '../../etc/passwd',
      'x'.repeat(10_000),
      'abacus\u0000abdomen',
      '%00',
      'abacus-abdomen',
    ]) {
      expect(await h.service.download(garbage, null, 'c9')).toEqual({
        ok: false,
        failure: { kind: 'not_found' },
      });
    }
    expect(h.kdfCalls.count).toBe(before);
    expect(h.store.entries().find((e) => e.key === 'raven:fails:c9')?.value).toBe('5');
    await h.service.download(wordlist.generateKey(3), null, 'c9');
    expect(h.kdfCalls.count).toBe(before + 1);
  });

  it('a full KDF queue answers saturated', async () => {
    const h = setup({ KDF_MAX_QUEUE: '1' });
    const [a, b] = await Promise.all([
      h.service.status(wordlist.generateKey(3), 'c1'),
      h.service.status(wordlist.generateKey(3), 'c1'),
    ]);
    expect([a, b]).toContainEqual({ ok: false, failure: { kind: 'saturated' } });
  });
});

describe('expiry and integrity (cases 18, 21)', () => {
  it('an upload past its expiry is not found and the sweeper removes its blob', async () => {
    const h = setup();
    const receipt = await upload(h.service, PDF, { expiryMinutes: 1, uses: 2 });
    h.clock.t += 61_000;
    expect(await h.service.download(receipt.key, null, 'c1')).toEqual({
      ok: false,
      failure: { kind: 'not_found' },
    });
    expect(await h.service.status(receipt.key, 'c1')).toEqual({ ok: true, value: null });
    expect(files(h.storage)).toHaveLength(1);
    const jobs = startBackgroundJobs({
      config: h.config,
      store: h.store,
      instanceId: 'test',
      now: () => h.clock.t,
      runStartupCleanup: false,
    });
    try {
      expect(await jobs.runSweepNow()).toEqual({ removed: 1, orphans: 0 });
    } finally {
      jobs.stop();
    }
    expect(files(h.storage)).toEqual([]);
  });

  it('a damaged blob throws IntegrityError and the use stays consumed', async () => {
    const h = setup();
    const receipt = await upload(h.service, PDF, { uses: 2 });
    const [blobName] = files(h.storage);
    const path = join(h.storage, blobName as string);
    const bytes = readFileSync(path);
    bytes[100] = (bytes[100] as number) ^ 0x01;
    writeFileSync(path, bytes);
    await expect(h.service.download(receipt.key, null, 'c1')).rejects.toBeInstanceOf(IntegrityError);
    expect(h.logs.some((l) => l.event === 'integrity_check_failed')).toBe(true);
    const status = await h.service.status(receipt.key, 'c1');
    expect(status.ok && status.value?.remainingUses).toBe(1);
  });
});
