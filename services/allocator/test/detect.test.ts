import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { zipSync } from 'fflate';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  DETECTION_HEAD_BYTES,
  type DetectedType,
  detectFileType,
  sizeClass,
  storedExtension,
} from '../src/domain/detect.js';

const run = promisify(execFile);

const image = (mime: string, ext: string): DetectedType => ({
  kind: 'media',
  mediaType: 'image',
  documentFormat: null,
  mime,
  ext,
});
const video = (mime: string, ext: string): DetectedType => ({
  kind: 'media',
  mediaType: 'video',
  documentFormat: null,
  mime,
  ext,
});
const audio = (mime: string, ext: string): DetectedType => ({
  kind: 'media',
  mediaType: 'audio',
  documentFormat: null,
  mime,
  ext,
});
const doc = (documentFormat: DetectedType['documentFormat'], mime: string, ext: string): DetectedType => ({
  kind: 'document',
  mediaType: null,
  documentFormat,
  mime,
  ext,
});
const JSON_TYPE: DetectedType = {
  kind: 'json',
  mediaType: null,
  documentFormat: null,
  mime: 'application/json',
  ext: '.json',
};
const PNG = image('image/png', '.png');
const DOCX = doc('docx', 'application/vnd.openxmlformats-officedocument.wordprocessingml.document', '.docx');
const PPTX = doc(
  'pptx',
  'application/vnd.openxmlformats-officedocument.presentationml.presentation',
  '.pptx',
);
const EPUB = doc('epub', 'application/epub+zip', '.epub');
const TXT = doc('txt', 'text/plain', '.txt');
const MD = doc('md', 'text/markdown', '.md');
const HTML = doc('html', 'text/html', '.html');
const SVG = image('image/svg+xml', '.svg');

const OLE_MAGIC = Buffer.concat([
  Buffer.from([0xd0, 0xcf, 0x11, 0xe0, 0xa1, 0xb1, 0x1a, 0xe1]),
  Buffer.alloc(1016),
]);

/** Deterministic noise (xorshift), so the "random bytes" never happen to match a magic number between runs. */
function noise(length: number, seed = 0x9e3779b9): Buffer {
  const bytes = Buffer.alloc(length);
  let state = seed;
  for (let index = 0; index < length; index++) {
    state ^= state << 13;
    state ^= state >>> 17;
    state ^= state << 5;
    bytes[index] = state & 0xff;
  }
  return bytes;
}

/** A 2×2 24-bit BMP (sharp cannot write BMP). */
function bmp(): Buffer {
  const rowBytes = 8; // 2 pixels × 3 bytes, padded to 4
  const pixels = Buffer.alloc(rowBytes * 2, 0x80);
  const header = Buffer.alloc(54);
  header.write('BM', 0, 'ascii');
  header.writeUInt32LE(54 + pixels.length, 2);
  header.writeUInt32LE(54, 10);
  header.writeUInt32LE(40, 14);
  header.writeInt32LE(2, 18);
  header.writeInt32LE(2, 22);
  header.writeUInt16LE(1, 26);
  header.writeUInt16LE(24, 28);
  header.writeUInt32LE(pixels.length, 34);
  return Buffer.concat([header, pixels]);
}

const text = (value: string) => new TextEncoder().encode(value);

function openXml(mainContentType: string, partPath: string, extra: Record<string, Uint8Array> = {}): Buffer {
  const contentTypes =
    '<?xml version="1.0" encoding="UTF-8"?><Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">' +
    `<Override PartName="/${partPath}" ContentType="${mainContentType}"/></Types>`;
  return Buffer.from(
    zipSync({
      '[Content_Types].xml': text(contentTypes),
      '_rels/.rels': text('<?xml version="1.0"?><Relationships/>'),
      [partPath]: text('<?xml version="1.0"?><document>Hello</document>'),
      ...extra,
    }),
  );
}

const docxBytes = (extra: Record<string, Uint8Array> = {}) =>
  openXml(
    'application/vnd.openxmlformats-officedocument.wordprocessingml.document.main+xml',
    'word/document.xml',
    extra,
  );

const pptxBytes = () =>
  openXml(
    'application/vnd.openxmlformats-officedocument.presentationml.presentation.main+xml',
    'ppt/presentation.xml',
  );

function epubBytes(): Buffer {
  return Buffer.from(
    zipSync({
      mimetype: [text('application/epub+zip'), { level: 0 }],
      'META-INF/container.xml': text('<?xml version="1.0"?><container/>'),
      'OEBPS/chapter.xhtml': text('<html><body><p>Chapter</p></body></html>'),
    }),
  );
}

let dir: string;
const samples = new Map<string, Buffer>();

