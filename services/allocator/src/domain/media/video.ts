// Video processing (spec §3.6.9): ffprobe metadata, 2N candidate frames at duration·i/(2N+1), N of them kept
// by max–min Bhattacharyya diversity of 8×8×8 HSV histograms, each kept frame embedded, and the video
// embedding as the softmax-weighted (temperature 0.08) normalised sum of the frame embeddings.
import sharp, { type OutputInfo } from 'sharp';
import { PermanentProcessingError } from '../errors.js';
import { assertNotCrashed, type FfmpegTools, inputArgs, probeMediaDetails, runTool } from './ffmpeg.js';

export interface RgbFrame {
  /** Packed RGB, 3 bytes per pixel, row-major. */
  data: Uint8Array;
  width: number;
  height: number;
}

export interface VideoFrameResult {
  frameIdx: number;
  timestampMs: number;
  embedding: Float32Array;
}

export interface VideoResult {
  metadata: {
    duration: number | null;
    width: number | null;
    height: number | null;
    codec: string | null;
    bitrate: number | null;
    fps: number | null;
  };
  /** The kept frames, in time order, frameIdx 0..N-1. */
  frames: VideoFrameResult[];
  /** Softmax-weighted (temperature 0.08) normalised sum of the frame embeddings. */
  embedding: Float32Array;
  /** The first kept frame as JPEG at the frame's size. */
  firstFrameJpeg: Buffer;
}

export const NO_DECODABLE_FRAMES_MESSAGE = 'video has no decodable frames';
/** Temperature of the frame-weight softmax (§3.6.9). */
export const FRAME_WEIGHT_TEMPERATURE = 0.08;
/** Concurrent ffmpeg frame extractions per video. */
const EXTRACTION_PARALLELISM = 2;
/** Side of the small copy each candidate is histogrammed on. */
const HISTOGRAM_SAMPLE_SIDE = 64;
const HSV_BINS = 8;

interface Candidate {
  timestampSeconds: number;
  jpeg: Buffer;
  histogram: Float64Array;
}

/** §3.6.9 video: 2N candidates at duration·i/(2N+1), max–min Bhattacharyya diversity over 8×8×8 HSV histograms, embed each kept frame. */
export async function processVideo(
  tools: FfmpegTools,
  path: string,
  options: {
    keyframes: number;
    embedFrame: (frameJpeg: Buffer) => Promise<Float32Array>;
    signal?: AbortSignal;
  },
): Promise<VideoResult> {
  const { signal } = options;
  const keyframes = Math.max(1, Math.floor(options.keyframes));
  const probe = await probeMediaDetails(tools, path, signal);
  if (!probe.hasVideo) throw new PermanentProcessingError(NO_DECODABLE_FRAMES_MESSAGE);

  // Without a duration the formula would put every candidate at 0 s: the first frame is all there is to keep.
  // Candidates hold their full-size JPEGs until selection (2N small images for the usual N).
  const timestamps = probe.duration === null ? [0] : candidateTimestamps(probe.duration, keyframes);
  const extracted = await mapWithParallelism(
    timestamps,
    EXTRACTION_PARALLELISM,
    signal,
    (timestamp, taskSignal) => extractCandidate(tools, path, timestamp, taskSignal),
  );
  const candidates = extracted.filter((candidate): candidate is Candidate => candidate !== null);
  if (candidates.length === 0) throw new PermanentProcessingError(NO_DECODABLE_FRAMES_MESSAGE);

  const kept = selectDiverseFrames(
    candidates.map((candidate) => candidate.histogram),
    keyframes,
  ).map((index) => candidates[index] as Candidate);

  const frames: VideoFrameResult[] = [];
  for (const [frameIdx, candidate] of kept.entries()) {
    signal?.throwIfAborted();
    frames.push({
      frameIdx,
      timestampMs: Math.round(candidate.timestampSeconds * 1000),
      embedding: await options.embedFrame(candidate.jpeg),
    });
  }
  return {
    metadata: {
      duration: probe.duration,
      width: probe.width,
      height: probe.height,
      codec: probe.videoCodec,
      bitrate: probe.bitrate,
      fps: probe.fps,
    },
    frames,
    embedding: combineFrameEmbeddings(frames.map((frame) => frame.embedding)),
    firstFrameJpeg: (kept[0] as Candidate).jpeg,
  };
}

/** The 2N candidate times duration·i/(2N+1), i = 1..2N, in seconds. */
export function candidateTimestamps(durationSeconds: number, keyframes: number): number[] {
  const count = 2 * keyframes;
  return Array.from({ length: count }, (_, index) => (durationSeconds * (index + 1)) / (count + 1));
}

