import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { deflateSync } from 'node:zlib';
import { PDFDocument, PDFName, PDFString, StandardFonts } from 'pdf-lib';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type ExtractLimits, extractDocument, NO_TEXT_MESSAGE } from '../../src/domain/documents/extract.js';
import { PermanentProcessingError } from '../../src/domain/errors.js';

let directory: string;
let fileCount = 0;

beforeAll(async () => {
  directory = await mkdtemp(join(tmpdir(), 'allocator-pdf-'));
});

afterAll(async () => {
  await rm(directory, { recursive: true, force: true });
});

async function extractPdf(bytes: Uint8Array, limits?: ExtractLimits) {
  const path = join(directory, `file-${fileCount++}.pdf`);
  await writeFile(path, bytes);
  return extractDocument(path, 'pdf', limits);
}

async function failure(bytes: Uint8Array): Promise<unknown> {
  return extractPdf(bytes).catch((caught: unknown) => caught);
}

/** A small photo-like JPEG: a gradient, so the encoder has something to encode. */
async function gradientJpeg(width: number, height: number): Promise<Buffer> {
  const pixels = Buffer.alloc(width * height * 3);
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      const offset = (y * width + x) * 3;
      pixels[offset] = (x * 255) / width;
      pixels[offset + 1] = (y * 255) / height;
      pixels[offset + 2] = 128;
    }
  }
  return sharp(pixels, { raw: { width, height, channels: 3 } })
    .jpeg({ quality: 80 })
    .toBuffer();
}

async function textPdf(pages: string[][], title?: string): Promise<PDFDocument> {
  const document = await PDFDocument.create();
  if (title !== undefined) document.setTitle(title);
  const font = await document.embedFont(StandardFonts.Helvetica);
  for (const lines of pages) {
    const page = document.addPage([400, 400]);
    lines.forEach((line, index) => {
      page.drawText(line, { x: 20, y: 360 - index * 20, size: 12, font });
    });
  }
  return document;
}

describe('PDF text', () => {
  it('reads the text of each page with its page number, the page count and the title', async () => {
    const document = await textPdf(
      [
        ['Quarterly report', 'Revenue grew strongly.'],
        ['Second page text', 'with two lines'],
      ],
      'Annual Figures',
    );
    const extracted = await extractPdf(await document.save());
    expect(extracted.title).toBe('Annual Figures');
    expect(extracted.pageCount).toBe(2);
    expect(extracted.blocks).toEqual([
      { kind: 'text', text: 'Quarterly report\nRevenue grew strongly.', page: 1 },
      { kind: 'text', text: 'Second page text\nwith two lines', page: 2 },
    ]);
    expect(extracted.images).toEqual([]);
  });

  it('fails permanently for a PDF without text', async () => {
    const document = await PDFDocument.create();
    const page = document.addPage([200, 200]);
    const jpeg = await document.embedJpg(await gradientJpeg(32, 32));
    page.drawImage(jpeg, { x: 0, y: 0, width: 200, height: 200 });
    const error = await failure(await document.save());
    expect(error).toBeInstanceOf(PermanentProcessingError);
    expect((error as Error).message).toBe(NO_TEXT_MESSAGE);
  });

  it('fails permanently for a PDF that needs a password', async () => {
    const document = await textPdf([['secret text']]);
    // a standard security handler whose empty user password does not match: readers must ask for one
    const bytes32 = PDFString.of('0123456789abcdef0123456789abcdef');
    document.context.trailerInfo.Encrypt = document.context.obj({
      Filter: PDFName.of('Standard'),
      V: 1,
      R: 2,
      O: bytes32,
      U: bytes32,
      P: -4,
    });
    document.context.trailerInfo.ID = document.context.obj([PDFString.of('id0'), PDFString.of('id0')]);
    const error = await failure(await document.save({ useObjectStreams: false }));
    expect(error).toBeInstanceOf(PermanentProcessingError);
    expect((error as Error).message).toBe('Encrypted PDF');
  });

  it('fails permanently for bytes that are not a PDF', async () => {
    const error = await failure(Buffer.from('%PDF-1.7\nthis is not really a pdf at all'));
    expect(error).toBeInstanceOf(PermanentProcessingError);
    expect((error as Error).message).toBe('Unreadable document: invalid or damaged PDF');
  });
});

