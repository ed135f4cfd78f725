import { once } from 'node:events';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { crc32, createDeflateRaw, deflateRawSync } from 'node:zlib';
import { strToU8, type Zippable, zipSync } from 'fflate';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  DEFAULT_EXTRACT_LIMITS,
  type DocumentFormat,
  type ExtractLimits,
  extractDocument,
} from '../../src/domain/documents/extract.js';
import { PermanentProcessingError } from '../../src/domain/errors.js';

let directory: string;
let fileCount = 0;
let png: Buffer;
let jpeg: Buffer;

beforeAll(async () => {
  directory = await mkdtemp(join(tmpdir(), 'allocator-zip-'));
  png = await sharp({ create: { width: 8, height: 6, channels: 3, background: '#3366cc' } })
    .png()
    .toBuffer();
  jpeg = await sharp({ create: { width: 8, height: 6, channels: 3, background: '#cc6633' } })
    .jpeg()
    .toBuffer();
});

afterAll(async () => {
  await rm(directory, { recursive: true, force: true });
});

async function extract(bytes: Uint8Array, format: DocumentFormat, limits?: ExtractLimits) {
  const path = join(directory, `file-${fileCount++}.${format}`);
  await writeFile(path, bytes);
  return extractDocument(path, format, limits);
}

async function failure(bytes: Uint8Array, format: DocumentFormat, limits?: ExtractLimits): Promise<Error> {
  return extract(bytes, format, limits).then(
    () => {
      throw new Error('extraction was expected to fail');
    },
    (caught: Error) => caught,
  );
}

function zip(files: Record<string, string | Uint8Array>): Uint8Array {
  const entries: Zippable = {};
  for (const [name, content] of Object.entries(files)) {
    entries[name] = typeof content === 'string' ? strToU8(content) : content;
  }
  return zipSync(entries, { level: 6 });
}

const W = 'xmlns:w="http://schemas.openxmlformats.org/wordprocessingml/2006/main"';
const REL = 'http://schemas.openxmlformats.org/officeDocument/2006/relationships';

function wordParagraph(text: string, style?: string): string {
  const properties = style === undefined ? '' : `<w:pPr><w:pStyle w:val="${style}"/></w:pPr>`;
  return `<w:p>${properties}<w:r><w:t xml:space="preserve">${text}</w:t></w:r></w:p>`;
}

function docx(body: string, extra: Record<string, string | Uint8Array> = {}): Uint8Array {
  return zip({
    '[Content_Types].xml': '<?xml version="1.0"?><Types/>',
    '_rels/.rels': `<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships"><Relationship Id="rId1" Type="${REL}/officeDocument" Target="word/document.xml"/></Relationships>`,
    'word/document.xml': `<?xml version="1.0" encoding="UTF-8" standalone="yes"?><w:document ${W}><w:body>${body}</w:body></w:document>`,
    ...extra,
  });
}