/** One frame at `timestampSeconds` as JPEG plus its histogram; null when ffmpeg decodes no frame there. */
async function extractCandidate(
  tools: FfmpegTools,
  path: string,
  timestampSeconds: number,
  signal: AbortSignal,
): Promise<Candidate | null> {
  const jpeg = await extractFrameJpeg(tools, path, timestampSeconds, signal);
  if (jpeg === null) return null;
  let sample: { data: Buffer; info: OutputInfo };
  try {
    sample = await sharp(jpeg)
      .resize(HISTOGRAM_SAMPLE_SIDE, HISTOGRAM_SAMPLE_SIDE, { fit: 'fill' })
      .removeAlpha()
      .toColourspace('srgb')
      .raw()
      .toBuffer({ resolveWithObject: true });
  } catch {
    // A frame ffmpeg wrote but that does not decode counts as no frame at this time.
    return null;
  }
  const { data, info } = sample;
  return {
    timestampSeconds,
    jpeg,
    histogram: hsvHistogram8({ data, width: info.width, height: info.height }),
  };
}

/**
 * Seeks before opening the input (`-ss` ahead of `-i`: a keyframe seek then decoding up to the exact time,
 * instead of decoding everything before it) and writes a single MJPEG frame to stdout.
 */
async function extractFrameJpeg(
  tools: FfmpegTools,
  path: string,
  timestampSeconds: number,
  signal: AbortSignal,
): Promise<Buffer | null> {
  const args = [
    '-hide_banner',
    '-nostdin',
    '-v',
    'error',
    '-ss',
    timestampSeconds.toFixed(3),
    ...inputArgs(path),
    '-map',
    '0:v:0',
    '-frames:v',
    '1',
    '-an',
    '-sn',
    '-dn',
    '-f',
    'image2pipe',
    '-c:v',
    'mjpeg',
    '-q:v',
    '2',
    'pipe:1',
  ];
  const outcome = await runTool(tools.ffmpeg, args, { signal });
  assertNotCrashed(tools.ffmpeg, outcome);
  // A non-zero exit or an empty output (seek past the last decodable frame) means no frame at this time;
  // the caller fails the video only when no candidate yields one.
  if (outcome.code !== 0 || outcome.stdout.length === 0) return null;
  return outcome.stdout;
}

/**
 * Runs `task` over `items` with at most `parallelism` in flight, results in input order. The first failure
 * aborts the others (their children are killed) and is rethrown once every task has settled.
 */
async function mapWithParallelism<T, R>(
  items: readonly T[],
  parallelism: number,
  signal: AbortSignal | undefined,
  task: (item: T, signal: AbortSignal) => Promise<R>,
): Promise<R[]> {
  const stopOthers = new AbortController();
  const taskSignal = signal ? AbortSignal.any([signal, stopOthers.signal]) : stopOthers.signal;
  const results: R[] = new Array(items.length);
  let next = 0;
  let firstError: { error: unknown } | null = null;
  const worker = async (): Promise<void> => {
    while (firstError === null && next < items.length) {
      const index = next++;
      try {
        results[index] = await task(items[index] as T, taskSignal);
      } catch (error) {
        if (firstError === null) firstError = { error };
        stopOthers.abort();
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(parallelism, items.length) }, worker));
  if (firstError !== null) throw (firstError as { error: unknown }).error;
  return results;
}

/**
 * Max–min diversity: the first candidate, then repeatedly the one whose smallest Bhattacharyya distance to
 * the kept ones is largest (ties → the earlier one). Returns indexes in time order.
 */
export function selectDiverseFrames(histograms: readonly Float64Array[], count: number): number[] {
  if (histograms.length === 0 || count <= 0) return [];
  const kept = [0];
  const minDistance = histograms.map((histogram) =>
    bhattacharyyaDistance(histogram, histograms[0] as Float64Array),
  );
  while (kept.length < Math.min(count, histograms.length)) {
    let best = -1;
    for (let index = 0; index < histograms.length; index++) {
      if (kept.includes(index)) continue;
      if (best === -1 || (minDistance[index] as number) > (minDistance[best] as number)) best = index;
    }
    kept.push(best);
    const chosen = histograms[best] as Float64Array;
    for (let index = 0; index < histograms.length; index++) {
      const distance = bhattacharyyaDistance(histograms[index] as Float64Array, chosen);
      if (distance < (minDistance[index] as number)) minDistance[index] = distance;
    }
  }
  return kept.sort((a, b) => a - b);
}

