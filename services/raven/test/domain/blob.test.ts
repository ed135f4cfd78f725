import { createHash, randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { collectGarbage, paceStreamedBytes } from '@quintet/kernel/memory';
import { afterAll, describe, expect, it } from 'vitest';
import {
  BLOB_HEADER_BYTES,
  blobExpiry,
  blobSize,
  createBlobDecryptor,
  createBlobEncryptor,
  newBlobName,
  openBlobReader,
} from '../../src/domain/blob.js';
import { AuthenticationError } from '../../src/domain/crypto.js';

const scratch = mkdtempSync(join(tmpdir(), 'raven-blob-'));
afterAll(() => rmSync(scratch, { recursive: true, force: true }));

async function collect(stream: NodeJS.ReadableStream): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const part of stream) parts.push(part as Buffer);
  return Buffer.concat(parts);
}

/** Feeds `input` in pieces of `piece` bytes (irregular boundaries exercise the buffering). */
function source(input: Buffer, piece = 7919): Readable {
  const pieces: Buffer[] = [];
  for (let i = 0; i < input.length; i += piece) pieces.push(input.subarray(i, i + piece));
  return Readable.from(pieces, { objectMode: false });
}

async function encrypt(key: Buffer, input: Buffer, e?: number): Promise<Buffer> {
  return collect(source(input).pipe(createBlobEncryptor(key, e)));
}

async function decrypt(key: Buffer, blob: Buffer): Promise<Buffer> {
  const decryptor = createBlobDecryptor(key);
  const out = collect(decryptor);
  decryptor.end(blob);
  return out;
}

function recordBytes(e: number): number {
  return 2 ** e + 16;
}

describe('RZB1 round trip', () => {
  it('encrypts and decrypts 200 KiB with the default 64 KiB chunks', async () => {
    const key = randomBytes(32);
    const input = randomBytes(200 * 1024);
    const blob = await encrypt(key, input);
    expect(blob.subarray(0, 4).toString('latin1')).toBe('RZB1');
    expect(blob[4]).toBe(16);
    expect(blob).toHaveLength(blobSize(input.length));
    expect(blob).toHaveLength(12 + 200 * 1024 + 16 * 4);
    expect((await decrypt(key, blob)).equals(input)).toBe(true);
    // The plaintext does not appear in the blob.
    expect(blob.includes(input.subarray(0, 32))).toBe(false);
  });

  it('decrypts when fed one byte at a time and accepts every exponent from 12 to 22', async () => {
    const key = randomBytes(32);
    const input = randomBytes(5000);
    const blob = await encrypt(key, input, 12);
    const decryptor = createBlobDecryptor(key);
    const out = collect(decryptor);
    for (const byte of blob) decryptor.write(Buffer.from([byte]));
    decryptor.end();
    expect((await out).equals(input)).toBe(true);
    for (const e of [12, 22]) {
      const big = randomBytes(2 ** e + 3);
      expect((await decrypt(key, await encrypt(key, big, e))).equals(big)).toBe(true);
    }
    expect(() => createBlobEncryptor(key, 11)).toThrow(RangeError);
    expect(() => createBlobEncryptor(key, 23)).toThrow(RangeError);
  });

  it('blob size is 12 + size + 16·⌈size/2^e⌉ at every chunk boundary', async () => {
    const key = randomBytes(32);
    const e = 12;
    const c = 2 ** e;
    for (const size of [1, c - 1, c, c + 1, 2 * c, 3 * c - 1, 3 * c + 5]) {
      const expected = 12 + size + 16 * Math.ceil(size / c);
      expect(blobSize(size, e)).toBe(expected);
      const input = randomBytes(size);
      const blob = await encrypt(key, input, e);
      expect(blob).toHaveLength(expected);
      expect((await decrypt(key, blob)).equals(input)).toBe(true);
    }
    expect(blobSize(100 * 1024 * 1024)).toBe(12 + 100 * 1024 * 1024 + 16 * 1600);
  });

  it('empty input: one authenticated empty final chunk (28 bytes); a bare header is rejected', async () => {
    const key = randomBytes(32);
    const blob = await encrypt(key, Buffer.alloc(0));
    expect(blob).toHaveLength(blobSize(0));
    expect(blob).toHaveLength(BLOB_HEADER_BYTES + 16);
    expect(await decrypt(key, blob)).toHaveLength(0);
    await expect(decrypt(key, blob.subarray(0, BLOB_HEADER_BYTES))).rejects.toThrow(AuthenticationError);
    await expect(decrypt(key, blob.subarray(0, 5))).rejects.toThrow(AuthenticationError);
    await expect(decrypt(key, Buffer.alloc(0))).rejects.toThrow(AuthenticationError);
  });

  it('uses a fresh nonce prefix per blob', async () => {
    const key = randomBytes(32);
    const input = randomBytes(100);
    const a = await encrypt(key, input);
    const b = await encrypt(key, input);
    expect(a.subarray(5, 12).equals(b.subarray(5, 12))).toBe(false);
    expect(a.subarray(12).equals(b.subarray(12))).toBe(false);
  });
});

