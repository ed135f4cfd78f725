// Audio processing (spec §3.6.9): ffprobe metadata, then mono 16-bit PCM at 22 050 Hz streamed from ffmpeg
// into per-column peaks (memory stays bounded whatever the length) and drawn as an 800×200 peak-normalised
// waveform, black bars on white, encoded as PNG.
import sharp from 'sharp';
import { PermanentProcessingError } from '../errors.js';
import {
  assertNotCrashed,
  type FfmpegTools,
  failureReason,
  inputArgs,
  probeMediaDetails,
  runTool,
} from './ffmpeg.js';

export interface AudioResult {
  metadata: {
    duration: number | null;
    codec: string | null;
    bitrate: number | null;
    sample_rate: number | null;
  };
  waveformPng: Buffer;
}

export const WAVEFORM_WIDTH = 800;
export const WAVEFORM_HEIGHT = 200;
export const PCM_SAMPLE_RATE = 22_050;

/** §3.6.9 audio: decode mono s16le at 22 050 Hz, draw an 800×200 peak-normalised waveform (black bars on white) as PNG. */
export async function processAudio(
  tools: FfmpegTools,
  path: string,
  options: { signal?: AbortSignal } = {},
): Promise<AudioResult> {
  const { signal } = options;
  const probe = await probeMediaDetails(tools, path, signal);
  if (!probe.hasAudio) throw new PermanentProcessingError('file has no audio stream');

  const peaks = new WaveformPeaks();
  const args = [
    '-hide_banner',
    '-nostdin',
    '-v',
    'error',
    ...inputArgs(path),
    '-map',
    '0:a:0',
    '-vn',
    '-sn',
    '-dn',
    '-ac',
    '1',
    '-ar',
    String(PCM_SAMPLE_RATE),
    '-f',
    's16le',
    '-c:a',
    'pcm_s16le',
    'pipe:1',
  ];
  const outcome = await runTool(tools.ffmpeg, args, { signal, onStdout: (chunk) => peaks.pushPcm(chunk) });
  assertNotCrashed(tools.ffmpeg, outcome);
  if (outcome.code !== 0)
    throw new PermanentProcessingError(`ffmpeg cannot decode the audio: ${failureReason(outcome, path)}`);
  if (peaks.sampleCount === 0) throw new PermanentProcessingError('audio has no decodable samples');

  return {
    metadata: {
      duration: probe.duration,
      codec: probe.audioCodec,
      bitrate: probe.bitrate,
      sample_rate: probe.sampleRate,
    },
    waveformPng: await encodeWaveformPng(peaks.columnPeaks(WAVEFORM_WIDTH)),
  };
}

/** Peak blocks kept while streaming; when full, neighbours merge and the block size doubles. */
const PEAK_BLOCK_CAPACITY = WAVEFORM_WIDTH * 16;

/**
 * Streaming absolute-peak accumulator over s16le PCM whose total length is not known in advance (container
 * durations are estimates). Samples fall into equal blocks; once PEAK_BLOCK_CAPACITY blocks exist, pairs are
 * merged and the block size doubles, so memory is constant and every column later spans ≥ 8 blocks.
 */
export class WaveformPeaks {
  private readonly blocks = new Int32Array(PEAK_BLOCK_CAPACITY);
  private blockCount = 0;
  private blockSize = 1;
  private currentPeak = 0;
  private currentFill = 0;
  private carry: number | null = null;
  sampleCount = 0;

  /** Adds a chunk of little-endian signed 16-bit samples (a sample may straddle two chunks). */
  pushPcm(chunk: Uint8Array): void {
    let offset = 0;
    if (this.carry !== null && chunk.length > 0) {
      this.pushSample(this.carry | ((chunk[0] as number) << 8));
      this.carry = null;
      offset = 1;
    }
    const end = offset + ((chunk.length - offset) & ~1);
    for (let index = offset; index < end; index += 2)
      this.pushSample((chunk[index] as number) | ((chunk[index + 1] as number) << 8));
    if (end < chunk.length) this.carry = chunk[end] as number;
  }

  /** `raw` is the 16-bit two's-complement pattern of one sample. */
  private pushSample(raw: number): void {
    const magnitude = raw >= 0x8000 ? 0x10000 - raw : raw;
    if (magnitude > this.currentPeak) this.currentPeak = magnitude;
    this.sampleCount++;
    if (++this.currentFill === this.blockSize) this.commitBlock();
  }

  private commitBlock(): void {
    if (this.blockCount === PEAK_BLOCK_CAPACITY) {
      for (let index = 0; index < PEAK_BLOCK_CAPACITY / 2; index++)
        this.blocks[index] = Math.max(this.blocks[2 * index] as number, this.blocks[2 * index + 1] as number);
      this.blockCount = PEAK_BLOCK_CAPACITY / 2;
      this.blockSize *= 2;
      // The block being committed was filled at the old size: it becomes the first half of a new block.
      return;
    }
    this.blocks[this.blockCount++] = this.currentPeak;
    this.currentPeak = 0;
    this.currentFill = 0;
  }

  /**
   * Peak magnitude (0–32768) of each of `columns` equal time slices of everything pushed; a clip shorter
   * than `columns` samples is stretched (each column shows the sample under it).
   */
  columnPeaks(columns: number): Float64Array {
    const peaks = new Float64Array(columns);
    const total = this.sampleCount;
    if (total === 0) return peaks;
    const blockPeak = (block: number): number =>
      block < this.blockCount ? (this.blocks[block] as number) : this.currentPeak;
    for (let column = 0; column < columns; column++) {
      const start = Math.floor((column * total) / columns);
      const end = Math.max(start + 1, Math.floor(((column + 1) * total) / columns));
      const lastBlock = Math.floor((end - 1) / this.blockSize);
      let peak = 0;
      for (let block = Math.floor(start / this.blockSize); block <= lastBlock; block++)
        peak = Math.max(peak, blockPeak(block));
      peaks[column] = peak;
    }
    return peaks;
  }
}

/**
 * Greyscale raster, white background, one black bar per column centred on the middle row with half-height
 * proportional to the column peak over the loudest column (peak normalisation); a silent column is the
 * one-pixel centre line.
 */
export function renderWaveform(
  columnPeaks: Float64Array,
  width = WAVEFORM_WIDTH,
  height = WAVEFORM_HEIGHT,
): Uint8Array {
  const pixels = new Uint8Array(width * height).fill(255);
  let loudest = 0;
  for (const peak of columnPeaks) if (peak > loudest) loudest = peak;
  const middle = height / 2;
  for (let column = 0; column < Math.min(width, columnPeaks.length); column++) {
    const amplitude = loudest > 0 ? (columnPeaks[column] as number) / loudest : 0;
    const top = Math.max(0, Math.round(middle - amplitude * middle));
    const bottom = Math.min(height, Math.max(top + 1, Math.round(middle + amplitude * middle)));
    for (let row = top; row < bottom; row++) pixels[row * width + column] = 0;
  }
  return pixels;
}

/** The waveform of `columnPeaks` as an 800×200 greyscale PNG. */
export function encodeWaveformPng(columnPeaks: Float64Array): Promise<Buffer> {
  const raster = renderWaveform(columnPeaks);
  return sharp(raster, { raw: { width: WAVEFORM_WIDTH, height: WAVEFORM_HEIGHT, channels: 1 } })
    .png()
    .toBuffer();
}
