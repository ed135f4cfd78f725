import { execFileSync } from 'node:child_process';
import { chmod, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PermanentProcessingError, TransientProcessingError } from '../../src/domain/errors.js';
import {
  processAudio,
  renderWaveform,
  WAVEFORM_HEIGHT,
  WAVEFORM_WIDTH,
  WaveformPeaks,
} from '../../src/domain/media/audio.js';
import { resolveFfmpegTools } from '../../src/domain/media/ffmpeg.js';

const tools = resolveFfmpegTools({});
let dir: string;

function ffmpeg(args: string[]): void {
  execFileSync('ffmpeg', ['-hide_banner', '-nostdin', '-v', 'error', '-y', ...args]);
}

async function decodeGrey(png: Buffer): Promise<{ pixels: Buffer; width: number; height: number }> {
  const { data, info } = await sharp(png).greyscale().raw().toBuffer({ resolveWithObject: true });
  return { pixels: data, width: info.width, height: info.height };
}

function blackRows(pixels: Uint8Array, width: number, height: number, column: number): number[] {
  const rows: number[] = [];
  for (let row = 0; row < height; row++) if (pixels[row * width + column] === 0) rows.push(row);
  return rows;
}

function range(from: number, to: number): number[] {
  return Array.from({ length: to - from }, (_, index) => from + index);
}

/** Little-endian s16 PCM of `samples`. */
function pcm(samples: number[]): Buffer {
  const buffer = Buffer.alloc(samples.length * 2);
  for (const [index, sample] of samples.entries()) buffer.writeInt16LE(sample, index * 2);
  return buffer;
}

function processIsGone(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return false;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'ESRCH';
  }
}

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'allocator-audio-'));
  ffmpeg([
    '-f',
    'lavfi',
    '-i',
    'sine=f=440:d=1:sample_rate=44100',
    '-c:a',
    'aac',
    '-b:a',
    '64k',
    join(dir, 'sine.m4a'),
  ]);
  // Silent first half, then a quiet (0.25 full scale) 2 kHz tone: peak normalisation draws it full height.
  ffmpeg([
    ...['-f', 'lavfi', '-i', 'aevalsrc=if(lt(t\\,1)\\,0\\,0.25*sin(2*PI*2000*t)):s=22050:d=2'],
    ...['-c:a', 'pcm_s16le', join(dir, 'half-silent.wav')],
  ]);
  ffmpeg(['-f', 'lavfi', '-i', 'testsrc2=s=64x48:r=10:d=1', '-c:v', 'libx264', join(dir, 'video-only.mp4')]);
  await writeFile(join(dir, 'garbage.mp3'), Buffer.from('definitely not audio'));
});

afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('processAudio', () => {
  it('reports ffprobe metadata and draws an 800×200 waveform PNG', async () => {
    const result = await processAudio(tools, join(dir, 'sine.m4a'));
    expect(result.metadata.duration).toBeCloseTo(1, 1);
    expect(result.metadata).toMatchObject({ codec: 'aac', sample_rate: 44100 });
    expect(result.metadata.bitrate).toBeGreaterThan(0);
    expect(result.waveformPng.subarray(0, 8).equals(Buffer.from([137, 80, 78, 71, 13, 10, 26, 10]))).toBe(
      true,
    );
    const { pixels, width, height } = await decodeGrey(result.waveformPng);
    expect([width, height]).toEqual([800, 200]);
    expect(pixels.includes(0)).toBe(true);
    expect(pixels.includes(255)).toBe(true);
    expect(pixels.every((value) => value === 0 || value === 255)).toBe(true);
  });

  it('draws silence as the centre line and the loudest part full height (peak-normalised)', async () => {
    const result = await processAudio(tools, join(dir, 'half-silent.wav'));
    expect(result.metadata).toMatchObject({ codec: 'pcm_s16le', sample_rate: 22050 });
    expect(result.metadata.duration).toBeCloseTo(2, 2);
    const { pixels, width, height } = await decodeGrey(result.waveformPng);
    // Column 399 is left out: it ends exactly at 1 s and may share a peak block with the first loud samples.
    for (const column of [0, 100, 398]) expect(blackRows(pixels, width, height, column)).toEqual([100]);
    // A 2 kHz tone sampled at 22 050 Hz peaks at ≥ 96 % of its amplitude in every ~28-sample column.
    for (const column of [402, 600, 799]) {
      const rows = blackRows(pixels, width, height, column);
      expect(rows[0]).toBeLessThanOrEqual(4);
      expect(rows.at(-1)).toBeGreaterThanOrEqual(195);
      expect(rows).toEqual(range(rows[0] as number, (rows.at(-1) as number) + 1));
    }
  });

  it('fails permanently on an unreadable file or one without audio', async () => {
    await expect(processAudio(tools, join(dir, 'garbage.mp3'))).rejects.toThrow(PermanentProcessingError);
    await expect(processAudio(tools, join(dir, 'garbage.mp3'))).rejects.toThrow(
      /^ffprobe cannot read the file: /,
    );
    await expect(processAudio(tools, join(dir, 'video-only.mp4'))).rejects.toThrow(
      new PermanentProcessingError('file has no audio stream'),
    );
  });

  it('fails permanently when ffmpeg cannot decode the audio', async () => {
    const failing = join(dir, 'failing-ffmpeg.sh');
    await writeFile(failing, '#!/bin/sh\necho "Error while decoding stream #0:0" >&2\nexit 1\n');
    await chmod(failing, 0o755);
    await expect(processAudio({ ...tools, ffmpeg: failing }, join(dir, 'sine.m4a'))).rejects.toThrow(
      new PermanentProcessingError('ffmpeg cannot decode the audio: Error while decoding stream #0:0'),
    );
  });

  it("fails transiently with 'ffmpeg is not available' when a binary is missing", async () => {
    const missing = join(dir, 'no-such-binary');
    await expect(
      processAudio({ ffmpeg: missing, ffprobe: tools.ffprobe }, join(dir, 'sine.m4a')),
    ).rejects.toThrow(new TransientProcessingError('ffmpeg is not available'));
    await expect(
      processAudio({ ffmpeg: tools.ffmpeg, ffprobe: missing }, join(dir, 'sine.m4a')),
    ).rejects.toThrow(new TransientProcessingError('ffmpeg is not available'));
  });

  it('kills the decoder when the signal aborts', async () => {
    const pidFile = join(dir, 'decoder.pid');
    const hanging = join(dir, 'hanging-ffmpeg.sh');
    await writeFile(hanging, `#!/bin/sh\necho $$ > '${pidFile}'\nexec sleep 30\n`);
    await chmod(hanging, 0o755);
    const controller = new AbortController();
    const outcome = processAudio({ ...tools, ffmpeg: hanging }, join(dir, 'sine.m4a'), {
      signal: controller.signal,
    }).then(
      () => null,
      (error: unknown) => error,
    );
    let pid = 0;
    while (!pid) {
      pid = Number(await readFile(pidFile, 'utf8').catch(() => '0'));
      if (!pid) await new Promise((resolve) => setTimeout(resolve, 20));
    }
    expect(processIsGone(pid)).toBe(false);
    controller.abort();
    const error = await outcome;
    expect((error as Error).name).toBe('AbortError');
    expect(processIsGone(pid)).toBe(true);
  });
});

describe('WaveformPeaks', () => {
  it('keeps per-column peaks of a long stream in constant memory', () => {
    const peaks = new WaveformPeaks();
    const total = 1_000_000;
    const chunk: number[] = [];
    for (let sample = 0; sample < total; sample++) {
      chunk.push(sample === 750_500 ? -20_000 : sample % 2 ? 100 : -100);
      if (chunk.length === 4096 || sample === total - 1) {
        peaks.pushPcm(pcm(chunk));
        chunk.length = 0;
      }
    }
    expect(peaks.sampleCount).toBe(total);
    const columns = peaks.columnPeaks(800);
    // Column 600 spans samples 750 000–751 249.
    expect(columns[600]).toBe(20_000);
    expect(columns[599]).toBe(100);
    expect(columns[601]).toBe(100);
    expect(columns.filter((value) => value === 100)).toHaveLength(799);
  });

  it('joins samples split across chunks and measures -32768 as 32768', () => {
    const bytes = pcm([1000, -32768, 5, 32767]);
    const split = new WaveformPeaks();
    for (const part of [bytes.subarray(0, 1), bytes.subarray(1, 4), bytes.subarray(4, 7), bytes.subarray(7)])
      split.pushPcm(part);
    expect(split.sampleCount).toBe(4);
    expect(Array.from(split.columnPeaks(4))).toEqual([1000, 32768, 5, 32767]);
    // Fewer samples than columns: each column shows the sample under it.
    expect(Array.from(split.columnPeaks(8))).toEqual([1000, 1000, 32768, 32768, 5, 5, 32767, 32767]);
  });
});

describe('renderWaveform', () => {
  it('draws centred black bars on white, scaled to the loudest column', () => {
    const pixels = renderWaveform(Float64Array.of(0, 50, 100), 3, 200);
    expect(blackRows(pixels, 3, 200, 0)).toEqual([100]);
    expect(blackRows(pixels, 3, 200, 1)).toEqual(range(50, 150));
    expect(blackRows(pixels, 3, 200, 2)).toEqual(range(0, 200));
    expect(pixels.filter((value) => value !== 0 && value !== 255)).toHaveLength(0);
    expect(renderWaveform(new Float64Array(WAVEFORM_WIDTH))).toHaveLength(WAVEFORM_WIDTH * WAVEFORM_HEIGHT);
  });
});
