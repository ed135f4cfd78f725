import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { crc32, deflateSync } from 'node:zlib';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PermanentProcessingError, TransientProcessingError } from '../../src/domain/errors.js';
import {
  analyseImage,
  dominantColors,
  edgeDensity,
  type RgbImage,
  selectExif,
} from '../../src/domain/media/image.js';

const LIMITS = { maxPixels: 100_000_000, maxSize: 1024 };

function rawImage(width: number, height: number, pixel: (x: number, y: number) => number[], channels = 3) {
  const data = Buffer.alloc(width * height * channels);
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) data.set(pixel(x, y), (y * width + x) * channels);
  }
  return sharp(data, { raw: { width, height, channels: channels as 1 | 2 | 3 | 4 } });
}

function pixelAt(image: RgbImage, x: number, y: number): number[] {
  const offset = (y * image.width + x) * 3;
  return [...image.data.subarray(offset, offset + 3)];
}

function pngChunk(type: string, data: Buffer): Buffer {
  const length = Buffer.alloc(4);
  length.writeUInt32BE(data.length);
  const body = Buffer.concat([Buffer.from(type, 'latin1'), data]);
  const crc = Buffer.alloc(4);
  crc.writeUInt32BE(crc32(body));
  return Buffer.concat([length, body, crc]);
}

/** A valid PNG header claiming width×height pixels, with almost no pixel data behind it. */
function pngClaiming(width: number, height: number): Buffer {
  const header = Buffer.alloc(13);
  header.writeUInt32BE(width, 0);
  header.writeUInt32BE(height, 4);
  header[8] = 8; // bit depth
  header[9] = 2; // truecolour
  return Buffer.concat([
    Buffer.from([137, 80, 78, 71, 13, 10, 26, 10]),
    pngChunk('IHDR', header),
    pngChunk('IDAT', deflateSync(Buffer.alloc(4096))),
    pngChunk('IEND', Buffer.alloc(0)),
  ]);
}

