// Upload caps, timeouts and the concurrency limit over HTTP (spec §3.8.6 rows 2, 17, 21; §3.9; §7; acceptance
// cases 14, 15, 16, 44). Runs the compiled bin: `tsc -b` first.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildDocx } from '../../src/domain/docx/build.js';
import {
  apiEvent,
  expectError,
  pidAlive,
  settledWorkspaces,
  startServers,
  stopServers,
  survivors,
  waitFor,
  workspaces,
} from '../helpers/contract.js';
import { postRun, readZip } from '../helpers/http.js';
import type { DocopsProcess } from '../helpers/server.js';

const TEMPLATE = buildDocx({ paragraphs: ['Title: 【MEETING_TITLE】'] });
const TASK = { task_type: 'meeting_notice', payload: { meeting_title: 'Kickoff' } };

/** The pid a test-mode render process wrote to `runner.pid` in the (only) workspace, once it is there. */
function runnerPid(tmpDir: string): number | null {
  for (const name of workspaces(tmpDir)) {
    try {
      const pid = Number(readFileSync(join(tmpDir, name, 'runner.pid'), 'utf8'));
      if (pid > 0) return pid;
    } catch {
      // not written yet
    }
  }
  return null;
}

let servers: Record<'upload' | 'slow' | 'timeout' | 'oom', DocopsProcess>;

beforeAll(async () => {
  servers = await startServers({
    upload: { env: { DOCOPS_MAX_UPLOAD_BYTES: '32' } },
    slow: {
      env: {
        DOCOPS_TEST_MODE: '1',
        DOCOPS_TEST_SLEEP_SECONDS: '10',
        DOCOPS_REQUEST_TIMEOUT_SECONDS: '0.5',
        DOCOPS_MAX_CONCURRENCY: '1',
      },
    },
    timeout: {
      env: {
        DOCOPS_TEST_MODE: '1',
        DOCOPS_REQUEST_TIMEOUT_SECONDS: '2',
        DOCOPS_MAX_CONCURRENCY: '1',
        DOCOPS_QUEUE_TIMEOUT_SECONDS: '0.3',
      },
    },
    oom: { env: { DOCOPS_WORKER_MAX_MEMORY_MB: '32' } },
  });
});

afterAll(async () => {
  await stopServers(servers);
});

/** Reads the metrics text. */
async function metrics(server: DocopsProcess): Promise<string> {
  return (await fetch(`${server.baseUrl}/metrics`)).text();
}

