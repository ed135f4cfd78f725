// The `rag-assistant` commands as an operator runs them (spec §2.1, §3.11, acceptance 2, 3, 29): exit codes,
// stdout/stderr wording, files on disk, the embedded-database lock.
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, rm, stat, utimes, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { fileURLToPath } from 'node:url';
import { createLogger } from '@quintet/kernel/log';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openRagDatabase } from '../../src/domain/database.js';
import { testConfig } from '../domain/rag-fixtures.js';

const SERVICE_DIR = fileURLToPath(new URL('../../', import.meta.url));
const COMPILED_BIN = join(SERVICE_DIR, 'bin/rag-assistant.js');
// The compiled bin when it is built (npm test builds first), else the sources through tsx.
const COMMAND = existsSync(join(SERVICE_DIR, 'dist/cli.js'))
  ? [COMPILED_BIN]
  : ['--import', import.meta.resolve('tsx'), join(SERVICE_DIR, 'src/cli.ts')];

interface RunResult {
  code: number;
  stdout: string;
  stderr: string;
}

let work: string;

function run(args: string[], env: Record<string, string> = {}): Promise<RunResult> {
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      [...COMMAND, ...args],
      {
        cwd: work,
        // A clean environment: only what the test sets (plus PATH/HOME for node and tar).
        env: {
          PATH: process.env.PATH ?? '',
          HOME: work,
          DATA_DIR: join(work, 'data'),
          TMP_DIR: join(work, 'tmp'),
          ...env,
        },
        timeout: 30_000,
      },
      (error, stdout, stderr) => {
        const code = error === null ? 0 : typeof error.code === 'number' ? error.code : 1;
        resolve({ code, stdout, stderr });
      },
    );
  });
}

const silent = createLogger({
  name: 'rag',
  level: 'silent',
  destination: new Writable({ write: (_c, _e, done) => done() }),
});

beforeAll(async () => {
  work = await mkdtemp(join(tmpdir(), 'rag-cli-'));
});
afterAll(async () => {
  await rm(work, { recursive: true, force: true });
});

describe('usage', () => {
  it('--help lists the commands and the exit codes', async () => {
    const result = await run(['--help']);
    expect(result.code).toBe(0);
    for (const command of [
      'serve',
      'worker',
      'migrate',
      'create-first-admin',
      'cleanup-tmp',
      'mark-stuck-error',
      'watchdog',
      'reindex',
      'prune',
      'eval',
      'export-openapi',
      'secrets',
      'demo',
      'backup',
      'restore',
    ])
      expect(result.stdout).toContain(command);
    expect(result.stdout).toContain('Exit codes:');
  });

  it('an unknown command or a missing argument exits 2', async () => {
    expect((await run(['frobnicate'])).code).toBe(2);
    const missing = await run(['create-first-admin', 'a@example.com']);
    expect(missing.code).toBe(2);
    expect(missing.stderr).toContain("missing required argument 'password'");
  });
});

describe('start-up refusals', () => {
  it('production with ALLOW_DEV_LOGIN=true exits 1 naming every violated variable (acceptance 2)', async () => {
    const result = await run(['serve', '--port', '0'], {
      ENVIRONMENT: 'production',
      ALLOW_DEV_LOGIN: 'true',
    });
    expect(result.code).toBe(1);
    for (const variable of ['ALLOW_DEV_LOGIN', 'DATABASE_URL', 'JWT_SECRET', 'REDIS_URL', 'CORS_ORIGINS'])
      expect(result.stderr).toContain(variable);
  });

  it('GEMINI_MOCK_MODE=false without GEMINI_API_KEY refuses to start (acceptance 3)', async () => {
    const result = await run(['serve', '--port', '0'], { GEMINI_MOCK_MODE: 'false' });
    expect(result.code).toBe(1);
    expect(result.stderr).toContain('GEMINI_API_KEY');
  });

  it('worker without REDIS_URL exits 1 with the spec message', async () => {
    const result = await run(['worker']);
    expect(result.code).toBe(1);
    expect(result.stderr).toContain(
      "REDIS_URL is required for the standalone worker; without Redis, 'serve' indexes in-process",
    );
  });
});

