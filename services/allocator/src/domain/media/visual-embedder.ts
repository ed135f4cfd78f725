// The built-in visual embedder `builtin-visual-v1` (spec §3.6.2): a 512-d descriptor of a 64×64 image made of
// a soft-binned HSV colour histogram (256), a coarse CIELAB layout (192) and a Sobel orientation texture (64).
// It needs no model file, so the service clusters and de-duplicates images fully offline.

import type { RgbImage } from './image.js';

export const BUILTIN_VISUAL_MODEL = 'builtin-visual-v1';
export const VISUAL_DIMENSION = 512;

/** Side of the square input the embedder works on. */
export const EMBEDDER_INPUT_SIZE = 64;

const COLOUR_DIMS = 256;
const LAYOUT_DIMS = 192;
const TEXTURE_DIMS = 64;
const COLOUR_WEIGHT = Math.sqrt(0.55);
const LAYOUT_WEIGHT = Math.sqrt(0.3);
const TEXTURE_WEIGHT = Math.sqrt(0.15);
const HUE_BINS = 16;
const HUE_BIN_DEGREES = 360 / HUE_BINS;
const LEVEL_BINS = 4;
const TINY_NORM = 1e-9;

// sRGB companding, once per 8-bit level.
const SRGB_TO_LINEAR = (() => {
  const table = new Float64Array(256);
  for (let level = 0; level < 256; level++) {
    const c = level / 255;
    table[level] = c <= 0.04045 ? c / 12.92 : ((c + 0.055) / 1.055) ** 2.4;
  }
  return table;
})();

// D65 reference white.
const WHITE_X = 0.95047;
const WHITE_Y = 1.0;
const WHITE_Z = 1.08883;
const LAB_EPSILON = (6 / 29) ** 3;
const LAB_SLOPE = 1 / (3 * (6 / 29) ** 2);

function labF(t: number): number {
  return t > LAB_EPSILON ? Math.cbrt(t) : t * LAB_SLOPE + 4 / 29;
}

/** Embeds a 64×64 RGB image with `builtin-visual-v1`: an L2-normalised 512-d vector. */
export function embedSmallImage(small: RgbImage): Float32Array {
  const { width, height, data } = small;
  if (width !== EMBEDDER_INPUT_SIZE || height !== EMBEDDER_INPUT_SIZE) {
    throw new Error(`the visual embedder needs a 64×64 image, got ${width}×${height}`);
  }
  if (data.length !== width * height * 3) {
    throw new Error(`expected ${width * height * 3} bytes of packed RGB, got ${data.length}`);
  }
  const colour = colourHistogram(data);
  const layout = labLayout(data);
  const texture = sobelTexture(data);
  const out = new Float64Array(VISUAL_DIMENSION);
  for (let i = 0; i < COLOUR_DIMS; i++) out[i] = COLOUR_WEIGHT * (colour[i] ?? 0);
  for (let i = 0; i < LAYOUT_DIMS; i++) out[COLOUR_DIMS + i] = LAYOUT_WEIGHT * (layout[i] ?? 0);
  for (let i = 0; i < TEXTURE_DIMS; i++)
    out[COLOUR_DIMS + LAYOUT_DIMS + i] = TEXTURE_WEIGHT * (texture[i] ?? 0);
  normaliseInPlace(out);
  return Float32Array.from(out);
}

/** Cosine similarity of two vectors (0 when either is all zeros). */
export function cosine(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) throw new Error(`vector lengths differ: ${a.length} and ${b.length}`);
  let dot = 0;
  let normA = 0;
  let normB = 0;
  for (let i = 0; i < a.length; i++) {
    const x = a[i] as number;
    const y = b[i] as number;
    dot += x * y;
    normA += x * x;
    normB += y * y;
  }
  if (normA === 0 || normB === 0) return 0;
  return dot / Math.sqrt(normA * normB);
}

/** A new vector with the direction of `v` and unit length (all zeros when `v` is all zeros). */
export function l2Normalise(v: Float32Array): Float32Array {
  const out = Float64Array.from(v);
  normaliseInPlace(out);
  return Float32Array.from(out);
}

