// `openworld-chem dashboard`, `healthcheck` and `version` through the compiled bin (spec §3.6, §3.12, §7.4;
// acceptance case 37).

import { existsSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { finished, humanStderr, type Workspace, workspace } from './cli-harness.js';

let ws: Workspace;
beforeAll(() => {
  ws = workspace();
});
afterAll(() => ws.cleanup());

const REFUSAL =
  'error: configuration error: DATABASE_URL: required in production when OW_SC_REDIS_URL is set (incidents and acknowledgements must be shared)';

describe('dashboard configuration checks', () => {
  it('refuses production with Redis but no DATABASE_URL, serving or not (case 37, §7.4)', () => {
    const env = { NODE_ENV: 'production', OW_SC_REDIS_URL: 'redis://127.0.0.1:6379/0' };
    for (const args of [
      ['dashboard', '--no-serve'],
      ['dashboard', '--port', '0'],
    ]) {
      const result = ws.run(args, { env });
      expect(result.status, args.join(' ')).toBe(4);
      expect(humanStderr(result.stderr).trim()).toBe(REFUSAL);
      expect(result.stdout).toBe('');
    }
    expect(
      ws.run(['-q', 'dashboard', '--no-serve'], {
        env: { ENVIRONMENT: 'production', OW_SC_REDIS_URL: 'redis://r:6379' },
      }).status,
    ).toBe(4);
    expect(existsSync(join(ws.state, 'data'))).toBe(false);
  });

  it('--no-serve names the first invalid variable and exits 4', () => {
    const cases: [Record<string, string>, string][] = [
      [{ OW_SC_METRICS_PROTECT: '1' }, 'OW_SC_METRICS_TOKEN'],
      [{ OW_SC_RL_PER_SEC: 'fast' }, 'OW_SC_RL_PER_SEC'],
      [{ OW_SC_PERMIT_FILE: join(ws.inputs, 'absent-permit.json') }, 'OW_SC_PERMIT_FILE'],
      [{ OW_SC_API_TOKEN_FILE: join(ws.inputs, 'absent-token') }, 'OW_SC_API_TOKEN_FILE'],
      [{ LOG_LEVEL: 'loud' }, 'LOG_LEVEL'],
    ];
    for (const [env, variable] of cases) {
      const result = ws.run(['-q', 'dashboard', '--no-serve'], { env });
      expect(result.status, variable).toBe(4);
      expect(result.stderr, variable).toMatch(new RegExp(`^error: configuration error: ${variable}: .+\\n$`));
    }
  });

  it('--no-serve prints the URL it would serve (flags over environment) and never a token', () => {
    const token = 'very-secret-token-value';
    const result = ws.run(['dashboard', '--no-serve', '-h', '127.0.0.2', '-p', '9123'], {
      env: { OW_SC_HOST: '0.0.0.0', PORT: '8111', OW_SC_API_TOKEN: token, NODE_ENV: 'production' },
    });
    expect(result.status).toBe(0);
    expect(result.stdout).toBe('http://127.0.0.2:9123\n');
    expect(result.stderr).toContain('api token: set');
    expect(result.stderr).toContain('mode: production');
    expect(result.stderr).not.toContain(token);
    expect(ws.run(['dashboard', '--no-serve'], { env: { APP_PORT: '8111' } }).stdout).toBe(
      'http://127.0.0.1:8111\n',
    );
    const open = ws.run(['dashboard', '--no-serve'], { env: { NODE_ENV: 'production' } });
    expect(open.stderr).toContain('warning: OW_SC_API_TOKEN is not set');
    expect(ws.run(['-q', 'dashboard', '--no-serve', '--port', '70000']).status).toBe(2);
    expect(ws.run(['-q', 'dashboard', '--no-serve', '--workers', '0']).status).toBe(2);
  });
});

describe('healthcheck', () => {
  let server: Server;
  let base: string;
  beforeAll(async () => {
    server = createServer((request, response) => {
      if (request.url === '/health') {
        response.writeHead(200, { 'content-type': 'application/json' }).end('{"status":"healthy"}');
      } else if (request.url === '/down') {
        response.writeHead(503).end('{"status":"not_ready"}');
      }
      // /hang: never answers
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  afterAll(() => {
    server.closeAllConnections();
    server.close();
  });

  it('exits 0 on 200 (default URL from PORT), 5 on another status or refusal, 7 on timeout', async () => {
    // The bin runs asynchronously: this process serves the probe meanwhile.
    const run = (args: string[], env: Record<string, string> = {}) => finished(ws.spawn(args, { env }));
    const port = String((server.address() as AddressInfo).port);
    const ok = await run(['healthcheck'], { PORT: port });
    expect(ok.status).toBe(0);
    expect(ok.stdout).toBe('{"status":"healthy"}\n');
    const down = await run(['-q', 'healthcheck', '--url', `${base}/down`]);
    expect(down.status).toBe(5);
    expect(down.stderr).toBe(`error: unhealthy: ${base}/down answered HTTP 503\n`);
    expect((await run(['-q', 'healthcheck', '--url', 'http://127.0.0.1:9/health'])).status).toBe(5);
    const started = Date.now();
    const hang = await run(['-q', 'healthcheck', '--url', `${base}/hang`, '--timeout', '0.5']);
    expect(hang.status).toBe(7);
    expect(hang.stderr).toMatch(/^error: no answer from .*\/hang within 0\.5 s\n$/);
    expect(Date.now() - started).toBeLessThan(5000);
    expect((await run(['-q', 'healthcheck', '--timeout', 'soon'])).status).toBe(2);
  });
});

describe('dashboard serving', () => {
  it('serves until SIGTERM (exit 0), with text logs on stdout, and passes its own healthcheck', async () => {
    const probe = createServer();
    await new Promise<void>((resolve) => probe.listen(0, '127.0.0.1', resolve));
    const port = (probe.address() as AddressInfo).port;
    await new Promise((resolve) => probe.close(resolve));

    const child = ws.spawn(['--log-format', 'text', 'dashboard', '--port', String(port)], {
      env: { OW_SC_JOB_WORKERS: '1', OW_SC_SHUTDOWN_TIMEOUT_S: '1' },
    });
    const done = finished(child);
    let stdout = '';
    child.stdout?.on('data', (chunk: Buffer) => {
      stdout += chunk.toString('utf8');
    });
    const deadline = Date.now() + 20_000;
    while (!stdout.includes('dashboard listening') && Date.now() < deadline && child.exitCode === null) {
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    expect(stdout).toContain('dashboard listening');
    expect(stdout.split('\n')[0]).toMatch(/^\d{4}-\d\d-\d\dT[\d:.]+Z (INFO|WARN|DEBUG)/);

    const health = await finished(ws.spawn(['-q', 'healthcheck'], { env: { PORT: String(port) } }));
    expect(health.status).toBe(0);
    expect(JSON.parse(health.stdout)).toMatchObject({
      status: 'healthy',
      service: 'openworld-specialty-chemicals',
    });

    child.kill('SIGTERM');
    const result = await done;
    expect(result.status).toBe(0);
  }, 30_000);
});

describe('version', () => {
  it('prints the version, the Node version and the platform; --json parses', () => {
    const text = ws.run(['version']);
    expect(text.status).toBe(0);
    expect(text.stdout).toBe(
      `openworld-chem 0.1.0\nnode ${process.version}\nplatform ${process.platform}-${process.arch}\n`,
    );
    expect(JSON.parse(ws.run(['version', '--json']).stdout)).toEqual({
      version: '0.1.0',
      node: process.version,
      platform: `${process.platform}-${process.arch}`,
    });
    expect(ws.run(['--version']).stdout).toBe('0.1.0\n');
    const help = ws.run(['--help']);
    expect(help.status).toBe(0);
    expect(help.stdout).toContain('monitor-batch');
    expect(ws.run(['dashboard', '--help']).stdout).toContain('-h, --host <host>');
  });
});