describe('analyseImage', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'allocator-image-'));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('derives every output of a 640×480 JPEG', async () => {
    const jpeg = await rawImage(640, 480, (x, y) => [x % 256, y % 256, 120])
      .jpeg()
      .toBuffer();
    const analysed = await analyseImage(jpeg, LIMITS);

    expect(analysed).toMatchObject({ width: 640, height: 480, format: 'jpeg', exif: {} });
    const normalised = await sharp(analysed.normalisedJpeg).metadata();
    expect([normalised.format, normalised.width, normalised.height]).toEqual(['jpeg', 640, 480]); // never enlarged
    const thumbnail = await sharp(analysed.thumbnailJpeg).metadata();
    expect([thumbnail.format, thumbnail.width, thumbnail.height]).toEqual(['jpeg', 256, 192]);
    expect(analysed.small.width).toBe(64);
    expect(analysed.small.height).toBe(64);
    expect(analysed.small.data.length).toBe(64 * 64 * 3);
    expect(analysed.perceptualHash).toMatch(/^[0-9a-f]{16}$/);
    expect(analysed.dominantColors.length).toBeGreaterThanOrEqual(1);
    expect(analysed.dominantColors.length).toBeLessThanOrEqual(5);
    for (const colour of analysed.dominantColors) expect(colour).toMatch(/^#[0-9a-f]{6}$/);
  });

  it('reads from a file path as well as from a buffer', async () => {
    const file = path.join(dir, 'from-disk.png');
    await rawImage(50, 30, () => [0, 128, 0])
      .png()
      .toFile(file);
    const analysed = await analyseImage(file, LIMITS);
    expect([analysed.width, analysed.height, analysed.format]).toEqual([50, 30, 'png']);
    expect(pixelAt(analysed.small, 10, 10)).toEqual([0, 128, 0]);
  });

  it('treats a missing file as a transient read failure', async () => {
    const failure = analyseImage(path.join(dir, 'gone.png'), LIMITS);
    await expect(failure).rejects.toBeInstanceOf(TransientProcessingError);
    await expect(failure).rejects.toThrow(/^cannot read image: Input file is missing/);
  });

  it('bounds the normalised image by the longest side and never enlarges the thumbnail', async () => {
    const wide = await rawImage(2000, 1000, () => [10, 20, 30])
      .png()
      .toBuffer();
    const big = await analyseImage(wide, { maxPixels: LIMITS.maxPixels, maxSize: 1024 });
    const normalised = await sharp(big.normalisedJpeg).metadata();
    expect([normalised.width, normalised.height]).toEqual([1024, 512]);
    expect([big.width, big.height]).toEqual([2000, 1000]); // the original's size

    const tiny = await analyseImage(
      await rawImage(100, 50, () => [10, 20, 30])
        .png()
        .toBuffer(),
      LIMITS,
    );
    const tinyNormalised = await sharp(tiny.normalisedJpeg).metadata();
    const tinyThumbnail = await sharp(tiny.thumbnailJpeg).metadata();
    expect([tinyNormalised.width, tinyNormalised.height]).toEqual([100, 50]);
    expect([tinyThumbnail.width, tinyThumbnail.height]).toEqual([100, 50]);
  });

  it('fits a portrait thumbnail inside 256×256', async () => {
    const analysed = await analyseImage(
      await rawImage(300, 900, () => [200, 0, 0])
        .png()
        .toBuffer(),
      LIMITS,
    );
    const thumbnail = await sharp(analysed.thumbnailJpeg).metadata();
    expect([thumbnail.format, thumbnail.width, thumbnail.height]).toEqual(['jpeg', 85, 256]);
  });

  it('applies EXIF orientation 6: width and height swap and the pixels turn a quarter clockwise', async () => {
    // Stored 40×20: left half red, right half blue. Orientation 6 displays it rotated 90° clockwise.
    const jpeg = await rawImage(40, 20, (x) => (x < 20 ? [255, 0, 0] : [0, 0, 255]))
      .jpeg({ quality: 95 })
      .withMetadata({ orientation: 6 })
      .toBuffer();
    const analysed = await analyseImage(jpeg, LIMITS);
    expect([analysed.width, analysed.height]).toEqual([20, 40]);
    expect(analysed.exif.Orientation).toBe(6);
    const normalised = await sharp(analysed.normalisedJpeg).metadata();
    expect([normalised.width, normalised.height]).toEqual([20, 40]);
    const [topR, , topB] = pixelAt(analysed.small, 32, 8) as number[];
    const [bottomR, , bottomB] = pixelAt(analysed.small, 32, 56) as number[];
    expect(topR).toBeGreaterThan(200);
    expect(topB).toBeLessThan(50);
    expect(bottomB).toBeGreaterThan(200);
    expect(bottomR).toBeLessThan(50);
  });

  it('selects the EXIF tags, with GPS in decimal degrees', async () => {
    const jpeg = await rawImage(32, 32, () => [90, 90, 90])
      .jpeg()
      .withExif({
        IFD0: { Make: 'Acme', Model: 'X100' },
        IFD2: {
          DateTimeOriginal: '2024:01:02 03:04:05',
          ExposureTime: '1/250',
          FNumber: '28/10',
          ISOSpeedRatings: '200',
          FocalLength: '35/1',
        },
        IFD3: {
          GPSLatitudeRef: 'N',
          GPSLatitude: '52/1 30/1 0/1',
          GPSLongitudeRef: 'W',
          GPSLongitude: '1/1 15/1 30/1',
        },
      })
      .toBuffer();
    const analysed = await analyseImage(jpeg, LIMITS);
    expect(analysed.exif).toEqual({
      Make: 'Acme',
      Model: 'X100',
      DateTimeOriginal: '2024:01:02 03:04:05',
      ExposureTime: 0.004,
      FNumber: 2.8,
      ISO: 200,
      FocalLength: 35,
      GPSLatitude: 52.5,
      GPSLongitude: -1.2583333,
      Orientation: 1, // sharp writes the tag whenever it writes EXIF
    });
  });

  it('reports no GPS keys when the EXIF has none, and survives a malformed EXIF block', async () => {
    const jpeg = await rawImage(32, 32, () => [90, 90, 90])
      .jpeg()
      .withExif({ IFD0: { Make: 'Acme' } })
      .toBuffer();
    const analysed = await analyseImage(jpeg, LIMITS);
    expect(analysed.exif).toEqual({ Make: 'Acme', Orientation: 1 });
    expect(selectExif(Buffer.from('Exif\0\0MM\0\x2a\0\0\0\x08\0\x05', 'latin1'))).toEqual({});
    expect(selectExif(Buffer.from('not exif at all'))).toEqual({});
  });

  it('flattens alpha onto white', async () => {
    // Top half: fully transparent red; bottom half: black at 50 % opacity.
    const png = await rawImage(64, 64, (_x, y) => (y < 32 ? [255, 0, 0, 0] : [0, 0, 0, 128]), 4)
      .png()
      .toBuffer();
    const analysed = await analyseImage(png, LIMITS);
    expect(pixelAt(analysed.small, 20, 10)).toEqual([255, 255, 255]);
    for (const channel of pixelAt(analysed.small, 20, 50))
      expect(Math.abs(channel - 127)).toBeLessThanOrEqual(1);
    const [r, g, b] = (await sharp(analysed.normalisedJpeg).raw().toBuffer()).subarray(0, 3);
    expect([r, g, b].every((channel) => (channel as number) >= 250)).toBe(true);
  });

  it('turns greyscale input into RGB', async () => {
    const png = await rawImage(40, 40, () => [77], 1)
      .png()
      .toBuffer();
    const analysed = await analyseImage(png, LIMITS);
    expect(pixelAt(analysed.small, 5, 5)).toEqual([77, 77, 77]);
  });

  it('decodes only the first frame of an animation', async () => {
    const red = await rawImage(60, 40, () => [255, 0, 0])
      .png()
      .toBuffer();
    const blue = await rawImage(60, 40, () => [0, 0, 255])
      .png()
      .toBuffer();
    const green = await rawImage(60, 40, () => [0, 255, 0])
      .png()
      .toBuffer();
    const gif = await sharp([red, blue, green], { join: { animated: true } })
      .gif()
      .toBuffer();
    expect((await sharp(gif).metadata()).pages).toBe(3);
    const analysed = await analyseImage(gif, LIMITS);
    expect([analysed.format, analysed.width, analysed.height]).toEqual(['gif', 60, 40]);
    const [r, , b] = pixelAt(analysed.small, 32, 32) as number[];
    expect(r).toBeGreaterThan(200);
    expect(b).toBeLessThan(50);
  });

  it.each(['png', 'jpeg'] as const)('fails permanently on a truncated %s', async (format) => {
    const encoded = await rawImage(300, 200, (x, y) => [
      (x * 7919 + y * 31) % 251,
      (x * 13) % 256,
      (y * 17) % 256,
    ])
      .toFormat(format)
      .toBuffer();
    const truncated = encoded.subarray(0, Math.floor(encoded.length / 2));
    const failure = analyseImage(truncated, LIMITS);
    await expect(failure).rejects.toBeInstanceOf(PermanentProcessingError);
    await expect(failure).rejects.toThrow(/^image is corrupt or truncated: /);
  });

  it('fails permanently on bytes that are no image', async () => {
    const failure = analyseImage(Buffer.from('definitely not an image, just some text'), LIMITS);
    await expect(failure).rejects.toBeInstanceOf(PermanentProcessingError);
    await expect(failure).rejects.toThrow(/^image is corrupt or truncated: /);
  });

  it('refuses a pixel bomb from its header, before decoding', async () => {
    const bomb = pngClaiming(20_000, 10_000); // 200 megapixels in a few hundred bytes
    expect(bomb.length).toBeLessThan(1000);
    const rssBefore = process.memoryUsage().rss;
    const failure = analyseImage(bomb, LIMITS);
    await expect(failure).rejects.toBeInstanceOf(PermanentProcessingError);
    await expect(failure).rejects.toThrow('image has 200000000 pixels, more than the limit of 100000000');
    // 200 MP of RGB would be 600 MB: nothing of that size was allocated.
    expect(process.memoryUsage().rss - rssBefore).toBeLessThan(100 * 1024 * 1024);
  });

  it('applies the configured pixel limit to ordinary images', async () => {
    const png = await rawImage(100, 100, () => [1, 2, 3])
      .png()
      .toBuffer();
    await expect(analyseImage(png, { maxPixels: 5000, maxSize: 1024 })).rejects.toThrow(
      'image has 10000 pixels, more than the limit of 5000',
    );
    await expect(analyseImage(png, { maxPixels: 10_000, maxSize: 1024 })).resolves.toMatchObject({
      width: 100,
    });
  });

  it('measures edge density on the normalised luma', async () => {
    // Vertical stripes 4 px wide: the two columns beside each of the 159 inner boundaries are edges.
    const stripes = await rawImage(640, 100, (x) =>
      Math.floor(x / 4) % 2 === 0 ? [0, 0, 0] : [255, 255, 255],
    )
      .png()
      .toBuffer();
    expect((await analyseImage(stripes, LIMITS)).edgeDensity).toBeCloseTo(318 / 640, 10);
    const plain = await rawImage(200, 100, () => [30, 200, 90])
      .png()
      .toBuffer();
    expect((await analyseImage(plain, LIMITS)).edgeDensity).toBe(0);
  });
});

