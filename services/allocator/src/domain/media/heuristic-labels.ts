// The heuristic part of the offline fallback labeller (spec §3.6.7): tags from the colours, brightness and
// shape of the 64×64 image, the media kind and whether OCR found text. Used when no VLM answer is available.

import type { RgbImage } from './image.js';
import { rgbToHsv } from './visual-embedder.js';

export type MediaKind = 'image' | 'video' | 'audio';

export interface HeuristicLabels {
  primaryCategory: string;
  tags: string[];
  suggestedClusterName: string;
  sceneType: string;
  description: string;
}

/** Fraction of the pixels a colour must cover to become a tag. */
export const COLOUR_TAG_MIN_COVERAGE = 0.15;
/** OCR words needed for the `text` tag. */
export const TEXT_TAG_MIN_WORDS = 3;

// Fixed order, used to break coverage ties deterministically.
const COLOUR_NAMES = [
  'black',
  'white',
  'gray',
  'red',
  'orange',
  'yellow',
  'green',
  'cyan',
  'blue',
  'purple',
  'pink',
];

const KIND_PLURAL: Record<MediaKind, string> = { image: 'Images', video: 'Videos', audio: 'Audio' };

/** The colour name of one pixel: black / white / gray by value and saturation, otherwise by hue range. */
export function colourNameOf(r: number, g: number, b: number): string {
  const { h, s, v } = rgbToHsv(r, g, b);
  if (v < 0.2) return 'black';
  if (s < 0.2) return v > 0.8 ? 'white' : 'gray';
  if (h >= 345 || h < 15) return 'red';
  if (h < 45) return 'orange';
  if (h < 70) return 'yellow';
  if (h < 170) return 'green';
  if (h < 200) return 'cyan';
  if (h < 260) return 'blue';
  if (h < 290) return 'purple';
  return 'pink';
}

/** Fallback labels without CLIP: colour names ≥ 15 %, bright/dark, orientation, kind, text. */
export function heuristicLabels(
  small: RgbImage,
  input: { width: number; height: number; kind: MediaKind; ocrWordCount: number },
): HeuristicLabels {
  const pixels = small.width * small.height;
  const counts = new Map<string, number>(COLOUR_NAMES.map((name) => [name, 0]));
  let valueSum = 0;
  for (let p = 0; p < pixels; p++) {
    const r = small.data[p * 3] as number;
    const g = small.data[p * 3 + 1] as number;
    const b = small.data[p * 3 + 2] as number;
    const name = colourNameOf(r, g, b);
    counts.set(name, (counts.get(name) ?? 0) + 1);
    valueSum += Math.max(r, g, b) / 255;
  }
  const colours =
    pixels === 0
      ? []
      : COLOUR_NAMES.filter((name) => (counts.get(name) ?? 0) / pixels >= COLOUR_TAG_MIN_COVERAGE);
  // Array.prototype.sort is stable, so equal coverages keep the fixed colour order.
  colours.sort((a, b) => (counts.get(b) ?? 0) - (counts.get(a) ?? 0));

  const meanValue = pixels === 0 ? 0 : valueSum / pixels;
  const brightness = meanValue >= 0.75 ? 'bright' : meanValue <= 0.25 ? 'dark' : null;
  const orientation = orientationOf(input.width, input.height);
  const hasText = input.ocrWordCount >= TEXT_TAG_MIN_WORDS;

  const tags = [...colours];
  if (brightness !== null) tags.push(brightness);
  tags.push(orientation, input.kind);
  if (hasText) tags.push('text');

  const primaryCategory = colours[0] ?? input.kind;
  const shape = [brightness, orientation].filter((part): part is string => part !== null).join(' ');
  const descriptors = [...colours, ...(brightness === null ? [] : [brightness]), orientation].join(', ');
  return {
    primaryCategory,
    tags,
    suggestedClusterName: `${capitalise(primaryCategory)} ${KIND_PLURAL[input.kind]}`,
    sceneType: hasText ? 'text' : shape,
    description: `${descriptors} ${input.kind}${hasText ? ' with text' : ''}`,
  };
}

function orientationOf(width: number, height: number): 'landscape' | 'portrait' | 'square' {
  if (height > 0 && width / height >= 1.2) return 'landscape';
  if (width > 0 && height / width >= 1.2) return 'portrait';
  return 'square';
}

function capitalise(word: string): string {
  return word.charAt(0).toUpperCase() + word.slice(1);
}
