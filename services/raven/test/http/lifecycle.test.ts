// Start-up, health, refusals and logs of the real bin: §8 cases 1, 16 (alias), 17, 36, 37 (start-up part), 39.
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { EMBEDDED_STORE, freePort, PDF, runBin, startRaven, upload } from './harness.js';

const PRODUCTION_MESSAGE =
  'REDIS_URL is required in production (NODE_ENV=production): the embedded store cannot be shared between instances';

describe('raven-zero serve', () => {
  it('listens on 127.0.0.1 with the embedded store and reports healthy right after start (cases 1, 17)', async () => {
    // No storage variables: the defaults (./storage, ./logs) resolve against the working directory.
    const raven = await startRaven({ ...EMBEDDED_STORE, STORAGE_PATH: '', TEMP_PATH: '', LOG_DIR: '' });
    try {
      expect(raven.url.startsWith('http://127.0.0.1:')).toBe(true);
      const health = await fetch(`${raven.url}/health/`);
      expect(health.status).toBe(200);
      const body = (await health.json()) as Record<string, unknown>;
      expect(body.status).toBe('healthy');
      expect(body.services).toEqual({
        redis: 'online',
        storage: 'online',
        scheduler: 'online',
        diceware: 'online',
      });
      expect(body.store).toBe('embedded');
      expect(body.version).toBe('0.1.0');
      expect(Number.isInteger(body.uptime_seconds)).toBe(true);
      expect(typeof body.started_at).toBe('string');
      expect(existsSync(join(raven.dir, 'storage', 'uploads'))).toBe(true);
      expect(existsSync(join(raven.dir, 'logs', 'raven_zero.log'))).toBe(true);
    } finally {
      expect(await raven.stop()).toBe(0);
    }
  });

  it('honours the misspelled HEATLH_RATE_LIMIT alias (case 16)', async () => {
    const raven = await startRaven({ HEATLH_RATE_LIMIT: '2/second' });
    try {
      let statuses: number[] = [];
      for (let round = 0; round < 3; round++) {
        statuses = [];
        for (let index = 0; index < 3; index++) statuses.push((await fetch(`${raven.url}/health`)).status);
        if (statuses[2] === 429) break;
        await new Promise((r) => setTimeout(r, 1100));
      }
      expect(statuses).toEqual([200, 200, 429]);
    } finally {
      await raven.stop();
    }
  });

  it('refuses to start without Redis in production, with a bad REDIS_URL, or with workers (case 36)', () => {
    const production = runBin(['serve', '--port', '0'], { NODE_ENV: 'production' });
    expect(production.status).toBe(1);
    expect(production.stderr).toContain(PRODUCTION_MESSAGE);
    const errorLine = production.stdout
      .split('\n')
      .filter((line) => line !== '')
      .map((line) => JSON.parse(line) as Record<string, unknown>)
      .find((line) => line.level === 'error');
    expect(errorLine?.reason).toBe(PRODUCTION_MESSAGE);

    const badUrl = runBin(['serve', '--port', '0'], { REDIS_URL: 'http://x' });
    expect(badUrl.status).toBe(1);
    expect(badUrl.stderr).toContain('REDIS_URL');

    const workers = runBin(['serve', '--port', '0'], { WEB_CONCURRENCY: '2' });
    expect(workers.status).toBe(1);
    expect(workers.stderr).toContain('REDIS_URL is required with more than one worker');
  });

  it('exits 1 after REDIS_STARTUP_TIMEOUT_SECONDS when Redis is unreachable (case 37, start-up)', async () => {
    const closedPort = await freePort();
    const result = runBin(['serve', '--port', '0'], {
      REDIS_URL: `redis://127.0.0.1:${closedPort}/0`,
      REDIS_STARTUP_TIMEOUT_SECONDS: '2',
    });
    expect(result.status).toBe(1);
    expect(result.elapsedMs).toBeGreaterThanOrEqual(2000);
    expect(result.elapsedMs).toBeLessThan(15_000);
    expect(result.stderr).toContain('Redis not reachable');
  });

  it('check-config prints the configuration without secrets', () => {
    const result = runBin(['check-config'], { METRICS_TOKEN: 'hunter2', MAX_USES: '7' });
    expect(result.status).toBe(0);
    expect(result.stdout).not.toContain('hunter2');
    expect(JSON.parse(result.stdout).maxUses).toBe(7);
    const bad = runBin(['check-config'], { MAX_USES: 'many' });
    expect(bad.status).toBe(1);
    expect(bad.stderr).toContain('MAX_USES');
  });
});

describe('logs (case 39)', () => {
  it('writes one JSON object per line with the §2.3 fields, never the key, and rotates the file', async () => {
    const raven = await startRaven({
      LOG_MAX_BYTES: '2048',
      LOG_BACKUPS: '2',
      UPLOAD_RATE_LIMIT: '100/hour',
    });
    let key = '';
    try {
      const response = await upload(raven.url, [{ name: 'file', filename: 'secret-name.pdf', data: PDF }], {
        'x-request-id': 'log-test-1',
      });
      expect(response.status).toBe(201);
      key = ((await response.json()) as { key: string }).key;
      await (await fetch(`${raven.url}/preview/${key}`)).arrayBuffer();
      await (await fetch(`${raven.url}/download/${key}`)).arrayBuffer();
      for (let index = 0; index < 20; index++) await (await fetch(`${raven.url}/livez`)).arrayBuffer();
      await new Promise((r) => setTimeout(r, 300));
    } finally {
      const logFile = join(raven.logDir, 'raven_zero.log');
      const rotated = existsSync(`${logFile}.1`);
      // The live file may have just been rotated (empty): read it with its first backup.
      const fileText = readFileSync(logFile, 'utf8') + (rotated ? readFileSync(`${logFile}.1`, 'utf8') : '');
      const lines = [...raven.stdout];
      expect(await raven.stop()).toBe(0);
      expect(rotated).toBe(true);
      const fileLines = fileText.split('\n').filter((line) => line !== '');
      expect(fileLines.length).toBeGreaterThan(0);
      for (const line of fileLines) expect(() => JSON.parse(line)).not.toThrow();
      const events = lines.map((line) => JSON.parse(line) as Record<string, unknown>);
      for (const event of events) {
        expect(event.timestamp).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
        expect(['debug', 'info', 'warning', 'error']).toContain(event.level);
        expect(typeof event.event).toBe('string');
      }
      const finished = events.find(
        (event) => event.event === 'request_finished' && event.request_id === 'log-test-1',
      );
      expect(finished).toMatchObject({ method: 'POST', path: '/upload', status_code: 201 });
      expect(finished?.duration).toMatch(/^\d+\.\d{4}s$/);
      expect(typeof finished?.duration_ms).toBe('number');
      expect(events.some((event) => event.event === 'app_started')).toBe(true);
      const all = lines.join('\n');
      expect(key).not.toBe('');
      expect(all).not.toContain(key);
      expect(all).not.toContain('secret-name');
    }
  });
});
