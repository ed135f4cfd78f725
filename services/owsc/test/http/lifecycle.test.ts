// The real `openworld-chem dashboard` process: graceful shutdown on SIGTERM (spec §7.2; §8 case 40), cluster
// workers relaying readings through the primary (spec §2.3, §5 item 9) and start-up warnings (spec §7.4).
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { get } from 'node:http';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { openSocket, startTestDashboard, type TestSocket, testEnv, until } from './harness.js';

const REPO = resolve(import.meta.dirname, '../../../..');
const BIN = resolve(REPO, 'services/owsc/bin/openworld-chem.js');

function freePort(): Promise<number> {
  return new Promise((done, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() => done(typeof address === 'object' && address ? address.port : 0));
    });
  });
}

const DATABASE_URL = process.env.TEST_DATABASE_URL || 'postgres://postgres@127.0.0.1:5432/test';

/** GET on a fresh connection (cluster workers take connections in turn), parsed as JSON. */
function getJsonOnNewConnection(url: string): Promise<Record<string, unknown>> {
  return new Promise((done, reject) => {
    get(url, { agent: false }, (response) => {
      let body = '';
      response.on('data', (chunk: Buffer) => {
        body += chunk.toString('utf8');
      });
      response.on('end', () => done(JSON.parse(body) as Record<string, unknown>));
      response.on('error', reject);
    }).on('error', reject);
  });
}

interface Dashboard {
  url: string;
  child: ChildProcess;
  lines: () => Record<string, unknown>[];
  exited: Promise<number | null>;
}

const started: { child: ChildProcess; dir: string }[] = [];

