// Client disconnects and graceful shutdown with a slow (test-mode) render job (spec §3.9; acceptance case 48).
// Runs the compiled bin: `tsc -b` first.
import { readFileSync } from 'node:fs';
import { connect } from 'node:net';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildDocx } from '../../src/domain/docx/build.js';
import {
  apiEvent,
  descendantPids,
  pidAlive,
  settledWorkspaces,
  sleep,
  survivors,
  waitFor,
  workspaces,
} from '../helpers/contract.js';
import { readZip, runForm } from '../helpers/http.js';
import { type DocopsProcess, startDocops } from '../helpers/server.js';

const TEMPLATE = buildDocx({ paragraphs: ['Title: 【MEETING_TITLE】'] });
const TASK = { task_type: 'meeting_notice', payload: { meeting_title: 'Kickoff' } };
const PREFIX = 'docops-run-';

let server: DocopsProcess;

beforeAll(async () => {
  server = await startDocops({
    DOCOPS_TEST_MODE: '1',
    DOCOPS_TEST_SLEEP_SECONDS: '2',
    DOCOPS_MAX_CONCURRENCY: '1',
    DOCOPS_QUEUE_TIMEOUT_SECONDS: '30',
  });
});

afterAll(async () => {
  await server?.stop();
});

/** A /v1/run request that can be aborted. */
function slowRun(signal?: AbortSignal): Promise<Response> {
  return fetch(`${server.baseUrl}/v1/run`, {
    method: 'POST',
    body: runForm({ template: TEMPLATE, task: TASK }),
    ...(signal ? { signal } : {}),
  });
}

/** The running job: its request id (from the workspace name) and the pid its render process wrote. */
async function runningJob(): Promise<{ requestId: string; pid: number; workspace: string }> {
  return waitFor(
    () => {
      for (const name of workspaces(server.tmpDir)) {
        try {
          const pid = Number(readFileSync(join(server.tmpDir, name, 'runner.pid'), 'utf8'));
          if (pid > 0) return { requestId: name.slice(PREFIX.length), pid, workspace: name };
        } catch {
          // not this one, or not written yet
        }
      }
      return null;
    },
    10_000,
    'a running job',
  );
}

