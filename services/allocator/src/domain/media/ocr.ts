// OCR of images that look like text (spec §3.6.8): tesseract.js with the `eng` data shipped in the
// @tesseract.js-data/eng package, read from disk — the engine never downloads anything and writes no cache.

import { access } from 'node:fs/promises';
import { createRequire } from 'node:module';
import path from 'node:path';
import Tesseract from 'tesseract.js';

export interface OcrWord {
  word: string;
  x: number;
  y: number;
  width: number;
  height: number;
  confidence: number;
}

export interface OcrResult {
  /** kept words, a space between words of a line, a newline between lines */
  text: string;
  /** mean confidence (0–100) of the kept words, 0 when none */
  confidence: number;
  wordCount: number;
  words: OcrWord[];
}

export interface OcrEngine {
  recognize(image: Buffer): Promise<OcrResult>;
  close(): Promise<void>;
}

/** Words below this confidence (0–100) are dropped. */
export const OCR_MIN_WORD_CONFIDENCE = 60;
export const OCR_MIN_EDGE_DENSITY = 0.02;
export const OCR_MAX_EDGE_DENSITY = 0.5;
const LANGUAGE = 'eng';

/** Whether an image with this edge density is worth OCR (0.02 ≤ d ≤ 0.5). */
export function shouldOcr(edgeDensity: number): boolean {
  return edgeDensity >= OCR_MIN_EDGE_DENSITY && edgeDensity <= OCR_MAX_EDGE_DENSITY;
}

/** Directory holding `eng.traineddata.gz` for the LSTM engine, inside the installed data package. */
export function englishDataDirectory(): string {
  const packageMain = createRequire(import.meta.url).resolve('@tesseract.js-data/eng');
  // `4.0.0_best_int` is the LSTM-only model tesseract.js itself picks for its default engine mode.
  return path.join(path.dirname(packageMain), '4.0.0_best_int');
}

/** tesseract.js with the `eng` data of the @tesseract.js-data/eng package (never downloaded), lazily started, one worker. */
export function createOcrEngine(): OcrEngine {
  let worker: Promise<Tesseract.Worker> | null = null;
  // One worker runs one recognition at a time; calls queue behind each other.
  let queue: Promise<unknown> = Promise.resolve();

  const start = async (): Promise<Tesseract.Worker> => {
    const langPath = englishDataDirectory();
    const dataFile = path.join(langPath, `${LANGUAGE}.traineddata.gz`);
    // tesseract.js never settles its start-up promise when the language file cannot be read, so check first.
    try {
      await access(dataFile);
    } catch {
      throw new Error(`OCR language data not found at ${dataFile}`);
    }
    const created = await Tesseract.createWorker(LANGUAGE, Tesseract.OEM.LSTM_ONLY, {
      langPath,
      gzip: true,
      cacheMethod: 'none',
      // Without a handler, a failed job is rethrown inside the message listener and crashes the process;
      // the job's own promise rejects anyway.
      errorHandler: () => {},
      logger: () => {},
    });
    // Images without a resolution tag make the engine print "Invalid resolution" warnings on stdout, which
    // would break the one-JSON-object-per-line log stream: a fixed DPI keeps it quiet.
    await created.setParameters({ user_defined_dpi: '300' });
    return created;
  };

  const workerOnce = (): Promise<Tesseract.Worker> => {
    if (worker === null) {
      const starting = start();
      worker = starting;
      starting.catch(() => {
        if (worker === starting) worker = null; // the next call tries again
      });
    }
    return worker;
  };

  const run = async (image: Buffer): Promise<OcrResult> => {
    const ready = await workerOnce();
    try {
      const result = await ready.recognize(image, {}, { text: true, blocks: true });
      return collectWords(result.data);
    } catch (error) {
      // tesseract.js rejects with plain strings.
      throw error instanceof Error ? error : new Error(`OCR failed: ${String(error)}`);
    }
  };

  return {
    recognize(image: Buffer): Promise<OcrResult> {
      const job = queue.then(
        () => run(image),
        () => run(image),
      );
      queue = job.catch(() => undefined);
      return job;
    },
    close(): Promise<void> {
      // Queued behind the pending recognitions, so they finish first; a later call starts a fresh worker.
      const closing = queue.then(async () => {
        const current = worker;
        worker = null;
        if (current === null) return;
        try {
          await (await current).terminate();
        } catch {
          // A worker that never started has nothing to terminate.
        }
      });
      queue = closing;
      return closing;
    },
  };
}

function collectWords(page: Tesseract.Page): OcrResult {
  const words: OcrWord[] = [];
  const lines: string[] = [];
  for (const block of page.blocks ?? []) {
    for (const paragraph of block.paragraphs) {
      for (const line of paragraph.lines) {
        const kept: string[] = [];
        for (const word of line.words) {
          const text = word.text.trim();
          if (text === '' || word.confidence < OCR_MIN_WORD_CONFIDENCE) continue;
          kept.push(text);
          words.push({
            word: text,
            x: word.bbox.x0,
            y: word.bbox.y0,
            width: word.bbox.x1 - word.bbox.x0,
            height: word.bbox.y1 - word.bbox.y0,
            confidence: Math.round(word.confidence * 100) / 100,
          });
        }
        if (kept.length > 0) lines.push(kept.join(' '));
      }
    }
  }
  const confidence =
    words.length === 0 ? 0 : words.reduce((sum, word) => sum + word.confidence, 0) / words.length;
  return {
    text: lines.join('\n'),
    confidence: Math.round(confidence * 100) / 100,
    wordCount: words.length,
    words,
  };
}
