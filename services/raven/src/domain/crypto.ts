import {
  createCipheriv,
  createDecipheriv,
  hkdfSync,
  randomBytes,
  type ScryptOptions,
  scrypt,
} from 'node:crypto';

/** The `{prefix}kdf` record: scrypt parameters shared by every key derivation of one deployment. */
export interface KdfParams {
  /** b64u of 16 random bytes; the decoded bytes are the scrypt salt. */
  salt: string;
  log2n: number;
  r: number;
  p: number;
}

/** What `meta` holds; none of it exists server-side outside the ciphertext. */
export interface UploadMeta {
  filename: string;
  mime_type: string;
  size: number;
  sha256: string;
}

export interface UploadKeys {
  fileKey: Buffer;
  metaKey: Buffer;
}

/** A GCM tag did not verify: wrong key or password, or the data was altered, truncated or reordered. */
export class AuthenticationError extends Error {
  override name = 'AuthenticationError';
  constructor(message = 'authentication failed') {
    super(message);
  }
}

export const KEY_BYTES = 32;
export const KDF_SALT_BYTES = 16;
export const UPLOAD_SALT_BYTES = 16;
export const GCM_NONCE_BYTES = 12;
export const GCM_TAG_BYTES = 16;
const MIN_LOG2N = 4;
const MAX_LOG2N = 24;
const LOOKUP_INFO = 'raven-zero/v1/lookup';
const FILE_INFO = 'raven-zero/v1/file';
const META_INFO = 'raven-zero/v1/meta';
const META_AAD_PREFIX = 'raven-zero/v1/meta|';
const B64U = /^[A-Za-z0-9_-]*$/;

/** base64url without padding. */
export function toB64u(bytes: Uint8Array): string {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('base64url');
}

/** Decodes base64url (no padding); anything outside the alphabet throws. */
export function fromB64u(text: string): Buffer {
  if (!B64U.test(text) || text.length % 4 === 1) throw new TypeError('invalid base64url');
  return Buffer.from(text, 'base64url');
}

/** Overwrites key material in place. */
export function wipe(...buffers: (Buffer | null | undefined)[]): void {
  for (const buffer of buffers) buffer?.fill(0);
}

/** Fresh KDF parameters: 16 random salt bytes, N = 2^log2n, r = 8, p = 1. */
export function newKdfParams(log2n: number): KdfParams {
  checkLog2n(log2n);
  return { salt: toB64u(randomBytes(KDF_SALT_BYTES)), log2n, r: 8, p: 1 };
}

function checkLog2n(log2n: number): void {
  if (!Number.isInteger(log2n) || log2n < MIN_LOG2N || log2n > MAX_LOG2N) {
    throw new RangeError(`log2n must be an integer from ${MIN_LOG2N} to ${MAX_LOG2N}`);
  }
}

function scryptAsync(secret: Buffer, salt: Buffer, kdf: KdfParams): Promise<Buffer> {
  checkLog2n(kdf.log2n);
  if (!Number.isInteger(kdf.r) || kdf.r < 1 || !Number.isInteger(kdf.p) || kdf.p < 1) {
    throw new RangeError('scrypt r and p must be positive integers');
  }
  const N = 2 ** kdf.log2n;
  // OpenSSL needs 128·N·r for V plus 128·r·p for B; twice that leaves room for its bookkeeping.
  const options: ScryptOptions = { N, r: kdf.r, p: kdf.p, maxmem: 2 * 128 * N * kdf.r + 128 * kdf.r * kdf.p };
  return new Promise((resolvePromise, reject) => {
    scrypt(secret, salt, KEY_BYTES, options, (err, derived) => (err ? reject(err) : resolvePromise(derived)));
  });
}

function hkdf(ikm: Buffer, salt: Buffer, info: string, length: number): Buffer {
  return Buffer.from(hkdfSync('sha256', ikm, salt, info, length));
}

/** master = scrypt(normalized key, kdf salt, N, r, p, 32 bytes). */
export async function deriveMaster(key: string, kdf: KdfParams): Promise<Buffer> {
  const secret = Buffer.from(key, 'utf8');
  try {
    return await scryptAsync(secret, fromB64u(kdf.salt), kdf);
  } finally {
    wipe(secret);
  }
}

