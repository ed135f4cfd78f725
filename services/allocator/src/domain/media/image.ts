// Image normalisation (spec §3.6.1) and every derived value the media pipeline needs from the pixels:
// normalised JPEG (for the VLM), thumbnail, the 64×64 embedder input, perceptual hash, dominant colours,
// EXIF selection and edge density (the OCR gate of §3.6.8). The file is decoded once, into the normalised
// (bounded) RGB image; every other output is derived from that buffer.

import sharp, { type Metadata } from 'sharp';
import { PermanentProcessingError, TransientProcessingError } from '../errors.js';
import { bmpDimensions, bmpToPng, isBmp } from './bmp.js';
import { perceptualHashFromLuma32 } from './phash.js';
import { EMBEDDER_INPUT_SIZE } from './visual-embedder.js';

/** Packed 8-bit RGB, 3 bytes per pixel, row-major. */
export interface RgbImage {
  data: Uint8Array;
  width: number;
  height: number;
}

export interface AnalysedImage {
  /** of the original, after EXIF orientation */
  width: number;
  height: number;
  /** sharp's format name: jpeg, png, webp, gif, tiff, svg, heif… */
  format: string;
  /** selected EXIF tags; GPSLatitude/GPSLongitude as decimal degrees, only when present */
  exif: Record<string, string | number>;
  /** longest side ≤ maxSize (never enlarged), sRGB, alpha flattened on white; JPEG quality 90 */
  normalisedJpeg: Buffer;
  /** JPEG quality 85, fit inside 256×256 (never enlarged) */
  thumbnailJpeg: Buffer;
  /** 64×64, aspect ignored: the input of the embedder and of the heuristic labels */
  small: RgbImage;
  /** §3.6.4, 16 lowercase hex characters */
  perceptualHash: string;
  /** up to 5 '#rrggbb', most common first */
  dominantColors: string[];
  /** fraction of the normalised image's pixels whose luma Sobel magnitude exceeds 100 */
  edgeDensity: number;
}

export interface ImageLimits {
  /** decoded-pixel cap (decompression bombs) */
  maxPixels: number;
  /** longest side of the normalised image */
  maxSize: number;
}

export const THUMBNAIL_SIZE = 256;
export const THUMBNAIL_QUALITY = 85;
export const NORMALISED_QUALITY = 90;
export const EDGE_MAGNITUDE_THRESHOLD = 100;
const PHASH_SIDE = 32;
const WHITE = { r: 255, g: 255, b: 255 };

/** Decodes (first frame of animations), orients, flattens, and derives everything the pipeline needs. */
export async function analyseImage(source: string | Buffer, limits: ImageLimits): Promise<AnalysedImage> {
  const { input, bmp } = await decodableInput(source, limits);
  // The header alone tells the pixel count, so a bomb is refused before any pixel is decoded.
  let metadata: Metadata;
  try {
    metadata = await sharp(input, { limitInputPixels: false, animated: false }).metadata();
  } catch (error) {
    throw corrupt(error);
  }
  const { width, height } = metadata;
  if (!width || !height) throw new PermanentProcessingError('image is corrupt or truncated: no dimensions');
  const pixels = width * height;
  if (pixels > limits.maxPixels) {
    throw new PermanentProcessingError(
      `image has ${pixels} pixels, more than the limit of ${limits.maxPixels}`,
    );
  }

  let normalised: RgbImage;
  try {
    const { data, info } = await sharp(input, {
      failOn: 'truncated',
      // Second guard, should the header lie about the size of the frame that is decoded.
      limitInputPixels: Math.max(1, Math.floor(limits.maxPixels)),
      animated: false,
      autoOrient: true,
    })
      .flatten({ background: WHITE })
      .toColourspace('srgb')
      .resize({ width: limits.maxSize, height: limits.maxSize, fit: 'inside', withoutEnlargement: true })
      .raw({ depth: 'uchar' })
      .toBuffer({ resolveWithObject: true });
    normalised = {
      data: toRgb(data, info.channels, info.width * info.height),
      width: info.width,
      height: info.height,
    };
  } catch (error) {
    throw corrupt(error);
  }

  const rawRgb = { raw: { width: normalised.width, height: normalised.height, channels: 3 as const } };
  const derived = Promise.all([
    sharp(normalised.data, rawRgb).jpeg({ quality: NORMALISED_QUALITY }).toBuffer(),
    sharp(normalised.data, rawRgb)
      .resize({ width: THUMBNAIL_SIZE, height: THUMBNAIL_SIZE, fit: 'inside', withoutEnlargement: true })
      .jpeg({ quality: THUMBNAIL_QUALITY })
      .toBuffer(),
    sharp(normalised.data, rawRgb)
      .resize({ width: EMBEDDER_INPUT_SIZE, height: EMBEDDER_INPUT_SIZE, fit: 'fill' })
      .raw()
      .toBuffer({ resolveWithObject: true }),
  ]);
  // The edge density is computed on this thread while sharp encodes and resizes on its own threads.
  const density = edgeDensity(lumaOfImage(normalised), normalised.width, normalised.height);
  const [normalisedJpeg, thumbnailJpeg, small] = await derived;

  const smallImage: RgbImage = {
    data: toRgb(small.data, small.info.channels, EMBEDDER_INPUT_SIZE * EMBEDDER_INPUT_SIZE),
    width: EMBEDDER_INPUT_SIZE,
    height: EMBEDDER_INPUT_SIZE,
  };
  // EXIF orientations 5–8 rotate by a quarter turn.
  const orientation = metadata.orientation ?? 1;
  const swapped = orientation >= 5 && orientation <= 8;
  return {
    width: swapped ? height : width,
    height: swapped ? width : height,
    format: bmp ? 'bmp' : (metadata.format ?? 'unknown'),
    exif: metadata.exif ? selectExif(metadata.exif) : {},
    normalisedJpeg,
    thumbnailJpeg,
    small: smallImage,
    perceptualHash: perceptualHashFromLuma32(luma32Of(smallImage)),
    dominantColors: dominantColors(smallImage),
    edgeDensity: density,
  };
}