const FFMPEG_VIDEO = ['-f', 'lavfi', '-i', 'testsrc=size=16x16:rate=25:duration=0.2'];
const FFMPEG_AUDIO = ['-f', 'lavfi', '-i', 'sine=frequency=440:duration=0.2'];
const MEDIA_SAMPLES: Record<string, string[]> = {
  'clip.mp4': [...FFMPEG_VIDEO, '-c:v', 'libx264', '-pix_fmt', 'yuv420p'],
  'clip.mov': [...FFMPEG_VIDEO, '-c:v', 'libx264', '-pix_fmt', 'yuv420p'],
  'clip.webm': [...FFMPEG_VIDEO, '-c:v', 'libvpx', '-b:v', '50k'],
  'clip.mkv': [...FFMPEG_VIDEO, '-c:v', 'mpeg4'],
  'clip.avi': [...FFMPEG_VIDEO, '-c:v', 'mpeg4'],
  'clip.mpg': [...FFMPEG_VIDEO, '-c:v', 'mpeg1video', '-f', 'mpeg'],
  'tone.mp3': [...FFMPEG_AUDIO, '-c:a', 'libmp3lame'],
  'tone.wav': [...FFMPEG_AUDIO],
  'tone.ogg': [...FFMPEG_AUDIO, '-c:a', 'libvorbis'],
  'tone.flac': [...FFMPEG_AUDIO],
  'tone.aac': [...FFMPEG_AUDIO, '-c:a', 'aac', '-f', 'adts'],
  'tone.m4a': [...FFMPEG_AUDIO, '-c:a', 'aac'],
  'voice.webm': [...FFMPEG_AUDIO, '-c:a', 'libopus'],
  'tone-isom.mp4': [...FFMPEG_AUDIO, '-c:a', 'aac', '-f', 'mp4'],
};

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'allocator-detect-'));
  const green = sharp({ create: { width: 8, height: 8, channels: 3, background: { r: 0, g: 200, b: 0 } } });
  const [png, jpeg, gif, webp, tiff, avif] = await Promise.all([
    green.clone().png().toBuffer(),
    green.clone().jpeg().toBuffer(),
    green.clone().gif().toBuffer(),
    green.clone().webp().toBuffer(),
    green.clone().tiff().toBuffer(),
    green.clone().avif().toBuffer(),
  ]);
  for (const [name, bytes] of Object.entries({ png, jpeg, gif, webp, tiff, avif })) samples.set(name, bytes);
  await Promise.all(
    Object.entries(MEDIA_SAMPLES).map(async ([name, args]) => {
      const path = join(dir, name);
      await run('ffmpeg', ['-hide_banner', '-loglevel', 'error', '-y', ...args, path]);
      samples.set(name, await readFile(path));
    }),
  );
});

afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

const sample = (name: string): Buffer => {
  const bytes = samples.get(name);
  if (!bytes) throw new Error(`sample ${name} missing`);
  return bytes;
};