describe('DOCX', () => {
  it('reads paragraphs, Heading N styles as headings, the core title and word/media pictures', async () => {
    const styles = `<w:styles ${W}>
      <w:style w:type="paragraph" w:styleId="Heading1"><w:name w:val="heading 1"/></w:style>
      <w:style w:type="paragraph" w:styleId="berschrift2"><w:name w:val="heading 2"/></w:style>
      <w:style w:type="paragraph" w:styleId="Title"><w:name w:val="Title"/></w:style>
      <w:style w:type="paragraph" w:styleId="Quote"><w:name w:val="Quote"/></w:style>
    </w:styles>`;
    const body = [
      wordParagraph('Project Plan', 'Title'),
      wordParagraph('Introduction', 'Heading1'),
      // a tab stop definition is not text; a tab run is
      '<w:p><w:pPr><w:tabs><w:tab w:val="left" w:pos="720"/></w:tabs></w:pPr><w:r><w:t>Goals</w:t><w:tab/><w:t>and &amp; scope</w:t></w:r></w:p>',
      wordParagraph('A quoted line', 'Quote'),
      '<w:p><w:r><w:t>Kept</w:t></w:r><w:del><w:r><w:delText>deleted</w:delText></w:r></w:del><w:r><w:t xml:space="preserve"> text</w:t><w:br/><w:t>next line</w:t></w:r></w:p>',
      wordParagraph('Details', 'berschrift2'),
      '<w:tbl><w:tr><w:tc>' +
        wordParagraph('Cell one') +
        '</w:tc><w:tc>' +
        wordParagraph('Cell two') +
        '</w:tc></w:tr></w:tbl>',
      wordParagraph('Appendix', 'Heading3'),
      wordParagraph('Last words.'),
      wordParagraph('   '),
    ].join('');
    const bytes = docx(body, {
      'word/styles.xml': styles,
      'docProps/core.xml':
        '<cp:coreProperties xmlns:cp="cp" xmlns:dc="http://purl.org/dc/elements/1.1/"><dc:title>Plan 2025</dc:title></cp:coreProperties>',
      'word/media/image1.png': png,
      'word/media/image2.emf': new Uint8Array([1, 0, 0, 0, 9, 9, 9, 9]),
      'word/media/image10.jpeg': jpeg,
    });
    const document = await extract(bytes, 'docx');
    expect(document.title).toBe('Plan 2025');
    expect(document.pageCount).toBeNull();
    expect(document.blocks).toEqual([
      { kind: 'text', text: 'Project Plan', page: null },
      { kind: 'heading', text: 'Introduction', page: null, level: 1 },
      {
        kind: 'text',
        text: 'Goals\tand & scope\n\nA quoted line\n\nKept text\nnext line',
        page: null,
      },
      { kind: 'heading', text: 'Details', page: null, level: 2 },
      { kind: 'text', text: 'Cell one\n\nCell two', page: null },
      // no styles.xml entry: the style id itself says Heading3
      { kind: 'heading', text: 'Appendix', page: null, level: 3 },
      { kind: 'text', text: 'Last words.', page: null },
    ]);
    expect(document.images.map((image) => [image.name, image.mime, image.ext, image.page])).toEqual([
      ['image1.png', 'image/png', '.png', null],
      ['image10.jpeg', 'image/jpeg', '.jpg', null],
    ]);
    expect(Buffer.compare(document.images[0]?.bytes ?? Buffer.alloc(0), png)).toBe(0);
    expect(Buffer.compare(document.images[1]?.bytes ?? Buffer.alloc(0), jpeg)).toBe(0);
  });

  it('takes the Title-styled paragraph as title when the core properties have none', async () => {
    const document = await extract(docx(wordParagraph('My Title', 'Title') + wordParagraph('Body')), 'docx');
    expect(document.title).toBe('My Title');
  });

  it('fails permanently without text, and for bytes that are not a zip', async () => {
    const empty = await failure(docx(wordParagraph('  ')), 'docx');
    expect(empty).toBeInstanceOf(PermanentProcessingError);
    expect(empty.message).toBe('Document has no extractable text');
    const notZip = await failure(Buffer.from('PK but not really a zip archive'), 'docx');
    expect(notZip).toBeInstanceOf(PermanentProcessingError);
    expect(notZip.message).toBe('Unreadable document archive: not a zip archive');
  });
});

interface RawEntry {
  name: string;
  /** deflated (raw) bytes */
  data: Buffer;
  crc: number;
  uncompressedSize: number;
}

/** Deflates `size` zero bytes in 1 MiB pieces, so the whole never sits in memory. */
async function deflatedZeros(size: number): Promise<{ data: Buffer; crc: number }> {
  const piece = Buffer.alloc(1024 * 1024);
  const deflate = createDeflateRaw({ level: 1 });
  const output: Buffer[] = [];
  deflate.on('data', (data: Buffer) => output.push(data));
  let crc = 0;
  for (let written = 0; written < size; written += piece.length) {
    const part = piece.subarray(0, Math.min(piece.length, size - written));
    crc = crc32(part, crc);
    if (!deflate.write(part)) await once(deflate, 'drain');
  }
  deflate.end();
  await once(deflate, 'end');
  return { data: Buffer.concat(output), crc };
}