describe('cleanup-tmp', () => {
  it('removes only regular files older than TMP_MAX_AGE_HOURS, and nothing at 0 (acceptance 29)', async () => {
    const tmp = join(work, 'tmp');
    await mkdir(join(tmp, 'subdir'), { recursive: true });
    const old = new Date(Date.now() - 3 * 3_600_000);
    for (const name of ['stale-a', 'stale-b', 'fresh']) await writeFile(join(tmp, name), 'x');
    await utimes(join(tmp, 'stale-a'), old, old);
    await utimes(join(tmp, 'stale-b'), old, old);
    await utimes(join(tmp, 'subdir'), old, old);

    const disabled = await run(['cleanup-tmp'], { TMP_MAX_AGE_HOURS: '0' });
    expect(disabled.code).toBe(0);
    expect(disabled.stdout).toContain('nothing removed');
    expect(disabled.stdout).toContain(`Removed 0 stale temp file(s) from ${tmp}`);
    expect(existsSync(join(tmp, 'stale-a'))).toBe(true);

    const result = await run(['cleanup-tmp'], { TMP_MAX_AGE_HOURS: '1' });
    expect(result.code).toBe(0);
    expect(result.stdout).toBe(`Removed 2 stale temp file(s) from ${tmp}\n`);
    expect(existsSync(join(tmp, 'stale-a'))).toBe(false);
    expect(existsSync(join(tmp, 'fresh'))).toBe(true);
    expect(existsSync(join(tmp, 'subdir'))).toBe(true);
  });

  it('also removes upload staging folders a crash left behind, by the same age', async () => {
    const tmp = join(work, 'tmp-staging');
    const old = new Date(Date.now() - 3 * 3_600_000);
    for (const name of ['upload-0a1b2c', 'upload-3d4e5f', 'upload-fresh', 'other-dir']) {
      await mkdir(join(tmp, name), { recursive: true });
      await writeFile(join(tmp, name, 'part'), 'x');
    }
    for (const name of ['upload-0a1b2c', 'upload-3d4e5f', 'other-dir'])
      await utimes(join(tmp, name), old, old);
    await writeFile(join(tmp, 'stale-file'), 'x');
    await utimes(join(tmp, 'stale-file'), old, old);

    const result = await run(['cleanup-tmp'], { TMP_DIR: tmp, TMP_MAX_AGE_HOURS: '1' });
    expect(result.code).toBe(0);
    expect(result.stdout).toBe(
      `Removed 1 stale temp file(s) from ${tmp}\n` +
        `Removed 2 stale upload staging folder(s) (upload-*) from ${tmp}\n`,
    );
    expect(existsSync(join(tmp, 'upload-0a1b2c'))).toBe(false);
    expect(existsSync(join(tmp, 'upload-3d4e5f'))).toBe(false);
    expect(existsSync(join(tmp, 'upload-fresh', 'part'))).toBe(true);
    expect(existsSync(join(tmp, 'other-dir', 'part'))).toBe(true);

    const help = await run(['cleanup-tmp', '--help']);
    expect(help.stdout).toContain('upload-* upload staging folders');
  });
});

describe('secrets', () => {
  it('creates the files with mode 0600, never overwrites, and prints what it created', async () => {
    const dir = join(work, 'secrets');
    const first = await run(['secrets', '--dir', dir]);
    expect(first.code).toBe(0);
    for (const name of ['jwt_secret', 'gemini_api_key', 'database_url', 'redis_url', 'postgres_password']) {
      expect(first.stdout).toContain(`Created ${join(dir, name)}`);
      expect((await stat(join(dir, name))).mode & 0o777).toBe(0o600);
    }
    const jwt = await readFile(join(dir, 'jwt_secret'), 'utf8');
    expect(jwt.trim()).toMatch(/^[0-9a-f]{64}$/);
    expect((await readFile(join(dir, 'postgres_password'), 'utf8')).trim()).toMatch(/^[0-9a-f]{32}$/);
    expect(await readFile(join(dir, 'gemini_api_key'), 'utf8')).toBe('');

    const second = await run(['secrets', '--dir', dir]);
    expect(second.code).toBe(0);
    expect(second.stdout).not.toContain('Created');
    expect(second.stdout).toContain(`Kept existing ${join(dir, 'jwt_secret')}`);
    expect(await readFile(join(dir, 'jwt_secret'), 'utf8')).toBe(jwt);
  });
});

