import { execFileSync } from 'node:child_process';
import { chmod, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PermanentProcessingError, TransientProcessingError } from '../../src/domain/errors.js';
import { resolveFfmpegTools } from '../../src/domain/media/ffmpeg.js';
import {
  bhattacharyyaDistance,
  candidateTimestamps,
  combineFrameEmbeddings,
  frameWeights,
  hsvHistogram8,
  JpegStreamSplitter,
  processVideo,
  type RgbFrame,
  selectDiverseFrames,
} from '../../src/domain/media/video.js';

const tools = resolveFfmpegTools({});
let dir: string;

function ffmpeg(args: string[]): void {
  execFileSync('ffmpeg', ['-hide_banner', '-nostdin', '-v', 'error', '-y', ...args]);
}

/** Concatenation of solid-colour segments, each `seconds` long, 160×120 at `rate` fps, H.264. */
function colourSegments(
  path: string,
  segments: { colour: string; seconds: number }[],
  options: { rate?: number; encoderArgs?: string[] } = {},
): void {
  const inputs = segments.flatMap(({ colour, seconds }) => [
    '-f',
    'lavfi',
    '-i',
    `color=c=${colour}:s=160x120:r=${options.rate ?? 10}:d=${seconds}`,
  ]);
  const labels = segments.map((_, index) => `[${index}:v]`).join('');
  ffmpeg([
    ...inputs,
    '-filter_complex',
    `${labels}concat=n=${segments.length}:v=1:a=0[v]`,
    '-map',
    '[v]',
    '-c:v',
    'libx264',
    '-pix_fmt',
    'yuv420p',
    ...(options.encoderArgs ?? []),
    path,
  ]);
}

/** Presentation times (s) of the key frames of the first video stream. */
function keyframeTimes(path: string): number[] {
  const output = execFileSync('ffprobe', [
    ...['-v', 'error', '-select_streams', 'v:0', '-skip_frame', 'nokey'],
    ...['-show_entries', 'frame=pts_time', '-of', 'csv=p=0', path],
  ]);
  return output
    .toString('utf8')
    .split('\n')
    .filter((line) => /^\d/.test(line))
    .map((line) => Number(line.split(',')[0]));
}

/** An ffmpeg that appends a line to `logFile` for each process started, then runs the real one. */
async function countingFfmpeg(logFile: string): Promise<string> {
  const script = join(dir, 'counting-ffmpeg.sh');
  await writeFile(script, `#!/bin/sh\necho started >> '${logFile}'\nexec ffmpeg "$@"\n`);
  await chmod(script, 0o755);
  return script;
}

async function countLines(file: string): Promise<number> {
  return (await readFile(file, 'utf8').catch(() => '')).split('\n').filter(Boolean).length;
}

/** Deterministic stand-in embedder: the frame's mean colour as a unit vector. */
async function meanColourEmbedding(jpeg: Buffer): Promise<Float32Array> {
  const { channels } = await sharp(jpeg).stats();
  const mean = channels.slice(0, 3).map((channel) => channel.mean);
  const norm = Math.hypot(...mean) || 1;
  return Float32Array.from(mean.map((value) => value / norm));
}

function dominantChannel(embedding: Float32Array): 'red' | 'green' | 'blue' {
  const [r = 0, g = 0, b = 0] = embedding;
  if (r >= g && r >= b) return 'red';
  return g >= b ? 'green' : 'blue';
}

