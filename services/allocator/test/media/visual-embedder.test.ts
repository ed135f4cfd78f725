import sharp from 'sharp';
import { describe, expect, it } from 'vitest';
import { analyseImage, type RgbImage } from '../../src/domain/media/image.js';
import {
  BUILTIN_VISUAL_MODEL,
  cosine,
  embedSmallImage,
  l2Normalise,
  VISUAL_DIMENSION,
} from '../../src/domain/media/visual-embedder.js';

const LIMITS = { maxPixels: 100_000_000, maxSize: 1024 };
const CLUSTER_THRESHOLD = 0.72; // default of §3.3

type Rgb = [number, number, number];

function random(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (Math.imul(state, 1664525) + 1013904223) >>> 0;
    return state / 2 ** 32;
  };
}

function image(pixel: (x: number, y: number) => Rgb, size = 64): RgbImage {
  const data = new Uint8Array(size * size * 3);
  for (let y = 0; y < size; y++) {
    for (let x = 0; x < size; x++) {
      const rgb = pixel(x, y).map((v) => Math.max(0, Math.min(255, Math.round(v))));
      data.set(rgb, (y * size + x) * 3);
    }
  }
  return { data, width: size, height: size };
}

function withNoise(pixel: (x: number, y: number) => Rgb, amplitude: number, seed: number) {
  const next = random(seed);
  return (x: number, y: number): Rgb =>
    pixel(x, y).map((v) => v + Math.round((next() * 2 - 1) * amplitude)) as Rgb;
}

async function jpegOf(img: RgbImage): Promise<Buffer> {
  return sharp(img.data, { raw: { width: img.width, height: img.height, channels: 3 } })
    .jpeg({ quality: 95 })
    .toBuffer();
}

async function embeddingOfFile(img: RgbImage): Promise<Float32Array> {
  return embedSmallImage((await analyseImage(await jpegOf(img), LIMITS)).small);
}

function norm(v: ArrayLike<number>): number {
  let sum = 0;
  for (let i = 0; i < v.length; i++) sum += (v[i] as number) ** 2;
  return Math.sqrt(sum);
}

// Smooth patterns with saturation ≥ 0.3 everywhere.
const warmGradient = (x: number, y: number): Rgb => [200 - x, 60 + y, 40 + x / 2];
const wave = (x: number, y: number) => 0.5 + 0.5 * Math.sin((x + y) / 10);