describe('PDF embedded images (acceptance 33)', () => {
  for (const useObjectStreams of [true, false]) {
    it(`keeps a DCTDecode image as the original JPEG bytes (object streams ${useObjectStreams ? 'on' : 'off'})`, async () => {
      const jpegBytes = await gradientJpeg(64, 48);
      const document = await textPdf([['Cover page'], ['The photo is on this page']]);
      const page = document.getPage(1);
      page.drawImage(await document.embedJpg(jpegBytes), { x: 20, y: 20, width: 128, height: 96 });
      const extracted = await extractPdf(await document.save({ useObjectStreams }));
      expect(extracted.images).toHaveLength(1);
      const [image] = extracted.images;
      expect(image?.mime).toBe('image/jpeg');
      expect(image?.ext).toBe('.jpg');
      expect(image?.page).toBe(2);
      expect(image?.name).toMatch(/^page-2-image-\d+\.jpg$/);
      expect(Buffer.compare(image?.bytes ?? Buffer.alloc(0), jpegBytes)).toBe(0);
    });
  }

  it('encodes a Flate RGB bitmap as a PNG with the same pixels', async () => {
    const width = 20;
    const height = 10;
    const pixels = Buffer.alloc(width * height * 3);
    for (let index = 0; index < pixels.length; index++) pixels[index] = (index * 7) % 256;
    const png = await sharp(pixels, { raw: { width, height, channels: 3 } })
      .png()
      .toBuffer();
    const document = await textPdf([['Page with a drawing']]);
    document.getPage(0).drawImage(await document.embedPng(png), { x: 10, y: 10, width: 40, height: 20 });
    const extracted = await extractPdf(await document.save());
    expect(extracted.images).toHaveLength(1);
    const [image] = extracted.images;
    expect(image?.mime).toBe('image/png');
    expect(image?.page).toBe(1);
    const decoded = await sharp(image?.bytes).raw().toBuffer({ resolveWithObject: true });
    expect(decoded.info).toMatchObject({ width, height, channels: 3 });
    expect(Buffer.compare(decoded.data, pixels)).toBe(0);

    // a bitmap that would decode beyond the byte budget is left out; the text is still read
    const tight = await extractPdf(await document.save(), {
      maxUncompressedBytes: 1000,
      maxCompressionRatio: 100,
    });
    expect(tight.blocks).toEqual([{ kind: 'text', text: 'Page with a drawing', page: 1 }]);
    expect(tight.images).toEqual([]);
  });

  it('undoes PNG predictors of a Flate gray bitmap and lists an image used twice once, on its first page', async () => {
    const width = 4;
    const height = 3;
    const gray = Buffer.from([10, 20, 30, 40, 50, 60, 70, 80, 200, 100, 0, 255]);
    // rows filtered with Sub, Up and Paeth, as a PNG encoder might choose
    const rows: number[] = [];
    rows.push(1, 10, 10, 10, 10); // Sub: each byte minus its left neighbour
    rows.push(2, 40, 40, 40, 40); // Up: minus the byte above
    rows.push(4, ...paethFiltered(gray, width, 2));
    const document = await textPdf([['first page'], ['second page'], ['third page']]);
    const image = document.context.flateStream(Buffer.from(rows), {
      Type: 'XObject',
      Subtype: 'Image',
      Width: width,
      Height: height,
      ColorSpace: 'DeviceGray',
      BitsPerComponent: 8,
      DecodeParms: { Predictor: 15, Colors: 1, BitsPerComponent: 8, Columns: width },
    });
    const reference = document.context.register(image);
    document.getPage(1).node.setXObject(PDFName.of('Im9'), reference);
    document.getPage(2).node.setXObject(PDFName.of('Im9'), reference);
    const extracted = await extractPdf(await document.save());
    expect(extracted.images).toHaveLength(1);
    expect(extracted.images[0]?.page).toBe(2);
    expect((await sharp(extracted.images[0]?.bytes).metadata()).channels).toBe(1);
    const decoded = await grayPixels(extracted.images[0]?.bytes);
    expect(decoded.info).toMatchObject({ width, height, channels: 1 });
    expect([...decoded.data]).toEqual([...gray]);
  });

  it('expands 1-bit gray samples and leaves out images it cannot pass on as they are (CMYK)', async () => {
    const document = await textPdf([['bits and colours']]);
    const bits = document.context.flateStream(Buffer.from([0b10100000, 0b01010000]), {
      Type: 'XObject',
      Subtype: 'Image',
      Width: 4,
      Height: 2,
      ColorSpace: 'DeviceGray',
      BitsPerComponent: 1,
    });
    const cmyk = document.context.stream(deflateSync(Buffer.alloc(2 * 2 * 4, 9)), {
      Type: 'XObject',
      Subtype: 'Image',
      Width: 2,
      Height: 2,
      ColorSpace: 'DeviceCMYK',
      BitsPerComponent: 8,
      Filter: 'FlateDecode',
    });
    document.getPage(0).node.setXObject(PDFName.of('Bits'), document.context.register(bits));
    document.getPage(0).node.setXObject(PDFName.of('Cmyk'), document.context.register(cmyk));
    const extracted = await extractPdf(await document.save({ useObjectStreams: false }));
    expect(extracted.images).toHaveLength(1);
    expect((await sharp(extracted.images[0]?.bytes).metadata()).channels).toBe(1);
    const decoded = await grayPixels(extracted.images[0]?.bytes);
    expect(decoded.info).toMatchObject({ width: 4, height: 2, channels: 1 });
    expect([...decoded.data]).toEqual([255, 0, 255, 0, 0, 255, 0, 255]);
  });
});

function grayPixels(png: Buffer | undefined) {
  return sharp(png).toColourspace('b-w').raw().toBuffer({ resolveWithObject: true });
}

/** PNG Paeth filter of row `row` of an 8-bit gray image. */
function paethFiltered(gray: Buffer, width: number, row: number): number[] {
  const at = (y: number, x: number) => (y < 0 || x < 0 ? 0 : (gray[y * width + x] as number));
  const filtered: number[] = [];
  for (let x = 0; x < width; x++) {
    const left = at(row, x - 1);
    const up = at(row - 1, x);
    const upLeft = at(row - 1, x - 1);
    const estimate = left + up - upLeft;
    const toLeft = Math.abs(estimate - left);
    const toUp = Math.abs(estimate - up);
    const toUpLeft = Math.abs(estimate - upLeft);
    const predictor = toLeft <= toUp && toLeft <= toUpLeft ? left : toUp <= toUpLeft ? up : upLeft;
    filtered.push((at(row, x) - predictor + 256) % 256);
  }
  return filtered;
}
