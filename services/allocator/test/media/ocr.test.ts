import { existsSync } from 'node:fs';
import path from 'node:path';
import sharp from 'sharp';
import { afterAll, describe, expect, it } from 'vitest';
import { analyseImage } from '../../src/domain/media/image.js';
import { createOcrEngine, englishDataDirectory, shouldOcr } from '../../src/domain/media/ocr.js';

function textImage(lines: string[], width = 900): Promise<Buffer> {
  const height = 60 + lines.length * 90;
  const text = lines
    .map(
      (line, i) =>
        `<text x="30" y="${100 + i * 90}" font-family="DejaVu Sans, sans-serif" font-size="64">${line}</text>`,
    )
    .join('');
  const svg = `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}"><rect width="100%" height="100%" fill="white"/><g fill="black">${text}</g></svg>`;
  return sharp(Buffer.from(svg)).png().toBuffer();
}

describe('shouldOcr', () => {
  it('accepts edge densities from 0.02 to 0.5 inclusive', () => {
    expect(shouldOcr(0.0199)).toBe(false);
    expect(shouldOcr(0.02)).toBe(true);
    expect(shouldOcr(0.25)).toBe(true);
    expect(shouldOcr(0.5)).toBe(true);
    expect(shouldOcr(0.5001)).toBe(false);
    expect(shouldOcr(0)).toBe(false);
  });
});

describe('createOcrEngine', () => {
  const engine = createOcrEngine();
  afterAll(async () => {
    await engine.close();
  });

  it('reads the packaged eng data from disk', () => {
    expect(existsSync(path.join(englishDataDirectory(), 'eng.traineddata.gz'))).toBe(true);
  });

  it('finds the words of large black text on white, with boxes and confidences', {
    timeout: 15_000,
  }, async () => {
    const png = await textImage(['Hello quick world', 'seven green apples']);
    const analysed = await analyseImage(png, { maxPixels: 100_000_000, maxSize: 1024 });
    expect(shouldOcr(analysed.edgeDensity)).toBe(true);

    const result = await engine.recognize(analysed.normalisedJpeg);
    expect(result.text).toBe('Hello quick world\nseven green apples');
    expect(result.words.map((w) => w.word)).toEqual(['Hello', 'quick', 'world', 'seven', 'green', 'apples']);
    expect(result.wordCount).toBe(6);
    expect(result.confidence).toBeGreaterThanOrEqual(60);
    for (const word of result.words) {
      expect(word.confidence).toBeGreaterThanOrEqual(60);
      expect(word.width).toBeGreaterThan(0);
      expect(word.height).toBeGreaterThan(20);
      expect(word.x + word.width).toBeLessThanOrEqual(900);
    }
    const [hello, quick, , seven] = result.words;
    expect(hello?.x).toBeLessThan(quick?.x as number); // left to right
    expect(hello?.y).toBeLessThan(seven?.y as number); // first line above the second
    // No cache file was written: the data is read from the package, never copied or downloaded.
    expect(existsSync(path.join(process.cwd(), 'eng.traineddata'))).toBe(false);
  });

  it('returns nothing for a blank image, and queues concurrent calls on its one worker', async () => {
    const blank = await sharp({ create: { width: 300, height: 200, channels: 3, background: '#ffffff' } })
      .png()
      .toBuffer();
    const words = await textImage(['Tiny test'], 500);
    const [empty, text] = await Promise.all([engine.recognize(blank), engine.recognize(words)]);
    expect(empty).toEqual({ text: '', confidence: 0, wordCount: 0, words: [] });
    expect(text.text).toBe('Tiny test');
  });

  it('rejects undecodable input with an Error and keeps working', async () => {
    await expect(engine.recognize(Buffer.from('no image in here'))).rejects.toThrow(
      /^OCR failed: .*read image/,
    );
    expect((await engine.recognize(await textImage(['Still fine'], 600))).text).toBe('Still fine');
  });

  it('starts again after close', async () => {
    const other = createOcrEngine();
    await other.close(); // never started: nothing to do
    const png = await textImage(['Ready again'], 600);
    expect((await other.recognize(png)).text).toBe('Ready again');
    await other.close();
    expect((await other.recognize(png)).text).toBe('Ready again');
    await other.close();
  });
});