describe('detectFileType: magic bytes', () => {
  it.each([
    ['png', PNG],
    ['jpeg', image('image/jpeg', '.jpg')],
    ['gif', image('image/gif', '.gif')],
    ['webp', image('image/webp', '.webp')],
    ['tiff', image('image/tiff', '.tif')],
    ['avif', image('image/avif', '.avif')],
  ])('recognises a sharp-made %s without any name or declared type', async (name, expected) => {
    expect(await detectFileType(sample(name), undefined, undefined)).toEqual(expected);
  });

  it('recognises a BMP', async () => {
    expect(await detectFileType(bmp(), 'application/octet-stream', 'upload')).toEqual(
      image('image/bmp', '.bmp'),
    );
  });

  it('accepts HEIC only when the installed image library decodes it', async () => {
    const heicHeader = Buffer.concat([
      Buffer.from([0, 0, 0, 0x18]),
      Buffer.from('ftypheic\0\0\0\0mif1heic', 'latin1'),
      Buffer.alloc(64),
    ]);
    const decodable = sharp.format.heif?.input.fileSuffix?.includes('.heic') ?? false;
    expect(await detectFileType(heicHeader, 'image/heic', 'photo.heic')).toEqual(
      decodable ? image('image/heic', '.heic') : null,
    );
  });

  it('trusts magic bytes over a lying extension and declared type: a PNG named .jpg is a PNG', async () => {
    expect(await detectFileType(sample('png'), 'image/jpeg', 'photo.jpg')).toEqual(PNG);
    expect(await detectFileType(sample('png'), 'text/plain', 'notes.txt')).toEqual(PNG);
  });

  it.each([
    ['clip.mp4', video('video/mp4', '.mp4')],
    ['clip.mov', video('video/quicktime', '.mov')],
    ['clip.webm', video('video/webm', '.webm')],
    ['clip.mkv', video('video/x-matroska', '.mkv')],
    ['clip.avi', video('video/x-msvideo', '.avi')],
    ['clip.mpg', video('video/mpeg', '.mpg')],
    ['tone.mp3', audio('audio/mpeg', '.mp3')],
    ['tone.wav', audio('audio/wav', '.wav')],
    ['tone.ogg', audio('audio/ogg', '.ogg')],
    ['tone.flac', audio('audio/flac', '.flac')],
    ['tone.aac', audio('audio/aac', '.aac')],
    ['tone.m4a', audio('audio/mp4', '.m4a')],
  ])('recognises an ffmpeg-made %s from its first bytes', async (name, expected) => {
    const head = sample(name).subarray(0, DETECTION_HEAD_BYTES);
    expect(await detectFileType(head, 'application/octet-stream', 'upload.bin')).toEqual(expected);
  });

  it('treats WebM as audio only when the declared type or extension says audio', async () => {
    const voice = sample('voice.webm');
    expect(await detectFileType(voice, 'audio/webm', 'voice.webm')).toEqual(audio('audio/webm', '.webm'));
    expect(await detectFileType(voice, undefined, 'voice.weba')).toEqual(audio('audio/webm', '.webm'));
    expect(await detectFileType(voice, 'video/webm', 'voice.webm')).toEqual(video('video/webm', '.webm'));
  });

  it('treats an mp4-branded audio file as m4a when the declared type or extension says audio', async () => {
    const isom = sample('tone-isom.mp4');
    expect(await detectFileType(isom, 'audio/mp4', 'tone.mp4')).toEqual(audio('audio/mp4', '.m4a'));
    expect(await detectFileType(isom, undefined, 'tone.m4a')).toEqual(audio('audio/mp4', '.m4a'));
    expect(await detectFileType(isom, 'video/mp4', 'tone.mp4')).toEqual(video('video/mp4', '.mp4'));
  });

  it('recognises a PDF by its header whatever the name says', async () => {
    const pdf = Buffer.from('%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj\n<< /Type /Catalog >>\nendobj\n', 'latin1');
    expect(await detectFileType(pdf, 'application/octet-stream', 'scan.txt')).toEqual(
      doc('pdf', 'application/pdf', '.pdf'),
    );
  });

  it('recognises DOCX, PPTX and EPUB zips by their content, not their names', async () => {
    expect(await detectFileType(docxBytes(), 'application/zip', 'a.zip')).toEqual(DOCX);
    expect(await detectFileType(pptxBytes(), undefined, 'slides')).toEqual(PPTX);
    expect(await detectFileType(epubBytes(), undefined, 'book.docx')).toEqual(EPUB);
  });

  it('recognises a large DOCX from its first 4100 bytes only', async () => {
    const bulky = docxBytes({ 'word/media/image1.bin': noise(20_000) });
    expect(bulky.length).toBeGreaterThan(20_000);
    expect(await detectFileType(bulky.subarray(0, DETECTION_HEAD_BYTES), undefined, 'report.docx')).toEqual(
      DOCX,
    );
  });

  it('rejects a plain zip, even when named like a document', async () => {
    const zip = Buffer.from(zipSync({ 'hello.txt': text('hello') }));
    expect(await detectFileType(zip, 'application/zip', 'archive.zip')).toBeNull();
    expect(
      await detectFileType(
        zip,
        'application/vnd.openxmlformats-officedocument.wordprocessingml.document',
        'report.docx',
      ),
    ).toBeNull();
  });

  it('rejects legacy OLE .doc/.ppt files', async () => {
    expect(await detectFileType(OLE_MAGIC, 'application/msword', 'letter.doc')).toBeNull();
    expect(await detectFileType(OLE_MAGIC, 'application/vnd.ms-powerpoint', 'deck.ppt')).toBeNull();
  });

  it('rejects random bytes, also when declared as text or named like text', async () => {
    const blob = noise(4096);
    expect(await detectFileType(blob, 'application/octet-stream', 'blob.bin')).toBeNull();
    expect(await detectFileType(blob, undefined, 'x.bin')).toBeNull();
    // multipart parsers report text/plain for parts sent without a content type
    expect(await detectFileType(blob, 'text/plain', 'blob.bin')).toBeNull();
    expect(await detectFileType(blob, undefined, 'notes.txt')).toBeNull();
  });

  it('does not let a text extension override known but unsupported magic bytes', async () => {
    expect(await detectFileType(OLE_MAGIC, 'text/plain', 'notes.txt')).toBeNull();
  });
});

