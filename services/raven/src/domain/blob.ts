import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';
import { open } from 'node:fs/promises';
import { Readable, Transform, type TransformCallback } from 'node:stream';
import { AuthenticationError, GCM_TAG_BYTES, KEY_BYTES, wipe } from './crypto.js';

// RZB1: header = "RZB1" ‖ e ‖ 7-byte nonce prefix; chunk i = AES-256-GCM(fileKey,
// nonce = prefix ‖ uint32be(i) ‖ final flag, AAD = header) stored as ciphertext ‖ tag.
//
// Empty input: the encryptor writes one final chunk with 0 plaintext bytes (28-byte blob), so a blob
// cut back to its bare header never authenticates as an empty file. The service rejects empty uploads
// before storing, so such a blob is only ever a discarded partial.

export const BLOB_MAGIC = 'RZB1';
export const BLOB_HEADER_BYTES = 12;
export const DEFAULT_CHUNK_EXPONENT = 16;
export const MIN_CHUNK_EXPONENT = 12;
export const MAX_CHUNK_EXPONENT = 22;
const NONCE_PREFIX_BYTES = 7;
const MAX_CHUNK_INDEX = 0xffffffff;
const BLOB_NAME = /^(\d{1,15})-[0-9a-f]{32}\.rzb$/;

function checkExponent(e: number): void {
  if (!Number.isInteger(e) || e < MIN_CHUNK_EXPONENT || e > MAX_CHUNK_EXPONENT) {
    throw new RangeError(
      `chunk exponent must be an integer from ${MIN_CHUNK_EXPONENT} to ${MAX_CHUNK_EXPONENT}`,
    );
  }
}

function checkKey(fileKey: Buffer): Buffer {
  if (fileKey.length !== KEY_BYTES) throw new RangeError(`file key must be ${KEY_BYTES} bytes`);
  // A private copy: callers may wipe theirs as soon as the stream is built.
  return Buffer.from(fileKey);
}

/** Size on disk of a blob holding `plainSize` bytes: 12 + size + 16·⌈size/2^e⌉ (an empty file has one chunk). */
export function blobSize(plainSize: number, chunkExponent = DEFAULT_CHUNK_EXPONENT): number {
  checkExponent(chunkExponent);
  if (!Number.isSafeInteger(plainSize) || plainSize < 0) throw new RangeError('plain size must be ≥ 0');
  const chunks = Math.max(1, Math.ceil(plainSize / 2 ** chunkExponent));
  return BLOB_HEADER_BYTES + plainSize + GCM_TAG_BYTES * chunks;
}

/** `<expires_at epoch ms>-<32 random hex>.rzb` */
export function newBlobName(expiresAtMs: number): string {
  const ms = Math.trunc(expiresAtMs);
  if (!Number.isSafeInteger(ms) || ms < 0) throw new RangeError('expiry must be a non-negative epoch ms');
  return `${ms}-${randomBytes(16).toString('hex')}.rzb`;
}

/** The expiry (epoch ms) encoded in a blob name, or null when the name is not a blob name. */
export function blobExpiry(name: string): number | null {
  const match = BLOB_NAME.exec(name);
  return match ? Number(match[1]) : null;
}

/** Seals and opens the chunks of one blob; the header fixes e, the nonce prefix and the AAD. */
class ChunkCipher {
  readonly chunkBytes: number;
  private readonly nonce = Buffer.alloc(12);

  constructor(
    private readonly key: Buffer,
    readonly header: Buffer,
  ) {
    this.chunkBytes = 2 ** (header[4] as number);
    header.copy(this.nonce, 0, 5, BLOB_HEADER_BYTES);
  }

  private nonceFor(index: number, final: boolean): Buffer {
    if (index > MAX_CHUNK_INDEX) throw new RangeError('blob has too many chunks');
    this.nonce.writeUInt32BE(index, NONCE_PREFIX_BYTES);
    this.nonce[11] = final ? 0x01 : 0x00;
    return this.nonce;
  }

  seal(index: number, plaintext: Buffer, final: boolean): Buffer {
    const cipher = createCipheriv('aes-256-gcm', this.key, this.nonceFor(index, final), {
      authTagLength: GCM_TAG_BYTES,
    });
    cipher.setAAD(this.header);
    const head = cipher.update(plaintext);
    const tail = cipher.final();
    return Buffer.concat([head, tail, cipher.getAuthTag()]);
  }