describe('RZB1 authentication', () => {
  const key = randomBytes(32);
  const e = 12;
  const input = randomBytes(10 * 1024);
  const blobPromise = encrypt(key, input, e);

  it('flipping any single byte anywhere fails with AuthenticationError', async () => {
    const blob = await blobPromise;
    expect(blob).toHaveLength(12 + 10 * 1024 + 16 * 3);
    let failures = 0;
    for (let i = 0; i < blob.length; i++) {
      const altered = Buffer.from(blob);
      altered[i] = (altered[i] as number) ^ 0x80;
      try {
        await decrypt(key, altered);
      } catch (err) {
        if (err instanceof AuthenticationError) failures++;
      }
    }
    expect(failures).toBe(blob.length);
  });

  it('rejects a wrong key', async () => {
    await expect(decrypt(randomBytes(32), await blobPromise)).rejects.toThrow(AuthenticationError);
  });

  it('rejects truncation: final chunk dropped, cut inside a chunk, data appended', async () => {
    const blob = await blobPromise;
    const r = recordBytes(e);
    await expect(decrypt(key, blob.subarray(0, 12 + 2 * r))).rejects.toThrow(AuthenticationError);
    await expect(decrypt(key, blob.subarray(0, 12 + r))).rejects.toThrow(AuthenticationError);
    await expect(decrypt(key, blob.subarray(0, blob.length - 1))).rejects.toThrow(AuthenticationError);
    await expect(decrypt(key, blob.subarray(0, blob.length - 17))).rejects.toThrow(AuthenticationError);
    await expect(decrypt(key, Buffer.concat([blob, Buffer.alloc(1)]))).rejects.toThrow(AuthenticationError);
  });

  it('rejects reordered chunks and chunks swapped in from another blob under the same key', async () => {
    const blob = await blobPromise;
    const r = recordBytes(e);
    const swapped = Buffer.concat([
      blob.subarray(0, 12),
      blob.subarray(12 + r, 12 + 2 * r),
      blob.subarray(12, 12 + r),
      blob.subarray(12 + 2 * r),
    ]);
    expect(swapped).toHaveLength(blob.length);
    await expect(decrypt(key, swapped)).rejects.toThrow(AuthenticationError);

    const other = await encrypt(key, randomBytes(input.length), e);
    const spliced = Buffer.from(blob);
    other.copy(spliced, 12 + r, 12 + r, 12 + 2 * r);
    await expect(decrypt(key, spliced)).rejects.toThrow(AuthenticationError);
    const foreignHeader = Buffer.concat([other.subarray(0, 12), blob.subarray(12)]);
    await expect(decrypt(key, foreignHeader)).rejects.toThrow(AuthenticationError);
  });

  it('rejects header edits: magic, chunk exponent in and out of range', async () => {
    const blob = await blobPromise;
    for (const [offset, value] of [
      [0, 0x58],
      [4, 13],
      [4, 11],
      [4, 23],
      [4, 0],
    ] as const) {
      const altered = Buffer.from(blob);
      altered[offset] = value;
      await expect(decrypt(key, altered)).rejects.toThrow(AuthenticationError);
    }
  });
});