function corrupt(error: unknown): PermanentProcessingError | TransientProcessingError {
  const reason = (error instanceof Error ? error.message : String(error)).trim();
  // A file that cannot be read is an I/O problem worth retrying, not a verdict on the image.
  if (/^Input file is missing/i.test(reason))
    return new TransientProcessingError(`cannot read image: ${reason}`);
  if (/pixel limit/i.test(reason))
    return new PermanentProcessingError(`image exceeds the pixel limit: ${reason}`);
  return new PermanentProcessingError(`image is corrupt or truncated: ${reason}`);
}

// sharp yields 3 channels for sRGB output; the conversions cover anything else defensively.
function toRgb(data: Buffer, channels: number, pixels: number): Uint8Array {
  if (channels === 3) return new Uint8Array(data.buffer, data.byteOffset, pixels * 3);
  const rgb = new Uint8Array(pixels * 3);
  for (let p = 0; p < pixels; p++) {
    for (let c = 0; c < 3; c++) rgb[p * 3 + c] = data[p * channels + (channels >= 3 ? c : 0)] as number;
  }
  return rgb;
}

/**
 * The 32×32 luma matrix of the pHash (§3.6.4): luma of the 8-bit sRGB values of the 64×64 image, each output
 * pixel the mean of a 2×2 block (an exact halving, so no further resampling pipeline is needed).
 */
export function luma32Of(small: RgbImage): Float64Array {
  if (small.width !== PHASH_SIDE * 2 || small.height !== PHASH_SIDE * 2) {
    throw new Error(`expected a 64×64 image, got ${small.width}×${small.height}`);
  }
  const { data } = small;
  const luma = new Float64Array(PHASH_SIDE * PHASH_SIDE);
  for (let y = 0; y < PHASH_SIDE * 2; y++) {
    for (let x = 0; x < PHASH_SIDE * 2; x++) {
      const o = (y * PHASH_SIDE * 2 + x) * 3;
      const target = (y >> 1) * PHASH_SIDE + (x >> 1);
      const value =
        0.299 * (data[o] as number) + 0.587 * (data[o + 1] as number) + 0.114 * (data[o + 2] as number);
      luma[target] = (luma[target] as number) + value / 4;
    }
  }
  return luma;
}

/** Luma Y = 0.299R + 0.587G + 0.114B of the 8-bit sRGB values (not linear light). */
function lumaOfImage(image: RgbImage): Float32Array {
  const pixels = image.width * image.height;
  const luma = new Float32Array(pixels);
  const { data } = image;
  for (let p = 0, o = 0; p < pixels; p++, o += 3) {
    luma[p] = 0.299 * (data[o] as number) + 0.587 * (data[o + 1] as number) + 0.114 * (data[o + 2] as number);
  }
  return luma;
}

