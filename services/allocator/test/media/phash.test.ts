import sharp from 'sharp';
import { describe, expect, it } from 'vitest';
import { analyseImage } from '../../src/domain/media/image.js';
import { hammingDistance, perceptualHashFromLuma32 } from '../../src/domain/media/phash.js';
import { cosine, embedSmallImage } from '../../src/domain/media/visual-embedder.js';

const LIMITS = { maxPixels: 100_000_000, maxSize: 1024 };
// Defaults of DEDUP_HAMMING_THRESHOLD and DEDUP_NEAR_MIN_SIMILARITY (§3.3): near duplicate ⇔ d < 5 and cos ≥ 0.9.
const DEDUP_HAMMING_THRESHOLD = 5;
const DEDUP_NEAR_MIN_SIMILARITY = 0.9;

function random(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (Math.imul(state, 1664525) + 1013904223) >>> 0;
    return state / 2 ** 32;
  };
}

/** A photo-like 640×480 image: smooth colour regions from an upscaled random 16×12 grid, plus fine grain. */
async function photoLike(seed: number): Promise<{ data: Buffer; width: number; height: number }> {
  const next = random(seed);
  const grid = Buffer.alloc(16 * 12 * 3);
  for (let i = 0; i < grid.length; i++) grid[i] = Math.floor(next() * 256);
  const data = await sharp(grid, { raw: { width: 16, height: 12, channels: 3 } })
    .resize({ width: 640, height: 480, kernel: 'cubic' })
    .raw()
    .toBuffer();
  for (let i = 0; i < data.length; i++) {
    data[i] = Math.max(0, Math.min(255, (data[i] as number) + Math.round(next() * 8 - 4)));
  }
  return { data, width: 640, height: 480 };
}

function png(
  image: { data: Buffer; width: number; height: number },
  compressionLevel: number,
): Promise<Buffer> {
  return sharp(image.data, { raw: { width: image.width, height: image.height, channels: 3 } })
    .png({ compressionLevel })
    .toBuffer();
}

/** Unnormalised inverse of the 2-D DCT-II for 32×32 with only the given 8×8 low-frequency coefficients. */
function lumaFromCoefficients(coefficients: number[]): Float64Array {
  const n = 32;
  const luma = new Float64Array(n * n);
  for (let y = 0; y < n; y++) {
    for (let x = 0; x < n; x++) {
      let sum = 0;
      for (let u = 0; u < 8; u++) {
        for (let v = 0; v < 8; v++) {
          const weight = (u === 0 ? 0.5 : 1) * (v === 0 ? 0.5 : 1);
          sum +=
            weight *
            (coefficients[u * 8 + v] as number) *
            Math.cos((Math.PI * (2 * y + 1) * u) / (2 * n)) *
            Math.cos((Math.PI * (2 * x + 1) * v) / (2 * n));
        }
      }
      luma[y * n + x] = (4 * sum) / (n * n);
    }
  }
  return luma;
}

function hexOfBits(bits: boolean[]): string {
  let hex = '';
  for (let i = 0; i < 64; i += 4) {
    hex += (bits.slice(i, i + 4).reduce((value, bit) => value * 2 + (bit ? 1 : 0), 0) as number).toString(16);
  }
  return hex;
}

