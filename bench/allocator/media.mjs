// Generated inputs of the allocator benchmarks: JPEGs (a ~200 KB upload, photo-like 640×480 frames, the eight
// colour/pattern families of the clustering benchmark with their exact and near duplicates) and H.264 clips.
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { join } from 'node:path';
import sharp from 'sharp';
import { seededRandom } from './words.mjs';

/** RGB (0..255) of a HSV colour (h in degrees, s and v in 0..1). */
export function hsvToRgb(h, s, v) {
  const hue = (((h % 360) + 360) % 360) / 60;
  const c = v * s;
  const x = c * (1 - Math.abs((hue % 2) - 1));
  const m = v - c;
  const [r, g, b] =
    hue < 1
      ? [c, x, 0]
      : hue < 2
        ? [x, c, 0]
        : hue < 3
          ? [0, c, x]
          : hue < 4
            ? [0, x, c]
            : hue < 5
              ? [x, 0, c]
              : [c, 0, x];
  return [Math.round((r + m) * 255), Math.round((g + m) * 255), Math.round((b + m) * 255)];
}

const clamp = (value) => Math.min(255, Math.max(0, value));

function encodeJpeg(pixels, width, height, quality) {
  return sharp(pixels, { raw: { width, height, channels: 3 } })
    .jpeg({ quality, chromaSubsampling: '4:2:0' })
    .toBuffer();
}

/** A JPEG of random-ish pixels whose size is close to `targetBytes` (quality searched). */
export async function jpegNearSize(targetBytes, width = 640, height = 480, seed = 7) {
  const random = seededRandom(seed);
  const pixels = Buffer.alloc(width * height * 3);
  // Random blocks of 2×2 pixels: noisy enough to weigh ~200 KB at a usual quality, not pure white noise.
  for (let y = 0; y < height; y += 2)
    for (let x = 0; x < width; x += 2) {
      const r = Math.floor(random() * 256);
      const g = Math.floor(random() * 256);
      const b = Math.floor(random() * 256);
      for (let dy = 0; dy < 2; dy++)
        for (let dx = 0; dx < 2; dx++) {
          const at = ((y + dy) * width + x + dx) * 3;
          pixels[at] = r;
          pixels[at + 1] = g;
          pixels[at + 2] = b;
        }
    }
  let low = 5;
  let high = 98;
  let best = null;
  while (low <= high) {
    const quality = (low + high) >> 1;
    const jpeg = await encodeJpeg(pixels, width, height, quality);
    if (best === null || Math.abs(jpeg.length - targetBytes) < Math.abs(best.length - targetBytes))
      best = jpeg;
    if (jpeg.length < targetBytes) low = quality + 1;
    else high = quality - 1;
  }
  return best;
}

/** A photo-like 640×480 JPEG: a two-colour gradient, a few filled shapes, sensor-like noise. */
export async function photoLikeJpeg(seed, width = 640, height = 480) {
  const random = seededRandom(seed * 7919 + 13);
  const from = hsvToRgb(random() * 360, 0.3 + random() * 0.6, 0.3 + random() * 0.7);
  const to = hsvToRgb(random() * 360, 0.3 + random() * 0.6, 0.3 + random() * 0.7);
  const angle = random() * Math.PI * 2;
  const ux = Math.cos(angle);
  const uy = Math.sin(angle);
  const shapes = Array.from({ length: 4 + Math.floor(random() * 5) }, () => ({
    cx: random() * width,
    cy: random() * height,
    rx: 20 + random() * 160,
    ry: 20 + random() * 120,
    ellipse: random() < 0.5,
    colour: hsvToRgb(random() * 360, random(), 0.2 + random() * 0.8),
  }));
  const pixels = Buffer.alloc(width * height * 3);
  const span = Math.abs(ux) * width + Math.abs(uy) * height;
  for (let y = 0; y < height; y++)
    for (let x = 0; x < width; x++) {
      let t = ((x - width / 2) * ux + (y - height / 2) * uy) / span + 0.5;
      t = Math.min(1, Math.max(0, t));
      let r = from[0] + (to[0] - from[0]) * t;
      let g = from[1] + (to[1] - from[1]) * t;
      let b = from[2] + (to[2] - from[2]) * t;
      for (const shape of shapes) {
        const dx = (x - shape.cx) / shape.rx;
        const dy = (y - shape.cy) / shape.ry;
        if (shape.ellipse ? dx * dx + dy * dy <= 1 : Math.abs(dx) <= 1 && Math.abs(dy) <= 1)
          [r, g, b] = shape.colour;
      }
      const noise = (random() - 0.5) * 32;
      const at = (y * width + x) * 3;
      pixels[at] = clamp(r + noise);
      pixels[at + 1] = clamp(g + noise);
      pixels[at + 2] = clamp(b + noise);
    }
  return encodeJpeg(pixels, width, height, 85);
}

