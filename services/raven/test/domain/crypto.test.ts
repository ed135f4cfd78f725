import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
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
  type UploadMeta,
  uploadKeys,
  wipe,
} from '../../src/domain/crypto.js';

// Known-answer values (acceptance case 22). Changing either breaks every stored upload.
const GOLDEN_SALT = 'AAECAwQFBgcICQoLDA0ODw';
const GOLDEN_KEY = 'abacus-abdomen-abide';
const GOLDEN_ID = '4c8d42e3aa608a45c5a502bda63739c4';
const GOLDEN_KDF: KdfParams = { salt: GOLDEN_SALT, log2n: 12, r: 8, p: 1 };

const META: UploadMeta = {
  filename: 'résumé.pdf',
  mime_type: 'application/pdf',
  size: 12345,
  sha256: 'a'.repeat(64),
};
const ID = '0123456789abcdef0123456789abcdef';
const BLOB = '1767225600000-00112233445566778899aabbccddeeff.rzb';

describe('b64u', () => {
  it('round-trips without padding and rejects foreign alphabets', () => {
    for (const length of [0, 1, 2, 3, 16, 33]) {
      const bytes = randomBytes(length);
      const text = toB64u(bytes);
      expect(text).not.toMatch(/[=+/]/);
      expect(fromB64u(text).equals(bytes)).toBe(true);
    }
    expect(() => fromB64u('ab+c')).toThrow();
    expect(() => fromB64u('abc=')).toThrow();
    expect(() => fromB64u('abcde')).toThrow();
  });
});

describe('KDF', () => {
  it('newKdfParams draws a fresh 16-byte salt with r=8, p=1', () => {
    const a = newKdfParams(12);
    const b = newKdfParams(12);
    expect(a).toMatchObject({ log2n: 12, r: 8, p: 1 });
    expect(fromB64u(a.salt)).toHaveLength(16);
    expect(a.salt).not.toBe(b.salt);
    expect(() => newKdfParams(3)).toThrow(RangeError);
    expect(() => newKdfParams(12.5)).toThrow(RangeError);
  });

  it('known answer: fixed salt, log2n 12, abacus-abdomen-abide → golden lookup id', async () => {
    const master = await deriveMaster(GOLDEN_KEY, GOLDEN_KDF);
    expect(master).toHaveLength(32);
    expect(lookupId(master)).toBe(GOLDEN_ID);
    expect(lookupId(await deriveMaster(GOLDEN_KEY, GOLDEN_KDF))).toBe(GOLDEN_ID);
  });

  it('the golden id is reproduced by a separate node process using node:crypto directly', () => {
    const script = `
      const c = require('node:crypto');
      const [salt, key] = process.argv.slice(1);
      const master = c.scryptSync(Buffer.from(key, 'utf8'), Buffer.from(salt, 'base64url'), 32, { N: 4096, r: 8, p: 1 });
      const id = c.hkdfSync('sha256', master, Buffer.alloc(0), 'raven-zero/v1/lookup', 16);
      process.stdout.write(Buffer.from(id).toString('hex'));
    `;
    const out = execFileSync(process.execPath, ['-e', script, GOLDEN_SALT, GOLDEN_KEY], { encoding: 'utf8' });
    expect(out).toBe(GOLDEN_ID);
  });

  it('a different key, salt or cost gives a different id', async () => {
    const ids = new Set([
      GOLDEN_ID,
      lookupId(await deriveMaster('abacus-abdomen-abides', GOLDEN_KDF)),
      lookupId(await deriveMaster(GOLDEN_KEY, { ...GOLDEN_KDF, salt: toB64u(Buffer.alloc(16, 1)) })),
      lookupId(await deriveMaster(GOLDEN_KEY, { ...GOLDEN_KDF, log2n: 13 })),
    ]);
    expect(ids.size).toBe(4);
    for (const id of ids) expect(id).toMatch(/^[0-9a-f]{32}$/);
  });

  it('runs production-sized scrypt (log2n 17) within the maxmem it sets', async () => {
    const master = await deriveMaster(GOLDEN_KEY, { ...GOLDEN_KDF, log2n: 17 });
    expect(master).toHaveLength(32);
  });
});