function normaliseInPlace(v: Float64Array): void {
  let sum = 0;
  for (let i = 0; i < v.length; i++) sum += (v[i] as number) ** 2;
  const norm = Math.sqrt(sum);
  if (norm < TINY_NORM) {
    v.fill(0);
    return;
  }
  for (let i = 0; i < v.length; i++) v[i] = (v[i] as number) / norm;
}

interface SoftBins {
  low: number;
  high: number;
  highWeight: number;
}

// Splits `value` linearly between the two nearest of `count` bin centres (i+½)/count of [0, 1]; values beyond
// the outer centres go wholly to the end bin.
function softLevelBins(value: number, count: number, out: SoftBins): void {
  const position = value * count - 0.5;
  if (position <= 0) {
    out.low = 0;
    out.high = 0;
    out.highWeight = 0;
  } else if (position >= count - 1) {
    out.low = count - 1;
    out.high = count - 1;
    out.highWeight = 0;
  } else {
    const low = Math.floor(position);
    out.low = low;
    out.high = low + 1;
    out.highWeight = position - low;
  }
}

// Hue centres are (i+½)·22.5°, and the histogram wraps around at 360°.
function softHueBins(hueDegrees: number, out: SoftBins): void {
  const position = hueDegrees / HUE_BIN_DEGREES - 0.5;
  const low = Math.floor(position);
  out.low = (low + HUE_BINS) % HUE_BINS;
  out.high = (low + 1) % HUE_BINS;
  out.highWeight = position - low;
}

/** HSV of 8-bit RGB: H in degrees [0, 360) (0 when grey), S = (max−min)/max, V = max, both in [0, 1]. */
export function rgbToHsv(r: number, g: number, b: number): { h: number; s: number; v: number } {
  const max = Math.max(r, g, b);
  const min = Math.min(r, g, b);
  const delta = max - min;
  const v = max / 255;
  const s = max === 0 ? 0 : delta / max;
  let h = 0;
  if (delta !== 0) {
    if (max === r) h = 60 * (((g - b) / delta + 6) % 6);
    else if (max === g) h = 60 * ((b - r) / delta + 2);
    else h = 60 * ((r - g) / delta + 4);
    if (h >= 360) h -= 360;
  }
  return { h, s, v };
}

function colourHistogram(data: Uint8Array): Float64Array {
  const histogram = new Float64Array(COLOUR_DIMS);
  const hue: SoftBins = { low: 0, high: 0, highWeight: 0 };
  const sat: SoftBins = { low: 0, high: 0, highWeight: 0 };
  const val: SoftBins = { low: 0, high: 0, highWeight: 0 };
  const pixels = data.length / 3;
  for (let p = 0; p < pixels; p++) {
    const { h, s, v } = rgbToHsv(data[p * 3] as number, data[p * 3 + 1] as number, data[p * 3 + 2] as number);
    softHueBins(h, hue);
    softLevelBins(s, LEVEL_BINS, sat);
    softLevelBins(v, LEVEL_BINS, val);
    const hueBins = [hue.low, hue.high];
    const hueWeights = [1 - hue.highWeight, hue.highWeight];
    const satBins = [sat.low, sat.high];
    const satWeights = [1 - sat.highWeight, sat.highWeight];
    const valBins = [val.low, val.high];
    const valWeights = [1 - val.highWeight, val.highWeight];
    for (let i = 0; i < 2; i++) {
      const wh = hueWeights[i] as number;
      if (wh === 0) continue;
      for (let j = 0; j < 2; j++) {
        const ws = satWeights[j] as number;
        if (ws === 0) continue;
        for (let k = 0; k < 2; k++) {
          const wv = valWeights[k] as number;
          if (wv === 0) continue;
          const index = (hueBins[i] as number) * 16 + (satBins[j] as number) * 4 + (valBins[k] as number);
          histogram[index] = (histogram[index] as number) + wh * ws * wv;
        }
      }
    }
  }
  // Sum 1, then square roots (the Hellinger embedding), then unit length.
  let total = 0;
  for (let i = 0; i < COLOUR_DIMS; i++) total += histogram[i] as number;
  for (let i = 0; i < COLOUR_DIMS; i++)
    histogram[i] = total > 0 ? Math.sqrt((histogram[i] as number) / total) : 0;
  normaliseInPlace(histogram);
  return histogram;
}