/** The eight families of the clustering benchmark: pattern × base colour. */
export const FAMILIES = [
  { name: 'solid-red', pattern: 'solid', hue: 0, s: 0.85, v: 0.8 },
  { name: 'solid-teal', pattern: 'solid', hue: 175, s: 0.8, v: 0.7 },
  { name: 'gradient-orange', pattern: 'gradient', hue: 30, s: 0.9, v: 0.95 },
  { name: 'gradient-blue', pattern: 'gradient', hue: 225, s: 0.85, v: 0.9 },
  { name: 'checker-green-white', pattern: 'checker', hue: 120, s: 0.8, v: 0.75, other: [245, 245, 245] },
  { name: 'checker-magenta-black', pattern: 'checker', hue: 300, s: 0.85, v: 0.85, other: [12, 12, 12] },
  { name: 'stripes-yellow-black', pattern: 'stripes', hue: 55, s: 0.9, v: 0.9, other: [15, 15, 15] },
  { name: 'stripes-purple-white', pattern: 'stripes', hue: 270, s: 0.7, v: 0.7, other: [240, 240, 240] },
];

/**
 * Member `index` of a family (400×300 JPEG, quality 90): the base hue varied by up to ±8°, saturation and value
 * by a little, the pattern's geometry (gradient angle, cell size and offset, stripe width and angle) drawn at
 * random, and noise of ±10 levels.
 */
export async function familyMember(family, index, width = 400, height = 300) {
  const random = seededRandom(1000 * (FAMILIES.indexOf(family) + 1) + index);
  const hue = family.hue + (random() - 0.5) * 16;
  const main = hsvToRgb(
    hue,
    Math.min(1, family.s + (random() - 0.5) * 0.1),
    Math.min(1, family.v + (random() - 0.5) * 0.1),
  );
  const dark = hsvToRgb(hue, family.s, 0.2 + random() * 0.1);
  const other = family.other ?? main;
  const angle = random() * Math.PI * 2;
  const ux = Math.cos(angle);
  const uy = Math.sin(angle);
  const cell = 12 + Math.floor(random() * 48);
  const offsetX = Math.floor(random() * cell * 2);
  const offsetY = Math.floor(random() * cell * 2);
  const stripe = 8 + Math.floor(random() * 32);
  const span = Math.abs(ux) * width + Math.abs(uy) * height;
  const pixels = Buffer.alloc(width * height * 3);
  for (let y = 0; y < height; y++)
    for (let x = 0; x < width; x++) {
      let colour = main;
      if (family.pattern === 'gradient') {
        let t = ((x - width / 2) * ux + (y - height / 2) * uy) / span + 0.5;
        t = Math.min(1, Math.max(0, t));
        colour = [0, 1, 2].map((c) => main[c] + (dark[c] - main[c]) * t);
      } else if (family.pattern === 'checker') {
        const odd = (Math.floor((x + offsetX) / cell) + Math.floor((y + offsetY) / cell)) % 2 === 1;
        colour = odd ? other : main;
      } else if (family.pattern === 'stripes') {
        const along = x * ux + y * uy + offsetX;
        colour = Math.floor(along / stripe) % 2 === 0 ? main : other;
      }
      const at = (y * width + x) * 3;
      for (let c = 0; c < 3; c++) pixels[at + c] = clamp(colour[c] + (random() - 0.5) * 20);
    }
  return encodeJpeg(pixels, width, height, 90);
}

/** The same picture re-encoded at another JPEG quality (different bytes, same pixels to the eye). */
export function reencoded(jpeg, quality = 70) {
  return sharp(jpeg).jpeg({ quality }).toBuffer();
}

/** The picture resized to 90 % of its width and height. */
export async function resized90(jpeg) {
  const { width, height } = await sharp(jpeg).metadata();
  return sharp(jpeg)
    .resize(Math.round(width * 0.9), Math.round(height * 0.9))
    .jpeg({ quality: 90 })
    .toBuffer();
}

/** Runs ffmpeg; rejects with its stderr tail on failure. */
async function ffmpeg(args) {
  const child = spawn(process.env.FFMPEG_PATH || 'ffmpeg', args, { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (data) => {
    stderr = (stderr + data).slice(-2000);
  });
  const [code] = await once(child, 'exit');
  if (code !== 0) throw new Error(`ffmpeg exited ${code}: ${stderr}`);
}

/** `count` H.264 640×360 clips of `seconds` s (testsrc2, each with its own hue), two encodes at a time. */
export async function makeClips(dir, count, seconds = 10) {
  const paths = Array.from({ length: count }, (_, i) => join(dir, `clip-${String(i).padStart(3, '0')}.mp4`));
  let next = 0;
  const encodeNext = async () => {
    while (next < count) {
      const i = next++;
      await ffmpeg([
        '-hide_banner',
        '-loglevel',
        'error',
        '-f',
        'lavfi',
        '-i',
        `testsrc2=size=640x360:rate=25:duration=${seconds}`,
        '-vf',
        `hue=h=${(i * 360) / count}:s=${1 + (i % 3) * 0.3}`,
        '-c:v',
        'libx264',
        '-preset',
        'veryfast',
        '-pix_fmt',
        'yuv420p',
        '-movflags',
        '+faststart',
        '-y',
        paths[i],
      ]);
    }
  };
  await Promise.all([encodeNext(), encodeNext()]);
  return paths;
}