describe('DOCOPS_MAX_UPLOAD_BYTES=32 (case 14)', () => {
  let server: DocopsProcess;

  beforeAll(() => {
    server = servers.upload;
  });

  it('413 UPLOAD_TOO_LARGE for the template, with max_bytes and the bytes received', async () => {
    const body = await expectError(
      await postRun(server.baseUrl, { template: TEMPLATE, task: TASK }),
      413,
      'UPLOAD_TOO_LARGE',
      {
        field: 'template',
        max_bytes: 32,
        received_bytes: expect.any(Number),
      },
    );
    expect(body.detail.received_bytes).toBeGreaterThan(32);
    expect(body.detail.received_bytes).toBeLessThanOrEqual(TEMPLATE.length);
    const line = await apiEvent(server, body.detail.request_id, 'error');
    expect(line).toMatchObject({
      status_code: 413,
      http_status: 413,
      outcome: 'payload_too_large',
      failure_stage: 'upload',
    });
    expect(await settledWorkspaces(server.tmpDir)).toEqual([]);
  });

  it('413 for the task when it is the part over the limit; 32 bytes are allowed', async () => {
    const form = new FormData();
    form.append('task', new Blob([JSON.stringify(TASK)]), 'task.json');
    form.append('template', new Blob([new Uint8Array(32)]), 'template.docx');
    const body = await expectError(
      await fetch(`${server.baseUrl}/v1/run`, { method: 'POST', body: form }),
      413,
      'UPLOAD_TOO_LARGE',
      {
        field: 'task',
        max_bytes: 32,
        received_bytes: expect.any(Number),
      },
    );
    expect(body.detail.received_bytes).toBeGreaterThan(32);

    // Both parts at exactly the limit pass the cap (and fail later, on the zip magic).
    await expectError(
      await postRun(server.baseUrl, {
        template: new Uint8Array(32),
        task: '{"task_type":"meeting_notice"}  ',
      }),
      415,
      'INVALID_MEDIA_TYPE',
      {
        field: 'template',
        reason: 'not_a_zip',
      },
    );
  });

  it('a large upload still gets the 413 body, not a connection reset', async () => {
    const big = new Uint8Array(8 * 1024 * 1024);
    big.set([0x50, 0x4b, 0x03, 0x04]);
    const started = performance.now();
    await expectError(await postRun(server.baseUrl, { template: big, task: TASK }), 413, 'UPLOAD_TOO_LARGE', {
      field: 'template',
      max_bytes: 32,
      received_bytes: expect.any(Number),
    });
    expect(performance.now() - started).toBeLessThan(10_000);
    expect(await settledWorkspaces(server.tmpDir)).toEqual([]);
    // The server is fine afterwards.
    expect((await fetch(`${server.baseUrl}/healthz`)).status).toBe(200);
  });

  it('a large body that is not multipart still gets the 415 body', async () => {
    const response = await fetch(`${server.baseUrl}/v1/run`, {
      method: 'POST',
      headers: { 'content-type': 'application/octet-stream' },
      body: new Uint8Array(8 * 1024 * 1024),
    });
    await expectError(response, 415, 'INVALID_MEDIA_TYPE', {
      field: 'body',
      expected: 'multipart/form-data',
    });
  });
});

describe('timeout and concurrency limit: test-mode sleep 10 s, timeout 0.5 s, one slot (cases 15, 16)', () => {
  let server: DocopsProcess;

  beforeAll(() => {
    server = servers.slow;
  });

  it('one of two simultaneous slow requests gets 429 with Retry-After; the other 408 with its process killed', async () => {
    const started = performance.now();
    const requests = [
      postRun(server.baseUrl, { template: TEMPLATE, task: TASK }),
      postRun(server.baseUrl, { template: TEMPLATE, task: TASK }),
    ];
    // The request holding the only slot: its render process writes runner.pid.
    const pid = await waitFor(() => runnerPid(server.tmpDir), 5000, 'runner.pid');
    const responses = await Promise.all(requests);
    const second = responses.find((response) => response.status === 429) as Response;
    const first = responses.find((response) => response !== second) as Response;
    expect(second, 'one request gets 429').toBeDefined();

    expect(second.headers.get('retry-after')).toBe('1');
    const busy = await expectError(second, 429, 'TOO_MANY_REQUESTS', {
      max_concurrency: 1,
      queue_timeout_seconds: 0,
    });
    expect(await apiEvent(server, busy.detail.request_id, 'error')).toMatchObject({
      logger: 'docops.api',
      status_code: 429,
      outcome: 'rate_limited',
      failure_stage: 'queue',
      queue_wait_ms: 0,
    });

    const timedOut = await expectError(first, 408, 'REQUEST_TIMEOUT', {
      timeout_seconds: 0.5,
      terminated: true,
      timed_out_pid: pid,
    });
    expect(performance.now() - started).toBeLessThan(8000);
    // Killed and confirmed before the response: gone within a second at the latest.
    expect(await survivors([pid], 1000)).toEqual([]);
    expect(await apiEvent(server, timedOut.detail.request_id, 'error')).toMatchObject({
      logger: 'docops.api',
      error_code: 'REQUEST_TIMEOUT',
      status_code: 408,
      http_status: 408,
      outcome: 'timeout',
      failure_stage: 'run_subprocess',
    });
    expect(await settledWorkspaces(server.tmpDir)).toEqual([]);

    const text = await metrics(server);
    expect(text).toMatch(/^docops_worker_kills_total\{reason="timeout"\} 1$/m);
    expect(text).toMatch(/^docops_runs_total\{outcome="timeout"\} 1$/m);
    expect(text).toMatch(/^docops_runs_total\{outcome="rate_limited"\} 1$/m);
  });

  it('the killed render process is replaced: the pool is ready again', async () => {
    const ready = await waitFor(
      async () => {
        const body = (await (await fetch(`${server.baseUrl}/readyz`)).json()) as {
          status: string;
          idle_workers: number;
        };
        return body.idle_workers >= 1 ? body : null;
      },
      5000,
      'an idle render process',
    );
    expect(ready.status).toBe('ready');
  });
});