/** The store's only handle on an upload: hex(HKDF(master, empty salt, "raven-zero/v1/lookup", 16)). */
export function lookupId(master: Buffer): string {
  const id = hkdf(master, Buffer.alloc(0), LOOKUP_INFO, 16);
  const hex = id.toString('hex');
  wipe(id);
  return hex;
}

/** Per-upload file and meta keys; a password (NFC) adds scrypt(password, usalt) to the HKDF input. */
export async function uploadKeys(
  master: Buffer,
  usalt: Buffer,
  password: string | null,
  kdf: KdfParams,
): Promise<UploadKeys> {
  let passwordKey: Buffer | null = null;
  let ikm = master;
  if (password !== null) {
    const secret = Buffer.from(password.normalize('NFC'), 'utf8');
    try {
      passwordKey = await scryptAsync(secret, usalt, kdf);
    } finally {
      wipe(secret);
    }
    ikm = Buffer.concat([master, passwordKey]);
  }
  try {
    return {
      fileKey: hkdf(ikm, usalt, FILE_INFO, KEY_BYTES),
      metaKey: hkdf(ikm, usalt, META_INFO, KEY_BYTES),
    };
  } finally {
    if (passwordKey !== null) wipe(passwordKey, ikm);
  }
}

function metaAad(id: string, blobName: string): Buffer {
  return Buffer.from(`${META_AAD_PREFIX}${id}|${blobName}`, 'utf8');
}

/** b64u(nonce ‖ AES-256-GCM(metaKey, JSON meta) ‖ tag), bound to the upload id and blob name. */
export function encryptMeta(metaKey: Buffer, id: string, blobName: string, meta: UploadMeta): string {
  const json = JSON.stringify({
    filename: meta.filename,
    mime_type: meta.mime_type,
    size: meta.size,
    sha256: meta.sha256,
  });
  const nonce = randomBytes(GCM_NONCE_BYTES);
  const cipher = createCipheriv('aes-256-gcm', metaKey, nonce, { authTagLength: GCM_TAG_BYTES });
  cipher.setAAD(metaAad(id, blobName));
  const plaintext = Buffer.from(json, 'utf8');
  const ciphertext = Buffer.concat([cipher.update(plaintext), cipher.final()]);
  wipe(plaintext);
  return toB64u(Buffer.concat([nonce, ciphertext, cipher.getAuthTag()]));
}

/** Inverse of encryptMeta; a wrong key, id, blob name or any altered byte throws AuthenticationError. */
export function decryptMeta(metaKey: Buffer, id: string, blobName: string, encoded: string): UploadMeta {
  let raw: Buffer;
  try {
    raw = fromB64u(encoded);
  } catch {
    throw new AuthenticationError('metadata is not valid base64url');
  }
  if (raw.length < GCM_NONCE_BYTES + GCM_TAG_BYTES) throw new AuthenticationError('metadata too short');
  const nonce = raw.subarray(0, GCM_NONCE_BYTES);
  const tag = raw.subarray(raw.length - GCM_TAG_BYTES);
  const ciphertext = raw.subarray(GCM_NONCE_BYTES, raw.length - GCM_TAG_BYTES);
  const decipher = createDecipheriv('aes-256-gcm', metaKey, nonce, { authTagLength: GCM_TAG_BYTES });
  decipher.setAAD(metaAad(id, blobName));
  decipher.setAuthTag(tag);
  let plaintext: Buffer;
  try {
    plaintext = Buffer.concat([decipher.update(ciphertext), decipher.final()]);
  } catch {
    throw new AuthenticationError('metadata authentication failed');
  }
  const parsed = JSON.parse(plaintext.toString('utf8')) as Partial<UploadMeta>;
  wipe(plaintext);
  if (
    typeof parsed.filename !== 'string' ||
    typeof parsed.mime_type !== 'string' ||
    typeof parsed.size !== 'number' ||
    typeof parsed.sha256 !== 'string'
  ) {
    throw new AuthenticationError('metadata has an unexpected shape');
  }
  return { filename: parsed.filename, mime_type: parsed.mime_type, size: parsed.size, sha256: parsed.sha256 };
}