describe('perceptualHashFromLuma32', () => {
  it('sets bit k (row-major over vertical × horizontal frequency, first bit most significant) when coefficient k > median', () => {
    // 64 distinct coefficients −31.5 … 31.5 in a scrambled order: the median is 0, so bit k = coefficient k > 0.
    const coefficients = Array.from({ length: 64 }, (_, k) => ((k * 37) % 64) - 31.5);
    expect(hexOfBits(coefficients.map((c) => c > 0))).toBe('54ad5a95ab52a56a');
    expect(perceptualHashFromLuma32(lumaFromCoefficients(coefficients))).toBe('54ad5a95ab52a56a');
    // The same coefficients transposed (vertical and horizontal frequencies swapped) give another hash.
    const transposed = coefficients.map((_, k) => coefficients[(k % 8) * 8 + Math.floor(k / 8)] as number);
    expect(perceptualHashFromLuma32(lumaFromCoefficients(transposed))).toBe('5aa54bb469d22d5a');
  });

  it('includes the DC coefficient in the bits and in the median', () => {
    // A large DC term sets the first bit and moves the median of the 64 from 0 to 1, clearing bit 32 (0.5).
    const coefficients = Array.from({ length: 64 }, (_, k) => (k === 0 ? 5000 : ((k * 37) % 64) - 31.5));
    expect(perceptualHashFromLuma32(lumaFromCoefficients(coefficients))).toBe('d4ad5a952b52a56a');
  });

  it('rejects anything but 1024 values', () => {
    expect(() => perceptualHashFromLuma32(new Float64Array(1023))).toThrow(/1024/);
  });
});

describe('hammingDistance', () => {
  it('counts differing bits', () => {
    expect(hammingDistance('0000000000000000', '0000000000000000')).toBe(0);
    expect(hammingDistance('ffffffffffffffff', '0000000000000000')).toBe(64);
    expect(hammingDistance('8000000000000001', '0000000000000000')).toBe(2);
    expect(hammingDistance('00000000000000F0', '00000000000000f0')).toBe(0);
    expect(hammingDistance('0123456789abcdef', 'fedcba9876543210')).toBe(64);
  });

  it('rejects malformed hashes', () => {
    expect(() => hammingDistance('abc', '0000000000000000')).toThrow(/16 hex/);
    expect(() => hammingDistance('000000000000000g', '0000000000000000')).toThrow(/16 hex/);
  });
});

describe('perceptual hash of analysed images (§8 item 14)', () => {
  it('is identical for the same pixels saved with another PNG compression level', async () => {
    const photo = await photoLike(7);
    const fast = await png(photo, 0);
    const small = await png(photo, 9);
    expect(fast.equals(small)).toBe(false);
    const [a, b] = await Promise.all([analyseImage(fast, LIMITS), analyseImage(small, LIMITS)]);
    expect(hammingDistance(a.perceptualHash, b.perceptualHash)).toBe(0);
    expect(cosine(embedSmallImage(a.small), embedSmallImage(b.small))).toBeGreaterThanOrEqual(
      DEDUP_NEAR_MIN_SIMILARITY,
    );
  });

  it('stays within the near-duplicate threshold for a copy resized to 90 %', async () => {
    const photo = await photoLike(11);
    const original = await png(photo, 6);
    const resized = await sharp(original).resize({ width: 576, height: 432 }).png().toBuffer();
    const [a, b] = await Promise.all([analyseImage(original, LIMITS), analyseImage(resized, LIMITS)]);
    expect(hammingDistance(a.perceptualHash, b.perceptualHash)).toBeLessThan(DEDUP_HAMMING_THRESHOLD);
    expect(cosine(embedSmallImage(a.small), embedSmallImage(b.small))).toBeGreaterThanOrEqual(
      DEDUP_NEAR_MIN_SIMILARITY,
    );
  });

  it('stays within the threshold after a JPEG re-encode', async () => {
    const photo = await photoLike(13);
    const original = await png(photo, 6);
    const jpeg = await sharp(original).jpeg({ quality: 80 }).toBuffer();
    const [a, b] = await Promise.all([analyseImage(original, LIMITS), analyseImage(jpeg, LIMITS)]);
    expect(hammingDistance(a.perceptualHash, b.perceptualHash)).toBeLessThan(DEDUP_HAMMING_THRESHOLD);
  });

  it('is far apart for unrelated images', async () => {
    const hashes = await Promise.all(
      [21, 22, 23].map(
        async (seed) => (await analyseImage(await png(await photoLike(seed), 6), LIMITS)).perceptualHash,
      ),
    );
    for (let i = 0; i < hashes.length; i++) {
      for (let j = i + 1; j < hashes.length; j++) {
        expect(hammingDistance(hashes[i] as string, hashes[j] as string)).toBeGreaterThan(16);
      }
    }
  });
});