/** Bhattacharyya distance √(1 − Σ√(h1·h2)) of two histograms normalised to sum 1 (0 = identical, 1 = disjoint). */
export function bhattacharyyaDistance(h1: Float64Array, h2: Float64Array): number {
  if (h1.length !== h2.length) throw new RangeError('histograms differ in length');
  let coefficient = 0;
  for (let index = 0; index < h1.length; index++)
    coefficient += Math.sqrt((h1[index] as number) * (h2[index] as number));
  return Math.sqrt(Math.max(0, 1 - coefficient));
}

/**
 * Joint HSV histogram, 8 bins per channel (H in degrees / 45, S = (max−min)/max, V = max, each × 8, H = 0
 * when max = min), index = h·64 + s·8 + v, normalised to sum 1.
 */
export function hsvHistogram8(frame: RgbFrame): Float64Array {
  const histogram = new Float64Array(HSV_BINS * HSV_BINS * HSV_BINS);
  const pixels = frame.width * frame.height;
  if (frame.data.length < pixels * 3) throw new RangeError('frame data is shorter than width × height × 3');
  for (let pixel = 0; pixel < pixels; pixel++) {
    const r = frame.data[pixel * 3] as number;
    const g = frame.data[pixel * 3 + 1] as number;
    const b = frame.data[pixel * 3 + 2] as number;
    const max = Math.max(r, g, b);
    const min = Math.min(r, g, b);
    const delta = max - min;
    let hue = 0;
    if (delta > 0) {
      if (max === r) hue = 60 * (((g - b) / delta + 6) % 6);
      else if (max === g) hue = 60 * ((b - r) / delta + 2);
      else hue = 60 * ((r - g) / delta + 4);
    }
    const saturation = max === 0 ? 0 : delta / max;
    const value = max / 255;
    const hueBin = Math.min(HSV_BINS - 1, Math.floor(hue / 45));
    const saturationBin = Math.min(HSV_BINS - 1, Math.floor(saturation * HSV_BINS));
    const valueBin = Math.min(HSV_BINS - 1, Math.floor(value * HSV_BINS));
    const bin = hueBin * HSV_BINS * HSV_BINS + saturationBin * HSV_BINS + valueBin;
    histogram[bin] = (histogram[bin] as number) + 1;
  }
  if (pixels > 0)
    for (let index = 0; index < histogram.length; index++)
      histogram[index] = (histogram[index] as number) / pixels;
  return histogram;
}

/** Softmax weights w = softmax((fᵢ·f̄)/0.08) with f̄ the mean frame embedding. */
export function frameWeights(embeddings: readonly Float32Array[]): number[] {
  if (embeddings.length === 0) return [];
  const dimension = (embeddings[0] as Float32Array).length;
  const mean = new Float64Array(dimension);
  for (const embedding of embeddings)
    for (let index = 0; index < dimension; index++)
      mean[index] = (mean[index] as number) + (embedding[index] ?? 0) / embeddings.length;
  const logits = embeddings.map((embedding) => {
    let dot = 0;
    for (let index = 0; index < dimension; index++) dot += (embedding[index] ?? 0) * (mean[index] as number);
    return dot / FRAME_WEIGHT_TEMPERATURE;
  });
  const maxLogit = Math.max(...logits);
  const exponentials = logits.map((logit) => Math.exp(logit - maxLogit));
  const total = exponentials.reduce((sum, value) => sum + value, 0);
  return exponentials.map((value) => value / total);
}

/** normalise(Σ wᵢfᵢ) with the frameWeights; all zeros stays zero. */
export function combineFrameEmbeddings(embeddings: readonly Float32Array[]): Float32Array {
  if (embeddings.length === 0) throw new RangeError('no frame embeddings to combine');
  const weights = frameWeights(embeddings);
  const dimension = (embeddings[0] as Float32Array).length;
  const sum = new Float64Array(dimension);
  embeddings.forEach((embedding, frame) => {
    const weight = weights[frame] as number;
    for (let index = 0; index < dimension; index++)
      sum[index] = (sum[index] as number) + weight * (embedding[index] ?? 0);
  });
  let norm = 0;
  for (const value of sum) norm += value * value;
  norm = Math.sqrt(norm);
  const combined = new Float32Array(dimension);
  for (let index = 0; index < dimension; index++)
    combined[index] = norm > 1e-12 ? (sum[index] as number) / norm : 0;
  return combined;
}
