// Faults of one-shot commands (spec §7.2): a full disk exits 1 with `error: no space left on device` and leaves
// the previous output intact; the job timeout exits 7; plus the shared output helpers.
import { execFileSync, spawnSync } from 'node:child_process';
import {
  chmodSync,
  closeSync,
  existsSync,
  mkdirSync,
  openSync,
  readdirSync,
  readFileSync,
  writeSync,
} from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { describeFailure } from '../../src/cli/context.js';
import { CliLogger, ExitCode, ProgressLine, writeFileAtomic } from '../../src/cli/output.js';
import { BIN, finished, ledgerRecords, type Workspace, workspace } from './cli-harness.js';

let ws: Workspace;
beforeAll(() => {
  ws = workspace();
});
afterAll(() => ws.cleanup());

/** Whether this machine lets an unprivileged process mount a tmpfs in its own user and mount namespace. */
const canMountTmpfs =
  spawnSync('unshare', ['-Urm', 'sh', '-c', 'mount -t tmpfs -o size=64k tmpfs /mnt']).status === 0;

describe('disk full', () => {
  it.skipIf(!canMountTmpfs)(
    'exits 1 with "no space left on device", the previous output intact, no temp file',
    () => {
      // Every SO4 reading exceeds the limit: `--mode all` lists them all, far more than the 64 KiB file system holds.
      const rows = Array.from({ length: 2000 }, (_, index) => `${index},SO4,${300 + index}`);
      const csv = ws.input('many.csv', `time,species,concentration\n${rows.join('\n')}\n`);
      const volume = join(ws.state, 'small-volume');
      mkdirSync(volume);
      const script = [
        `mount -t tmpfs -o size=64k tmpfs "${volume}"`,
        `printf 'previous result' > "${volume}/alerts.json"`,
        `"${process.execPath}" "${BIN}" -q monitor-batch -i "${csv}" --mode all -o "${volume}/alerts.json"`,
        'status=$?',
        `cat "${volume}/alerts.json"; echo; ls -A "${volume}"`,
        'exit $status',
      ].join('\n');
      const result = spawnSync('unshare', ['-Urm', 'sh', '-c', script], {
        cwd: ws.cwd,
        env: ws.env,
        encoding: 'utf8',
      });
      expect(result.status).toBe(1);
      expect(result.stderr).toBe('error: no space left on device\n');
      expect(result.stdout).toBe('previous result\nalerts.json\n');
      expect(ledgerRecords(ws.provenanceLedger)).toHaveLength(0);
    },
  );
});

describe('job timeout', () => {
  it('exits 7 when reading and evaluating overrun OW_SC_JOB_TIMEOUT_S, with no output', async () => {
    // A FIFO stands in for a slow input (a network mount): rows trickle in for longer than the 1 s limit.
    const fifo = join(ws.inputs, 'slow.csv');
    execFileSync('mkfifo', [fifo]);
    const out = join(ws.state, 'timeout.json');
    const started = Date.now();
    const child = ws.spawn(['-q', 'monitor-batch', '-i', fifo, '-o', out], {
      env: { OW_SC_JOB_TIMEOUT_S: '1' },
    });
    const done = finished(child);
    const writer = openSync(fifo, 'w');
    writeSync(writer, 'time,species,concentration\n');
    let row = 0;
    const timer = setInterval(() => {
      try {
        writeSync(writer, `${row++},SO4,1\n`);
      } catch {
        clearInterval(timer); // the reader has gone
      }
    }, 100);
    const result = await done;
    clearInterval(timer);
    closeSync(writer);
    expect(result.status).toBe(7);
    expect(result.stderr).toBe('error: processing timed out after 1 s (OW_SC_JOB_TIMEOUT_S)\n');
    expect(Date.now() - started).toBeLessThan(5000);
    expect(existsSync(out)).toBe(false);
  });
});