function solidFrame(r: number, g: number, b: number, pixels = 16): RgbFrame {
  const data = new Uint8Array(pixels * 3);
  for (let index = 0; index < pixels; index++) data.set([r, g, b], index * 3);
  return { data, width: pixels, height: 1 };
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
  dir = await mkdtemp(join(tmpdir(), 'allocator-video-'));
  ffmpeg([
    ...['-f', 'lavfi', '-i', 'testsrc2=s=160x120:r=25:d=3'],
    ...['-f', 'lavfi', '-i', 'sine=f=440:d=3'],
    ...['-c:v', 'libx264', '-pix_fmt', 'yuv420p', '-c:a', 'aac', '-shortest', join(dir, 'testsrc.mp4')],
  ]);
  colourSegments(join(dir, 'red-then-blue.mp4'), [
    { colour: 'red', seconds: 2 },
    { colour: 'blue', seconds: 1 },
  ]);
  colourSegments(join(dir, 'rgb.mp4'), [
    { colour: 'red', seconds: 1 },
    { colour: 'lime', seconds: 1 },
    { colour: 'blue', seconds: 1 },
  ]);
  // One key frame for the whole clip (no scene-cut key frames): every frame is only reachable by decoding
  // from the start. Colours change on the first frame at or after each candidate time 3·i/7 s.
  colourSegments(
    join(dir, 'one-keyframe.mp4'),
    [
      { colour: 'red', seconds: 0.5 },
      { colour: 'lime', seconds: 0.8 },
      { colour: 'blue', seconds: 0.9 },
      { colour: 'red', seconds: 0.8 },
    ],
    { encoderArgs: ['-g', '300', '-keyint_min', '300', '-sc_threshold', '0'] },
  );
  // One frame per second (0 s red, 1 s lime, 2 s blue).
  colourSegments(
    join(dir, 'one-fps.mp4'),
    [
      { colour: 'red', seconds: 1 },
      { colour: 'lime', seconds: 1 },
      { colour: 'blue', seconds: 1 },
    ],
    { rate: 1 },
  );
  // A raw H.264 stream has no container duration.
  ffmpeg(['-f', 'lavfi', '-i', 'testsrc2=s=160x120:r=25:d=2', '-c:v', 'libx264', join(dir, 'raw.h264')]);
  ffmpeg(['-f', 'lavfi', '-i', 'sine=f=440:d=1', '-c:a', 'aac', join(dir, 'audio-only.m4a')]);
  const valid = await readFile(join(dir, 'testsrc.mp4'));
  await writeFile(join(dir, 'truncated.mp4'), valid.subarray(0, 600));
  await writeFile(join(dir, 'garbage.mp4'), Buffer.from('this is not a video at all'));
});

afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('processVideo', () => {
  it('reports ffprobe metadata and keeps exactly N frames at candidate times, in order', async () => {
    const seen: Buffer[] = [];
    const result = await processVideo(tools, join(dir, 'testsrc.mp4'), {
      keyframes: 3,
      embedFrame: async (jpeg) => {
        seen.push(jpeg);
        return meanColourEmbedding(jpeg);
      },
    });
    expect(result.metadata.duration).toBeCloseTo(3, 1);
    expect(result.metadata).toMatchObject({ width: 160, height: 120, codec: 'h264', fps: 25 });
    expect(result.metadata.bitrate).toBeGreaterThan(0);

    const candidateMs = candidateTimestamps(result.metadata.duration as number, 3).map((t) =>
      Math.round(t * 1000),
    );
    expect(candidateMs).toHaveLength(6);
    expect(result.frames.map((frame) => frame.frameIdx)).toEqual([0, 1, 2]);
    const times = result.frames.map((frame) => frame.timestampMs);
    expect(times[0]).toBe(candidateMs[0]);
    for (const time of times) expect(candidateMs).toContain(time);
    expect([...times].sort((a, b) => a - b)).toEqual(times);
    expect(new Set(times).size).toBe(3);

    expect(seen).toHaveLength(3);
    const first = await sharp(result.firstFrameJpeg).metadata();
    expect(first).toMatchObject({ format: 'jpeg', width: 160, height: 120 });
    expect(result.firstFrameJpeg.equals(seen[0] as Buffer)).toBe(true);
    expect(Array.from(result.embedding)).toEqual(
      Array.from(combineFrameEmbeddings(result.frames.map((f) => f.embedding))),
    );
  });

  it('prefers the differently coloured frame over evenly spaced ones (max–min diversity)', async () => {
    // 3 s, N = 2: candidates at 0.6, 1.2, 1.8 (red) and 2.4 s (blue); every other candidate would be all red.
    const result = await processVideo(tools, join(dir, 'red-then-blue.mp4'), {
      keyframes: 2,
      embedFrame: meanColourEmbedding,
    });
    expect(result.frames.map((frame) => frame.timestampMs)).toEqual([600, 2400]);
    expect(result.frames.map((frame) => dominantChannel(frame.embedding))).toEqual(['red', 'blue']);
  });

  it('picks one frame from each colour segment', async () => {
    // Candidates at 3·i/7 s: red, red, green, green, blue, blue.
    const result = await processVideo(tools, join(dir, 'rgb.mp4'), {
      keyframes: 3,
      embedFrame: meanColourEmbedding,
    });
    expect(result.frames.map((frame) => frame.timestampMs)).toEqual([429, 1286, 2143]);
    expect(result.frames.map((frame) => dominantChannel(frame.embedding))).toEqual(['red', 'green', 'blue']);
    const norm = Math.hypot(...result.embedding);
    expect(norm).toBeCloseTo(1, 5);
  });

  it('decodes a single-key-frame clip once, taking the first frame at or after each candidate time', async () => {
    expect(keyframeTimes(join(dir, 'one-keyframe.mp4'))).toEqual([0]);
    const log = join(dir, 'one-keyframe-runs');
    const result = await processVideo(
      { ...tools, ffmpeg: await countingFfmpeg(log) },
      join(dir, 'one-keyframe.mp4'),
      { keyframes: 3, embedFrame: meanColourEmbedding },
    );
    expect(await countLines(log)).toBe(1);
    // Candidates 0.429, 0.857, 1.286, 1.714, 2.143, 2.571 s land on the frames at 0.5, 0.9, 1.3, 1.8, 2.2 and
    // 2.6 s: lime, lime, blue, blue, red, red. (The frames before them would give red, lime, lime, blue, blue, red.)
    expect(result.frames.map((frame) => frame.timestampMs)).toEqual([429, 1286, 2143]);
    expect(result.frames.map((frame) => dominantChannel(frame.embedding))).toEqual(['green', 'blue', 'red']);
    expect(dominantChannel(await meanColourEmbedding(result.firstFrameJpeg))).toBe('green');
  });

  it('gives candidates that share a frame the same image and drops those after the last frame', async () => {
    // Frames at 0, 1 and 2 s. Candidates 0.429 and 0.857 s → the 1 s frame (lime), 1.286 and 1.714 s → the 2 s
    // frame (blue), 2.143 and 2.571 s → no frame. Kept: lime, then blue, then the earlier of the tied limes.
    const seen: Buffer[] = [];
    const result = await processVideo(tools, join(dir, 'one-fps.mp4'), {
      keyframes: 3,
      embedFrame: async (jpeg) => {
        seen.push(jpeg);
        return meanColourEmbedding(jpeg);
      },
    });
    expect(result.frames.map((frame) => frame.timestampMs)).toEqual([429, 857, 1286]);
    expect(result.frames.map((frame) => dominantChannel(frame.embedding))).toEqual([
      'green',
      'green',
      'blue',
    ]);
    expect(seen).toHaveLength(3);
    expect((seen[0] as Buffer).equals(seen[1] as Buffer)).toBe(true);
    expect((seen[1] as Buffer).equals(seen[2] as Buffer)).toBe(false);
  });

  it('keeps the first frame, at 0 ms, of a video without a duration', async () => {
    const result = await processVideo(tools, join(dir, 'raw.h264'), {
      keyframes: 3,
      embedFrame: meanColourEmbedding,
    });
    expect(result.metadata).toMatchObject({ duration: null, width: 160, height: 120, codec: 'h264' });
    expect(result.frames.map(({ frameIdx, timestampMs }) => ({ frameIdx, timestampMs }))).toEqual([
      { frameIdx: 0, timestampMs: 0 },
    ]);
    expect(await sharp(result.firstFrameJpeg).metadata()).toMatchObject({
      format: 'jpeg',
      width: 160,
      height: 120,
    });
  });

  it('fails permanently on an unreadable, truncated or frameless file', async () => {
    const options = { keyframes: 3, embedFrame: meanColourEmbedding };
    await expect(processVideo(tools, join(dir, 'garbage.mp4'), options)).rejects.toThrow(
      PermanentProcessingError,
    );
    await expect(processVideo(tools, join(dir, 'garbage.mp4'), options)).rejects.toThrow(
      'ffprobe cannot read the file: Invalid data found when processing input',
    );
    await expect(processVideo(tools, join(dir, 'truncated.mp4'), options)).rejects.toThrow(
      PermanentProcessingError,
    );
    await expect(processVideo(tools, join(dir, 'audio-only.m4a'), options)).rejects.toThrow(
      new PermanentProcessingError('video has no decodable frames'),
    );
  });

  it('fails permanently when ffmpeg extracts no frame at all', async () => {
    // ffprobe sees a video, but every extraction exits non-zero.
    const failing = join(dir, 'failing-ffmpeg.sh');
    await writeFile(failing, '#!/bin/sh\necho "decode error" >&2\nexit 1\n');
    await chmod(failing, 0o755);
    const promise = processVideo({ ...tools, ffmpeg: failing }, join(dir, 'testsrc.mp4'), {
      keyframes: 2,
      embedFrame: meanColourEmbedding,
    });
    await expect(promise).rejects.toThrow(new PermanentProcessingError('video has no decodable frames'));
  });

  it('fails transiently, naming the version, with an ffmpeg older than 5.1 (no -fps_mode)', async () => {
    const old = join(dir, 'old-ffmpeg.sh');
    await writeFile(old, '#!/bin/sh\necho "Unrecognized option \'fps_mode\'." >&2\nexit 8\n');
    await chmod(old, 0o755);
    const promise = processVideo({ ...tools, ffmpeg: old }, join(dir, 'testsrc.mp4'), {
      keyframes: 2,
      embedFrame: meanColourEmbedding,
    });
    await expect(promise).rejects.toThrow(
      new TransientProcessingError('ffmpeg 5.1 or newer is required for video keyframes'),
    );
  });

  it("fails transiently with 'ffmpeg is not available' when a binary is missing", async () => {
    const options = { keyframes: 2, embedFrame: meanColourEmbedding };
    const missing = join(dir, 'no-such-ffmpeg');
    await expect(
      processVideo({ ffmpeg: missing, ffprobe: tools.ffprobe }, join(dir, 'testsrc.mp4'), options),
    ).rejects.toThrow(new TransientProcessingError('ffmpeg is not available'));
    await expect(
      processVideo(
        resolveFfmpegTools({ ffmpegPath: missing, ffprobePath: `${missing}-probe` }),
        join(dir, 'testsrc.mp4'),
        options,
      ),
    ).rejects.toThrow(new TransientProcessingError('ffmpeg is not available'));
  });

  it('fails transiently when ffmpeg crashes', async () => {
    const crashing = join(dir, 'crashing-ffmpeg.sh');
    await writeFile(crashing, '#!/bin/sh\nkill -SEGV $$\n');
    await chmod(crashing, 0o755);
    await expect(
      processVideo({ ...tools, ffmpeg: crashing }, join(dir, 'testsrc.mp4'), {
        keyframes: 1,
        embedFrame: meanColourEmbedding,
      }),
    ).rejects.toThrow(new TransientProcessingError('ffmpeg was killed by SIGSEGV'));
  });

  it('runs one ffmpeg process for all candidates and kills it when the signal aborts', async () => {
    const pidFile = join(dir, 'pids');
    const hanging = join(dir, 'hanging-ffmpeg.sh');
    await writeFile(hanging, `#!/bin/sh\necho $$ >> '${pidFile}'\nexec sleep 30\n`);
    await chmod(hanging, 0o755);
    const controller = new AbortController();
    const started = Date.now();
    const promise = processVideo({ ...tools, ffmpeg: hanging }, join(dir, 'testsrc.mp4'), {
      keyframes: 3,
      embedFrame: meanColourEmbedding,
      signal: controller.signal,
    });
    const outcome = promise.then(
      () => null,
      (error: unknown) => error,
    );
    const readPids = async (): Promise<number[]> =>
      (await readFile(pidFile, 'utf8').catch(() => '')).split('\n').filter(Boolean).map(Number);
    while ((await readPids()).length < 1) await new Promise((resolve) => setTimeout(resolve, 20));
    await new Promise((resolve) => setTimeout(resolve, 200));
    const pids = await readPids();
    expect(pids).toHaveLength(1);
    controller.abort(new Error('job timed out'));
    const error = await outcome;
    expect(error).toBeInstanceOf(Error);
    expect((error as Error).message).toBe('job timed out');
    expect(Date.now() - started).toBeLessThan(10_000);
    expect(processIsGone(pids[0] as number)).toBe(true);
    expect(await readPids()).toHaveLength(1);
  });
});

