// `docops load-test` against a scripted local HTTP server: statuses, 408 request ids, transport failures,
// pids from api_result.json, the leak check and the temp watermark. The CLI cases run the compiled bin
// (`tsc -b` first).
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { strFromU8, strToU8, unzipSync, zipSync } from 'fflate';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { loadSkillRegistry } from '../../src/domain/skills.js';
import {
  buildLoadTestInputs,
  isPidAlive,
  loadTestSummaryToJson,
  runLoadTest,
} from '../../src/domain/tools/load-test.js';

const BIN = fileURLToPath(new URL('../../bin/docops.js', import.meta.url));
const DIST_COMMAND = fileURLToPath(new URL('../../dist/cli/load-test.js', import.meta.url));

interface ReceivedRequest {
  method: string;
  url: string;
  skill: string | null;
  templateName: string | null;
  templateXml: string | null;
  task: unknown;
}

/** What the server does with the n-th request (arrival order). */
type Script = (index: number, res: ServerResponse, req: IncomingMessage) => void | Promise<void>;

class FakeDocops {
  readonly received: ReceivedRequest[] = [];
  maxInFlight = 0;
  private inFlight = 0;
  private arrivals = 0;
  script: Script = (_index, res) => {
    res.writeHead(500).end();
  };
  readonly server: Server;

  constructor() {
    this.server = createServer((req, res) => void this.handle(req, res));
  }