describe('output helpers', () => {
  it('writeFileAtomic creates parents, replaces the file whole and leaves no temp file', async () => {
    const path = join(ws.state, 'atomic', 'deep', 'out.json');
    await writeFileAtomic(path, 'first');
    await writeFileAtomic(path, 'second');
    expect(readFileSync(path, 'utf8')).toBe('second');
    expect(readdirSync(join(ws.state, 'atomic', 'deep'))).toEqual(['out.json']);
    // A failed write (the target is a directory) leaves nothing behind.
    mkdirSync(join(ws.state, 'atomic', 'dir.json'));
    await expect(writeFileAtomic(join(ws.state, 'atomic', 'dir.json'), 'x')).rejects.toThrow();
    expect(readdirSync(join(ws.state, 'atomic')).sort()).toEqual(['deep', 'dir.json']);
  });

  it('maps errors to exit codes', () => {
    const errno = (code: string) => Object.assign(new Error(code), { code, path: '/x' });
    expect(describeFailure(errno('ENOSPC'))).toMatchObject({
      exitCode: ExitCode.GENERIC,
      message: 'no space left on device',
    });
    expect(describeFailure(errno('EACCES')).exitCode).toBe(ExitCode.PERMISSION);
    expect(describeFailure(errno('EPERM')).exitCode).toBe(ExitCode.PERMISSION);
    expect(describeFailure(errno('ENOENT')).exitCode).toBe(ExitCode.NOT_FOUND);
    expect(describeFailure(Object.assign(new Error('X: bad'), { name: 'ConfigError' }))).toMatchObject({
      exitCode: ExitCode.VALIDATION,
      message: 'configuration error: X: bad',
    });
    expect(
      describeFailure(Object.assign(new Error('gone'), { name: 'ConfigFileError', missing: true })).exitCode,
    ).toBe(ExitCode.NOT_FOUND);
    expect(describeFailure(new Error('boom')).exitCode).toBe(ExitCode.GENERIC);
  });

  it('exits 6 when the output directory is not writable', () => {
    const locked = join(ws.state, 'locked');
    mkdirSync(locked, { mode: 0o555 });
    const csv = ws.input('ok.csv', 'time,species,concentration\n0,SO4,1\n');
    const args = [BIN, '-q', 'monitor-batch', '-i', csv, '-o', join(locked, 'a.json')];
    // root ignores directory permissions: run as an unprivileged user then (the workspace must be readable).
    const asRoot = process.getuid?.() === 0;
    if (asRoot) for (const dir of [join(ws.state, '..'), ws.inputs, ws.state, ws.cwd]) chmodSync(dir, 0o755);
    const result = asRoot
      ? spawnSync(
          'setpriv',
          ['--reuid=65534', '--regid=65534', '--clear-groups', process.execPath, ...args],
          {
            cwd: ws.cwd,
            env: ws.env,
            encoding: 'utf8',
          },
        )
      : spawnSync(process.execPath, args, { cwd: ws.cwd, env: ws.env, encoding: 'utf8' });
    expect(result.status, result.stderr).toBe(6);
    expect(result.stderr).toMatch(/^error: permission denied: .*locked/);
    expect(readdirSync(locked)).toEqual([]);
  });

  it('writes log lines with the run fields, as JSON or text, and throttles progress lines', () => {
    const lines: string[] = [];
    const logger = new CliLogger({
      level: 'info',
      format: 'json',
      corrId: 'abcd1234',
      instanceId: 'i1',
      write: (line) => lines.push(line),
    });
    logger.debug('hidden', 'not written');
    logger.info('monitor_batch_evaluated', 'batch evaluated', { alert_count: 2 });
    logger.configure('debug', 'text');
    logger.debug('shown', 'now written', { path: 'a b' });
    expect(lines).toHaveLength(2);
    expect(JSON.parse(lines[0] as string)).toMatchObject({
      level: 'info',
      msg: 'batch evaluated',
      service: 'owsc',
      instance_id: 'i1',
      corr_id: 'abcd1234',
      event: 'monitor_batch_evaluated',
      alert_count: 2,
    });
    expect(lines[1]).toMatch(/^\S+Z DEBUG now written event=shown corr_id=abcd1234 path="a b"\n$/);

    const progress: string[] = [];
    const line = new ProgressLine(true, (text) => progress.push(text), 0);
    line.rows(10);
    line.rows(20);
    line.done(30);
    expect(progress).toEqual(['parsed 20 rows\n', 'parsed 30 rows (done)\n']);
    const silent: string[] = [];
    const off = new ProgressLine(false, (text) => silent.push(text), 0);
    off.rows(1);
    off.rows(2);
    off.done(2);
    expect(silent).toEqual([]);
  });
});