describe('detectFileType: text-like fallbacks', () => {
  const prose = Buffer.from('# Heading\n\nSome text with ünïcödé and an emoji 🙂.\n');

  it('uses a supported text-like declared type (parameters ignored)', async () => {
    expect(await detectFileType(prose, 'text/plain; charset=utf-8', 'upload')).toEqual(TXT);
    expect(await detectFileType(prose, 'text/markdown', 'upload')).toEqual(MD);
    expect(await detectFileType(Buffer.from('<!doctype html><p>hi</p>'), 'TEXT/HTML', 'upload')).toEqual(
      HTML,
    );
    expect(await detectFileType(Buffer.from('{"a":1}'), 'application/json', 'upload')).toEqual(JSON_TYPE);
    expect(
      await detectFileType(Buffer.from('<svg xmlns="http://www.w3.org/2000/svg"/>'), 'image/svg+xml', 'x'),
    ).toEqual(SVG);
  });

  it('prefers the declared type to the extension', async () => {
    expect(await detectFileType(prose, 'text/markdown', 'notes.txt')).toEqual(MD);
    expect(await detectFileType(Buffer.from('{"a":1}'), 'application/json', 'data.txt')).toEqual(JSON_TYPE);
  });

  it('lets a specific text extension refine the generic text/plain', async () => {
    expect(await detectFileType(prose, 'text/plain', 'notes.md')).toEqual(MD);
    expect(await detectFileType(Buffer.from('[{"a":1}]'), 'text/plain', 'rows.json')).toEqual(JSON_TYPE);
  });

  it.each([
    ['notes.txt', TXT],
    ['notes.md', MD],
    ['NOTES.MARKDOWN', MD],
    ['page.html', HTML],
    ['page.htm', HTML],
    ['data.json', JSON_TYPE],
  ])('falls back to the extension of %s', async (filename, expected) => {
    expect(await detectFileType(prose, 'application/octet-stream', filename)).toEqual(expected);
  });

  it('detects an SVG with an XML prolog by its declared type or extension', async () => {
    const svg = Buffer.from(
      '<?xml version="1.0" encoding="UTF-8"?>\n<svg xmlns="http://www.w3.org/2000/svg"/>',
    );
    expect(await detectFileType(svg, undefined, 'logo.svg')).toEqual(SVG);
    expect(await detectFileType(svg, 'image/svg+xml', 'logo')).toEqual(SVG);
    expect(await detectFileType(svg, 'application/xml', 'feed.xml')).toBeNull();
  });

  it('accepts an empty text file by its declared type', async () => {
    expect(await detectFileType(Buffer.alloc(0), 'text/plain', 'empty.txt')).toEqual(TXT);
  });

  it('rejects text without a supported declared type or extension', async () => {
    expect(await detectFileType(Buffer.from('a,b\n1,2\n'), 'text/csv', 'table.csv')).toBeNull();
    expect(await detectFileType(prose, undefined, undefined)).toBeNull();
  });

  it('accepts text whose sample ends inside a multi-byte character', async () => {
    const cut = Buffer.from('héllo wörld 🙂').subarray(0, 15);
    expect(await detectFileType(cut, 'text/plain', 'cut.txt')).toEqual(TXT);
  });
});

describe('storedExtension', () => {
  it('uses the lower-cased extension of the original filename', () => {
    expect(storedExtension('Photo.JPG', PNG)).toBe('.jpg');
    expect(storedExtension('archive.tar.GZ', PNG)).toBe('.gz');
    expect(storedExtension('C:\\Users\\me\\shot.PNG', PNG)).toBe('.png');
  });

  it('falls back to the canonical extension when the name has none (or an odd one)', () => {
    expect(storedExtension(undefined, PNG)).toBe('.png');
    expect(storedExtension('scan', PNG)).toBe('.png');
    expect(storedExtension('.hidden', PNG)).toBe('.png');
    expect(storedExtension('trailing.', PNG)).toBe('.png');
    expect(storedExtension('image.p g', PNG)).toBe('.png');
  });
});

describe('sizeClass', () => {
  it('maps detected types to their MAX_*_BYTES class', () => {
    expect(sizeClass(PNG)).toBe('image');
    expect(sizeClass(SVG)).toBe('image');
    expect(sizeClass(video('video/mp4', '.mp4'))).toBe('video');
    expect(sizeClass(audio('audio/mpeg', '.mp3'))).toBe('audio');
    expect(sizeClass(DOCX)).toBe('document');
    expect(sizeClass(MD)).toBe('document');
    expect(sizeClass(JSON_TYPE)).toBe('json');
  });
});