describe('client disconnect', () => {
  it('mid-job: 499 logged, the render process killed, the workspace removed', async () => {
    const controller = new AbortController();
    const request = slowRun(controller.signal).catch((error: unknown) => error);
    const job = await runningJob();
    expect(pidAlive(job.pid)).toBe(true);
    controller.abort();
    expect(await request).toBeInstanceOf(Error);

    const line = await apiEvent(server, job.requestId, 'error');
    expect(line).toMatchObject({
      logger: 'docops.api',
      outcome: 'client_disconnected',
      status_code: 499,
      http_status: 499,
      failure_stage: 'run_subprocess',
    });
    // Killed at once, not after the 2 s sleep.
    expect(await survivors([job.pid], 1000)).toEqual([]);
    expect(await settledWorkspaces(server.tmpDir, 1000)).toEqual([]);
    expect(apiLines(job.requestId).some((entry) => entry.event === 'done')).toBe(false);

    const metrics = await (await fetch(`${server.baseUrl}/metrics`)).text();
    expect(metrics).toMatch(/^docops_worker_kills_total\{reason="aborted"\} 1$/m);
    expect(metrics).toMatch(/^docops_runs_total\{outcome="client_disconnected"\} 1$/m);
  });

  it('mid-upload: 499 logged at the upload stage, the partial upload removed', async () => {
    const boundary = 'docops-test-boundary';
    const socket = connect(server.port, '127.0.0.1');
    await new Promise<void>((resolve) => socket.once('connect', resolve));
    socket.write(
      `POST /v1/run HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: multipart/form-data; boundary=${boundary}\r\n` +
        'Content-Length: 1000000\r\n\r\n' +
        `--${boundary}\r\nContent-Disposition: form-data; name="template"; filename="t.docx"\r\n\r\n` +
        `PK\x03\x04${'a'.repeat(20_000)}`,
    );
    const workspace = await waitFor(() => workspaces(server.tmpDir)[0], 5000, 'the upload workspace');
    socket.destroy();

    const line = await apiEvent(server, workspace.slice(PREFIX.length), 'error');
    expect(line).toMatchObject({ outcome: 'client_disconnected', status_code: 499, failure_stage: 'upload' });
    expect(await settledWorkspaces(server.tmpDir, 1000)).toEqual([]);
  });

  it('while queued: it leaves the queue, 499 logged; the running job goes on', async () => {
    const first = slowRun();
    const running = await runningJob();
    const controller = new AbortController();
    const queued = slowRun(controller.signal).catch((error: unknown) => error);
    // The queued request has its own workspace (its upload) but no render process yet.
    const queuedId = await waitFor(
      () =>
        workspaces(server.tmpDir)
          .find((name) => name !== running.workspace)
          ?.slice(PREFIX.length),
      5000,
      'the queued request',
    );
    await sleep(200);
    controller.abort();
    expect(await queued).toBeInstanceOf(Error);
    expect(await apiEvent(server, queuedId, 'error')).toMatchObject({
      outcome: 'client_disconnected',
      status_code: 499,
      failure_stage: 'queue',
    });
    expect(apiLines(queuedId).some((entry) => entry.event === 'start')).toBe(false);
    await waitFor(
      () => !workspaces(server.tmpDir).includes(`${PREFIX}${queuedId}`),
      1000,
      'the queued workspace removal',
    );
    expect(pidAlive(running.pid)).toBe(true);
    // The running job is still in flight: the shutdown case below finishes it (saves another slow job).
    inFlight = { request: first, job: running };
  });
});

/** A slow job left running by the queue case, for the shutdown case. */
let inFlight: { request: Promise<Response>; job: Awaited<ReturnType<typeof runningJob>> } | null = null;

describe('graceful shutdown (case 48)', () => {
  it('SIGTERM during a slow job: the job completes with 200, the server exits 0, no process survives', async () => {
    let request: Promise<Response>;
    let job: Awaited<ReturnType<typeof runningJob>>;
    if (inFlight) ({ request, job } = inFlight);
    else {
      request = slowRun();
      job = await runningJob();
    }
    expect(pidAlive(job.pid)).toBe(true);
    const tree = descendantPids(server.child.pid as number);
    expect(tree).toContain(job.pid);

    server.child.kill('SIGTERM');
    // No new work is taken while stopping.
    await sleep(200);
    const late = await fetch(`${server.baseUrl}/healthz`).then(
      (response) => response.status,
      () => 'refused',
    );
    expect(late).not.toBe(200);

    const response = await request;
    expect(response.status).toBe(200);
    expect(response.headers.get('x-docops-exit-code')).toBe('0');
    const zip = await readZip(response);
    const apiResult = zip.json('api_result.json');
    expect(apiResult.subprocess_pid).toBe(job.pid);
    expect(apiResult.request_id).toBe(job.requestId);

    // In-flight work done, the server stops at once (not at the end of the 30 s grace).
    const code = await new Promise<number | null | 'still running'>((resolve) => {
      if (server.child.exitCode !== null) resolve(server.child.exitCode);
      server.child.once('exit', (exitCode) => resolve(exitCode));
      setTimeout(() => resolve('still running'), 5000);
    });
    expect(code).toBe(0);
    expect(await survivors([...tree, job.pid], 2000)).toEqual([]);
    expect(workspaces(server.tmpDir)).toEqual([]);
    expect(server.logs().some((line) => line.event === 'stopped')).toBe(true);
  });
});

function apiLines(requestId: string): Record<string, unknown>[] {
  return server.logs().filter((line) => line.request_id === requestId && line.logger === 'docops.api');
}