// Enough paragraphs that rendering takes far longer than 2 s on any machine, and far more than a 32 MB heap.
const HUGE_TEMPLATE = buildDocx({
  paragraphs: Array.from({ length: 240_000 }, (_, i) => `Item ${i}: 【MEETING_TITLE】 【MEETING_DATE】`),
});

describe('a timeout kill does not hurt the next request (case 44); a positive queue timeout', () => {
  let server: DocopsProcess;
  const slowTemplate = HUGE_TEMPLATE;

  beforeAll(() => {
    server = servers.timeout;
  });

  it('408 for a render that runs too long, a queued request waits 0.3 s for 429, then the next request succeeds', async () => {
    const slow = postRun(server.baseUrl, { template: slowTemplate, task: TASK });
    const pid = await waitFor(() => runnerPid(server.tmpDir), 5000, 'runner.pid');

    const queuedStart = performance.now();
    const queued = await postRun(server.baseUrl, { template: TEMPLATE, task: TASK });
    expect(performance.now() - queuedStart).toBeGreaterThanOrEqual(290);
    const busy = await expectError(queued, 429, 'TOO_MANY_REQUESTS', {
      max_concurrency: 1,
      queue_timeout_seconds: 0.3,
    });
    const busyLine = await apiEvent(server, busy.detail.request_id, 'error');
    expect(busyLine.queue_wait_ms as number).toBeGreaterThanOrEqual(290);

    await expectError(await slow, 408, 'REQUEST_TIMEOUT', {
      timeout_seconds: 2,
      terminated: true,
      timed_out_pid: pid,
    });
    expect(pidAlive(pid)).toBe(false);

    const next = await postRun(server.baseUrl, { template: TEMPLATE, task: TASK });
    expect(next.status).toBe(200);
    const apiResult = (await readZip(next)).json('api_result.json');
    expect(apiResult.exit_code).toBe(0);
    expect(apiResult.subprocess_pid).not.toBe(pid);
    expect(await settledWorkspaces(server.tmpDir)).toEqual([]);
  });
});

describe('a render process that runs out of memory (row 22)', () => {
  let server: DocopsProcess;

  beforeAll(() => {
    server = servers.oom;
  });

  it('500 INTERNAL_ERROR worker_crashed; the HTTP process serves the next request', async () => {
    const body = await expectError(
      await postRun(server.baseUrl, { template: HUGE_TEMPLATE, task: TASK }),
      500,
      'INTERNAL_ERROR',
      { reason: 'worker_crashed' },
    );
    expect(await apiEvent(server, body.detail.request_id, 'error')).toMatchObject({
      level: 'error',
      logger: 'docops.api',
      status_code: 500,
      outcome: 'internal_error',
      failure_stage: 'run_subprocess',
    });
    expect(await settledWorkspaces(server.tmpDir)).toEqual([]);
    expect(await metrics(server)).toMatch(/^docops_worker_kills_total\{reason="[a-z]+"\} 1$/m);

    const next = await postRun(server.baseUrl, { template: TEMPLATE, task: TASK });
    expect(next.status).toBe(200);
    await next.arrayBuffer();
  });
});
