import { describe, expect, it } from 'vitest';
import {
  contentDisposition,
  decodeMultipartFilename,
  decodeRfc5987,
  encodeRfc5987,
  sanitizeFilename,
} from '../../src/domain/filename.js';

describe('sanitizeFilename (spec §3.11)', () => {
  it.each([
    ['../../etc/pa;ss|wd.txt', 'passwd.txt'],
    ['C:\\Users\\me\\report.pdf', 'report.pdf'],
    ['"quoted" name.txt', 'quoted name.txt'],
    ['résumé 日本.txt', 'résumé 日本.txt'],
    ['C:\\Users\\me\\pa;ss|wd.txt', 'passwd.txt'],
  ])('%s → %s', (raw, expected) => {
    expect(sanitizeFilename(raw)).toBe(expected);
  });

  it('removes every shell metacharacter and NUL', () => {
    expect(sanitizeFilename('a;b|c&d$e`f<g>h"i\u0000j.txt')).toBe('abcdefghij.txt');
  });

  it('removes control and format characters, line and paragraph separators', () => {
    expect(sanitizeFilename('in\r\nvoice\t\u0007\u200b\u202e\u2028\u2029.pdf')).toBe('invoice.pdf');
  });

  it('trims surrounding whitespace after the directory part is dropped', () => {
    expect(sanitizeFilename('dir/   notes.txt  ')).toBe('notes.txt');
  });

  it('empty or dots-only results become "file"', () => {
    for (const raw of ['', '   ', '.', '..', '...', '../..', 'dir/', ';|&', '\u0000\u0001', ' .. ']) {
      expect(sanitizeFilename(raw)).toBe('file');
    }
  });

  it('names longer than 255 characters keep their extension', () => {
    const name = sanitizeFilename(`${'a'.repeat(300)}.pdf`);
    expect(name).toHaveLength(255);
    expect(name.endsWith('.pdf')).toBe(true);
    expect(name).toBe(`${'a'.repeat(251)}.pdf`);
  });

  it('counts characters, not UTF-16 units or bytes', () => {
    const name = sanitizeFilename(`${'😀'.repeat(300)}.txt`);
    expect(Array.from(name)).toHaveLength(255);
    expect(name.endsWith('😀.txt')).toBe(true);
  });

  it('a long name without an extension is cut to 255 characters', () => {
    expect(sanitizeFilename('x'.repeat(300))).toBe('x'.repeat(255));
  });

  it('a name of exactly 255 characters is unchanged', () => {
    const exact = `${'b'.repeat(251)}.txt`;
    expect(sanitizeFilename(exact)).toBe(exact);
  });
});

describe('contentDisposition', () => {
  it('printable ASCII → plain filename parameter', () => {
    expect(contentDisposition('doc.pdf')).toBe('attachment; filename="doc.pdf"');
    expect(contentDisposition('my report (v2).pdf')).toBe('attachment; filename="my report (v2).pdf"');
  });

  it('résumé.pdf → ASCII fallback plus RFC 5987 filename*', () => {
    expect(contentDisposition('résumé.pdf')).toBe(
      `attachment; filename="r_sum_.pdf"; filename*=UTF-8''r%C3%A9sum%C3%A9.pdf`,
    );
  });

  it('CJK and emoji: one "_" per character in the fallback', () => {
    expect(contentDisposition('日本 😀.txt')).toBe(
      `attachment; filename="__ _.txt"; filename*=UTF-8''%E6%97%A5%E6%9C%AC%20%F0%9F%98%80.txt`,
    );
  });

  it("encodes RFC 5987 non-attr-chars (' ( ) *) that encodeURIComponent leaves alone", () => {
    expect(encodeRfc5987("it's (1)*é")).toBe('it%27s%20%281%29%2A%C3%A9');
  });

  it('header injection: CR/LF never reach the header', () => {
    const header = contentDisposition('evil.txt\r\nSet-Cookie: a=b');
    expect(header).not.toMatch(/[\r\n]/);
    expect(header).toBe(
      `attachment; filename="evil.txt__Set-Cookie: a=b"; filename*=UTF-8''evil.txt%0D%0ASet-Cookie%3A%20a%3Db`,
    );
  });

  it('header injection: quotes and backslashes cannot close the parameter', () => {
    const header = contentDisposition('a"; filename="evil.exe\\');
    expect(header).toBe(
      `attachment; filename="a_; filename=_evil.exe_"; filename*=UTF-8''a%22%3B%20filename%3D%22evil.exe%5C`,
    );
    // Exactly the two quotes that delimit the fallback value.
    expect(header.match(/"/g)).toHaveLength(2);
  });

  it('every header value is Latin-1 safe (usable in a Node response header)', () => {
    for (const name of ['résumé.pdf', '日本.txt', 'a\u2028b', 'x\u{1f600}', 'lone\ud800.txt']) {
      const header = contentDisposition(name);
      expect(header).toMatch(/^[\x20-\x7e]*$/);
    }
  });

  it('a sanitized dots-only name downloads as "file"', () => {
    expect(contentDisposition(sanitizeFilename('...'))).toBe('attachment; filename="file"');
  });

  it('sanitized path-traversal names appear by base name only', () => {
    expect(contentDisposition(sanitizeFilename('C:\\Users\\me\\pa;ss|wd.txt'))).toBe(
      'attachment; filename="passwd.txt"',
    );
  });
});

describe('decodeRfc5987', () => {
  it('decodes UTF-8 and ISO-8859-1 extended values', () => {
    expect(decodeRfc5987("UTF-8''r%C3%A9sum%C3%A9.pdf")).toBe('résumé.pdf');
    expect(decodeRfc5987("utf-8'en'%E6%97%A5.txt")).toBe('日.txt');
    expect(decodeRfc5987("ISO-8859-1''caf%E9.txt")).toBe('café.txt');
  });

  it('rejects malformed values', () => {
    expect(decodeRfc5987('r%C3%A9sum%C3%A9.pdf')).toBeUndefined();
    expect(decodeRfc5987("UTF-8''%C3")).toBeUndefined();
    expect(decodeRfc5987("UTF-8''a b")).toBeUndefined();
    expect(decodeRfc5987("KOI8-R''abc")).toBeUndefined();
  });
});

describe('decodeMultipartFilename', () => {
  it('re-reads latin1-decoded raw UTF-8 bytes as UTF-8', () => {
    const asBusboyDefault = Buffer.from('résumé 日本.txt', 'utf8').toString('latin1');
    expect(decodeMultipartFilename(asBusboyDefault)).toBe('résumé 日本.txt');
  });

  it('leaves ASCII, already-decoded and genuine latin1 names alone', () => {
    expect(decodeMultipartFilename('report.pdf')).toBe('report.pdf');
    expect(decodeMultipartFilename('日本.txt')).toBe('日本.txt');
    expect(decodeMultipartFilename('café.txt')).toBe('café.txt');
  });

  it('decodes an RFC 5987 value', () => {
    expect(decodeMultipartFilename("UTF-8''r%C3%A9sum%C3%A9.pdf")).toBe('résumé.pdf');
  });
});
