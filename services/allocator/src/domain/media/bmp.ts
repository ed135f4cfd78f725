// BMP decoding for the image pipeline: the libvips build sharp ships has no BMP loader, yet BMP is a supported
// upload type (spec §3.4). Uncompressed 1/4/8/24/32-bit and BI_BITFIELDS 16/32-bit bitmaps are decoded to a
// PNG that sharp reads; RLE-compressed and exotic variants are refused as permanent failures.
import sharp from 'sharp';
import { PermanentProcessingError } from '../errors.js';

const BI_RGB = 0;
const BI_BITFIELDS = 3;

/** True when `bytes` starts like a Windows bitmap. */
export function isBmp(bytes: Buffer): boolean {
  return bytes.length >= 26 && bytes[0] === 0x42 && bytes[1] === 0x4d;
}

/** Width and height from the header, before any pixel is read (the pixel-bomb check). */
export function bmpDimensions(bytes: Buffer): { width: number; height: number } {
  if (bytes.length < 26)
    throw new PermanentProcessingError('image is corrupt or truncated: BMP header too short');
  return { width: Math.abs(bytes.readInt32LE(18)), height: Math.abs(bytes.readInt32LE(22)) };
}

function maskShift(mask: number): { shift: number; max: number } {
  if (mask === 0) return { shift: 0, max: 0 };
  let shift = 0;
  while (((mask >>> shift) & 1) === 0) shift++;
  return { shift, max: mask >>> shift };
}

/** Decodes a BMP into a PNG (alpha kept for 32-bit bitmaps with an alpha mask). */
export async function bmpToPng(bytes: Buffer): Promise<Buffer> {
  const fail = (reason: string) => new PermanentProcessingError(`image is corrupt or truncated: ${reason}`);
  if (!isBmp(bytes)) throw fail('not a BMP file');
  const dataOffset = bytes.readUInt32LE(10);
  const headerSize = bytes.readUInt32LE(14);
  if (headerSize < 40) throw fail('unsupported BMP header (OS/2 bitmaps are not supported)');
  const width = bytes.readInt32LE(18);
  const rawHeight = bytes.readInt32LE(22);
  const bitCount = bytes.readUInt16LE(28);
  const compression = bytes.readUInt32LE(30);
  const height = Math.abs(rawHeight);
  const topDown = rawHeight < 0;
  if (width <= 0 || height === 0) throw fail('BMP has no dimensions');
  const stride = Math.floor((bitCount * width + 31) / 32) * 4;
  if (dataOffset + stride * height > bytes.length) throw fail('BMP pixel data is truncated');

  let masks: [number, number, number, number] | null = null;
  if (compression === BI_BITFIELDS && (bitCount === 16 || bitCount === 32)) {
    const at = 14 + 40;
    masks = [
      bytes.readUInt32LE(at),
      bytes.readUInt32LE(at + 4),
      bytes.readUInt32LE(at + 8),
      headerSize >= 56 ? bytes.readUInt32LE(14 + 52) : 0,
    ];
  } else if (compression === BI_RGB && bitCount === 16) {
    masks = [0x7c00, 0x03e0, 0x001f, 0];
  } else if (compression !== BI_RGB) {
    throw new PermanentProcessingError(
      `unsupported BMP compression ${compression} (RLE bitmaps are not supported)`,
    );
  }
  if (![1, 4, 8, 16, 24, 32].includes(bitCount)) throw fail(`unsupported BMP depth ${bitCount}`);

  const paletteAt = 14 + headerSize;
  const paletteSize = bitCount <= 8 ? bytes.readUInt32LE(46) || 2 ** bitCount : 0;
  const palette = (index: number): [number, number, number] => {
    if (index >= paletteSize) return [0, 0, 0];
    const at = paletteAt + index * 4;
    return [bytes[at + 2] ?? 0, bytes[at + 1] ?? 0, bytes[at] ?? 0];
  };
  const hasAlpha = masks !== null && masks[3] !== 0;
  const channels = hasAlpha ? 4 : 3;
  const out = Buffer.alloc(width * height * channels);
  const fields = masks?.map(maskShift) ?? [];
  for (let row = 0; row < height; row++) {
    const source = dataOffset + (topDown ? row : height - 1 - row) * stride;
    for (let x = 0; x < width; x++) {
      let rgba: [number, number, number, number];
      if (bitCount <= 8) {
        const bitOffset = x * bitCount;
        const byte = bytes[source + (bitOffset >> 3)] ?? 0;
        const index = (byte >> (8 - bitCount - (bitOffset & 7))) & ((1 << bitCount) - 1);
        rgba = [...palette(index), 255];
      } else if (masks !== null) {
        const value =
          bitCount === 16 ? bytes.readUInt16LE(source + x * 2) : bytes.readUInt32LE(source + x * 4);
        const channel = (index: number) => {
          const field = fields[index];
          if (field === undefined || field.max === 0) return 255;
          return Math.round((((value >>> field.shift) & field.max) * 255) / field.max);
        };
        rgba = [channel(0), channel(1), channel(2), hasAlpha ? channel(3) : 255];
      } else {
        const at = source + x * (bitCount / 8);
        rgba = [bytes[at + 2] ?? 0, bytes[at + 1] ?? 0, bytes[at] ?? 0, 255];
      }
      out.set(rgba.slice(0, channels), (row * width + x) * channels);
    }
  }
  return sharp(out, { raw: { width, height, channels } }).png({ compressionLevel: 1 }).toBuffer();
}
