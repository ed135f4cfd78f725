import { execFileSync } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PermanentProcessingError, TransientProcessingError } from '../../src/domain/errors.js';
import {
  ffmpegAvailability,
  probeMedia,
  resolveFfmpegTools,
  runTool,
} from '../../src/domain/media/ffmpeg.js';

const tools = resolveFfmpegTools({});
let dir: string;

function ffmpeg(args: string[]): void {
  execFileSync('ffmpeg', ['-hide_banner', '-nostdin', '-v', 'error', '-y', ...args]);
}

/** Pids of processes whose command line contains `marker` (pgrep exits 1 when there are none). */
function pidsMatching(marker: string): number[] {
  try {
    return execFileSync('pgrep', ['-f', marker], { encoding: 'utf8' })
      .split('\n')
      .filter(Boolean)
      .map(Number);
  } catch (error) {
    if ((error as { status?: number }).status === 1) return [];
    throw error;
  }
}

/** True while `pid` exists and is not a zombie waiting to be reaped by whoever adopted it. */
async function isRunning(pid: number): Promise<boolean> {
  const stat = await readFile(`/proc/${pid}/stat`, 'utf8').catch(() => null);
  if (stat === null) return false;
  return stat.slice(stat.lastIndexOf(')') + 2).charAt(0) !== 'Z';
}

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'allocator-ffmpeg-'));
  ffmpeg([
    ...['-f', 'lavfi', '-i', 'testsrc2=s=160x120:r=25:d=2'],
    ...['-f', 'lavfi', '-i', 'sine=f=440:d=2:sample_rate=48000'],
    ...['-c:v', 'libx264', '-pix_fmt', 'yuv420p', '-c:a', 'aac', '-shortest', join(dir, 'clip.mp4')],
  ]);
  ffmpeg([
    '-f',
    'lavfi',
    '-i',
    'sine=f=440:d=1.5:sample_rate=22050',
    '-c:a',
    'pcm_s16le',
    join(dir, 'tone.wav'),
  ]);
  await writeFile(join(dir, 'corrupt.mp4'), Buffer.from('not a media file, just text'));
  await writeFile(join(dir, 'odd:name.wav'), Buffer.alloc(0));
});

afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('resolveFfmpegTools', () => {
  it('uses the configured paths, else the binaries on PATH', () => {
    expect(resolveFfmpegTools({})).toEqual({ ffmpeg: 'ffmpeg', ffprobe: 'ffprobe' });
    expect(resolveFfmpegTools({ ffmpegPath: '', ffprobePath: ' ' })).toEqual({
      ffmpeg: 'ffmpeg',
      ffprobe: 'ffprobe',
    });
    expect(
      resolveFfmpegTools({ ffmpegPath: '/usr/local/bin/ffmpeg', ffprobePath: '/usr/local/bin/ffprobe' }),
    ).toEqual({
      ffmpeg: '/usr/local/bin/ffmpeg',
      ffprobe: '/usr/local/bin/ffprobe',
    });
  });
});

describe('ffmpegAvailability', () => {
  it('reports the version of an installed ffmpeg, once per tools object', async () => {
    const first = ffmpegAvailability(tools);
    expect(ffmpegAvailability(tools)).toBe(first);
    const availability = await first;
    expect(availability.available).toBe(true);
    const expected = /^ffmpeg version (\S+)/.exec(
      execFileSync('ffmpeg', ['-version'], { encoding: 'utf8' }),
    )?.[1];
    expect(availability.version).toBe(expected);
  });

  it('reports a missing binary as unavailable', async () => {
    const missing = resolveFfmpegTools({ ffmpegPath: join(dir, 'no-such-ffmpeg') });
    expect(await ffmpegAvailability(missing)).toEqual({ available: false, version: null });
  });
});