async function startBin(env: Record<string, string>, args: string[] = []): Promise<Dashboard> {
  const dir = mkdtempSync(join(tmpdir(), 'owsc-life-'));
  const port = await freePort();
  const child = spawn(process.execPath, [BIN, 'dashboard', '--port', String(port), ...args], {
    cwd: dir,
    env: { PATH: process.env.PATH ?? '', HOME: dir, ...testEnv(dir), ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  started.push({ child, dir });
  let stdout = '';
  let stderr = '';
  child.stdout?.on('data', (chunk: Buffer) => {
    stdout += chunk.toString('utf8');
  });
  child.stderr?.on('data', (chunk: Buffer) => {
    stderr += chunk.toString('utf8');
  });
  const exited = new Promise<number | null>((done) => child.once('exit', (code) => done(code)));
  const url = `http://127.0.0.1:${port}`;
  const ready = await until(async () => {
    if (child.exitCode !== null) return true;
    try {
      return (await fetch(`${url}/readyz`)).status === 200;
    } catch {
      return false;
    }
  }, 30_000);
  if (!ready || child.exitCode !== null) throw new Error(`dashboard did not start: ${stderr}${stdout}`);
  return {
    url,
    child,
    exited,
    lines: () =>
      stdout
        .split('\n')
        .filter((line) => line.startsWith('{'))
        .map((line) => JSON.parse(line) as Record<string, unknown>),
  };
}

beforeAll(() => {
  // The bin runs the compiled service.
  const build = spawnSync(
    process.execPath,
    [resolve(REPO, 'node_modules/typescript/bin/tsc'), '-b', 'services/owsc'],
    {
      cwd: REPO,
      encoding: 'utf8',
    },
  );
  expect(build.status, build.stdout + build.stderr).toBe(0);
});

afterEach(() => {
  for (const { child, dir } of started.splice(0)) {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    rmSync(dir, { recursive: true, force: true });
  }
});

describe('openworld-chem dashboard', () => {
  it('closes every socket with 1001 on SIGTERM and exits 0 within the timeout (case 40)', async () => {
    const dashboard = await startBin({ DATABASE_URL, OW_SC_SHUTDOWN_TIMEOUT_S: '5' });
    const wsUrl = dashboard.url.replace('http', 'ws');
    const clients: TestSocket[] = await Promise.all([
      openSocket(`${wsUrl}/ws/effluent`),
      openSocket(`${wsUrl}/ws/effluent`),
      openSocket(`${wsUrl}/ws/alerts`),
    ]);
    const signalledAt = Date.now();
    dashboard.child.kill('SIGTERM');
    for (const client of clients)
      expect(await client.closed).toEqual({ code: 1001, reason: 'server shutting down' });
    expect(await dashboard.exited).toBe(0);
    expect(Date.now() - signalledAt).toBeLessThan(5000);
    const messages = dashboard.lines().map((line) => line.msg);
    expect(messages).toContain('shutting down');
    expect(messages).toContain('dashboard stopped');
    const closeLines = dashboard.lines().filter((line) => line.msg === 'websocket closed');
    expect(closeLines.map((line) => line.close_code)).toEqual([1001, 1001, 1001]);
  });

  it('relays readings between cluster workers through the primary without Redis (spec §2.3)', async () => {
    const dashboard = await startBin({ DATABASE_URL }, ['--workers', '2']);
    const wsUrl = dashboard.url.replace('http', 'ws');
    // Both workers are up once fresh connections reach two instance ids.
    const instanceIds = new Set<string>();
    expect(
      await until(async () => {
        const status = await getJsonOnNewConnection(`${dashboard.url}/api/status`);
        expect(status.workers).toBe(2);
        instanceIds.add(status.instance_id as string);
        return instanceIds.size === 2;
      }, 20_000),
    ).toBe(true);
    // Connections are handed to the workers in turn, so four clients land on both workers.
    const clients: TestSocket[] = [];
    for (let index = 0; index < 4; index++) clients.push(await openSocket(`${wsUrl}/ws/effluent`));

    const [sender, ...others] = clients as [TestSocket, ...TestSocket[]];
    sender.send({ species: 'Cu', concentration: 0.1, time: 1 });
    for (const other of others) expect(await other.next(3000)).toMatchObject({ species: 'Cu', time: 1 });
    expect(await sender.silentFor(300)).toBe(true);
    for (const other of others) expect(other.received).toHaveLength(1);

    // Every worker buffered it: /api/streams agrees whichever worker answers.
    for (let index = 0; index < 4; index++) {
      expect((await getJsonOnNewConnection(`${dashboard.url}/api/streams`)).count).toBe(1);
    }

    dashboard.child.kill('SIGTERM');
    for (const client of clients) expect((await client.closed).code).toBe(1001);
    expect(await dashboard.exited).toBe(0);
  });

  it('refuses several workers on the embedded database with exit 4 naming DATABASE_URL', () => {
    const dir = mkdtempSync(join(tmpdir(), 'owsc-life-'));
    try {
      const result = spawnSync(process.execPath, [BIN, 'dashboard', '--port', '0', '--workers', '2'], {
        cwd: dir,
        env: { PATH: process.env.PATH ?? '', HOME: dir, ...testEnv(dir) },
        encoding: 'utf8',
        timeout: 20_000,
      });
      expect(result.status).toBe(4);
      expect(result.stderr).toContain('configuration error: DATABASE_URL: required when OW_SC_WORKERS');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('logs the production start-up warnings at warn', async () => {
    const dashboard = await startBin({ DATABASE_URL, NODE_ENV: 'production' });
    const warnings = dashboard.lines().filter((line) => line.level === 'warn');
    expect(warnings.map((line) => line.msg)).toEqual([
      'OW_SC_API_TOKEN is not set: /api/* and WebSockets are open to anyone (set OW_SC_ALLOW_ANONYMOUS=1 to silence)',
      'OW_SC_CORS_ORIGINS is *: any web origin may call the API',
    ]);
    dashboard.child.kill('SIGTERM');
    expect(await dashboard.exited).toBe(0);
  });

  it('closes the embedded store again when the port is taken', async () => {
    const blocker = createServer();
    const port = await new Promise<number>((done) => {
      blocker.listen(0, '127.0.0.1', () => {
        const address = blocker.address();
        done(typeof address === 'object' && address ? address.port : 0);
      });
    });
    const dataDir = mkdtempSync(join(tmpdir(), 'owsc-life-data-'));
    try {
      await expect(startTestDashboard({ PORT: String(port), OW_SC_DATA_DIR: dataDir })).rejects.toThrow(
        /EADDRINUSE/,
      );
      // The database was closed: its data directory is no longer locked by this process.
      expect(existsSync(join(dataDir, 'owsc-db', 'PG_VERSION'))).toBe(true);
      expect(existsSync(join(dataDir, 'owsc-db', '.quintet.lock'))).toBe(false);
    } finally {
      blocker.close();
      rmSync(dataDir, { recursive: true, force: true });
    }
  });
});
