// Video processing (spec §3.6.9): ffprobe metadata, 2N candidate frames at duration·i/(2N+1), N of them kept
// by max–min Bhattacharyya diversity of 8×8×8 HSV histograms, each kept frame embedded, and the video
// embedding as the softmax-weighted (temperature 0.08) normalised sum of the frame embeddings.
import sharp, { type OutputInfo } from 'sharp';
import { PermanentProcessingError, TransientProcessingError } from '../errors.js';
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
export const FFMPEG_TOO_OLD_MESSAGE = 'ffmpeg 5.1 or newer is required for video keyframes';
/** Temperature of the frame-weight softmax (§3.6.9). */
export const FRAME_WEIGHT_TEMPERATURE = 0.08;
/** Side of the small copy each candidate is histogrammed on. */
const HISTOGRAM_SAMPLE_SIDE = 64;
const HSV_BINS = 8;
/** One frame's JPEG beyond this is treated as a broken input. */
const MAX_FRAME_JPEG_BYTES = 64 * 1024 * 1024;

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
  const candidates = await extractCandidates(tools, path, timestamps, signal);
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

/**
 * One ffmpeg run decodes the video once and writes, for each candidate time in order, the first frame at or
 * after it as a full-size JPEG; the histograms are computed while ffmpeg is still decoding. Candidates after
 * the last frame get none (always a tail of the list, so the k-th image belongs to the k-th time), and a
 * frame that does not decode is left out.
 */
async function extractCandidates(
  tools: FfmpegTools,
  path: string,
  timestamps: readonly number[],
  signal: AbortSignal | undefined,
): Promise<Candidate[]> {
  const splitter = new JpegStreamSplitter(MAX_FRAME_JPEG_BYTES);
  const pending: Promise<Candidate | null>[] = [];
  const outcome = await runTool(tools.ffmpeg, candidateFrameArgs(path, timestamps), {
    signal,
    onStdout: (chunk) => {
      for (const jpeg of splitter.push(chunk)) {
        const timestampSeconds = timestamps[pending.length];
        // The filter graph emits at most one frame per candidate; anything beyond that is not a candidate.
        if (timestampSeconds !== undefined) pending.push(histogramCandidate(jpeg, timestampSeconds));
      }
    },
  });
  assertNotCrashed(tools.ffmpeg, outcome);
  // ffmpeg before 5.1 rejects `-fps_mode`: the installation, not the video, is at fault (retried, then DLQ).
  if (outcome.code !== 0 && /Unrecognized option 'fps_mode'/.test(outcome.stderr))
    throw new TransientProcessingError(FFMPEG_TOO_OLD_MESSAGE);
  // A non-zero exit keeps the images written before it: each is a whole frame at its candidate time. The
  // caller fails the video only when there is none.
  const candidates = await Promise.all(pending);
  return candidates.filter((candidate): candidate is Candidate => candidate !== null);
}

/**
 * `split` feeds one branch per candidate time; `trim=start` drops the frames before it (what an accurate
 * `-ss` seek does, with the same millisecond rounding), `trim=end_frame=1` keeps the first frame left and
 * ends the branch, and `concat` writes the branches in candidate order, each frame as soon as it is found.
 * A frame several candidates land on is written once per candidate. When every branch has ended, ffmpeg stops
 * reading the input, so nothing after the last candidate is decoded.
 */
function candidateFrameArgs(path: string, timestamps: readonly number[]): string[] {
  const branches = timestamps.map(
    (timestamp, index) => `[c${index}]trim=start=${timestamp.toFixed(3)},trim=end_frame=1[f${index}]`,
  );
  const splitOutputs = timestamps.map((_, index) => `[c${index}]`).join('');
  const concatInputs = timestamps.map((_, index) => `[f${index}]`).join('');
  const filter = [
    `split=${timestamps.length}${splitOutputs}`,
    ...branches,
    `${concatInputs}concat=n=${timestamps.length}:v=1:a=0`,
  ].join(';');
  return [
    '-hide_banner',
    '-nostdin',
    '-v',
    'error',
    // One thread each for decoding, filtering and encoding: several videos are processed at once, and
    // frame threads would only add decoding latency between them.
    '-filter_threads',
    '1',
    '-threads',
    '1',
    ...inputArgs(path),
    '-map',
    '0:v:0',
    '-an',
    '-sn',
    '-dn',
    '-vf',
    filter,
    // Every frame the graph emits is written once: image2pipe would otherwise get constant-frame-rate sync,
    // which duplicates and drops frames by their timestamps and would break the image ↔ candidate order.
    '-fps_mode',
    'passthrough',
    '-threads',
    '1',
    '-f',
    'image2pipe',
    '-c:v',
    'mjpeg',
    '-q:v',
    '2',
    'pipe:1',
  ];
}