describe('JpegStreamSplitter', () => {
  /** Feeds `stream` in pieces of the given sizes (cycled) and collects the images. */
  function split(stream: Buffer, pieceSizes: number[], maxImageBytes = 1 << 20): Buffer[] {
    const splitter = new JpegStreamSplitter(maxImageBytes);
    const images: Buffer[] = [];
    for (let offset = 0, piece = 0; offset < stream.length; piece++) {
      const size = pieceSizes[piece % pieceSizes.length] as number;
      images.push(...splitter.push(stream.subarray(offset, offset + size)));
      offset += size;
    }
    return images;
  }

  let baseline: Buffer;
  let progressive: Buffer;
  let withComment: Buffer;

  beforeAll(async () => {
    const noise = Buffer.alloc(48 * 32 * 3);
    for (let index = 0; index < noise.length; index++) noise[index] = (index * 7919) % 251;
    const raw = { raw: { width: 48, height: 32, channels: 3 as const } };
    baseline = await sharp(noise, raw).jpeg({ quality: 90 }).toBuffer();
    progressive = await sharp(noise, raw).jpeg({ quality: 60, progressive: true }).toBuffer();
    // A comment segment holding an EOI byte pair must not end the image.
    const comment = Buffer.from([0xff, 0xfe, 0x00, 0x06, 0xff, 0xd9, 0xff, 0xd9]);
    withComment = Buffer.concat([baseline.subarray(0, 2), comment, baseline.subarray(2)]);
  });

  it('returns each concatenated image whole, however the stream is cut', async () => {
    expect((await sharp(withComment).metadata()).width).toBe(48);
    const stream = Buffer.concat([baseline, progressive, withComment, baseline]);
    for (const pieces of [[stream.length], [1], [2, 3, 5], [4096], [baseline.length - 1, 7]]) {
      const images = split(stream, pieces);
      expect(images.map((image) => image.length)).toEqual([
        baseline.length,
        progressive.length,
        withComment.length,
        baseline.length,
      ]);
      expect(images[0]?.equals(baseline)).toBe(true);
      expect(images[1]?.equals(progressive)).toBe(true);
      expect(images[2]?.equals(withComment)).toBe(true);
    }
  });

  it('holds back an unfinished image and stops at bytes that are not a JPEG', () => {
    expect(split(Buffer.concat([baseline, progressive.subarray(0, 100)]), [64])).toHaveLength(1);
    const garbage = Buffer.from('not a jpeg');
    const images = split(Buffer.concat([baseline, garbage, baseline]), [64]);
    expect(images).toHaveLength(1);
    expect(images[0]?.equals(baseline)).toBe(true);
  });

  it('fails permanently when one image exceeds the cap', () => {
    const cap = baseline.length - 1;
    expect(split(baseline.subarray(0, cap), [cap], cap)).toEqual([]);
    expect(split(baseline, [100], baseline.length)).toHaveLength(1);
    expect(() => split(baseline, [100], cap)).toThrow(
      new PermanentProcessingError(`ffmpeg output exceeds ${cap} bytes`),
    );
  });
});

