import { crc32 } from 'node:zlib';
import { describe, expect, it } from 'vitest';
import {
  downloadContentType,
  mimeAllowed,
  parseAllowedMimeTypes,
  SNIFF_WINDOW_BYTES,
  sniffMime,
} from '../../src/domain/sniff.js';

function bytes(...parts: (string | number[] | Uint8Array)[]): Uint8Array {
  return Buffer.concat(
    parts.map((part) => (typeof part === 'string' ? Buffer.from(part, 'latin1') : Buffer.from(part))),
  );
}

/** A stored (uncompressed) zip, as a packager writes it: local headers then data, central directory. */
function zip(entries: [string, string][]): Uint8Array {
  const locals: Buffer[] = [];
  const centrals: Buffer[] = [];
  let offset = 0;
  for (const [name, content] of entries) {
    const nameBytes = Buffer.from(name, 'utf8');
    const data = Buffer.from(content, 'utf8');
    const crc = crc32(data);
    const local = Buffer.alloc(30);
    local.writeUInt32LE(0x04034b50, 0);
    local.writeUInt16LE(20, 4);
    local.writeUInt32LE(crc, 14);
    local.writeUInt32LE(data.length, 18);
    local.writeUInt32LE(data.length, 22);
    local.writeUInt16LE(nameBytes.length, 26);
    locals.push(local, nameBytes, data);
    const central = Buffer.alloc(46);
    central.writeUInt32LE(0x02014b50, 0);
    central.writeUInt16LE(20, 4);
    central.writeUInt16LE(20, 6);
    central.writeUInt32LE(crc, 16);
    central.writeUInt32LE(data.length, 20);
    central.writeUInt32LE(data.length, 24);
    central.writeUInt16LE(nameBytes.length, 28);
    central.writeUInt32LE(offset, 42);
    centrals.push(central, nameBytes);
    offset += 30 + nameBytes.length + data.length;
  }
  const directory = Buffer.concat(centrals);
  const end = Buffer.alloc(22);
  end.writeUInt32LE(0x06054b50, 0);
  end.writeUInt16LE(entries.length, 8);
  end.writeUInt16LE(entries.length, 10);
  end.writeUInt32LE(directory.length, 12);
  end.writeUInt32LE(offset, 16);
  return Buffer.concat([...locals, directory, end]);
}

const CONTENT_TYPES =
  '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>' +
  '<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">' +
  '<Default Extension="rels" ContentType="application/vnd.openxmlformats-package.relationships+xml"/>' +
  '<Default Extension="xml" ContentType="application/xml"/></Types>';
const RELS =
  '<?xml version="1.0" encoding="UTF-8"?><Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships"/>';

function bmpHeader(dibSize: number): Uint8Array {
  const header = Buffer.alloc(54);
  header.write('BM', 0, 'latin1');
  header.writeUInt32LE(54, 2);
  header.writeUInt32LE(54, 10);
  header.writeUInt32LE(dibSize, 14);
  return header;
}

function tar(): Uint8Array {
  const block = Buffer.alloc(512);
  block.write('notes.txt', 0, 'latin1');
  block.write('ustar\u000000', 257, 'latin1');
  return block;
}

