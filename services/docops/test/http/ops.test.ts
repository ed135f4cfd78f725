// Operations: invalid configuration stops start-up naming the variable (§3.11), the production cluster with
// two HTTP workers (S2, S3, §3.8.3, §3.8.4 aggregation) and its shutdown. Runs the compiled bin: `tsc -b` first.
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import { request as httpRequest } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { unzipSync } from 'fflate';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildDocx } from '../../src/domain/docx/build.js';
import {
  descendantPids,
  parentPid,
  REQUEST_ID,
  startServers,
  stopServers,
  survivors,
  waitFor,
} from '../helpers/contract.js';
import { runForm, zipEntryOrder } from '../helpers/http.js';
import { type DocopsProcess, runDocops } from '../helpers/server.js';

const TEMPLATE = buildDocx({ paragraphs: ['Title: 【MEETING_TITLE】'] });
const TASK = { task_type: 'meeting_notice', payload: { meeting_title: 'Kickoff' } };

describe('invalid configuration stops start-up with exit 1 and a one-line message naming the variable', () => {
  const cases: [string, Record<string, string>, string[]][] = [
    ['DOCOPS_MAX_CONCURRENCY', { DOCOPS_MAX_CONCURRENCY: 'abc' }, []],
    ['DOCOPS_MP_START', { DOCOPS_MP_START: 'thread' }, []],
    ['DOCOPS_WEB_BASIC_AUTH', { DOCOPS_WEB_BASIC_AUTH: 'nocolon' }, []],
    ['DOCOPS_WEB_BASIC_AUTH', { DOCOPS_WEB_BASIC_AUTH: 'user:' }, []],
    ['DOCOPS_TEST_MODE', { DOCOPS_TEST_MODE: '1', NODE_ENV: 'production' }, []],
    ['DOCOPS_REQUEST_TIMEOUT_SECONDS', { DOCOPS_REQUEST_TIMEOUT_SECONDS: '0' }, []],
    ['DOCOPS_ENABLE_META', { DOCOPS_ENABLE_META: 'maybe' }, []],
    ['DOCOPS_SKILLS_DIR', { DOCOPS_SKILLS_DIR: '/nonexistent/docops-skills' }, []],
    ['DOCOPS_SOFFICE_PATH', { DOCOPS_SOFFICE_PATH: '/nonexistent/soffice' }, []],
    ['--workers', {}, ['--workers', 'two']],
  ];

  it.concurrent.each(cases)('%s (%j %j)', async (name, env, args) => {
    const result = await runDocops(['serve', '--port', '0', ...args], { DOCOPS_TMP_DIR: '/tmp', ...env });
    expect(result.code).toBe(1);
    const lines = result.stderr.trim().split('\n');
    expect(lines).toHaveLength(1);
    expect(lines[0]).toContain(name);
    expect(result.stdout).not.toContain('listening');
  });
});

interface RawResponse {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: Buffer;
}

/** One request on its own TCP connection, so that the cluster primary hands each to the next worker. */
async function freshRequest(url: string, method: 'GET' | 'POST', form?: FormData): Promise<RawResponse> {
  let body: Buffer | undefined;
  let contentType: string | undefined;
  if (form) {
    const encoded = new Request(url, { method, body: form });
    body = Buffer.from(await encoded.arrayBuffer());
    contentType = encoded.headers.get('content-type') ?? undefined;
  }
  return new Promise((resolve, reject) => {
    const request = httpRequest(
      url,
      { method, agent: false, headers: contentType ? { 'content-type': contentType } : {} },
      (response) => {
        const chunks: Buffer[] = [];
        response.on('data', (chunk: Buffer) => chunks.push(chunk));
        response.on('end', () =>
          resolve({
            status: response.statusCode ?? 0,
            headers: response.headers,
            body: Buffer.concat(chunks),
          }),
        );
        response.on('error', reject);
      },
    );
    request.on('error', reject);
    request.end(body);
  });
}

/** Render process pid → the HTTP worker that started it, for every process of the tree right now. */
function renderProcessOwners(primary: number): Map<number, number> {
  const owners = new Map<number, number>();
  for (const pid of descendantPids(primary)) {
    const parent = parentPid(pid);
    if (parent !== null && parent !== primary) owners.set(pid, parent);
  }
  return owners;
}

let servers: Record<'cluster' | 'sweep', DocopsProcess>;
let sweepDir: string;