/** Fraction of pixels whose 3×3 Sobel magnitude (replicated edges) on the luma exceeds 100. */
export function edgeDensity(luma: ArrayLike<number>, width: number, height: number): number {
  const pixels = width * height;
  if (pixels === 0) return 0;
  const limitSquared = EDGE_MAGNITUDE_THRESHOLD * EDGE_MAGNITUDE_THRESHOLD;
  let edges = 0;
  const lastX = width - 1;
  const lastY = height - 1;
  for (let y = 0; y < height; y++) {
    const up = (y === 0 ? 0 : y - 1) * width;
    const row = y * width;
    const down = (y === lastY ? lastY : y + 1) * width;
    for (let x = 0; x < width; x++) {
      const left = x === 0 ? 0 : x - 1;
      const right = x === lastX ? lastX : x + 1;
      const topLeft = luma[up + left] as number;
      const topRight = luma[up + right] as number;
      const bottomLeft = luma[down + left] as number;
      const bottomRight = luma[down + right] as number;
      const gx =
        topRight +
        2 * (luma[row + right] as number) +
        bottomRight -
        topLeft -
        2 * (luma[row + left] as number) -
        bottomLeft;
      const gy =
        bottomLeft +
        2 * (luma[down + x] as number) +
        bottomRight -
        topLeft -
        2 * (luma[up + x] as number) -
        topRight;
      if (gx * gx + gy * gy > limitSquared) edges++;
    }
  }
  return edges / pixels;
}

/**
 * Up to 5 dominant colours: pixels are grouped by the top 3 bits of each channel, groups covering at least
 * 2 % of the pixels (always the largest) are reported as their mean colour, most pixels first.
 */
export function dominantColors(image: RgbImage, max = 5): string[] {
  const pixels = image.width * image.height;
  if (pixels === 0) return [];
  const counts = new Uint32Array(512);
  const sums = new Float64Array(512 * 3);
  const { data } = image;
  for (let p = 0; p < pixels; p++) {
    const r = data[p * 3] as number;
    const g = data[p * 3 + 1] as number;
    const b = data[p * 3 + 2] as number;
    const bucket = ((r >> 5) << 6) | ((g >> 5) << 3) | (b >> 5);
    counts[bucket] = (counts[bucket] as number) + 1;
    sums[bucket * 3] = (sums[bucket * 3] as number) + r;
    sums[bucket * 3 + 1] = (sums[bucket * 3 + 1] as number) + g;
    sums[bucket * 3 + 2] = (sums[bucket * 3 + 2] as number) + b;
  }
  const buckets = [...counts.keys()].filter((bucket) => (counts[bucket] as number) > 0);
  // Stable sort: equal counts keep bucket order, so the result is deterministic.
  buckets.sort((a, b) => (counts[b] as number) - (counts[a] as number));
  const minimum = pixels * 0.02;
  return buckets
    .filter((bucket, index) => index === 0 || (counts[bucket] as number) >= minimum)
    .slice(0, max)
    .map((bucket) => {
      const count = counts[bucket] as number;
      const hex = [0, 1, 2].map((c) =>
        Math.round((sums[bucket * 3 + c] as number) / count)
          .toString(16)
          .padStart(2, '0'),
      );
      return `#${hex.join('')}`;
    });
}

// ---- EXIF (TIFF structure inside the APP1/eXIf payload sharp returns) ----

const IFD0_TAGS: Record<number, string> = { 271: 'Make', 272: 'Model', 274: 'Orientation' };
const EXIF_TAGS: Record<number, string> = {
  36867: 'DateTimeOriginal',
  33434: 'ExposureTime',
  33437: 'FNumber',
  34855: 'ISO',
  37386: 'FocalLength',
};
const EXIF_IFD_POINTER = 0x8769;
const GPS_IFD_POINTER = 0x8825;
const TYPE_SIZES: Record<number, number> = {
  1: 1,
  2: 1,
  3: 2,
  4: 4,
  5: 8,
  6: 1,
  7: 1,
  8: 2,
  9: 4,
  10: 8,
  11: 4,
  12: 8,
};

type TagValue = string | number[];