describe('edgeDensity', () => {
  it('counts pixels whose Sobel magnitude exceeds 100, with replicated borders', () => {
    // A single step of 30 between columns 1 and 2: |gx| = 4·30 = 120 > 100 on both sides of the step.
    const width = 4;
    const luma = [0, 0, 30, 30, 0, 0, 30, 30, 0, 0, 30, 30];
    expect(edgeDensity(luma, width, 3)).toBe(6 / 12);
    // A step of 25 gives |gx| = 100, which is not more than 100.
    expect(edgeDensity([0, 0, 25, 25], 4, 1)).toBe(0);
  });
});

describe('dominantColors', () => {
  it('lists the most common colours first as #rrggbb', () => {
    const data = new Uint8Array(10 * 10 * 3);
    for (let p = 0; p < 100; p++) data.set(p < 60 ? [255, 0, 0] : p < 90 ? [0, 0, 255] : [0, 255, 0], p * 3);
    expect(dominantColors({ data, width: 10, height: 10 })).toEqual(['#ff0000', '#0000ff', '#00ff00']);
  });

  it('drops colours below 2 % and keeps at most five', () => {
    const data = new Uint8Array(100 * 3);
    // Seven colours of 14 pixels and two of 1 pixel.
    const palette = [
      [255, 0, 0],
      [0, 255, 0],
      [0, 0, 255],
      [255, 255, 0],
      [0, 255, 255],
      [255, 0, 255],
      [255, 255, 255],
    ];
    for (let p = 0; p < 98; p++) data.set(palette[Math.floor(p / 14)] as number[], p * 3);
    data.set([0, 0, 0], 98 * 3);
    data.set([128, 128, 128], 99 * 3);
    const colours = dominantColors({ data, width: 10, height: 10 });
    expect(colours).toHaveLength(5);
    expect(colours).not.toContain('#000000');
    expect(colours).not.toContain('#808080');
  });
});
