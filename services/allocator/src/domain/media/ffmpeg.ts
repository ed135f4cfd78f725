// ffmpeg/ffprobe as child processes (spec §3.3 FFMPEG_PATH/FFPROBE_PATH, §3.6.9): tool resolution, the
// availability probe behind /health.media.ffmpeg, a process runner that never leaves a child behind, and
// ffprobe metadata.
import { spawn } from 'node:child_process';
import { PermanentProcessingError, TransientProcessingError } from '../errors.js';

export interface FfmpegTools {
  ffmpeg: string;
  ffprobe: string;
}

/**
 * FFMPEG_PATH/FFPROBE_PATH when given, else `ffmpeg`/`ffprobe` on PATH.
 * The spec's middle step (the bundled `@ffmpeg-installer`/`@ffprobe-installer` binaries) is skipped: those
 * packages are not dependencies of this service, so the system binaries are the only fallback.
 */
export function resolveFfmpegTools(paths: { ffmpegPath?: string; ffprobePath?: string }): FfmpegTools {
  return {
    ffmpeg: paths.ffmpegPath?.trim() || 'ffmpeg',
    ffprobe: paths.ffprobePath?.trim() || 'ffprobe',
  };
}

export const FFMPEG_UNAVAILABLE_MESSAGE = 'ffmpeg is not available';

/** Stderr is only read for error messages; its tail (where ffmpeg reports the failure) is all that is kept. */
const STDERR_CAP_BYTES = 16 * 1024;
/** Collected stdout (ffprobe JSON, one JPEG frame) beyond this is treated as a broken input. */
const DEFAULT_STDOUT_CAP_BYTES = 64 * 1024 * 1024;

export interface ToolRunOptions {
  signal?: AbortSignal;
  /** Streaming consumer of stdout; when given, stdout is not collected. A throw kills the child. */
  onStdout?: (chunk: Buffer) => void;
  maxStdoutBytes?: number;
}

export interface ToolRunOutcome {
  /** Exit code, null when the process was ended by a signal. */
  code: number | null;
  killedBy: NodeJS.Signals | null;
  stdout: Buffer;
  /** The last STDERR_CAP_BYTES of stderr, decoded. */
  stderr: string;
}

/**
 * Runs `binary args` and settles only once the child has exited: an abort of `signal`, a throwing stdout
 * consumer or an oversized output kills it (SIGKILL) and the promise rejects after its exit, so no child
 * outlives the call. A missing binary rejects with TransientProcessingError('ffmpeg is not available').
 */
export function runTool(
  binary: string,
  args: readonly string[],
  options: ToolRunOptions = {},
): Promise<ToolRunOutcome> {
  const { signal, onStdout } = options;
  const maxStdoutBytes = options.maxStdoutBytes ?? DEFAULT_STDOUT_CAP_BYTES;
  signal?.throwIfAborted();
  return new Promise<ToolRunOutcome>((resolve, reject) => {
    // Its own process group, so a kill reaches whatever a wrapper script (FFMPEG_PATH) started as well.
    const child = spawn(binary, args, {
      stdio: ['ignore', 'pipe', 'pipe'],
      detached: true,
      windowsHide: true,
    });
    const stdoutChunks: Buffer[] = [];
    let stdoutBytes = 0;
    let stderrTail = Buffer.alloc(0);
    let failure: unknown;
    let settled = false;

    const kill = (reason: unknown): void => {
      if (failure === undefined) failure = reason;
      if (child.pid === undefined) return;
      try {
        process.kill(-child.pid, 'SIGKILL');
      } catch {
        // The group is already gone (the child exited and was reaped).
      }
    };
    const onAbort = (): void => kill(signal?.reason);
    signal?.addEventListener('abort', onAbort, { once: true });

    const settle = (outcome: ToolRunOutcome | null): void => {
      if (settled) return;
      settled = true;
      signal?.removeEventListener('abort', onAbort);
      if (failure !== undefined || outcome === null) reject(failure);
      else resolve(outcome);
    };

    child.stdout.on('data', (chunk: Buffer) => {
      if (failure !== undefined) return;
      if (onStdout) {
        try {
          onStdout(chunk);
        } catch (error) {
          kill(error);
        }
        return;
      }
      stdoutBytes += chunk.length;
      if (stdoutBytes > maxStdoutBytes) {
        kill(new PermanentProcessingError(`${toolName(binary)} output exceeds ${maxStdoutBytes} bytes`));
        return;
      }
      stdoutChunks.push(chunk);
    });
    child.stderr.on('data', (chunk: Buffer) => {
      stderrTail = Buffer.concat([stderrTail, chunk]);
      if (stderrTail.length > STDERR_CAP_BYTES)
        stderrTail = stderrTail.subarray(stderrTail.length - STDERR_CAP_BYTES);
    });
    child.once('error', (error: NodeJS.ErrnoException) => {
      const missing = error.code === 'ENOENT' || error.code === 'EACCES' || error.code === 'ENOTDIR';
      if (failure === undefined)
        failure = missing
          ? new TransientProcessingError(FFMPEG_UNAVAILABLE_MESSAGE)
          : toTransient(binary, error);
      // No process was started: there is nothing to wait for.
      if (child.pid === undefined) settle(null);
    });
    child.once('exit', () => {
      // Killed on purpose: a descendant that left the group may still hold the pipes open, and nothing more
      // is wanted from them.
      if (failure === undefined) return;
      child.stdout.destroy();
      child.stderr.destroy();
    });
    child.once('close', (code, killedBy) => {
      settle({ code, killedBy, stdout: Buffer.concat(stdoutChunks), stderr: stderrTail.toString('utf8') });
    });
  });
}