  /** Plaintext of one stored chunk (ciphertext ‖ tag); throws AuthenticationError unless it verifies. */
  open(index: number, record: Buffer, final: boolean): Buffer {
    const length = record.length - GCM_TAG_BYTES;
    // Non-final chunks are exactly full; only chunk 0 of an empty file may be empty.
    const sizeOk = final
      ? length <= this.chunkBytes && (length > 0 || index === 0)
      : length === this.chunkBytes;
    if (length < 0 || !sizeOk) throw new AuthenticationError(`blob chunk ${index} has a wrong length`);
    const decipher = createDecipheriv('aes-256-gcm', this.key, this.nonceFor(index, final), {
      authTagLength: GCM_TAG_BYTES,
    });
    decipher.setAAD(this.header);
    decipher.setAuthTag(record.subarray(length));
    try {
      const head = decipher.update(record.subarray(0, length));
      const tail = decipher.final();
      return tail.length === 0 ? head : Buffer.concat([head, tail]);
    } catch {
      throw new AuthenticationError(`blob chunk ${index} failed authentication`);
    }
  }

  wipe(): void {
    wipe(this.key);
  }
}

function parseHeader(header: Buffer): void {
  if (header.length !== BLOB_HEADER_BYTES || header.toString('latin1', 0, 4) !== BLOB_MAGIC) {
    throw new AuthenticationError('not an RZB1 blob');
  }
  const e = header[4] as number;
  if (e < MIN_CHUNK_EXPONENT || e > MAX_CHUNK_EXPONENT)
    throw new AuthenticationError('blob chunk size out of range');
}

/**
 * Copies `data` from `offset` into `pending`. A full `pending` is handed to `full` only once more bytes follow,
 * so the record still held when the input ends is always the final one. Returns the new fill level.
 */
function holdRecords(
  data: Buffer,
  offset: number,
  pending: Buffer,
  filled: number,
  full: (record: Buffer) => void,
): number {
  let at = offset;
  let level = filled;
  while (at < data.length) {
    if (level === pending.length) {
      full(pending);
      level = 0;
    }
    const copied = data.copy(pending, level, at);
    level += copied;
    at += copied;
  }
  return level;
}

/**
 * Plaintext in, RZB1 blob out. Holds at most one chunk: a full chunk is sealed as non-final only once
 * more input arrives, and whatever is held at the end is sealed as the final chunk.
 */
export function createBlobEncryptor(fileKey: Buffer, chunkExponent = DEFAULT_CHUNK_EXPONENT): Transform {
  checkExponent(chunkExponent);
  const header = Buffer.alloc(BLOB_HEADER_BYTES);
  header.write(BLOB_MAGIC, 0, 'latin1');
  header[4] = chunkExponent;
  randomBytes(NONCE_PREFIX_BYTES).copy(header, 5);
  const chunks = new ChunkCipher(checkKey(fileKey), header);
  const pending = Buffer.alloc(chunks.chunkBytes);
  let filled = 0;
  let index = 0;
  let headerSent = false;

  const emitHeader = (stream: Transform): void => {
    if (!headerSent) {
      stream.push(Buffer.from(header));
      headerSent = true;
    }
  };

  return new Transform({
    transform(data: Buffer, _encoding, callback: TransformCallback) {
      try {
        emitHeader(this);
        filled = holdRecords(data, 0, pending, filled, (record) =>
          this.push(chunks.seal(index++, record, false)),
        );
        callback();
      } catch (err) {
        callback(err as Error);
      }
    },
    flush(callback: TransformCallback) {
      try {
        emitHeader(this);
        this.push(chunks.seal(index++, pending.subarray(0, filled), true));
        callback();
      } catch (err) {
        callback(err as Error);
      } finally {
        wipe(pending);
        chunks.wipe();
      }
    },
    destroy(err, callback) {
      wipe(pending);
      chunks.wipe();
      callback(err);
    },
  });
}

/**
 * RZB1 blob in, plaintext out; every chunk is authenticated before its bytes are pushed. A record
 * followed by more data must be non-final; the record held at the end must be final — so truncation,
 * appended data, reordering, foreign chunks and header edits all raise AuthenticationError.
 */