describe('openBlobReader', () => {
  const key = randomBytes(32);

  async function writeBlob(name: string, input: Buffer, e = 12): Promise<string> {
    const path = join(scratch, name);
    writeFileSync(path, await encrypt(key, input, e));
    return path;
  }

  it('authenticates chunk 0 up front, then streams the rest', async () => {
    const input = randomBytes(3 * 4096 + 100);
    const path = await writeBlob('multi.rzb', input);
    const reader = await openBlobReader(path, key);
    expect(reader.plainSize).toBe(input.length);
    expect(reader.first.equals(input.subarray(0, 4096))).toBe(true);
    expect(Buffer.concat([reader.first, await collect(reader.rest)]).equals(input)).toBe(true);
  });

  it('handles single-chunk and empty blobs', async () => {
    const small = randomBytes(10);
    const reader = await openBlobReader(await writeBlob('small.rzb', small), key);
    expect(reader.first.equals(small)).toBe(true);
    expect(await collect(reader.rest)).toHaveLength(0);
    const empty = await openBlobReader(await writeBlob('empty.rzb', Buffer.alloc(0)), key);
    expect(empty.first).toHaveLength(0);
    expect(empty.plainSize).toBe(0);
    expect(await collect(empty.rest)).toHaveLength(0);
  });

  it('rejects a wrong key or a damaged chunk 0 before returning', async () => {
    const path = await writeBlob('wrong.rzb', randomBytes(9000));
    await expect(openBlobReader(path, randomBytes(32))).rejects.toThrow(AuthenticationError);
    const blob = await encrypt(key, randomBytes(9000), 12);
    blob[20] = (blob[20] as number) ^ 1;
    writeFileSync(join(scratch, 'damaged0.rzb'), blob);
    await expect(openBlobReader(join(scratch, 'damaged0.rzb'), key)).rejects.toThrow(AuthenticationError);
    writeFileSync(join(scratch, 'header.rzb'), blob.subarray(0, 12));
    await expect(openBlobReader(join(scratch, 'header.rzb'), key)).rejects.toThrow(AuthenticationError);
  });

  it('fails the stream when a later chunk is damaged or the final chunk is missing', async () => {
    const blob = await encrypt(key, randomBytes(3 * 4096 + 100), 12);
    const damaged = Buffer.from(blob);
    damaged[damaged.length - 1] = (damaged[damaged.length - 1] as number) ^ 1;
    writeFileSync(join(scratch, 'damaged.rzb'), damaged);
    const reader = await openBlobReader(join(scratch, 'damaged.rzb'), key);
    await expect(collect(reader.rest)).rejects.toThrow(AuthenticationError);
    writeFileSync(join(scratch, 'cut.rzb'), blob.subarray(0, 12 + 3 * recordBytes(12)));
    const cut = await openBlobReader(join(scratch, 'cut.rzb'), key);
    await expect(collect(cut.rest)).rejects.toThrow(AuthenticationError);
  });

  it('a missing file rejects with ENOENT', async () => {
    await expect(openBlobReader(join(scratch, 'absent.rzb'), key)).rejects.toMatchObject({ code: 'ENOENT' });
  });
});

describe('bounded memory', () => {
  it('streams 64 MiB through encryptor → decryptor with bounded RSS growth', async () => {
    const key = randomBytes(32);
    const total = 64 * 1024 * 1024;
    const block = randomBytes(100_003);
    const inHash = createHash('sha256');
    const outHash = createHash('sha256');
    let produced = 0;
    let consumed = 0;
    const input = new Readable({
      read() {
        if (produced >= total) return void this.push(null);
        const piece = Buffer.from(block.subarray(0, Math.min(block.length, total - produced)));
        piece.writeUInt32BE(produced >>> 0, 0);
        produced += piece.length;
        inHash.update(piece);
        this.push(piece);
      },
    });
    const sink = new Writable({
      write(chunk: Buffer, _encoding, callback) {
        consumed += chunk.length;
        outHash.update(chunk);
        // As Raven's transfers do: without it the freed buffers of 64 MiB wait for V8's external-memory limit,
        // and what is measured is the collector's timing instead of the pipeline's buffering.
        paceStreamedBytes(chunk.length);
        callback();
      },
    });
    collectGarbage();
    const before = process.memoryUsage().rss;
    let peak = before;
    const timer = setInterval(() => {
      peak = Math.max(peak, process.memoryUsage().rss);
    }, 5);
    try {
      await pipeline(input, createBlobEncryptor(key), createBlobDecryptor(key), sink);
    } finally {
      clearInterval(timer);
    }
    peak = Math.max(peak, process.memoryUsage().rss);
    expect(consumed).toBe(total);
    expect(outHash.digest('hex')).toBe(inHash.digest('hex'));
    expect(peak - before).toBeLessThan(40 * 1024 * 1024);
  });
});

describe('blob names', () => {
  it('carry the expiry and 128 random bits', () => {
    const a = newBlobName(1767225600123.9);
    const b = newBlobName(1767225600123);
    expect(a).toMatch(/^1767225600123-[0-9a-f]{32}\.rzb$/);
    expect(a).not.toBe(b);
    expect(blobExpiry(a)).toBe(1767225600123);
  });

  it.each([
    'notes.txt',
    '1767225600123-00112233445566778899aabbccddeeff.rzb.part',
    '1767225600123-00112233445566778899AABBCCDDEEFF.rzb',
    '-00112233445566778899aabbccddeeff.rzb',
    '../1767225600123-00112233445566778899aabbccddeeff.rzb',
  ])('blobExpiry(%j) is null', (name) => {
    expect(blobExpiry(name)).toBeNull();
  });
});