  get url(): string {
    return `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
  }

  reset(script: Script): void {
    this.received.length = 0;
    this.maxInFlight = 0;
    this.arrivals = 0;
    this.script = script;
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const index = this.arrivals++;
    this.inFlight += 1;
    this.maxInFlight = Math.max(this.maxInFlight, this.inFlight);
    let counted = true;
    const done = () => {
      if (counted) this.inFlight -= 1;
      counted = false;
    };
    res.once('close', done);
    const chunks: Buffer[] = [];
    for await (const chunk of req) chunks.push(chunk as Buffer);
    const form = await new Response(Buffer.concat(chunks), {
      headers: { 'content-type': req.headers['content-type'] ?? '' },
    }).formData();
    const template = form.get('template');
    const task = form.get('task');
    const skill = form.get('skill');
    let templateXml: string | null = null;
    if (template instanceof Blob) {
      const bytes = new Uint8Array(await template.arrayBuffer());
      templateXml = strFromU8(unzipSync(bytes)['word/document.xml'] ?? new Uint8Array());
    }
    this.received.push({
      method: req.method ?? '',
      url: req.url ?? '',
      skill: typeof skill === 'string' ? skill : null,
      templateName: template instanceof File ? template.name : null,
      templateXml,
      task: task instanceof Blob ? JSON.parse(await task.text()) : null,
    });
    // Requests overlap for a moment, so the concurrency cap is observable.
    await new Promise((resolve) => setTimeout(resolve, 60));
    await this.script(index, res, req);
  }
}

function zipWithApiResult(apiResult: Record<string, unknown> | null): Buffer {
  const entries: Record<string, Uint8Array> = { 'out.docx': strToU8('PK fake docx') };
  if (apiResult) entries['api_result.json'] = strToU8(JSON.stringify(apiResult));
  return Buffer.from(zipSync(entries));
}

function sendZip(res: ServerResponse, pid: number, startMethod = 'spawn'): void {
  const body = zipWithApiResult({
    exit_code: 0,
    request_id: 'r',
    subprocess_pid: pid,
    subprocess_start_method: startMethod,
  });
  res.writeHead(200, { 'content-type': 'application/zip', 'x-docops-exit-code': '0' }).end(body);
}

function sendError(res: ServerResponse, status: number, errorCode: string, requestId: string): void {
  res
    .writeHead(status, { 'content-type': 'application/json', 'x-docops-request-id': requestId })
    .end(JSON.stringify({ error_code: errorCode, message: 'x', detail: { request_id: requestId } }));
}

/** The pid of a process that has already exited. */
function deadPid(): number {
  const result = spawnSync('true');
  if (typeof result.pid !== 'number') throw new Error('could not start a short-lived child');
  return result.pid;
}

interface BinResult {
  status: number | null;
  stdout: string;
  stderr: string;
}

/** The bin runs asynchronously: the fake server lives in this process and must keep answering. */
function docops(...args: string[]): Promise<BinResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [BIN, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (text: string) => {
      stdout += text;
    });
    child.stderr.setEncoding('utf8').on('data', (text: string) => {
      stderr += text;
    });
    child.once('error', reject);
    child.once('close', (status) => resolve({ status, stdout, stderr }));
  });
}

const fake = new FakeDocops();
let work: string;
let sleeper: ChildProcess;
let livePid: number;

beforeAll(async () => {
  await new Promise<void>((resolve) => fake.server.listen(0, '127.0.0.1', resolve));
  work = await mkdtemp(join(tmpdir(), 'docops-load-test-'));
  // A render process that never exits: what a leak looks like.
  sleeper = spawn('sleep', ['300'], { stdio: 'ignore' });
  livePid = sleeper.pid as number;
});

afterEach(() => {
  fake.server.closeAllConnections();
});

afterAll(async () => {
  sleeper.kill('SIGKILL');
  await new Promise((resolve) => fake.server.close(resolve));
  await rm(work, { recursive: true, force: true });
});

describe('load-test inputs', () => {
  it("holds the skill's first required placeholder and a task filling it", () => {
    const registry = loadSkillRegistry();
    const meeting = registry.get('meeting_notice');
    if (!meeting) throw new Error('meeting_notice missing');
    const inputs = buildLoadTestInputs(meeting);
    expect(inputs.placeholder).toBe('MEETING_TITLE');
    expect(inputs.task).toEqual({ task_type: 'meeting_notice', payload: { meeting_title: 'load test' } });
    expect(strFromU8(unzipSync(inputs.template)['word/document.xml'] ?? new Uint8Array())).toContain(
      '【MEETING_TITLE】',
    );
    const custom = buildLoadTestInputs({
      name: 'visitor_pass',
      fields: [
        { key: 'escorts', placeholder: 'ESCORTS', required: false, type: 'list[str]' },
        { key: 'visitors', placeholder: 'VISITORS', required: true, type: 'list[str]' },
      ],
    });
    expect(custom.placeholder).toBe('VISITORS');
    expect(custom.task.payload).toEqual({ visitors: ['load test'] });
  });

  it('treats a pid as alive while its process runs', () => {
    expect(isPidAlive(process.pid)).toBe(true);
    expect(isPidAlive(livePid)).toBe(true);
    expect(isPidAlive(deadPid())).toBe(false);
  });
});

describe.skipIf(!existsSync(DIST_COMMAND))('docops load-test (compiled bin)', () => {
  it('summarizes statuses, timeouts, transport failures, pids and the temp watermark', async () => {
    const tmpRoot = join(work, 'tmp-main');
    await mkdir(tmpRoot, { recursive: true });
    await writeFile(join(tmpRoot, 'keep.txt'), 'hello');
    const [pidA, pidB, pidC] = [deadPid(), deadPid(), deadPid()] as [number, number, number];
    fake.reset(async (index, res, req) => {
      // Like the real service: a workspace exists while the request is served and is gone after.
      const workspace = join(tmpRoot, `docops-run-${index}`);
      await mkdir(workspace);
      await writeFile(join(workspace, 'template.docx'), 'x'.repeat(100));
      await rm(workspace, { recursive: true });
      if (index === 0 || index === 2) sendZip(res, pidA);
      else if (index === 1) sendZip(res, pidB);
      else if (index === 7) sendZip(res, pidC);
      else if (index === 3) sendError(res, 408, 'REQUEST_TIMEOUT', 'b-timeout');
      else if (index === 4) sendError(res, 408, 'REQUEST_TIMEOUT', 'a-timeout');
      else if (index === 5) req.socket.destroy();
      else sendError(res, 429, 'TOO_MANY_REQUESTS', 'busy');
    });
    const summaryPath = join(work, 'out', 'summary.json');
    const result = await docops(
      'load-test',
      '--base-url',
      `${fake.url}/`,
      '--concurrency',
      '3',
      '--requests',
      '8',
      '--check-subprocess-leaks',
      '--leak-grace-ms',
      '400',
      '--tmp-root',
      tmpRoot,
      '--write-summary',
      summaryPath,
      '--fail-on-leaks',
    );
    expect(result.status).toBe(0);
    const summary = JSON.parse(result.stdout);
    expect(JSON.parse(await readFile(summaryPath, 'utf8'))).toEqual(summary);
    expect(Object.keys(summary)).toEqual([
      'base_url',
      'skill',
      'requests',
      'concurrency',
      'status_counts',
      'latency_ms',
      'timeout_request_ids',
      'subprocess_pids_seen',
      'leaked_pids',
      'leak_check',
      'note',
      'tmp_root',
      'tmp_before_count',
      'tmp_before_bytes',
      'tmp_after_count',
      'tmp_after_bytes',
      'tmp_delta_count',
      'tmp_delta_bytes',
      'tmp_warnings',
    ]);
    const { latency_ms: latency, note, ...exact } = summary;
    expect(exact).toEqual({
      base_url: fake.url,
      skill: 'meeting_notice',
      requests: 8,
      concurrency: 3,
      status_counts: { '200': 4, '408': 2, '429': 1, '599': 1 },
      timeout_request_ids: ['a-timeout', 'b-timeout'],
      subprocess_pids_seen: [pidA, pidB, pidC].sort((a, b) => a - b),
      leaked_pids: [],
      leak_check: 'checked',
      tmp_root: tmpRoot,
      tmp_before_count: 1,
      tmp_before_bytes: 5,
      tmp_after_count: 1,
      tmp_after_bytes: 5,
      tmp_delta_count: 0,
      tmp_delta_bytes: 0,
      tmp_warnings: [],
    });
    expect(note).toMatch(/^checked 3 subprocess pid\(s\)/);
    expect(
      Number.isInteger(latency.p50) && Number.isInteger(latency.p95) && Number.isInteger(latency.avg),
    ).toBe(true);
    expect(latency.p50).toBeGreaterThanOrEqual(60);
    expect(latency.p95).toBeGreaterThanOrEqual(latency.p50);
    expect(result.stderr).toContain('transport failures (counted as 599)');

    // What the server got: 8 multipart POSTs to /v1/run, never more than 3 at once.
    expect(fake.received).toHaveLength(8);
    expect(fake.maxInFlight).toBe(3);
    for (const request of fake.received) {
      expect(request.method).toBe('POST');
      expect(request.url).toBe('/v1/run');
      expect(request.skill).toBe('meeting_notice');
      expect(request.templateName).toMatch(/\.docx$/);
      expect(request.templateXml).toContain('【MEETING_TITLE】');
      expect(request.task).toEqual({ task_type: 'meeting_notice', payload: { meeting_title: 'load test' } });
    }
  });

  it('reports a pid still alive after the grace as leaked; --fail-on-leaks makes that exit 1', async () => {
    const gone = deadPid();
    fake.reset((index, res) => sendZip(res, index === 1 ? livePid : gone));
    const args = ['load-test', '--base-url', fake.url, '--concurrency', '2', '--requests', '3'];
    const failing = await docops(
      ...args,
      '--check-subprocess-leaks',
      '--leak-grace-ms',
      '300',
      '--fail-on-leaks',
    );
    expect(failing.status).toBe(1);
    const summary = JSON.parse(failing.stdout);
    expect(summary.status_counts).toEqual({ '200': 3 });
    expect(summary.subprocess_pids_seen).toEqual([gone, livePid].sort((a, b) => a - b));
    expect(summary.leaked_pids).toEqual([livePid]);
    expect(summary.leak_check).toBe('checked');
    expect(summary.note).toContain('1 still alive');
    expect(failing.stderr).toContain(`leaked subprocess pids: ${livePid}`);

    fake.reset((index, res) => sendZip(res, index === 1 ? livePid : gone));
    const reportOnly = await docops(...args, '--check-subprocess-leaks', '--leak-grace-ms', '300');
    expect(reportOnly.status).toBe(0);
    expect(JSON.parse(reportOnly.stdout).leaked_pids).toEqual([livePid]);

    fake.reset((index, res) => sendZip(res, index === 1 ? livePid : gone));
    const unchecked = await docops(...args, '--fail-on-leaks');
    expect(unchecked.status).toBe(0);
    expect(JSON.parse(unchecked.stdout)).toMatchObject({
      leaked_pids: [],
      leak_check: 'skipped',
      note: 'leak check not requested (--check-subprocess-leaks)',
      tmp_root: null,
      tmp_before_count: null,
      tmp_before_bytes: null,
      tmp_after_count: null,
      tmp_after_bytes: null,
      tmp_delta_count: null,
      tmp_delta_bytes: null,
      tmp_warnings: [],
    });
  });

  it('skips the leak check when render processes are reused (forkserver/fork)', async () => {
    fake.reset((index, res) => sendZip(res, livePid, index === 0 ? 'fork' : 'forkserver'));
    const result = await docops(
      'load-test',
      '--base-url',
      fake.url,
      '--requests',
      '2',
      '--check-subprocess-leaks',
      '--leak-grace-ms',
      '200',
      '--fail-on-leaks',
    );
    expect(result.status).toBe(0);
    const summary = JSON.parse(result.stdout);
    expect(summary.subprocess_pids_seen).toEqual([livePid]);
    expect(summary.leaked_pids).toEqual([]);
    expect(summary.leak_check).toBe('skipped');
    expect(summary.note).toContain('fork,forkserver');
  });

  it('rejects bad options with ERROR and exit 1', async () => {
    for (const args of [
      ['--concurrency', '0'],
      ['--requests', 'ten'],
      ['--timeout', '-1'],
      ['--leak-grace-ms', '1.5'],
      ['--base-url', 'ftp://example.org'],
      ['--skill', 'no_such_skill'],
      ['--no-such-option'],
    ]) {
      const result = await docops('load-test', '--base-url', fake.url, ...args);
      expect(result.status, args.join(' ')).toBe(1);
      expect(result.stderr, args.join(' ')).toMatch(/^ERROR: /);
      expect(result.stdout).toBe('');
    }
  });
});

describe('runLoadTest', () => {
  it('counts a request past --timeout as 599, and leftovers in the temp root as a delta', async () => {
    const tmpRoot = join(work, 'tmp-leftover');
    await mkdir(tmpRoot, { recursive: true });
    fake.reset(async (index, res) => {
      if (index === 0) return; // never answers: the client's timeout ends it
      await writeFile(join(tmpRoot, `left-behind-${index}.bin`), 'x'.repeat(7));
      // a 200 whose zip lacks api_result.json
      res.writeHead(200, { 'content-type': 'application/zip' }).end(zipWithApiResult(null));
    });
    const registry = loadSkillRegistry();
    const skill = registry.get('training_notice');
    if (!skill) throw new Error('training_notice missing');
    const { summary, transportErrors } = await runLoadTest({
      baseUrl: fake.url,
      skill: 'training_notice',
      concurrency: 1,
      requests: 2,
      timeoutSeconds: 0.5,
      checkSubprocessLeaks: true,
      leakGraceMs: 200,
      tmpRoot,
      inputs: buildLoadTestInputs(skill),
    });
    expect(fake.received.map((request) => request.task)).toEqual([
      { task_type: 'training_notice', payload: { training_title: 'load test' } },
      { task_type: 'training_notice', payload: { training_title: 'load test' } },
    ]);
    expect(summary.status_counts).toEqual({ '200': 1, '599': 1 });
    expect(transportErrors).toEqual(['request timed out']);
    expect(summary.latency_ms.p95).toBeGreaterThanOrEqual(500);
    expect(summary.subprocess_pids_seen).toEqual([]);
    expect(summary.leak_check).toBe('checked');
    expect(summary.note).toContain('1 200 response(s) had no readable api_result.json');
    expect(summary).toMatchObject({
      tmp_before_count: 0,
      tmp_before_bytes: 0,
      tmp_after_count: 1,
      tmp_after_bytes: 7,
      tmp_delta_count: 1,
      tmp_delta_bytes: 7,
      tmp_warnings: [],
    });
  });

  it('reports a missing temp root as a warning, not an error', async () => {
    fake.reset((_index, res) => sendZip(res, deadPid()));
    const missing = join(work, 'no-such-root');
    const { summary } = await runLoadTest({
      baseUrl: fake.url,
      skill: 'meeting_notice',
      concurrency: 2,
      requests: 2,
      timeoutSeconds: 5,
      checkSubprocessLeaks: false,
      leakGraceMs: 0,
      tmpRoot: missing,
      inputs: buildLoadTestInputs({
        name: 'meeting_notice',
        fields: [{ key: 'meeting_title', placeholder: 'MEETING_TITLE', required: true, type: 'str' }],
      }),
    });
    expect(summary.tmp_warnings).toEqual([`root_not_found:${missing}`]);
    expect(summary.tmp_delta_count).toBe(0);
    // status keys in code-unit order, even when integer-like keys would reorder in a plain object
    const json = loadTestSummaryToJson({ ...summary, status_counts: { '99': 1, '200': 2 } });
    expect(json.indexOf('"200"')).toBeLessThan(json.indexOf('"99"'));
  });
});