function toTransient(binary: string, error: Error): TransientProcessingError {
  return new TransientProcessingError(`${toolName(binary)} failed to run: ${error.message}`);
}

function toolName(binary: string): string {
  return /ffprobe[^/\\]*$/i.test(binary) ? 'ffprobe' : 'ffmpeg';
}

/**
 * Input arguments for a local file: the `file:` protocol keeps names containing `:` from being read as
 * another protocol, and the whitelist stops playlist-like containers from opening anything but local files.
 */
export function inputArgs(path: string): string[] {
  return ['-protocol_whitelist', 'file', '-i', `file:${path}`];
}

/** The last meaningful stderr line, without the input's path, for an error message. */
export function failureReason(outcome: ToolRunOutcome, path: string): string {
  const lines = outcome.stderr
    .split(/\r?\n/)
    .map((line) => line.replaceAll(`file:${path}`, 'input').replaceAll(path, 'input').trim())
    .filter((line) => line.length > 0);
  const last = lines.at(-1)?.replace(/^input:\s*/, '');
  if (last) return last.slice(0, 300);
  return outcome.killedBy ? `killed by ${outcome.killedBy}` : `exit code ${outcome.code}`;
}

/**
 * A child that died from a signal nobody sent (out of memory, crash) is worth a retry; only a clean
 * non-zero exit says the input itself is bad.
 */
export function assertNotCrashed(binary: string, outcome: ToolRunOutcome): void {
  if (outcome.killedBy !== null)
    throw new TransientProcessingError(`${toolName(binary)} was killed by ${outcome.killedBy}`);
}

export interface FfmpegAvailability {
  available: boolean;
  version: string | null;
}

const availabilityCache = new WeakMap<FfmpegTools, Promise<FfmpegAvailability>>();
const VERSION_CHECK_TIMEOUT_MS = 10_000;

/** Runs `ffmpeg -version` once (cached per tools object) — for /health.media.ffmpeg. */
export function ffmpegAvailability(tools: FfmpegTools): Promise<FfmpegAvailability> {
  let cached = availabilityCache.get(tools);
  if (!cached) {
    cached = checkAvailability(tools.ffmpeg);
    availabilityCache.set(tools, cached);
  }
  return cached;
}

async function checkAvailability(ffmpeg: string): Promise<FfmpegAvailability> {
  try {
    const outcome = await runTool(ffmpeg, ['-hide_banner', '-version'], {
      signal: AbortSignal.timeout(VERSION_CHECK_TIMEOUT_MS),
      maxStdoutBytes: 1024 * 1024,
    });
    if (outcome.code !== 0) return { available: false, version: null };
    const firstLine = outcome.stdout.toString('utf8').split('\n', 1)[0] ?? '';
    const version = /version\s+(\S+)/i.exec(firstLine)?.[1] ?? null;
    return { available: true, version };
  } catch {
    return { available: false, version: null };
  }
}