describe('probeMedia', () => {
  it('reads video and audio metadata', async () => {
    const probe = await probeMedia(tools, join(dir, 'clip.mp4'));
    expect(probe.duration).toBeCloseTo(2, 1);
    expect(probe).toMatchObject({
      width: 160,
      height: 120,
      codec: 'h264',
      fps: 25,
      sampleRate: 48000,
      hasVideo: true,
      hasAudio: true,
    });
    expect(probe.bitrate).toBeGreaterThan(0);
  });

  it('reads audio-only metadata', async () => {
    const probe = await probeMedia(tools, join(dir, 'tone.wav'));
    expect(probe).toMatchObject({
      width: null,
      height: null,
      codec: 'pcm_s16le',
      fps: null,
      sampleRate: 22050,
      hasVideo: false,
      hasAudio: true,
    });
    expect(probe.duration).toBeCloseTo(1.5, 3);
    // The container's rate: 22 050 Hz × 16 bit plus the WAV header spread over 1.5 s.
    expect(probe.bitrate).toBeGreaterThanOrEqual(352_800);
    expect(probe.bitrate).toBeLessThan(352_800 * 1.01);
  });

  it('fails permanently on a file it cannot read, without leaking the path', async () => {
    const error = await probeMedia(tools, join(dir, 'corrupt.mp4')).catch((caught: unknown) => caught);
    expect(error).toBeInstanceOf(PermanentProcessingError);
    expect((error as Error).message).toBe(
      'ffprobe cannot read the file: Invalid data found when processing input',
    );
    // A ':' in the name is a file name, not a protocol.
    await expect(probeMedia(tools, join(dir, 'odd:name.wav'))).rejects.toThrow(
      /^ffprobe cannot read the file: /,
    );
  });

  it("fails transiently with 'ffmpeg is not available' when ffprobe is missing", async () => {
    const missing = resolveFfmpegTools({ ffprobePath: join(dir, 'no-such-ffprobe') });
    await expect(probeMedia(missing, join(dir, 'clip.mp4'))).rejects.toThrow(
      new TransientProcessingError('ffmpeg is not available'),
    );
  });

  it('does not start when the signal is already aborted', async () => {
    const controller = new AbortController();
    controller.abort(new Error('cancelled'));
    await expect(probeMedia(tools, join(dir, 'clip.mp4'), controller.signal)).rejects.toThrow('cancelled');
  });
});

describe('runTool', () => {
  it('kills the child when the signal aborts and settles only after it exited', async () => {
    const marker = `allocator-abort-${randomUUID()}`;
    const controller = new AbortController();
    // An endless source: ffmpeg would run until killed.
    const running = runTool(
      tools.ffmpeg,
      [
        '-nostdin',
        '-v',
        'error',
        '-f',
        'lavfi',
        '-i',
        'sine=f=440',
        '-metadata',
        `comment=${marker}`,
        '-f',
        'null',
        '-',
      ],
      { signal: controller.signal },
    );
    const outcome = running.then(
      () => null,
      (error: unknown) => error,
    );
    let pids: number[] = [];
    while (pids.length === 0) {
      pids = pidsMatching(marker);
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    expect(pids).toHaveLength(1);
    controller.abort(new Error('job timed out'));
    expect(((await outcome) as Error).message).toBe('job timed out');
    expect(pidsMatching(marker)).toEqual([]);
  });

  it('keeps only the tail of stderr', async () => {
    const outcome = await runTool('sh', ['-c', 'head -c 100000 /dev/zero | tr "\\0" x >&2; echo done >&2']);
    expect(outcome.code).toBe(0);
    expect(outcome.stderr).toHaveLength(16 * 1024);
    expect(outcome.stderr.endsWith('xxdone\n')).toBe(true);
  });

  it('kills a child whose output exceeds the cap, with everything it started', async () => {
    const pidFile = join(dir, 'grandchild.pid');
    const started = Date.now();
    // The shell's `sleep` is a grandchild holding stdout open: it must die with the shell.
    const script = `sleep 30 & echo $! > '${pidFile}'; head -c 100000 /dev/zero; wait`;
    const error = await runTool('sh', ['-c', script], { maxStdoutBytes: 1000 }).catch(
      (caught: unknown) => caught,
    );
    expect(error).toBeInstanceOf(PermanentProcessingError);
    expect((error as Error).message).toBe('ffmpeg output exceeds 1000 bytes');
    expect(Date.now() - started).toBeLessThan(10_000);
    const grandchild = Number(await readFile(pidFile, 'utf8'));
    expect(grandchild).toBeGreaterThan(0);
    await expect.poll(() => isRunning(grandchild)).toBe(false);
  });

  it('kills the child when the stdout consumer throws', async () => {
    const started = Date.now();
    const error = await runTool('sh', ['-c', 'echo data; exec sleep 30'], {
      onStdout: () => {
        throw new Error('consumer failed');
      },
    }).catch((caught: unknown) => caught);
    expect((error as Error).message).toBe('consumer failed');
    expect(Date.now() - started).toBeLessThan(10_000);
  });
});