describe('sniffMime binary signatures (spec §3.10, in order)', () => {
  const cases: [string, Uint8Array, string][] = [
    ['PNG', bytes([0x89], 'PNG\r\n\x1a\n', [0, 0, 0, 13], 'IHDR'), 'image/png'],
    ['JPEG', bytes([0xff, 0xd8, 0xff, 0xe0, 0, 16], 'JFIF\0'), 'image/jpeg'],
    ['GIF87a', bytes('GIF87a', [1, 0, 1, 0]), 'image/gif'],
    ['GIF89a', bytes('GIF89a', [1, 0, 1, 0]), 'image/gif'],
    ['WebP', bytes('RIFF', [0x24, 0, 0, 0], 'WEBPVP8 '), 'image/webp'],
    ['BMP (BITMAPINFOHEADER)', bmpHeader(40), 'image/bmp'],
    ['BMP (V5 header)', bmpHeader(124), 'image/bmp'],
    ['TIFF little-endian', bytes('II*\0', [8, 0, 0, 0]), 'image/tiff'],
    ['TIFF big-endian', bytes('MM\0*', [0, 0, 0, 8]), 'image/tiff'],
    ['ICO', bytes([0, 0, 1, 0, 1, 0, 16, 16]), 'image/vnd.microsoft.icon'],
    ['PDF', bytes('%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj\n'), 'application/pdf'],
    ['gzip', bytes([0x1f, 0x8b, 0x08, 0, 0, 0, 0, 0, 0, 3]), 'application/gzip'],
    ['bzip2', bytes('BZh91AY&SY'), 'application/x-bzip2'],
    ['xz', bytes([0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00, 0x00, 0x04]), 'application/x-xz'],
    ['7z', bytes([0x37, 0x7a, 0xbc, 0xaf, 0x27, 0x1c, 0x00, 0x04]), 'application/x-7z-compressed'],
    ['RAR', bytes('Rar!\x1a\x07\x01\x00'), 'application/vnd.rar'],
    ['tar (ustar at 257)', tar(), 'application/x-tar'],
    ['MP3 with ID3 tag', bytes('ID3', [4, 0, 0, 0, 0, 0, 0]), 'audio/mpeg'],
    ['MP3 frame sync FF FB', bytes([0xff, 0xfb, 0x90, 0x64, 0, 0]), 'audio/mpeg'],
    ['MP3 frame sync FF E3 (MPEG 2.5)', bytes([0xff, 0xe3, 0x18, 0xc4]), 'audio/mpeg'],
    ['FLAC', bytes('fLaC', [0, 0, 0, 0x22]), 'audio/flac'],
    ['Ogg', bytes('OggS', [0, 2, 0, 0]), 'audio/ogg'],
    ['WAV', bytes('RIFF', [0x24, 0x08, 0, 0], 'WAVEfmt '), 'audio/wav'],
    ['MP4', bytes([0, 0, 0, 0x20], 'ftypisom', [0, 0, 2, 0], 'isomiso2'), 'video/mp4'],
    ['QuickTime', bytes([0, 0, 0, 0x14], 'ftypqt  ', [0, 0, 0, 0], 'qt  '), 'video/quicktime'],
    ['WebM', bytes([0x1a, 0x45, 0xdf, 0xa3, 0x9f, 0x42, 0x86, 0x81]), 'video/webm'],
    ['ELF', bytes('\x7fELF', [2, 1, 1, 0]), 'application/octet-stream'],
  ];
  for (const [label, window, expected] of cases) {
    it(`${label} → ${expected}`, () => {
      expect(sniffMime(window, true)).toBe(expected);
    });
  }

  it('BM without a valid DIB header size is not a BMP', () => {
    expect(sniffMime(bmpHeader(41), false)).toBe('application/octet-stream');
    expect(sniffMime(bytes('BM is how this note starts'), true)).toBe('text/plain');
  });

  it('FF followed by a byte without the top three bits set is not MP3 frame sync', () => {
    expect(sniffMime(bytes([0xff, 0xc0, 0x00, 0x11]), true)).toBe('application/octet-stream');
  });

  it('a RIFF container of another kind is neither WebP nor WAV', () => {
    expect(sniffMime(bytes('RIFF', [0x24, 0, 0, 0], 'AVI LIST'), true)).toBe('application/octet-stream');
  });

  it('declared content is irrelevant: a PNG signature wins over text after it', () => {
    expect(sniffMime(bytes([0x89], 'PNG\r\n\x1a\n', 'hello world'), true)).toBe('image/png');
  });
});

