// BMP uploads (spec §3.4 lists bmp): decoded without sharp's help, refused when compressed or bombs.

import sharp from 'sharp';
import { describe, expect, it } from 'vitest';
import { PermanentProcessingError } from '../../src/domain/errors.js';
import { bmpToPng } from '../../src/domain/media/bmp.js';
import { analyseImage } from '../../src/domain/media/image.js';

/** A bottom-up 24-bit BMP whose pixel (x, y) is `colour(x, y)`. */
function bmp24(
  width: number,
  height: number,
  colour: (x: number, y: number) => [number, number, number],
): Buffer {
  const stride = Math.floor((24 * width + 31) / 32) * 4;
  const header = Buffer.alloc(54);
  header.write('BM', 0, 'latin1');
  header.writeUInt32LE(54 + stride * height, 2);
  header.writeUInt32LE(54, 10);
  header.writeUInt32LE(40, 14);
  header.writeInt32LE(width, 18);
  header.writeInt32LE(height, 22);
  header.writeUInt16LE(1, 26);
  header.writeUInt16LE(24, 28);
  const pixels = Buffer.alloc(stride * height);
  for (let y = 0; y < height; y++)
    for (let x = 0; x < width; x++) {
      const [r, g, b] = colour(x, y);
      const at = (height - 1 - y) * stride + x * 3;
      pixels[at] = b;
      pixels[at + 1] = g;
      pixels[at + 2] = r;
    }
  return Buffer.concat([header, pixels]);
}

describe('BMP', () => {
  it('decodes a 24-bit bitmap with row padding, bottom-up, to the same pixels', async () => {
    const bytes = bmp24(5, 3, (x, y) => [x * 50, y * 100, 7]);
    const { data, info } = await sharp(await bmpToPng(bytes))
      .raw()
      .toBuffer({ resolveWithObject: true });
    expect([info.width, info.height, info.channels]).toEqual([5, 3, 3]);
    expect([...data.subarray(0, 3)]).toEqual([0, 0, 7]);
    const last = (2 * 5 + 4) * 3;
    expect([...data.subarray(last, last + 3)]).toEqual([200, 200, 7]);
  });

  it('goes through analyseImage as format bmp', async () => {
    const analysed = await analyseImage(
      bmp24(40, 30, () => [250, 0, 0]),
      { maxPixels: 1e8, maxSize: 1024 },
    );
    expect(analysed).toMatchObject({ width: 40, height: 30, format: 'bmp' });
  });

  it('refuses RLE compression and pixel bombs as permanent failures', async () => {
    const rle = bmp24(4, 4, () => [1, 2, 3]);
    rle.writeUInt32LE(1, 30);
    await expect(bmpToPng(rle)).rejects.toBeInstanceOf(PermanentProcessingError);
    const bomb = bmp24(2, 2, () => [0, 0, 0]);
    bomb.writeInt32LE(20_000, 18);
    bomb.writeInt32LE(10_000, 22);
    await expect(analyseImage(bomb, { maxPixels: 1e8, maxSize: 1024 })).rejects.toThrow(
      'image has 200000000 pixels, more than the limit of 100000000',
    );
  });
});