function labLayout(data: Uint8Array): Float64Array {
  const grid = 8;
  const cell = EMBEDDER_INPUT_SIZE / grid;
  const sums = new Float64Array(grid * grid * 3);
  for (let y = 0; y < EMBEDDER_INPUT_SIZE; y++) {
    const cellRow = Math.floor(y / cell);
    for (let x = 0; x < EMBEDDER_INPUT_SIZE; x++) {
      const offset = (y * EMBEDDER_INPUT_SIZE + x) * 3;
      const r = SRGB_TO_LINEAR[data[offset] as number] as number;
      const g = SRGB_TO_LINEAR[data[offset + 1] as number] as number;
      const b = SRGB_TO_LINEAR[data[offset + 2] as number] as number;
      const fx = labF((0.4124564 * r + 0.3575761 * g + 0.1804375 * b) / WHITE_X);
      const fy = labF((0.2126729 * r + 0.7151522 * g + 0.072175 * b) / WHITE_Y);
      const fz = labF((0.0193339 * r + 0.119192 * g + 0.9503041 * b) / WHITE_Z);
      const target = (cellRow * grid + Math.floor(x / cell)) * 3;
      sums[target] = (sums[target] as number) + (116 * fy - 16);
      sums[target + 1] = (sums[target + 1] as number) + 500 * (fx - fy);
      sums[target + 2] = (sums[target + 2] as number) + 200 * (fy - fz);
    }
  }
  const perCell = cell * cell;
  const layout = new Float64Array(LAYOUT_DIMS);
  for (let c = 0; c < grid * grid; c++) {
    layout[c * 3] = ((sums[c * 3] as number) / perCell - 50) / 50;
    layout[c * 3 + 1] = (sums[c * 3 + 1] as number) / perCell / 128;
    layout[c * 3 + 2] = (sums[c * 3 + 2] as number) / perCell / 128;
  }
  normaliseInPlace(layout);
  return layout;
}

/** Luma Y = 0.299R + 0.587G + 0.114B of packed RGB, on the 0–255 scale. */
export function lumaOf(data: Uint8Array, pixels: number): Float64Array {
  const luma = new Float64Array(pixels);
  for (let p = 0; p < pixels; p++) {
    luma[p] =
      0.299 * (data[p * 3] as number) +
      0.587 * (data[p * 3 + 1] as number) +
      0.114 * (data[p * 3 + 2] as number);
  }
  return luma;
}

function sobelTexture(data: Uint8Array): Float64Array {
  const size = EMBEDDER_INPUT_SIZE;
  const luma = lumaOf(data, size * size);
  const grid = 4;
  const cell = size / grid;
  const texture = new Float64Array(TEXTURE_DIMS);
  const last = size - 1;
  for (let y = 0; y < size; y++) {
    // Replicated edges: neighbours outside the image are clamped to the border row/column.
    const up = (y === 0 ? 0 : y - 1) * size;
    const row = y * size;
    const down = (y === last ? last : y + 1) * size;
    const cellRow = Math.floor(y / cell);
    for (let x = 0; x < size; x++) {
      const left = x === 0 ? 0 : x - 1;
      const right = x === last ? last : x + 1;
      const topLeft = luma[up + left] as number;
      const top = luma[up + x] as number;
      const topRight = luma[up + right] as number;
      const midLeft = luma[row + left] as number;
      const midRight = luma[row + right] as number;
      const bottomLeft = luma[down + left] as number;
      const bottom = luma[down + x] as number;
      const bottomRight = luma[down + right] as number;
      const gx = topRight + 2 * midRight + bottomRight - topLeft - 2 * midLeft - bottomLeft;
      const gy = bottomLeft + 2 * bottom + bottomRight - topLeft - 2 * top - topRight;
      const magnitude = Math.sqrt(gx * gx + gy * gy);
      if (magnitude === 0) continue;
      let theta = (Math.atan2(gy, gx) * 180) / Math.PI;
      theta = ((theta % 180) + 180) % 180;
      const bin = Math.round(theta / 45) % 4;
      const index = (cellRow * grid + Math.floor(x / cell)) * 4 + bin;
      texture[index] = (texture[index] as number) + magnitude;
    }
  }
  normaliseInPlace(texture);
  return texture;
}
