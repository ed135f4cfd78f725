// `docops load-test` against a real spawn-mode server (spec S13, §3.7.4; acceptance case 43): no render
// process outlives its response and no temp file is left, also while requests time out.
// Runs the compiled bin: `tsc -b` first.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  apiLines,
  descendantPids,
  parentPid,
  startServers,
  stopServers,
  survivors,
  workspaces,
} from '../helpers/contract.js';
import { type DocopsProcess, runDocops } from '../helpers/server.js';

interface Summary {
  status_counts: Record<string, number>;
  timeout_request_ids: string[];
  subprocess_pids_seen: number[];
  leaked_pids: number[];
  leak_check: string;
  tmp_root: string;
  tmp_before_count: number;
  tmp_after_count: number;
  tmp_delta_count: number;
  tmp_delta_bytes: number;
  tmp_warnings: string[];
}

async function loadTest(
  server: DocopsProcess,
  requests: number,
): Promise<{ code: number | null; summary: Summary; stderr: string }> {
  const result = await runDocops(
    [
      'load-test',
      '--base-url',
      server.baseUrl,
      '--concurrency',
      '8',
      '--requests',
      String(requests),
      '--check-subprocess-leaks',
      '--leak-grace-ms',
      '1500',
      '--tmp-root',
      server.tmpDir,
      '--fail-on-leaks',
    ],
    {},
    60_000,
  );
  return { code: result.code, summary: JSON.parse(result.stdout) as Summary, stderr: result.stderr };
}

/** Render processes of the server right now: only its warm, idle ones may be left between requests. */
function renderProcesses(server: DocopsProcess): number[] {
  const pid = server.child.pid as number;
  return descendantPids(pid).filter((child) => parentPid(child) === pid);
}

let servers: Record<'plain' | 'timeouts', DocopsProcess>;

beforeAll(async () => {
  servers = await startServers({
    // Four slots (and four warm processes); the other requests wait in the queue instead of getting 429.
    plain: { env: { DOCOPS_MAX_CONCURRENCY: '4', DOCOPS_QUEUE_TIMEOUT_SECONDS: '60' } },
    // A job that gets a warm process finishes in time; one that waits for a process to start does not.
    timeouts: {
      env: {
        DOCOPS_TEST_MODE: '1',
        // Every render sleeps past the limit, so timeouts happen on any machine (a shorter sleep made them
        // depend on how fast the render after it was).
        DOCOPS_TEST_SLEEP_SECONDS: '0.7',
        DOCOPS_REQUEST_TIMEOUT_SECONDS: '0.5',
        DOCOPS_MAX_CONCURRENCY: '4',
        DOCOPS_WORKER_WARM: '2',
        DOCOPS_QUEUE_TIMEOUT_SECONDS: '60',
      },
    },
  });
});

afterAll(async () => {
  await stopServers(servers);
});

describe('docops load-test --check-subprocess-leaks --fail-on-leaks', () => {
  it('spawn mode, 40 requests at concurrency 8: all 200, a fresh render process each, none leaked, tmp delta 0 (case 43)', async () => {
    const server = servers.plain;
    const { code, summary, stderr } = await loadTest(server, 40);
    expect(code, stderr).toBe(0);
    expect(summary.status_counts).toEqual({ 200: 40 });
    expect(summary.leak_check).toBe('checked');
    expect(summary.subprocess_pids_seen).toHaveLength(40);
    expect(summary.leaked_pids).toEqual([]);
    expect(summary.timeout_request_ids).toEqual([]);
    expect(summary).toMatchObject({
      tmp_root: server.tmpDir,
      tmp_before_count: 0,
      tmp_after_count: 0,
      tmp_delta_count: 0,
      tmp_delta_bytes: 0,
    });
    expect(summary.tmp_warnings).toEqual([]);
    // Independently of the tool: the pids are gone and only the warm processes remain.
    expect(await survivors(summary.subprocess_pids_seen, 1000)).toEqual([]);
    expect(renderProcesses(server).length).toBeLessThanOrEqual(4);
    expect(workspaces(server.tmpDir)).toEqual([]);
  }, 90_000);

  it('while requests time out: only 200 and 408, the timed-out requests listed, no leaked process, tmp delta 0', async () => {
    const server = servers.timeouts;
    const requests = 12;
    const { code, summary, stderr } = await loadTest(server, requests);
    expect(code, stderr).toBe(0);
    const statuses = Object.keys(summary.status_counts).sort();
    expect(['200', '408']).toEqual(expect.arrayContaining(statuses));
    expect((summary.status_counts['200'] ?? 0) + (summary.status_counts['408'] ?? 0)).toBe(requests);
    expect(summary.status_counts['408']).toBeGreaterThan(0);
    expect(summary.timeout_request_ids).toHaveLength(summary.status_counts['408'] as number);
    for (const requestId of summary.timeout_request_ids) {
      expect(apiLines(server, requestId)).toContainEqual(
        expect.objectContaining({ event: 'error', outcome: 'timeout', status_code: 408 }),
      );
    }
    expect(summary.leaked_pids).toEqual([]);
    expect(summary).toMatchObject({
      tmp_before_count: 0,
      tmp_after_count: 0,
      tmp_delta_count: 0,
      tmp_delta_bytes: 0,
    });
    // The killed processes are gone too: the server's only render processes are its warm ones.
    expect(renderProcesses(server).length).toBeLessThanOrEqual(2);
    expect(workspaces(server.tmpDir)).toEqual([]);
  }, 90_000);
});