export interface ProbeResult {
  duration: number | null;
  width: number | null;
  height: number | null;
  /** The first video stream's codec, else the first audio stream's. */
  codec: string | null;
  bitrate: number | null;
  fps: number | null;
  sampleRate: number | null;
  hasVideo: boolean;
  hasAudio: boolean;
}

/** ProbeResult plus the per-kind codecs (an audio file with cover art still has an audio codec to report). */
export interface MediaProbe extends ProbeResult {
  videoCodec: string | null;
  audioCodec: string | null;
}

interface FfprobeStream {
  codec_type?: string;
  codec_name?: string;
  width?: number;
  height?: number;
  avg_frame_rate?: string;
  r_frame_rate?: string;
  sample_rate?: string;
  bit_rate?: string;
  duration?: string;
  disposition?: { attached_pic?: number };
}

interface FfprobeOutput {
  streams?: FfprobeStream[];
  format?: { duration?: string; bit_rate?: string };
}

/** ffprobe metadata of a local file; a file ffprobe cannot read → PermanentProcessingError. */
export async function probeMedia(
  tools: FfmpegTools,
  path: string,
  signal?: AbortSignal,
): Promise<ProbeResult> {
  return probeMediaDetails(tools, path, signal);
}

/** probeMedia with the video and audio codecs reported separately. */
export async function probeMediaDetails(
  tools: FfmpegTools,
  path: string,
  signal?: AbortSignal,
): Promise<MediaProbe> {
  const args = ['-v', 'error', '-print_format', 'json', '-show_format', '-show_streams', ...inputArgs(path)];
  const outcome = await runTool(tools.ffprobe, args, { signal, maxStdoutBytes: 8 * 1024 * 1024 });
  assertNotCrashed(tools.ffprobe, outcome);
  if (outcome.code !== 0)
    throw new PermanentProcessingError(`ffprobe cannot read the file: ${failureReason(outcome, path)}`);
  let parsed: FfprobeOutput;
  try {
    parsed = JSON.parse(outcome.stdout.toString('utf8')) as FfprobeOutput;
  } catch {
    throw new PermanentProcessingError('ffprobe cannot read the file: unparseable ffprobe output');
  }
  return summariseProbe(parsed);
}

function summariseProbe(output: FfprobeOutput): MediaProbe {
  const streams = output.streams ?? [];
  // Cover art is stored as a one-picture "video" stream; it does not make a file a video.
  const video = streams.find((s) => s.codec_type === 'video' && s.disposition?.attached_pic !== 1);
  const audio = streams.find((s) => s.codec_type === 'audio');
  const duration =
    positiveNumber(output.format?.duration) ??
    positiveNumber(video?.duration) ??
    positiveNumber(audio?.duration);
  const bitrate =
    positiveInteger(output.format?.bit_rate) ??
    positiveInteger(video?.bit_rate) ??
    positiveInteger(audio?.bit_rate);
  const videoCodec = video?.codec_name ?? null;
  const audioCodec = audio?.codec_name ?? null;
  return {
    duration,
    width: video?.width && video.width > 0 ? video.width : null,
    height: video?.height && video.height > 0 ? video.height : null,
    codec: videoCodec ?? audioCodec,
    bitrate,
    fps: video ? (frameRate(video.avg_frame_rate) ?? frameRate(video.r_frame_rate)) : null,
    sampleRate: positiveInteger(audio?.sample_rate),
    hasVideo: video !== undefined,
    hasAudio: audio !== undefined,
    videoCodec,
    audioCodec,
  };
}

function positiveNumber(value: string | undefined): number | null {
  if (value === undefined) return null;
  const parsed = Number(value);
  return Number.isFinite(parsed) && parsed > 0 ? parsed : null;
}

function positiveInteger(value: string | undefined): number | null {
  const parsed = positiveNumber(value);
  return parsed === null ? null : Math.round(parsed);
}

/** "30000/1001" → 29.97 (three decimals); "0/0" → null. */
function frameRate(value: string | undefined): number | null {
  if (!value) return null;
  const [numerator, denominator = '1'] = value.split('/');
  const rate = Number(numerator) / Number(denominator);
  return Number.isFinite(rate) && rate > 0 ? Math.round(rate * 1000) / 1000 : null;
}