/** A zip archive written by hand, so the sizes in its directory can be chosen freely. */
function rawZip(entries: readonly RawEntry[]): Buffer {
  const locals: Buffer[] = [];
  const centrals: Buffer[] = [];
  let offset = 0;
  for (const entry of entries) {
    const name = Buffer.from(entry.name);
    const local = Buffer.alloc(30);
    local.writeUInt32LE(0x04034b50, 0);
    local.writeUInt16LE(20, 4);
    local.writeUInt16LE(8, 8);
    local.writeUInt32LE(entry.crc >>> 0, 14);
    local.writeUInt32LE(entry.data.length, 18);
    local.writeUInt32LE(entry.uncompressedSize, 22);
    local.writeUInt16LE(name.length, 26);
    const central = Buffer.alloc(46);
    central.writeUInt32LE(0x02014b50, 0);
    central.writeUInt16LE(20, 4);
    central.writeUInt16LE(20, 6);
    central.writeUInt16LE(8, 10);
    central.writeUInt32LE(entry.crc >>> 0, 16);
    central.writeUInt32LE(entry.data.length, 20);
    central.writeUInt32LE(entry.uncompressedSize, 24);
    central.writeUInt16LE(name.length, 28);
    central.writeUInt32LE(offset, 42);
    locals.push(local, name, entry.data);
    centrals.push(central, name);
    offset += local.length + name.length + entry.data.length;
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

const CONTENT_TYPES_XML = Buffer.from('<Types/>');
const CONTENT_TYPES: RawEntry = {
  name: '[Content_Types].xml',
  data: deflateRawSync(CONTENT_TYPES_XML),
  crc: crc32(CONTENT_TYPES_XML),
  uncompressedSize: CONTENT_TYPES_XML.length,
};

describe('zip bombs (spec §7)', () => {
  it('rejects a DOCX whose document.xml expands to 300 MB before inflating it', async () => {
    const zeros = await deflatedZeros(300 * 1024 * 1024);
    expect(zeros.data.length).toBeLessThan(2 * 1024 * 1024);
    const bomb = rawZip([
      CONTENT_TYPES,
      { name: 'word/document.xml', data: zeros.data, crc: zeros.crc, uncompressedSize: 300 * 1024 * 1024 },
    ]);
    // The declared size alone decides: the message names it before any byte was inflated.
    const error = await failure(bomb, 'docx');
    expect(error).toBeInstanceOf(PermanentProcessingError);
    expect(error.message).toMatch(
      /^Document archive expands beyond the allowed size: 300 MB uncompressed \(limit 200 MB\)$/,
    );
  });

  it('rejects an entry compressed more than 100:1 even below the size limit', async () => {
    const size = 20 * 1024 * 1024;
    const zeros = await deflatedZeros(size);
    const bomb = rawZip([
      CONTENT_TYPES,
      { name: 'word/document.xml', data: zeros.data, crc: zeros.crc, uncompressedSize: size },
    ]);
    const error = await failure(bomb, 'docx');
    expect(error).toBeInstanceOf(PermanentProcessingError);
    expect(error.message).toMatch(
      /^Document archive expands beyond the allowed size: word\/document\.xml expands \d+:1 \(limit 100:1\)$/,
    );
  });

  it('stops inflating an entry that is larger than its directory declares', async () => {
    const zeros = await deflatedZeros(5 * 1024 * 1024);
    const liar = rawZip([
      CONTENT_TYPES,
      { name: 'word/document.xml', data: zeros.data, crc: zeros.crc, uncompressedSize: 1000 },
    ]);
    const error = await failure(liar, 'docx');
    expect(error).toBeInstanceOf(PermanentProcessingError);
    expect(error.message).toBe(
      'Document archive expands beyond the allowed size: word/document.xml is larger than declared',
    );
  });

  it('applies the limits it is given to EPUB too', async () => {
    const error = await failure(epub(), 'epub', { ...DEFAULT_EXTRACT_LIMITS, maxUncompressedBytes: 1000 });
    expect(error).toBeInstanceOf(PermanentProcessingError);
    expect(error.message).toMatch(
      /^Document archive expands beyond the allowed size: \d+ bytes uncompressed \(limit 1000 bytes\)$/,
    );
  });
});

describe('PPTX', () => {
  const slide = (paragraphs: string[]) =>
    `<p:sld xmlns:p="p" xmlns:a="a"><p:cSld><p:spTree>${paragraphs
      .map((text) => `<p:sp><p:txBody><a:p><a:r><a:t>${text}</a:t></a:r></a:p></p:txBody></p:sp>`)
      .join('')}</p:spTree></p:cSld></p:sld>`;
  const imageRel = (id: string, target: string) =>
    `<Relationship Id="${id}" Type="${REL}/image" Target="${target}"/>`;

  it('reads slide texts in presentation order with the slide number as page, and media with their slide', async () => {
    const bytes = zip({
      '_rels/.rels': `<Relationships><Relationship Id="rId1" Type="${REL}/officeDocument" Target="ppt/presentation.xml"/></Relationships>`,
      'ppt/presentation.xml':
        '<p:presentation xmlns:p="p" xmlns:r="r"><p:sldIdLst><p:sldId id="256" r:id="rId7"/><p:sldId id="257" r:id="rId3"/></p:sldIdLst></p:presentation>',
      'ppt/_rels/presentation.xml.rels': `<Relationships><Relationship Id="rId3" Type="${REL}/slide" Target="slides/slide1.xml"/><Relationship Id="rId7" Type="${REL}/slide" Target="slides/slide2.xml"/></Relationships>`,
      'ppt/slides/slide1.xml': slide(['Shown second', 'Closing &lt;remarks&gt;']),
      'ppt/slides/slide2.xml': slide(['Shown first', 'Agenda']),
      'ppt/slides/_rels/slide1.xml.rels': `<Relationships>${imageRel('rId2', '../media/image1.png')}</Relationships>`,
      'ppt/slides/_rels/slide2.xml.rels': `<Relationships>${imageRel('rId2', '../media/image2.jpeg')}</Relationships>`,
      'ppt/media/image1.png': png,
      'ppt/media/image2.jpeg': jpeg,
      'ppt/media/logo.png': png,
      'docProps/core.xml': '<cp:coreProperties xmlns:dc="dc"><dc:title>Deck</dc:title></cp:coreProperties>',
    });
    const document = await extract(bytes, 'pptx');
    expect(document.title).toBe('Deck');
    expect(document.pageCount).toBe(2);
    expect(document.blocks).toEqual([
      { kind: 'text', text: 'Shown first\nAgenda', page: 1 },
      { kind: 'text', text: 'Shown second\nClosing <remarks>', page: 2 },
    ]);
    expect(document.images.map((image) => [image.name, image.page])).toEqual([
      ['image1.png', 2],
      ['image2.jpeg', 1],
      // used only by a layout or master
      ['logo.png', null],
    ]);
    expect(Buffer.compare(document.images[1]?.bytes ?? Buffer.alloc(0), jpeg)).toBe(0);
  });
});

function epub(options: { encryptedChapter?: boolean } = {}): Uint8Array {
  const chapter = (body: string) =>
    `<?xml version="1.0" encoding="utf-8"?><html xmlns="http://www.w3.org/1999/xhtml"><head><title>ignored</title></head><body>${body}</body></html>`;
  const files: Record<string, string | Uint8Array> = {
    mimetype: 'application/epub+zip',
    'META-INF/container.xml':
      '<container version="1.0" xmlns="urn:oasis:names:tc:opendocument:xmlns:container"><rootfiles><rootfile full-path="OEBPS/content.opf" media-type="application/oebps-package+xml"/></rootfiles></container>',
    'OEBPS/content.opf': `<package xmlns="http://www.idpf.org/2007/opf" version="3.0"><metadata xmlns:dc="http://purl.org/dc/elements/1.1/"><dc:title>A Small Book</dc:title></metadata>
      <manifest>
        <item id="c2" href="text/chapter%202.xhtml" media-type="application/xhtml+xml"/>
        <item id="c1" href="text/chapter1.xhtml" media-type="application/xhtml+xml"/>
        <item id="cover" href="images/cover.jpg" media-type="image/jpeg"/>
        <item id="css" href="style.css" media-type="text/css"/>
      </manifest>
      <spine><itemref idref="c1"/><itemref idref="c2"/></spine></package>`,
    'OEBPS/text/chapter1.xhtml': chapter(
      '<h1>Chapter One</h1><p>It was a dark night.</p><img src="../images/cover.jpg"/>',
    ),
    'OEBPS/text/chapter 2.xhtml': chapter(
      '<h1>Chapter Two</h1><p>Morning came.</p><h2>Aftermath</h2><p>The end.</p>',
    ),
    'OEBPS/images/cover.jpg': jpeg,
    'OEBPS/style.css': 'p { margin: 0 }',
  };
  if (options.encryptedChapter) {
    files['META-INF/encryption.xml'] =
      '<encryption xmlns="urn:oasis:names:tc:opendocument:xmlns:container" xmlns:enc="http://www.w3.org/2001/04/xmlenc#"><enc:EncryptedData><enc:CipherData><enc:CipherReference URI="OEBPS/text/chapter1.xhtml"/></enc:CipherData></enc:EncryptedData></encryption>';
  }
  return zip(files);
}

describe('EPUB', () => {
  it('reads the spine documents in order, the package title and image items', async () => {
    const document = await extract(epub(), 'epub');
    expect(document.title).toBe('A Small Book');
    expect(document.pageCount).toBeNull();
    expect(document.blocks).toEqual([
      { kind: 'heading', text: 'Chapter One', page: null, level: 1 },
      { kind: 'text', text: 'It was a dark night.', page: null },
      { kind: 'heading', text: 'Chapter Two', page: null, level: 1 },
      { kind: 'text', text: 'Morning came.', page: null },
      { kind: 'heading', text: 'Aftermath', page: null, level: 2 },
      { kind: 'text', text: 'The end.', page: null },
    ]);
    expect(document.images).toHaveLength(1);
    expect(document.images[0]).toMatchObject({
      name: 'cover.jpg',
      mime: 'image/jpeg',
      ext: '.jpg',
      page: null,
    });
    expect(Buffer.compare(document.images[0]?.bytes ?? Buffer.alloc(0), jpeg)).toBe(0);
  });

  it('fails permanently when a spine document is encrypted', async () => {
    const error = await failure(epub({ encryptedChapter: true }), 'epub');
    expect(error).toBeInstanceOf(PermanentProcessingError);
    expect(error.message).toBe('Encrypted document');
  });
});