describe('embedded database commands', () => {
  it('migrate applies the migrations once', async () => {
    const first = await run(['migrate']);
    expect(first.code).toBe(0);
    expect(first.stdout).toMatch(/Applied rag\/001/);
    const second = await run(['migrate']);
    expect(second.stdout).toBe('No pending migrations.\n');
  });

  it('create-first-admin checks the password policy (exit 2), creates once, then reports the existing user', async () => {
    const weak = await run(['create-first-admin', 'root@example.com', 'abcdef1!']);
    expect(weak.code).toBe(2);
    expect(weak.stderr).toBe('Invalid password: Weak password: require upper, lower, digit\n');
    const created = await run(['create-first-admin', 'Root@Example.com', 'Abcdef1!']);
    expect(created.code).toBe(0);
    expect(created.stdout).toBe('Admin root@example.com created successfully.\n');
    const again = await run(['create-first-admin', 'root@example.com', 'Xyzabc9?']);
    expect(again.code).toBe(0);
    expect(again.stdout).toBe('User root@example.com already exists.\n');
  });

  it('mark-stuck-error, watchdog and prune report their counts', async () => {
    const stuck = await run(['mark-stuck-error', '30']);
    expect(stuck.stdout).toBe('No stuck documents found.\n');
    const watchdog = await run(['watchdog', '--ttl-minutes', '5']);
    expect(watchdog.code).toBe(0);
    expect(watchdog.stdout).toContain('reset 0 stuck document(s)');
    const prune = await run(['prune', '--chat-days', '30', '--query-log-days', '90']);
    expect(prune.code).toBe(0);
    expect(prune.stdout).toMatch(/Deleted 0 chat message\(s\).*0 query log row\(s\)/);
  });

  it('exits 1 with the spec message while another process holds the database', async () => {
    const dataDir = join(work, 'data');
    const db = await openRagDatabase(testConfig({ dataDir }), silent);
    try {
      const result = await run(['mark-stuck-error']);
      expect(result.code).toBe(1);
      expect(result.stderr).toBe(
        `The embedded database in ${dataDir} is in use by another process; stop the server first\n`,
      );
      expect((await run(['backup', join(work, 'locked.tar.gz')])).code).toBe(1);
      expect(existsSync(join(work, 'locked.tar.gz'))).toBe(false);
    } finally {
      await db.close();
    }
  });

  it('backup and restore round-trip the database and the uploads', async () => {
    const uploads = join(work, 'data', 'uploads', '1');
    await mkdir(uploads, { recursive: true });
    await writeFile(join(uploads, 'kept.txt'), 'original');
    const archive = join(work, 'backup.tar.gz');
    const backup = await run(['backup', archive]);
    expect(backup.code).toBe(0);
    expect((await stat(archive)).size).toBeGreaterThan(0);

    await rm(join(work, 'data'), { recursive: true, force: true });
    const restored = await run(['restore', archive]);
    expect(restored.code).toBe(0);
    expect(await readFile(join(uploads, 'kept.txt'), 'utf8')).toBe('original');
    const again = await run(['create-first-admin', 'root@example.com', 'Abcdef1!']);
    expect(again.stdout).toBe('User root@example.com already exists.\n');
  });
});

describe('eval', () => {
  it('exits 1 and names the failing questions when a labelled set misses its thresholds', async () => {
    const dir = join(work, 'eval-set');
    await mkdir(join(dir, 'documents'), { recursive: true });
    await writeFile(
      join(dir, 'documents', 'kettle.md'),
      'The kettle boils one litre of water in 90 seconds.\n',
    );
    const questions = [
      {
        id: 'a1',
        question: 'How fast does the kettle boil water?',
        answerable: true,
        document: 'kettle.md',
        fact: '90 seconds',
      },
      { id: 'u1', question: 'Which kettle boils water fastest in winter?', answerable: false },
    ];
    await writeFile(join(dir, 'questions.jsonl'), `${questions.map((q) => JSON.stringify(q)).join('\n')}\n`);
    const result = await run(['eval', '--json', '--dataset', join(dir, 'questions.jsonl')]);
    expect(result.code).toBe(1);
    const report = JSON.parse(result.stdout);
    expect(report).toMatchObject({ passed: false, failedMetrics: ['unanswerableRefusedRate'] });
    expect(report.metrics.recallAtK).toBe(1);
    expect(report.outcomes[1]).toMatchObject({ id: 'u1', refused: false, retrieved: ['kettle.md'] });
  });
});