describe('upload keys', () => {
  it('are distinct 32-byte keys, bound to the upload salt and the password', async () => {
    const master = await deriveMaster(GOLDEN_KEY, GOLDEN_KDF);
    const usalt = randomBytes(16);
    const plain = await uploadKeys(master, usalt, null, GOLDEN_KDF);
    const again = await uploadKeys(master, usalt, null, GOLDEN_KDF);
    const otherSalt = await uploadKeys(master, randomBytes(16), null, GOLDEN_KDF);
    const withPassword = await uploadKeys(master, usalt, 'hunter2', GOLDEN_KDF);
    const otherPassword = await uploadKeys(master, usalt, 'hunter3', GOLDEN_KDF);
    expect(plain.fileKey).toHaveLength(32);
    expect(plain.metaKey).toHaveLength(32);
    expect(plain.fileKey.equals(plain.metaKey)).toBe(false);
    expect(again.fileKey.equals(plain.fileKey)).toBe(true);
    const fileKeys = [plain, otherSalt, withPassword, otherPassword].map((k) => k.fileKey.toString('hex'));
    expect(new Set(fileKeys).size).toBe(4);
    expect(withPassword.metaKey.equals(plain.metaKey)).toBe(false);
    // The caller's master is left intact for further derivations.
    expect(lookupId(master)).toBe(GOLDEN_ID);
  });

  it('normalizes the password to NFC', async () => {
    const master = await deriveMaster(GOLDEN_KEY, GOLDEN_KDF);
    const usalt = randomBytes(16);
    const composed = await uploadKeys(master, usalt, 'caf\u00e9', GOLDEN_KDF);
    const decomposed = await uploadKeys(master, usalt, 'cafe\u0301', GOLDEN_KDF);
    expect(decomposed.fileKey.equals(composed.fileKey)).toBe(true);
  });
});

describe('metadata encryption', () => {
  const metaKey = randomBytes(32);

  it('round-trips and hides every field', () => {
    const sealed = encryptMeta(metaKey, ID, BLOB, META);
    expect(sealed).toMatch(/^[A-Za-z0-9_-]+$/);
    expect(decryptMeta(metaKey, ID, BLOB, sealed)).toEqual(META);
    const raw = fromB64u(sealed).toString('latin1');
    for (const secret of ['sum', 'pdf', 'application', 'aaaaaaaa', '12345'])
      expect(raw).not.toContain(secret);
    // Fresh nonce each time.
    expect(encryptMeta(metaKey, ID, BLOB, META)).not.toBe(sealed);
  });

  it('is bound to the key, the id and the blob name', () => {
    const sealed = encryptMeta(metaKey, ID, BLOB, META);
    expect(() => decryptMeta(randomBytes(32), ID, BLOB, sealed)).toThrow(AuthenticationError);
    expect(() => decryptMeta(metaKey, `${ID.slice(0, -1)}0`, BLOB, sealed)).toThrow(AuthenticationError);
    expect(() => decryptMeta(metaKey, ID, BLOB.replace('.rzb', '0.rzb'), sealed)).toThrow(
      AuthenticationError,
    );
  });

  it('rejects altered, truncated and garbage input with AuthenticationError', () => {
    const sealed = fromB64u(encryptMeta(metaKey, ID, BLOB, META));
    for (let i = 0; i < sealed.length; i++) {
      const altered = Buffer.from(sealed);
      altered[i] = (altered[i] as number) ^ 0x01;
      expect(() => decryptMeta(metaKey, ID, BLOB, toB64u(altered))).toThrow(AuthenticationError);
    }
    expect(() => decryptMeta(metaKey, ID, BLOB, toB64u(sealed.subarray(0, 27)))).toThrow(AuthenticationError);
    expect(() => decryptMeta(metaKey, ID, BLOB, 'not base64!')).toThrow(AuthenticationError);
  });

  it('uses the AAD "raven-zero/v1/meta|<id>|<blob>" and the field names of the spec', async () => {
    const { createDecipheriv } = await import('node:crypto');
    const raw = fromB64u(encryptMeta(metaKey, ID, BLOB, META));
    const decipher = createDecipheriv('aes-256-gcm', metaKey, raw.subarray(0, 12));
    decipher.setAAD(Buffer.from(`raven-zero/v1/meta|${ID}|${BLOB}`));
    decipher.setAuthTag(raw.subarray(raw.length - 16));
    const json = Buffer.concat([decipher.update(raw.subarray(12, raw.length - 16)), decipher.final()]);
    expect(Object.keys(JSON.parse(json.toString('utf8')))).toEqual([
      'filename',
      'mime_type',
      'size',
      'sha256',
    ]);
  });
});

describe('wipe', () => {
  it('zeroes buffers and ignores null', () => {
    const key = randomBytes(32);
    wipe(key, null, undefined);
    expect(key.equals(Buffer.alloc(32))).toBe(true);
  });
});