beforeAll(async () => {
  // Leftovers of a crashed server: an old workspace, a recent one (could be another worker's), something else.
  sweepDir = mkdtempSync(join(tmpdir(), 'docops-sweep-'));
  const hourAgo = new Date(Date.now() - 3600_000);
  for (const name of ['docops-run-crashed', 'docops-run-recent', 'unrelated']) {
    mkdirSync(join(sweepDir, name));
    writeFileSync(join(sweepDir, name, 'upload-template'), 'x');
  }
  utimesSync(join(sweepDir, 'docops-run-crashed'), hourAgo, hourAgo);
  utimesSync(join(sweepDir, 'unrelated'), hourAgo, hourAgo);
  servers = await startServers({
    cluster: { env: { NODE_ENV: 'production' }, args: ['--workers', '2'] },
    sweep: { env: { DOCOPS_TMP_DIR: sweepDir } },
  });
});

afterAll(async () => {
  await stopServers(servers);
  if (sweepDir) rmSync(sweepDir, { recursive: true, force: true });
});

describe('NODE_ENV=production docops serve --workers 2', () => {
  let server: DocopsProcess;
  let primary: number;

  beforeAll(async () => {
    server = servers.cluster;
    primary = server.child.pid as number;
    await waitFor(
      () => server.logs().filter((line) => line.event === 'listening').length === 2,
      15_000,
      'both HTTP workers',
    );
  });

  it('two HTTP worker processes, each with its own warm render processes; /readyz is ready', async () => {
    const workers = descendantPids(primary).filter((pid) => parentPid(pid) === primary);
    expect(workers).toHaveLength(2);
    for (const worker of workers) {
      await waitFor(() => descendantPids(worker).length >= 2, 10_000, `render processes of worker ${worker}`);
    }
    const ready = await freshRequest(`${server.baseUrl}/readyz`, 'GET');
    expect(ready.status).toBe(200);
    expect(JSON.parse(ready.body.toString())).toEqual({ status: 'ready', idle_workers: 2 });
    expect(ready.headers['x-docops-request-id']).toMatch(REQUEST_ID);
    expect(ready.headers['x-content-type-options']).toBe('nosniff');
  });

  it('warns at start-up that /web and /v1/meta are unprotected', () => {
    const warnings = server
      .logs()
      .filter((line) => line.level === 'warn' && String(line.msg).includes('DOCOPS_WEB_BASIC_AUTH'));
    expect(warnings.length).toBe(2);
  });

  const runs = 6;

  it('both workers serve /v1/run', async () => {
    const servedBy = new Set<number>();
    for (let index = 0; index < runs; index++) {
      const owners = renderProcessOwners(primary);
      const response = await freshRequest(
        `${server.baseUrl}/v1/run`,
        'POST',
        runForm({ template: TEMPLATE, task: TASK }),
      );
      expect(response.status).toBe(200);
      expect(response.headers['x-docops-exit-code']).toBe('0');
      const bytes = new Uint8Array(response.body);
      expect(zipEntryOrder(bytes).at(-1)).toBe('api_result.json');
      const apiResult = JSON.parse(
        Buffer.from(unzipSync(bytes)['api_result.json'] as Uint8Array).toString(),
      ) as { subprocess_pid: number };
      const owner = owners.get(apiResult.subprocess_pid);
      expect(owner, `render process ${apiResult.subprocess_pid} was not started by a worker`).toBeDefined();
      servedBy.add(owner as number);
    }
    expect(servedBy.size).toBe(2);
  });

  it('/metrics counts the runs of both workers, whichever worker answers', async () => {
    for (let scrape = 0; scrape < 2; scrape++) {
      const metrics = await freshRequest(`${server.baseUrl}/metrics`, 'GET');
      expect(metrics.status, metrics.body.toString()).toBe(200);
      expect(metrics.body.toString()).toMatch(
        new RegExp(`^docops_runs_total\\{outcome="ok"\\} ${runs}$`, 'm'),
      );
    }
  });

  it('SIGTERM: the primary exits 0 and no process of the tree remains', async () => {
    const tree = descendantPids(primary);
    expect(tree.length).toBeGreaterThanOrEqual(6);
    expect(await server.stop('SIGTERM')).toBe(0);
    expect(await survivors(tree, 3000)).toEqual([]);
  });
});

describe('the start-up sweep of leftover workspaces', () => {
  it('removes old docops-run-* directories only: recent ones may belong to a live worker', async () => {
    await waitFor(() => !existsSync(join(sweepDir, 'docops-run-crashed')), 5000, 'the sweep');
    expect(readdirSync(sweepDir).sort()).toEqual(['docops-run-recent', 'unrelated']);
  });
});