/** The selected tags of a raw EXIF block; malformed blocks yield what could be read (never throw). */
export function selectExif(raw: Buffer): Record<string, string | number> {
  const out: Record<string, string | number> = {};
  try {
    const tiffStart = raw.subarray(0, 6).toString('latin1') === 'Exif\0\0' ? 6 : 0;
    const tiff = raw.subarray(tiffStart);
    const order = tiff.subarray(0, 2).toString('latin1');
    if (order !== 'II' && order !== 'MM') return out;
    const little = order === 'II';
    const u16 = (offset: number) => (little ? tiff.readUInt16LE(offset) : tiff.readUInt16BE(offset));
    const u32 = (offset: number) => (little ? tiff.readUInt32LE(offset) : tiff.readUInt32BE(offset));
    const i32 = (offset: number) => (little ? tiff.readInt32LE(offset) : tiff.readInt32BE(offset));

    const readIfd = (offset: number): Map<number, TagValue> => {
      const tags = new Map<number, TagValue>();
      if (offset <= 0 || offset + 2 > tiff.length) return tags;
      const count = u16(offset);
      for (let i = 0; i < count; i++) {
        const entry = offset + 2 + i * 12;
        if (entry + 12 > tiff.length) break;
        const tag = u16(entry);
        const type = u16(entry + 2);
        const n = u32(entry + 4);
        const size = (TYPE_SIZES[type] ?? 0) * n;
        if (size === 0 || n > 1024) continue;
        const at = size <= 4 ? entry + 8 : u32(entry + 8);
        if (at + size > tiff.length) continue;
        if (type === 2) {
          tags.set(
            tag,
            tiff
              .subarray(at, at + n)
              .toString('latin1')
              .replace(/\0.*$/s, '')
              .trim(),
          );
          continue;
        }
        const values: number[] = [];
        for (let k = 0; k < n; k++) {
          if (type === 3) values.push(u16(at + k * 2));
          else if (type === 4) values.push(u32(at + k * 4));
          else if (type === 9) values.push(i32(at + k * 4));
          else if (type === 5) values.push(u32(at + k * 8) / u32(at + k * 8 + 4));
          else if (type === 10) values.push(i32(at + k * 8) / i32(at + k * 8 + 4));
          else if (type === 1 || type === 7) values.push(tiff[at + k] as number);
        }
        tags.set(tag, values);
      }
      return tags;
    };

    const copy = (tags: Map<number, TagValue>, names: Record<number, string>) => {
      for (const [tag, name] of Object.entries(names)) {
        const value = tags.get(Number(tag));
        if (typeof value === 'string') {
          if (value !== '') out[name] = value;
        } else if (value && value.length > 0 && Number.isFinite(value[0])) {
          out[name] = roundTo(value[0] as number, 6);
        }
      }
    };

    const ifd0 = readIfd(u32(4));
    copy(ifd0, IFD0_TAGS);
    const exifPointer = ifd0.get(EXIF_IFD_POINTER);
    if (Array.isArray(exifPointer) && exifPointer[0] !== undefined) copy(readIfd(exifPointer[0]), EXIF_TAGS);
    const gpsPointer = ifd0.get(GPS_IFD_POINTER);
    if (Array.isArray(gpsPointer) && gpsPointer[0] !== undefined) {
      const gps = readIfd(gpsPointer[0]);
      const latitude = decimalDegrees(gps.get(2), gps.get(1), 'S');
      const longitude = decimalDegrees(gps.get(4), gps.get(3), 'W');
      if (latitude !== null) out.GPSLatitude = latitude;
      if (longitude !== null) out.GPSLongitude = longitude;
    }
  } catch {
    // A truncated EXIF block keeps the tags read so far.
  }
  return out;
}

function decimalDegrees(
  value: TagValue | undefined,
  ref: TagValue | undefined,
  negative: string,
): number | null {
  if (!Array.isArray(value) || value.length === 0 || !value.every(Number.isFinite)) return null;
  const [degrees = 0, minutes = 0, seconds = 0] = value;
  const magnitude = degrees + minutes / 60 + seconds / 3600;
  const sign = typeof ref === 'string' && ref.toUpperCase().startsWith(negative) ? -1 : 1;
  return roundTo(sign * magnitude, 7);
}

function roundTo(value: number, digits: number): number {
  const factor = 10 ** digits;
  return Math.round(value * factor) / factor;
}

/** The input sharp can read: BMP (no loader in sharp's libvips) is decoded to PNG first, after its size check. */
async function decodableInput(
  source: string | Buffer,
  limits: ImageLimits,
): Promise<{ input: string | Buffer; bmp: boolean }> {
  let head: Buffer;
  if (typeof source === 'string') {
    const { open } = await import('node:fs/promises');
    let handle: Awaited<ReturnType<typeof open>>;
    try {
      handle = await open(source, 'r');
    } catch {
      // Not readable: sharp reports it (as a transient read failure) below.
      return { input: source, bmp: false };
    }
    try {
      head = Buffer.alloc(26);
      await handle.read(head, 0, 26, 0);
    } finally {
      await handle.close();
    }
  } else head = source.subarray(0, 26);
  if (!isBmp(head)) return { input: source, bmp: false };
  const { width, height } = bmpDimensions(head);
  if (width * height > limits.maxPixels)
    throw new PermanentProcessingError(
      `image has ${width * height} pixels, more than the limit of ${limits.maxPixels}`,
    );
  const bytes =
    typeof source === 'string' ? await (await import('node:fs/promises')).readFile(source) : source;
  return { input: await bmpToPng(bytes), bmp: true };
}