describe('hsvHistogram8', () => {
  it('puts pure colours into their 8×8×8 bin, index = h·64 + s·8 + v, summing to 1', () => {
    const red = hsvHistogram8(solidFrame(255, 0, 0));
    expect(red).toHaveLength(512);
    expect(red[63]).toBe(1);
    expect(hsvHistogram8(solidFrame(0, 0, 255))[5 * 64 + 7 * 8 + 7]).toBe(1);
    expect(hsvHistogram8(solidFrame(128, 128, 128))[4]).toBe(1);
    expect(hsvHistogram8(solidFrame(0, 0, 0))[0]).toBe(1);
    const half: RgbFrame = { data: Uint8Array.from([255, 0, 0, 0, 255, 0]), width: 2, height: 1 };
    const mixed = hsvHistogram8(half);
    expect(mixed[63]).toBe(0.5);
    expect(mixed[2 * 64 + 63]).toBe(0.5); // green: hue 120° → bin 2
    expect(mixed.reduce((sum, value) => sum + value, 0)).toBeCloseTo(1, 12);
  });
});

describe('bhattacharyyaDistance', () => {
  it('is 0 for identical histograms, 1 for disjoint ones, symmetric and in between otherwise', () => {
    const red = hsvHistogram8(solidFrame(255, 0, 0));
    const blue = hsvHistogram8(solidFrame(0, 0, 255));
    const half: RgbFrame = { data: Uint8Array.from([255, 0, 0, 0, 0, 255]), width: 2, height: 1 };
    const mixed = hsvHistogram8(half);
    expect(bhattacharyyaDistance(red, red)).toBe(0);
    expect(bhattacharyyaDistance(mixed, mixed)).toBeCloseTo(0, 7);
    expect(bhattacharyyaDistance(red, blue)).toBe(1);
    // Σ√(h1h2) = √0.5 → √(1 − √0.5)
    expect(bhattacharyyaDistance(red, mixed)).toBeCloseTo(Math.sqrt(1 - Math.SQRT1_2), 12);
    expect(bhattacharyyaDistance(mixed, red)).toBe(bhattacharyyaDistance(red, mixed));
  });
});