export function createBlobDecryptor(fileKey: Buffer): Transform {
  const key = checkKey(fileKey);
  const header = Buffer.alloc(BLOB_HEADER_BYTES);
  let headerFilled = 0;
  let chunks: ChunkCipher | null = null;
  let pending = Buffer.alloc(0);
  let filled = 0;
  let index = 0;

  return new Transform({
    transform(data: Buffer, _encoding, callback: TransformCallback) {
      try {
        let offset = 0;
        if (chunks === null) {
          const copied = data.copy(header, headerFilled, 0);
          headerFilled += copied;
          offset = copied;
          if (headerFilled < BLOB_HEADER_BYTES) return callback();
          parseHeader(header);
          chunks = new ChunkCipher(key, header);
          pending = Buffer.alloc(chunks.chunkBytes + GCM_TAG_BYTES);
        }
        const cipher = chunks;
        filled = holdRecords(data, offset, pending, filled, (record) =>
          this.push(cipher.open(index++, record, false)),
        );
        callback();
      } catch (err) {
        callback(err as Error);
      }
    },
    flush(callback: TransformCallback) {
      try {
        if (chunks === null) throw new AuthenticationError('blob is truncated (incomplete header)');
        if (filled === 0) throw new AuthenticationError('blob is truncated (no final chunk)');
        this.push(chunks.open(index++, pending.subarray(0, filled), true));
        callback();
      } catch (err) {
        callback(err as Error);
      } finally {
        wipe(key);
      }
    },
    destroy(err, callback) {
      wipe(key);
      callback(err);
    },
  });
}

/** An opened blob whose chunk 0 has already been authenticated. */
export interface BlobReader {
  /** Plaintext of chunk 0 (verified). */
  first: Buffer;
  /** Plaintext of chunks 1…n, each verified before it is pushed; errors with AuthenticationError. */
  rest: Readable;
  /** Plaintext size implied by the blob's length on disk. */
  plainSize: number;
}

/**
 * Opens a blob and authenticates chunk 0 before anything is sent, so a wrong key or a damaged blob is
 * known before the status line. The file stays open until `rest` ends or is destroyed; memory is one
 * chunk whatever the size.
 */
export async function openBlobReader(path: string, fileKey: Buffer): Promise<BlobReader> {
  const key = checkKey(fileKey);
  const handle = await open(path, 'r');
  try {
    const { size } = await handle.stat();
    const header = Buffer.alloc(BLOB_HEADER_BYTES);
    const { bytesRead } = await handle.read(header, 0, BLOB_HEADER_BYTES, 0);
    if (bytesRead !== BLOB_HEADER_BYTES)
      throw new AuthenticationError('blob is truncated (incomplete header)');
    parseHeader(header);
    const chunks = new ChunkCipher(key, header);
    const recordBytes = chunks.chunkBytes + GCM_TAG_BYTES;
    const body = size - BLOB_HEADER_BYTES;
    if (body < GCM_TAG_BYTES) throw new AuthenticationError('blob is truncated (no final chunk)');
    const count = Math.ceil(body / recordBytes);
    const plainSize = body - GCM_TAG_BYTES * count;
    const record = Buffer.alloc(recordBytes);

    const readRecord = async (i: number): Promise<Buffer> => {
      const length = Math.min(recordBytes, body - i * recordBytes);
      const position = BLOB_HEADER_BYTES + i * recordBytes;
      let got = 0;
      while (got < length) {
        const { bytesRead: n } = await handle.read(record, got, length - got, position + got);
        if (n === 0) throw new AuthenticationError('blob is truncated');
        got += n;
      }
      return record.subarray(0, length);
    };

    const first = chunks.open(0, await readRecord(0), count === 1);
    async function* remaining(): AsyncGenerator<Buffer> {
      for (let i = 1; i < count; i++) yield chunks.open(i, await readRecord(i), i === count - 1);
    }
    const rest = Readable.from(remaining(), { objectMode: false, highWaterMark: 1 });
    rest.once('close', () => {
      chunks.wipe();
      void handle.close().catch(() => {});
    });
    return { first, rest, plainSize };
  } catch (err) {
    wipe(key);
    await handle.close().catch(() => {});
    throw err;
  }
}
