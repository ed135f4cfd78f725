import sharp from 'sharp';
import { describe, expect, it } from 'vitest';
import { colourNameOf, heuristicLabels } from '../../src/domain/media/heuristic-labels.js';
import { analyseImage, type RgbImage } from '../../src/domain/media/image.js';

type Rgb = [number, number, number];

/** A 64×64 image of horizontal bands: [colour, number of rows] from the top. */
function bands(...rows: [Rgb, number][]): RgbImage {
  const data = new Uint8Array(64 * 64 * 3);
  let y = 0;
  for (const [colour, count] of rows) {
    for (let r = 0; r < count; r++, y++) {
      for (let x = 0; x < 64; x++) data.set(colour, (y * 64 + x) * 3);
    }
  }
  expect(y).toBe(64);
  return { data, width: 64, height: 64 };
}

describe('colourNameOf', () => {
  it('names black, white and gray by value and saturation', () => {
    expect(colourNameOf(50, 50, 50)).toBe('black'); // V 0.196 < 0.2
    expect(colourNameOf(0, 0, 40)).toBe('black'); // saturated, but V < 0.2
    expect(colourNameOf(52, 52, 52)).toBe('gray'); // V 0.204
    expect(colourNameOf(200, 200, 200)).toBe('gray'); // V 0.784 ≤ 0.8
    expect(colourNameOf(210, 205, 205)).toBe('white'); // S 0.024, V 0.824
    expect(colourNameOf(255, 255, 255)).toBe('white');
  });

  it('names saturated pixels by hue range, lower bounds inclusive', () => {
    expect(colourNameOf(255, 0, 0)).toBe('red'); // 0°
    expect(colourNameOf(240, 56, 0)).toBe('red'); // 14°
    expect(colourNameOf(240, 60, 0)).toBe('orange'); // 15°
    expect(colourNameOf(240, 180, 0)).toBe('yellow'); // 45°
    expect(colourNameOf(240, 240, 0)).toBe('yellow'); // 60°
    expect(colourNameOf(0, 255, 0)).toBe('green'); // 120°
    expect(colourNameOf(0, 240, 200)).toBe('cyan'); // 170°
    expect(colourNameOf(0, 0, 255)).toBe('blue'); // 240°
    expect(colourNameOf(160, 0, 240)).toBe('purple'); // 280°
    expect(colourNameOf(240, 0, 200)).toBe('pink'); // 310°
    expect(colourNameOf(240, 0, 64)).toBe('pink'); // 344°
    expect(colourNameOf(240, 0, 60)).toBe('red'); // 345°
  });
});

describe('heuristicLabels', () => {
  it('labels a pure red landscape image', () => {
    const labels = heuristicLabels(bands([[255, 0, 0], 64]), {
      width: 640,
      height: 480,
      kind: 'image',
      ocrWordCount: 0,
    });
    expect(labels).toEqual({
      primaryCategory: 'red',
      tags: ['red', 'bright', 'landscape', 'image'],
      suggestedClusterName: 'Red Images',
      sceneType: 'bright landscape',
      description: 'red, bright, landscape image',
    });
  });

  it('labels a decoded red JPEG the same way', async () => {
    const jpeg = await sharp({ create: { width: 640, height: 480, channels: 3, background: '#ff0000' } })
      .jpeg()
      .toBuffer();
    const analysed = await analyseImage(jpeg, { maxPixels: 100_000_000, maxSize: 1024 });
    const labels = heuristicLabels(analysed.small, {
      width: analysed.width,
      height: analysed.height,
      kind: 'image',
      ocrWordCount: 0,
    });
    expect(labels.tags).toEqual(['red', 'bright', 'landscape', 'image']);
    expect(labels.suggestedClusterName).toBe('Red Images');
  });

  it('keeps colours covering at least 15 % of the pixels, by coverage, and no brightness tag in between', () => {
    // blue 26/64 rows, gray 22, green 9 (14.1 % < 15 %), black 7. Mean V = (26 + 22·128/255 + 9·200/255)/64 ≈ 0.69.
    const small = bands([[0, 0, 255], 26], [[128, 128, 128], 22], [[0, 200, 0], 9], [[0, 0, 0], 7]);
    const labels = heuristicLabels(small, { width: 480, height: 640, kind: 'video', ocrWordCount: 2 });
    expect(labels).toEqual({
      primaryCategory: 'blue',
      tags: ['blue', 'gray', 'portrait', 'video'],
      suggestedClusterName: 'Blue Videos',
      sceneType: 'portrait',
      description: 'blue, gray, portrait video',
    });
  });

  it('includes a colour at exactly 15 % coverage', () => {
    // 15 % of 4096 pixels is 614.4: 10 rows (640 px) qualify, 9 rows (576 px) do not.
    const small = bands([[255, 255, 0], 10], [[0, 0, 255], 54]);
    expect(
      heuristicLabels(small, { width: 100, height: 100, kind: 'image', ocrWordCount: 0 }).tags.slice(0, 2),
    ).toEqual(['blue', 'yellow']);
  });

  it('orders equal coverage deterministically and tags text from 3 OCR words', () => {
    const small = bands([[255, 255, 255], 32], [[0, 0, 0], 32]);
    const labels = heuristicLabels(small, { width: 500, height: 500, kind: 'audio', ocrWordCount: 3 });
    expect(labels).toEqual({
      primaryCategory: 'black',
      tags: ['black', 'white', 'square', 'audio', 'text'],
      suggestedClusterName: 'Black Audio',
      sceneType: 'text',
      description: 'black, white, square audio with text',
    });
  });

  it('tags dark images and uses the aspect ratio thresholds of 1.2', () => {
    const navy = bands([[0, 0, 40], 64]); // V 0.157: named black, mean V ≤ 0.25
    expect(heuristicLabels(navy, { width: 120, height: 100, kind: 'image', ocrWordCount: 0 }).tags).toEqual([
      'black',
      'dark',
      'landscape',
      'image',
    ]);
    expect(heuristicLabels(navy, { width: 119, height: 100, kind: 'image', ocrWordCount: 0 }).tags).toContain(
      'square',
    );
    expect(heuristicLabels(navy, { width: 100, height: 120, kind: 'image', ocrWordCount: 0 }).tags).toContain(
      'portrait',
    );
  });

  it('falls back to the kind as primary category when no colour reaches 15 %', () => {
    // Eight hues of 8 rows each: 12.5 % apiece. Mean V = 1 → bright.
    const hues: Rgb[] = [
      [255, 0, 0],
      [255, 128, 0],
      [255, 255, 0],
      [0, 255, 0],
      [0, 255, 255],
      [0, 0, 255],
      [160, 0, 255],
      [255, 0, 200],
    ];
    const small = bands(...hues.map((hue): [Rgb, number] => [hue, 8]));
    const labels = heuristicLabels(small, { width: 64, height: 64, kind: 'image', ocrWordCount: 0 });
    expect(labels.primaryCategory).toBe('image');
    expect(labels.tags).toEqual(['bright', 'square', 'image']);
    expect(labels.suggestedClusterName).toBe('Image Images');
  });
});