describe('sniffMime zip and OOXML', () => {
  it('a minimal docx package → wordprocessingml', () => {
    const docx = zip([
      ['[Content_Types].xml', CONTENT_TYPES],
      ['_rels/.rels', RELS],
      ['word/document.xml', '<w:document xmlns:w="x"><w:body/></w:document>'],
    ]);
    expect(sniffMime(docx, true)).toBe(
      'application/vnd.openxmlformats-officedocument.wordprocessingml.document',
    );
  });

  it('xlsx and pptx packages → spreadsheetml / presentationml', () => {
    const xlsx = zip([
      ['[Content_Types].xml', CONTENT_TYPES],
      ['xl/workbook.xml', '<workbook/>'],
    ]);
    const pptx = zip([
      ['[Content_Types].xml', CONTENT_TYPES],
      ['ppt/presentation.xml', '<presentation/>'],
    ]);
    expect(sniffMime(xlsx, true)).toBe('application/vnd.openxmlformats-officedocument.spreadsheetml.sheet');
    expect(sniffMime(pptx, true)).toBe(
      'application/vnd.openxmlformats-officedocument.presentationml.presentation',
    );
  });

  it('the OOXML type is found within the 4,096-byte window of a larger file', () => {
    const docx = zip([
      ['[Content_Types].xml', CONTENT_TYPES],
      ['word/document.xml', 'x'.repeat(10_000)],
    ]);
    expect(sniffMime(docx.subarray(0, SNIFF_WINDOW_BYTES), false)).toBe(
      'application/vnd.openxmlformats-officedocument.wordprocessingml.document',
    );
  });

  it('a plain zip stays application/zip, even when it mentions word/ but does not start with [Content_Types].xml', () => {
    expect(sniffMime(zip([['notes.txt', 'hello']]), true)).toBe('application/zip');
    expect(
      sniffMime(
        zip([
          ['readme.txt', 'see word/'],
          ['[Content_Types].xml', CONTENT_TYPES],
        ]),
        true,
      ),
    ).toBe('application/zip');
  });

  it('[Content_Types].xml first but no Office part in the window → application/zip', () => {
    expect(sniffMime(zip([['[Content_Types].xml', CONTENT_TYPES]]), true)).toBe('application/zip');
  });
});

describe('sniffMime text rules', () => {
  const text = (s: string, whole = true) => sniffMime(Buffer.from(s, 'utf8'), whole);

  it('plain UTF-8 text → text/plain, including non-ASCII', () => {
    expect(text('hello world\n')).toBe('text/plain');
    expect(text('résumé 日本語 — ok\r\n\tindented\f')).toBe('text/plain');
  });

  it('a multi-byte sequence cut at the window end is still text', () => {
    const full = Buffer.from(`${'a'.repeat(4094)}日`, 'utf8'); // 日 is 3 bytes: E6 97 A5
    const window = full.subarray(0, SNIFF_WINDOW_BYTES);
    expect(window.at(-1)).toBe(0x97);
    expect(sniffMime(window, false)).toBe('text/plain');
  });

  it('invalid UTF-8 in the middle of the window → application/octet-stream', () => {
    expect(sniffMime(bytes('caf', [0xe9], ' au lait'), true)).toBe('application/octet-stream');
    expect(sniffMime(bytes('abc', [0xe6, 0x41], 'def'), false)).toBe('application/octet-stream');
  });

  it('a whole file that ends in the middle of a sequence is not valid UTF-8', () => {
    expect(sniffMime(bytes('abc', [0xe6, 0x97]), true)).toBe('application/octet-stream');
  });

  it('a NUL byte makes it binary', () => {
    expect(sniffMime(bytes('hello', [0], 'world'), true)).toBe('application/octet-stream');
  });

  it('control characters: under 1 % is text, 1 % or more is binary', () => {
    const under = `${'a'.repeat(199)}\u0001`; // 1 of 200 = 0.5 %
    const atOnePercent = `${'a'.repeat(99)}\u0001`; // 1 of 100 = 1 %
    expect(text(under)).toBe('text/plain');
    expect(text(atOnePercent)).toBe('application/octet-stream');
    expect(text(`${'a'.repeat(50)}\u001b[0m`)).toBe('application/octet-stream');
  });

  it('tab, LF, FF and CR do not count as control characters', () => {
    expect(text('\t\n\f\r'.repeat(100))).toBe('text/plain');
  });

  it('JSON object/array → application/json only when the window holds the whole file', () => {
    expect(text('{"a": [1, 2, {"b": null}]}')).toBe('application/json');
    expect(text('  [1, 2, 3]\n')).toBe('application/json');
    expect(text('{"a": 1}', false)).toBe('text/plain');
    expect(text('{"a": 1')).toBe('text/plain');
    expect(text('42')).toBe('text/plain');
    expect(text('"just a string"')).toBe('text/plain');
  });

  it('JSON with a UTF-8 BOM is still JSON', () => {
    expect(sniffMime(bytes([0xef, 0xbb, 0xbf], '{"ok":true}'), true)).toBe('application/json');
  });

  it('SVG: <svg at the start, or after an XML declaration, doctype and comments', () => {
    expect(text('  <svg xmlns="http://www.w3.org/2000/svg"/>')).toBe('image/svg+xml');
    expect(
      text(
        '<?xml version="1.0"?>\n<!-- drawn by hand -->\n' +
          '<!DOCTYPE svg PUBLIC "-//W3C//DTD SVG 1.1//EN" "http://www.w3.org/Graphics/SVG/1.1/DTD/svg11.dtd">\n' +
          '<svg width="1" height="1"></svg>',
      ),
    ).toBe('image/svg+xml');
    expect(sniffMime(bytes([0xef, 0xbb, 0xbf], '\n<svg>'), true)).toBe('image/svg+xml');
  });

  it('other XML → text/xml', () => {
    expect(text('<?xml version="1.0"?><note><to>me</to></note>')).toBe('text/xml');
    expect(text('<?xml version="1.0"?><svgish/>')).toBe('text/xml');
  });

  it('HTML → text/html, case-insensitively', () => {
    expect(text('<!DOCTYPE html><html><body>hi</body></html>')).toBe('text/html');
    expect(text('\n  <HTML lang="en"><head></head></HTML>')).toBe('text/html');
  });

  it('#! → text/x-shellscript', () => {
    expect(text('#!/bin/sh\necho hi\n')).toBe('text/x-shellscript');
  });

  it('binary garbage → application/octet-stream', () => {
    expect(sniffMime(Uint8Array.from([0xde, 0xad, 0xbe, 0xef, 0x00, 0x01]), true)).toBe(
      'application/octet-stream',
    );
  });

  it('looks at no more than the first 4,096 bytes', () => {
    const window = Buffer.concat([Buffer.alloc(SNIFF_WINDOW_BYTES, 0x61), Buffer.from([0, 0, 0, 0])]);
    expect(sniffMime(window, false)).toBe('text/plain');
  });
});