describe('builtin-visual-v1', () => {
  it('is named and sized as the spec says', () => {
    expect(BUILTIN_VISUAL_MODEL).toBe('builtin-visual-v1');
    expect(VISUAL_DIMENSION).toBe(512);
    const embedding = embedSmallImage(image(warmGradient));
    expect(embedding).toBeInstanceOf(Float32Array);
    expect(embedding.length).toBe(512);
    expect(norm(embedding)).toBeCloseTo(1, 6);
    expect(embedSmallImage(image(warmGradient))).toEqual(embedding);
  });

  it('computes the exact colour and layout blocks of a uniform pure red image', () => {
    const embedding = embedSmallImage(image(() => [255, 0, 0]));
    // H = 0 lies halfway between the centres of hue bins 15 and 0; S = V = 1 go wholly to bin 3.
    // Colour block: √½ at index 15·16+3·4+3 = 255 and at 0·16+15 = 15. Texture block: zero (no edges).
    const colourWeight = Math.sqrt(0.55 / 0.85);
    const layoutWeight = Math.sqrt(0.3 / 0.85);
    for (let i = 0; i < 256; i++) {
      expect(embedding[i]).toBeCloseTo(i === 15 || i === 255 ? colourWeight * Math.SQRT1_2 : 0, 6);
    }
    // CIELAB of sRGB red (D65): L 53.2408, a 80.0925, b 67.2032; every one of the 64 cells the same.
    const cell = [(53.2408 - 50) / 50, 80.0925 / 128, 67.2032 / 128];
    const cellNorm = norm(cell);
    for (let c = 0; c < 64; c++) {
      for (let k = 0; k < 3; k++) {
        expect(embedding[256 + c * 3 + k]).toBeCloseTo(
          (layoutWeight * (cell[k] as number)) / (8 * cellNorm),
          4,
        );
      }
    }
    for (let i = 448; i < 512; i++) expect(embedding[i]).toBe(0);
  });

  it('puts a vertical edge in orientation bin 0 and a horizontal edge in bin 2 of the cells it crosses', () => {
    const vertical = embedSmallImage(image((x) => (x < 32 ? [0, 0, 0] : [255, 255, 255])));
    const horizontal = embedSmallImage(image((_x, y) => (y < 32 ? [0, 0, 0] : [255, 255, 255])));
    // The edge runs along columns 31/32 (cell columns 1 and 2) or rows 31/32 (cell rows 1 and 2): 8 equal
    // entries of 1/√8 in the texture block, weighted by √0.15.
    const expected = Math.sqrt(0.15) / Math.sqrt(8);
    const verticalIndices = new Set<number>();
    const horizontalIndices = new Set<number>();
    for (let other = 0; other < 4; other++) {
      for (const middle of [1, 2]) {
        verticalIndices.add(448 + (other * 4 + middle) * 4 + 0);
        horizontalIndices.add(448 + (middle * 4 + other) * 4 + 2);
      }
    }
    for (let i = 448; i < 512; i++) {
      expect(vertical[i]).toBeCloseTo(verticalIndices.has(i) ? expected : 0, 6);
      expect(horizontal[i]).toBeCloseTo(horizontalIndices.has(i) ? expected : 0, 6);
    }
  });

  it('needs a 64×64 image', () => {
    expect(() => embedSmallImage(image(warmGradient, 32))).toThrow(/64×64/);
  });

  describe('P1: saturation ≥ 0.3, every channel within 8 levels → cosine ≥ 0.95', () => {
    it('holds for the same pattern shifted by up to 8 levels per channel', () => {
      const base = embedSmallImage(image(warmGradient));
      const shifts: Rgb[] = [
        [8, 8, 8],
        [-8, -8, -8],
        [8, -5, 3],
        [-8, 8, 0],
      ];
      for (const shift of shifts) {
        const moved = embedSmallImage(
          image((x, y) => warmGradient(x, y).map((v, c) => v + (shift[c] as number)) as Rgb),
        );
        expect(cosine(base, moved)).toBeGreaterThanOrEqual(0.95);
      }
      const flat = embedSmallImage(image(() => [40, 170, 60]));
      expect(cosine(flat, embedSmallImage(image(() => [48, 162, 68])))).toBeGreaterThanOrEqual(0.95);
    });

    it('holds for per-pixel noise of ±8 on a patterned and on a uniform image', () => {
      const checker = (x: number, y: number): Rgb =>
        (Math.floor(x / 4) + Math.floor(y / 4)) % 2 ? [220, 60, 40] : [120, 200, 60];
      expect(
        cosine(embedSmallImage(image(checker)), embedSmallImage(image(withNoise(checker, 8, 1)))),
      ).toBeGreaterThanOrEqual(0.95);
      const green = (): Rgb => [40, 180, 60];
      const a = embedSmallImage(image(withNoise(green, 8, 2)));
      const b = embedSmallImage(image(withNoise(green, 8, 3)));
      expect(cosine(a, b)).toBeGreaterThanOrEqual(0.95);
    });

    it('holds for a smooth gradient with ±8 noise once decoded and resized to 64×64', async () => {
      const large = (x: number, y: number) => warmGradient(x / 10, y / 10);
      const clean = await embeddingOfFile(image(large, 640));
      const noisy = await embeddingOfFile(image(withNoise(large, 8, 4), 640));
      expect(cosine(clean, noisy)).toBeGreaterThanOrEqual(0.95);
    });
  });

  it('P2: the same smooth pattern in saturated red and in saturated blue → cosine ≤ 0.4', () => {
    const red = image((x, y) => [150 + 100 * wave(x, y), 10, 10]); // hue 0°
    const blue = image((x, y) => [10, 10 + 20 * wave(x, y), 150 + 100 * wave(x, y)]); // hue 235–240°
    expect(cosine(embedSmallImage(red), embedSmallImage(blue))).toBeLessThanOrEqual(0.4);
  });

  it('P3: a red gradient and a red checkerboard → cosine ≥ 0.8', () => {
    const gradient = image((x) => [255 - x, 0, 0]);
    const checkerboard = image((x, y) =>
      (Math.floor(x / 4) + Math.floor(y / 4)) % 2 ? [255, 0, 0] : [190, 0, 0],
    );
    expect(cosine(embedSmallImage(gradient), embedSmallImage(checkerboard))).toBeGreaterThanOrEqual(0.8);
  });
});

