import { readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { constants, deflateRawSync } from 'node:zlib';
import * as fflate from 'fflate';
import { zipSync } from 'fflate';
import { describe, expect, it } from 'vitest';
import { buildDocx, paragraphXml } from '../../../src/domain/docx/build.js';
import { openDocxPackage } from '../../../src/domain/docx/package.js';
import { replacePlaceholders } from '../../../src/domain/docx/replace.js';
import { scanDocument } from '../../../src/domain/docx/scan.js';
import { DocopsInputError } from '../../../src/domain/types.js';
import { DEFAULT_LIMITS, openBuilt, openBytes, rawZip, tempDir, tempFile } from './fixtures/helpers.js';

const MiB = 1024 * 1024;

async function rejection(promise: Promise<unknown>): Promise<DocopsInputError> {
  try {
    await promise;
  } catch (error) {
    expect(error).toBeInstanceOf(DocopsInputError);
    const inputError = error as DocopsInputError;
    // never a server path in what a client sees
    expect(`${inputError.message} ${JSON.stringify(inputError.detail)}`).not.toContain(tmpdir());
    return inputError;
  }
  throw new Error('expected a DocopsInputError');
}

function syncThrow(fn: () => unknown): DocopsInputError {
  try {
    fn();
  } catch (error) {
    expect(error).toBeInstanceOf(DocopsInputError);
    return error as DocopsInputError;
  }
  throw new Error('expected a DocopsInputError');
}

/** A raw deflate stream inflating to `mib` MiB of zeros, about 1 KiB per MiB, made without inflating anything. */
function zeroBomb(mib: number): Uint8Array {
  const chunk = deflateRawSync(Buffer.alloc(MiB), { level: 9, finishFlush: constants.Z_SYNC_FLUSH });
  return Buffer.concat([...Array.from({ length: mib }, () => chunk), Buffer.from([0x03, 0x00])]);
}

/** The parts of a valid package, to be stored beside hostile entries. */
function docxParts(): { name: string; raw: Uint8Array }[] {
  return Object.entries(fflate.unzipSync(buildDocx({ paragraphs: ['x'] }))).map(([name, raw]) => ({
    name,
    raw,
  }));
}

describe('openDocxPackage: not a template', () => {
  it('refuses bytes that are not a zip', async () => {
    for (const bytes of [Buffer.from('not-a-docx'), Buffer.alloc(0), Buffer.from('PK')]) {
      const error = await rejection(openBytes(bytes));
      expect([error.status, error.errorCode, error.detail]).toEqual([
        415,
        'INVALID_MEDIA_TYPE',
        { field: 'template', reason: 'not_a_zip' },
      ]);
    }
  });

  it('refuses an unreadable zip', async () => {
    const error = await rejection(
      openBytes(Buffer.concat([Buffer.from('PK\x03\x04'), Buffer.alloc(200, 7)])),
    );
    expect([error.status, error.detail]).toEqual([415, { field: 'template', reason: 'corrupt_zip' }]);
  });

  it.each(['../evil.xml', 'word/../../evil.xml', '/etc/passwd', 'C:/evil.xml', 'word\\document.xml'])(
    'refuses the entry name %s',
    async (name) => {
      const zip = rawZip([...docxParts(), { name, raw: Buffer.from('x') }]);
      const error = await rejection(openBytes(zip));
      expect([error.status, error.errorCode, error.detail]).toEqual([
        415,
        'INVALID_MEDIA_TYPE',
        { field: 'template', reason: 'corrupt_zip' },
      ]);
    },
  );

  it('refuses entries whose CRC or size does not match their data', async () => {
    const parts = docxParts();
    const badCrc = rawZip(parts.map((p) => (p.name === 'word/styles.xml' ? { ...p, crc: 1234 } : p)));
    expect((await rejection(openBytes(badCrc))).detail).toEqual({ field: 'template', reason: 'corrupt_zip' });
    const deflated = deflateRawSync(Buffer.from('hello world'));
    const badSize = rawZip([...parts, { name: 'word/x.bin', raw: deflated, method: 8, size: 20 }]);
    expect((await rejection(openBytes(badSize))).detail).toEqual({
      field: 'template',
      reason: 'corrupt_zip',
    });
  });

  it('refuses zips without a Word main document part', async () => {
    const plain = zipSync({ 'a.txt': Buffer.from('hello') });
    const noTarget = zipSync({
      '_rels/.rels': Buffer.from(
        '<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships"><Relationship Id="r1" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/officeDocument" Target="word/missing.xml"/></Relationships>',
      ),
    });
    const spreadsheet = zipSync({
      '_rels/.rels': Buffer.from(
        '<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships"><Relationship Id="r1" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/officeDocument" Target="xl/workbook.xml"/></Relationships>',
      ),
      'xl/workbook.xml': Buffer.from(
        '<workbook xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main"/>',
      ),
    });
    for (const zip of [plain, noTarget, spreadsheet]) {
      const error = await rejection(openBytes(zip));
      expect([error.status, error.errorCode, error.detail]).toEqual([
        415,
        'INVALID_MEDIA_TYPE',
        { field: 'template', reason: 'not_a_word_document' },
      ]);
    }
  });

  it('finds the main part through _rels/.rels wherever it lives', async () => {
    const built = fflate.unzipSync(buildDocx({ paragraphs: ['moved'] }));
    const files: Record<string, Uint8Array> = {};
    for (const [name, data] of Object.entries(built)) {
      if (name === 'word/document.xml') files['word/main.xml'] = data;
      else if (name === '_rels/.rels')
        files[name] = Buffer.from(
          Buffer.from(data).toString().replace('word/document.xml', '/word/main.xml'),
        );
      else if (name === 'word/_rels/document.xml.rels') files['word/_rels/main.xml.rels'] = data;
      else files[name] = data;
    }
    const pkg = await openBytes(zipSync(files));
    expect(pkg.mainPartName).toBe('word/main.xml');
    expect(scanDocument(pkg).paragraphs.map((p) => p.text)).toEqual(['moved']);
  });
});

describe('openDocxPackage: size limits (§7, P5)', () => {
  it('refuses more than 10,000 entries', async () => {
    const entries = Array.from({ length: 10_001 }, (_, i) => ({ name: `f/${i}.txt`, raw: Buffer.from('x') }));
    const error = await rejection(openBytes(rawZip([...docxParts(), ...entries])));
    expect([error.status, error.errorCode, error.detail]).toEqual([
      413,
      'TEMPLATE_TOO_LARGE',
      { field: 'template', max_uncompressed_bytes: DEFAULT_LIMITS.maxUncompressedBytes, part: null },
    ]);
  });

  it('honours a lower entry limit', async () => {
    const error = await rejection(
      openDocxPackage(tempFile(buildDocx({})), { maxUncompressedBytes: MiB, maxEntries: 3 }),
    );
    expect(error.detail.part).toBeNull();
  });

  it('refuses a zip bomb by its declared size at once', async () => {
    const bomb = zeroBomb(4096); // ~4 MB inflating to 4 GiB
    const zip = rawZip([
      { name: 'word/media/bomb.bin', raw: bomb, method: 8, size: 4_000_000_000 },
      ...docxParts(),
    ]);
    const started = performance.now();
    const error = await rejection(openBytes(zip));
    expect(performance.now() - started).toBeLessThan(1000);
    expect([error.status, error.errorCode, error.detail]).toEqual([
      413,
      'TEMPLATE_TOO_LARGE',
      {
        field: 'template',
        max_uncompressed_bytes: DEFAULT_LIMITS.maxUncompressedBytes,
        part: 'word/media/bomb.bin',
      },
    ]);
  });

  it('stops inflating a zip bomb whose declared size lies as soon as it passes that size', async () => {
    const bomb = zeroBomb(4096);
    expect(bomb.length).toBeLessThan(5 * MiB);
    const zip = rawZip([...docxParts(), { name: 'word/media/bomb.bin', raw: bomb, method: 8, size: 1000 }]);
    const rssBefore = process.memoryUsage().rss;
    const started = performance.now();
    const error = await rejection(openBytes(zip));
    expect(performance.now() - started).toBeLessThan(1000);
    // inflation stopped near the 100 MiB cap, far from 4 GiB
    expect(process.memoryUsage().rss - rssBefore).toBeLessThan(400 * MiB);
    expect([error.status, error.detail]).toEqual([
      413,
      {
        field: 'template',
        max_uncompressed_bytes: DEFAULT_LIMITS.maxUncompressedBytes,
        part: 'word/media/bomb.bin',
      },
    ]);
  });

  it('counts the cap over all entries', async () => {
    const parts = Array.from({ length: 3 }, (_, i) => ({
      name: `word/media/${i}.bin`,
      raw: zeroBomb(1),
      method: 8 as const,
      size: MiB,
    }));
    const error = await rejection(
      openDocxPackage(tempFile(rawZip([...docxParts(), ...parts])), { maxUncompressedBytes: 2.5 * MiB }),
    );
    expect(error.detail).toEqual({
      field: 'template',
      max_uncompressed_bytes: 2.5 * MiB,
      part: 'word/media/2.bin',
    });
  });

  it('refuses an entry over 1 MiB compressed more than 1000:1, declared or found while inflating', async () => {
    const bomb = zeroBomb(50); // ratio ≈ 1030:1, under the 100 MiB cap
    for (const size of [50 * MiB, 1000]) {
      const zip = rawZip([...docxParts(), { name: 'word/media/dense.bin', raw: bomb, method: 8, size }]);
      const error = await rejection(openBytes(zip));
      expect([error.status, error.detail.part]).toEqual([413, 'word/media/dense.bin']);
    }
  });

  it('refuses an entry that inflates to more than it declares, also under the cap', async () => {
    const zip = rawZip([
      ...docxParts(),
      { name: 'word/media/liar.bin', raw: zeroBomb(1), method: 8, size: 1000 },
    ]);
    const error = await rejection(openBytes(zip));
    expect([error.status, error.errorCode, error.detail.part]).toEqual([
      413,
      'TEMPLATE_TOO_LARGE',
      'word/media/liar.bin',
    ]);
  });

  it('accepts a template within the limits', async () => {
    const pkg = await openDocxPackage(tempFile(buildDocx({ paragraphs: ['a'] })), {
      maxUncompressedBytes: 64 * 1024,
    });
    expect(pkg.mainPartName).toBe('word/document.xml');
  });
});

describe('XML guards (§3.8.6 row 20)', () => {
  const withDocument = (xml: string) => buildDocx({ extraParts: { 'word/document.xml': xml } });
  const W = 'xmlns:w="http://schemas.openxmlformats.org/wordprocessingml/2006/main"';

  it('refuses a DOCTYPE and entity declarations', async () => {
    const xml = `<?xml version="1.0"?><!DOCTYPE w:document [<!ENTITY x "${'a'.repeat(10)}">]><w:document ${W}><w:body><w:p><w:r><w:t>&x;</w:t></w:r></w:p></w:body></w:document>`;
    const error = await rejection(openBytes(withDocument(xml)));
    expect([error.status, error.errorCode]).toEqual([400, 'INVALID_TEMPLATE']);
    expect(error.detail).toEqual({
      field: 'template',
      part: 'word/document.xml',
      error: 'DOCTYPE declarations are not allowed',
    });
  });

  it('refuses nesting deeper than 256 and accepts 250', async () => {
    const nested = (depth: number): string =>
      `<w:document ${W}><w:body>${'<w:customXml>'.repeat(depth)}${'</w:customXml>'.repeat(depth)}</w:body></w:document>`;
    const error = await rejection(openBytes(withDocument(nested(300))));
    expect([error.status, error.detail.part, error.detail.error]).toEqual([
      400,
      'word/document.xml',
      'XML nests deeper than 256 elements',
    ]);
    await expect(openBytes(withDocument(nested(250)))).resolves.toBeDefined();
  });

  it('refuses malformed XML with a short message', async () => {
    for (const xml of [
      `<w:document ${W}><w:body><w:p></w:body></w:document>`,
      `<w:document ${W}><w:body>`,
      '\xff\xfe\x00',
    ]) {
      const error = await rejection(openBytes(withDocument(xml)));
      expect([error.status, error.errorCode, error.detail.part]).toEqual([
        400,
        'INVALID_TEMPLATE',
        'word/document.xml',
      ]);
      expect(String(error.detail.error).length).toBeLessThan(260);
      expect(String(error.detail.error)).not.toMatch(/\n|at .*\(/);
    }
  });

  it('refuses a malformed header when it is scanned', async () => {
    const pkg = await openBuilt({ paragraphs: ['x'], headers: { header1: '<w:p><w:r>' } });
    const error = syncThrow(() => scanDocument(pkg));
    expect([error.status, error.detail.part]).toEqual([400, 'word/header1.xml']);
  });
});

describe('writeTo', () => {
  const image = Buffer.from(Array.from({ length: 50_000 }, (_, i) => (i * 7919) % 251));
  const body =
    '<w:p w14:paraId="1A2B3C4D" w14:textId="77777777" w:rsidR="00AB12CD">' +
    '<w:bookmarkStart w:id="0" w:name="_GoBack"/>' +
    '<w:r><w:t xml:space="preserve">Title: 【MEETING_TITLE】</w:t></w:r><w:bookmarkEnd w:id="0"/>' +
    '<mc:AlternateContent><mc:Choice Requires="w14"><w:r><w:t>choice</w:t></w:r></mc:Choice>' +
    '<mc:Fallback><w:r><w:t>fallback</w:t></w:r></mc:Fallback></mc:AlternateContent></w:p>';

  it('keeps unchanged parts byte for byte and unknown markup in changed parts', async () => {
    const source = buildDocx({
      body,
      extraParts: { 'word/media/image1.png': image, 'customXml/item1.xml': '<a b="1"/>' },
    });
    const pkg = await openBytes(source);
    const original = new Map(pkg.partNames().map((name) => [name, pkg.readPart(name)]));
    const scan = scanDocument(pkg);
    replacePlaceholders(pkg, scan, new Map([['MEETING_TITLE', 'Kickoff']]));
    expect(pkg.changedParts()).toEqual(['word/document.xml']);
    const out = join(tempDir(), 'out.docx');
    await pkg.writeTo(out);

    const reopened = await openDocxPackage(out, DEFAULT_LIMITS);
    expect(reopened.partNames()).toEqual(pkg.partNames());
    for (const [name, bytes] of original) {
      if (name === 'word/document.xml') continue;
      expect(Buffer.from(reopened.readPart(name) ?? []).equals(Buffer.from(bytes ?? [0]))).toBe(true);
    }
    expect(Buffer.from(reopened.readPart('word/media/image1.png') ?? []).equals(image)).toBe(true);
    const xml = Buffer.from(reopened.readPart('word/document.xml') ?? []).toString('utf8');
    expect(xml.startsWith('<?xml version="1.0" encoding="UTF-8" standalone="yes"?>')).toBe(true);
    for (const kept of [
      'w14:paraId="1A2B3C4D"',
      'w14:textId="77777777"',
      'w:rsidR="00AB12CD"',
      '<w:bookmarkStart w:id="0" w:name="_GoBack"/>',
      '<w:bookmarkEnd w:id="0"/>',
      'mc:Ignorable="w14 w15"',
      'xmlns:w14="http://schemas.microsoft.com/office/word/2010/wordml"',
      '<mc:AlternateContent><mc:Choice Requires="w14"><w:r><w:t>choice</w:t></w:r></mc:Choice>',
      '<mc:Fallback><w:r><w:t>fallback</w:t></w:r></mc:Fallback>',
    ]) {
      expect(xml).toContain(kept);
    }
    expect(scanDocument(reopened).paragraphs[0]?.text).toBe('Title: Kickoff');
  });

  it('writes an untouched package with identical parts and order', async () => {
    const source = buildDocx({ paragraphs: ['a', 'b'], headers: { header1: paragraphXml('h') } });
    const pkg = await openBytes(source);
    const out = join(tempDir(), 'same.docx');
    await pkg.writeTo(out);
    const before = fflate.unzipSync(source);
    const after = fflate.unzipSync(readFileSync(out));
    expect(Object.keys(after)).toEqual(Object.keys(before));
    for (const [name, data] of Object.entries(before))
      expect(Buffer.from(after[name] ?? []).equals(Buffer.from(data))).toBe(true);
  });

  it('serialises a changed part that was only marked changed, keeping its content', async () => {
    const pkg = await openBuilt({ paragraphs: ['keep 【X】'] });
    pkg.xml('word/styles.xml');
    pkg.markChanged('word/styles.xml');
    const bytes = pkg.readPart('word/styles.xml');
    expect(Buffer.from(bytes ?? []).toString()).toContain('w:styleId="Normal"');
    expect(() => pkg.markChanged('word/nothing.xml')).toThrow();
  });
});