describe('mimeAllowed', () => {
  it('an empty list allows everything', () => {
    expect(mimeAllowed('application/x-tar', [])).toBe(true);
  });

  it('matches exact types and major/* wildcards, case-insensitively', () => {
    const allowed = ['image/*', 'Application/PDF'];
    expect(mimeAllowed('image/png', allowed)).toBe(true);
    expect(mimeAllowed('IMAGE/SVG+XML', allowed)).toBe(true);
    expect(mimeAllowed('application/pdf', allowed)).toBe(true);
    expect(mimeAllowed('text/plain', allowed)).toBe(false);
    expect(mimeAllowed('application/zip', allowed)).toBe(false);
  });

  it('a wildcard major type does not match a different major with the same prefix', () => {
    expect(mimeAllowed('imagery/png', ['image/*'])).toBe(false);
  });
});

describe('parseAllowedMimeTypes', () => {
  it('unset or blank → empty list', () => {
    expect(parseAllowedMimeTypes(undefined)).toEqual([]);
    expect(parseAllowedMimeTypes('   ')).toEqual([]);
  });

  it('JSON array', () => {
    expect(parseAllowedMimeTypes('["image/*","application/pdf"]')).toEqual(['image/*', 'application/pdf']);
  });

  it('comma list, trimmed and lower-cased, empties dropped', () => {
    expect(parseAllowedMimeTypes(' image/* , Application/PDF,,')).toEqual(['image/*', 'application/pdf']);
  });

  it('malformed JSON throws a message naming the variable', () => {
    expect(() => parseAllowedMimeTypes('["image/*",')).toThrow(/ALLOWED_MIME_TYPES.*JSON/);
    expect(() => parseAllowedMimeTypes('[1, 2]')).toThrow(/ALLOWED_MIME_TYPES/);
  });

  it('an entry that is not a MIME type throws', () => {
    expect(() => parseAllowedMimeTypes('image/png,pdf')).toThrow(/ALLOWED_MIME_TYPES.*"pdf"/);
  });
});

describe('downloadContentType', () => {
  it('appends charset=utf-8 for text/* only', () => {
    expect(downloadContentType('text/plain')).toBe('text/plain; charset=utf-8');
    expect(downloadContentType('text/html')).toBe('text/html; charset=utf-8');
    expect(downloadContentType('application/json')).toBe('application/json');
    expect(downloadContentType('image/svg+xml')).toBe('image/svg+xml');
  });
});