describe('selectDiverseFrames', () => {
  const red = hsvHistogram8(solidFrame(255, 0, 0));
  const blue = hsvHistogram8(solidFrame(0, 0, 255));
  const green = hsvHistogram8(solidFrame(0, 255, 0));

  it('starts with the first candidate, then the farthest, ties to the earlier, returned in time order', () => {
    expect(selectDiverseFrames([red, red, blue, blue, green], 2)).toEqual([0, 2]);
    expect(selectDiverseFrames([red, red, blue, blue, green], 3)).toEqual([0, 2, 4]);
    expect(selectDiverseFrames([blue, red, red, red], 2)).toEqual([0, 1]);
    expect(selectDiverseFrames([red, red], 3)).toEqual([0, 1]);
    expect(selectDiverseFrames([], 3)).toEqual([]);
  });
});

describe('frame weights and video embedding', () => {
  it('weights frames by softmax((fᵢ·f̄)/0.08)', () => {
    const frames = [Float32Array.of(1, 0), Float32Array.of(1, 0), Float32Array.of(0, 1)];
    const weights = frameWeights(frames);
    expect(weights[0]).toBeCloseTo(0.4961538516606344, 12);
    expect(weights[1]).toBeCloseTo(0.4961538516606344, 12);
    expect(weights[2]).toBeCloseTo(0.007692296678731067, 12);
    const combined = combineFrameEmbeddings(frames);
    expect(combined[0]).toBeCloseTo(0.9999699551695396, 6);
    expect(combined[1]).toBeCloseTo(0.007751693894178231, 6);
  });

  it('gives equal weights to equally typical frames and passes a single frame through', () => {
    expect(frameWeights([Float32Array.of(0.6, 0.8), Float32Array.of(0.8, 0.6)])).toEqual([0.5, 0.5]);
    expect(frameWeights([Float32Array.of(0.6, 0.8)])).toEqual([1]);
    const single = combineFrameEmbeddings([Float32Array.of(3, 4)]);
    expect(single[0]).toBeCloseTo(0.6, 6);
    expect(single[1]).toBeCloseTo(0.8, 6);
  });
});