/** The candidate with its histogram; null when the JPEG does not decode (no frame at this time). */
async function histogramCandidate(jpeg: Buffer, timestampSeconds: number): Promise<Candidate | null> {
  let sample: { data: Buffer; info: OutputInfo };
  try {
    sample = await sharp(jpeg)
      .resize(HISTOGRAM_SAMPLE_SIDE, HISTOGRAM_SAMPLE_SIDE, { fit: 'fill' })
      .removeAlpha()
      .toColourspace('srgb')
      .raw()
      .toBuffer({ resolveWithObject: true });
  } catch {
    return null;
  }
  const { data, info } = sample;
  return {
    timestampSeconds,
    jpeg,
    histogram: hsvHistogram8({ data, width: info.width, height: info.height }),
  };
}

type JpegParseState =
  /** Between images: the next byte starts an SOI marker (0xFF 0xD8). */
  | 'image-start'
  | 'soi-code'
  /** Before a marker: 0xFF expected. */
  | 'marker'
  /** After 0xFF: fill bytes (0xFF) or the marker code. */
  | 'marker-code'
  | 'length-high'
  | 'length-low'
  | 'segment'
  /** Entropy-coded data after SOS, up to the next marker that is not a restart marker or stuffed 0xFF. */
  | 'entropy'
  | 'entropy-ff'
  /** The stream is not a JPEG sequence; everything further is ignored. */
  | 'broken';

const SOI = 0xd8;
const EOI = 0xd9;
const SOS = 0xda;

/**
 * Splits concatenated JPEG images (ffmpeg's image2pipe output) into whole images by walking their marker
 * structure: segment lengths are skipped, so an 0xFF 0xD9 inside a segment or stuffed entropy data never ends
 * an image early. Bytes that do not form a JPEG stop the splitting; the images completed before stay valid.
 */
export class JpegStreamSplitter {
  readonly #maxImageBytes: number;
  #state: JpegParseState = 'image-start';
  #parts: Buffer[] = [];
  #imageBytes = 0;
  #marker = 0;
  #remaining = 0;

  constructor(maxImageBytes: number) {
    this.#maxImageBytes = maxImageBytes;
  }

  /** Consumes the next chunk; returns the images it completes. Throws when one image exceeds the cap. */
  push(chunk: Buffer): Buffer[] {
    const images: Buffer[] = [];
    let imageStart = 0;
    let index = 0;
    while (index < chunk.length && this.#state !== 'broken') {
      const byte = chunk[index] as number;
      switch (this.#state) {
        case 'image-start':
          imageStart = index;
          this.#state = byte === 0xff ? 'soi-code' : 'broken';
          index++;
          break;
        case 'soi-code':
          this.#state = byte === SOI ? 'marker' : 'broken';
          index++;
          break;
        case 'marker':
          this.#state = byte === 0xff ? 'marker-code' : 'broken';
          index++;
          break;
        case 'marker-code':
        case 'entropy-ff':
          index++;
          if (byte === 0xff) break;
          if (this.#state === 'entropy-ff' && (byte === 0x00 || isRestartMarker(byte))) {
            this.#state = 'entropy';
            break;
          }
          if (byte === EOI) {
            this.#imageBytes += index - imageStart;
            this.#assertWithinCap();
            this.#parts.push(chunk.subarray(imageStart, index));
            images.push(Buffer.concat(this.#parts));
            this.#parts = [];
            this.#imageBytes = 0;
            this.#state = 'image-start';
            imageStart = index;
          } else if (byte === SOI || byte === 0x00) {
            this.#state = 'broken';
          } else if (byte === 0x01 || isRestartMarker(byte)) {
            this.#state = 'marker';
          } else {
            this.#marker = byte;
            this.#state = 'length-high';
          }
          break;
        case 'length-high':
          this.#remaining = byte << 8;
          this.#state = 'length-low';
          index++;
          break;
        case 'length-low':
          // The length counts its own two bytes.
          this.#remaining = this.#remaining + byte - 2;
          this.#state = this.#remaining < 0 ? 'broken' : 'segment';
          index++;
          if (this.#remaining === 0) this.#endSegment();
          break;
        case 'segment': {
          const taken = Math.min(this.#remaining, chunk.length - index);
          index += taken;
          this.#remaining -= taken;
          if (this.#remaining === 0) this.#endSegment();
          break;
        }
        case 'entropy': {
          const next = chunk.indexOf(0xff, index);
          if (next === -1) index = chunk.length;
          else {
            index = next + 1;
            this.#state = 'entropy-ff';
          }
          break;
        }
      }
    }
    if (this.#state === 'broken') this.#parts = [];
    else if (this.#state !== 'image-start') {
      const piece = chunk.subarray(imageStart);
      this.#parts.push(piece);
      this.#imageBytes += piece.length;
      this.#assertWithinCap();
    }
    return images;
  }

  #assertWithinCap(): void {
    if (this.#imageBytes > this.#maxImageBytes)
      throw new PermanentProcessingError(`ffmpeg output exceeds ${this.#maxImageBytes} bytes`);
  }

  #endSegment(): void {
    this.#state = this.#marker === SOS ? 'entropy' : 'marker';
  }
}

function isRestartMarker(byte: number): boolean {
  return byte >= 0xd0 && byte <= 0xd7;
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