describe('clustering inputs (§8 items 11 and 12, with the default threshold 0.72)', () => {
  // §3.6.6: join the best cluster whose centroid similarity ≥ its threshold, else found a new one.
  function clusterCount(embeddings: Float32Array[]): number {
    const clusters: { centroid: Float32Array; members: number }[] = [];
    for (const e of embeddings) {
      let best: (typeof clusters)[number] | null = null;
      let bestSimilarity = -Infinity;
      for (const cluster of clusters) {
        const similarity = cosine(e, cluster.centroid);
        if (similarity >= CLUSTER_THRESHOLD && similarity > bestSimilarity) {
          best = cluster;
          bestSimilarity = similarity;
        }
      }
      if (best === null) {
        clusters.push({ centroid: e, members: 1 });
      } else {
        const n = best.members;
        best.centroid = l2Normalise(best.centroid.map((c, i) => (c * n + (e[i] as number)) / (n + 1)));
        best.members = n + 1;
      }
    }
    return clusters.length;
  }

  it('puts three green images differing only by ±6 noise in one cluster', async () => {
    const green = (): Rgb => [60, 170, 70];
    const embeddings = await Promise.all(
      [11, 12, 13].map((seed) => embeddingOfFile(image(withNoise(green, 6, seed), 320))),
    );
    for (let i = 0; i < 3; i++) {
      for (let j = i + 1; j < 3; j++) {
        expect(cosine(embeddings[i] as Float32Array, embeddings[j] as Float32Array)).toBeGreaterThanOrEqual(
          CLUSTER_THRESHOLD,
        );
      }
    }
    expect(clusterCount(embeddings)).toBe(1);
  });

  it('puts a green and a magenta image in two clusters', async () => {
    const green = await embeddingOfFile(image(() => [60, 170, 70], 320));
    const magenta = await embeddingOfFile(image(() => [200, 50, 200], 320));
    expect(cosine(green, magenta)).toBeLessThan(CLUSTER_THRESHOLD);
    expect(clusterCount([green, magenta])).toBe(2);
  });
});

describe('cosine and l2Normalise', () => {
  it('computes cosine similarity, 0 for a zero vector', () => {
    expect(cosine([1, 0], [0, 1])).toBe(0);
    expect(cosine([1, 2], [2, 4])).toBeCloseTo(1, 12);
    expect(cosine([1, 2], [-1, -2])).toBeCloseTo(-1, 12);
    expect(cosine([0, 0], [1, 1])).toBe(0);
    expect(() => cosine([1], [1, 2])).toThrow(/lengths differ/);
  });

  it('returns a unit-length copy and leaves zero vectors at zero', () => {
    const input = Float32Array.from([3, 4]);
    const unit = l2Normalise(input);
    expect([...unit]).toEqual([Math.fround(0.6), Math.fround(0.8)]);
    expect([...input]).toEqual([3, 4]);
    expect([...l2Normalise(new Float32Array(3))]).toEqual([0, 0, 0]);
  });
});
