// `docops load-test` (§3.7.4): concurrent POST /v1/run requests, status and latency summary, and the
// subprocess-leak and temp-file checks of the seed's load test.
import { tmpWatermark } from '@quintet/kernel/tmp';
import { unzipSync } from 'fflate';
import { buildDocx } from '../docx/build.js';
import { nearestRankPercentile, sortedCountMap, toOrderedJson } from './summarize-logs.js';

/** The part of a skill definition the load test needs. */
export interface LoadTestSkill {
  name: string;
  fields: readonly { key: string; placeholder: string; required: boolean; type: string }[];
}

export interface LoadTestInputs {
  template: Uint8Array;
  task: { task_type: string; payload: Record<string, string | string[]> };
  /** the placeholder the template holds */
  placeholder: string;
}

export interface LoadTestOptions {
  baseUrl: string;
  skill: string;
  concurrency: number;
  requests: number;
  /** per request, covering the response body */
  timeoutSeconds: number;
  checkSubprocessLeaks: boolean;
  leakGraceMs: number;
  tmpRoot: string | null;
  inputs: LoadTestInputs;
}

export interface LoadTestSummary {
  base_url: string;
  skill: string;
  requests: number;
  concurrency: number;
  /** HTTP status as a string → count; transport failures count as "599" */
  status_counts: Record<string, number>;
  latency_ms: { p50: number | null; p95: number | null; avg: number | null };
  timeout_request_ids: string[];
  subprocess_pids_seen: number[];
  leaked_pids: number[];
  leak_check: 'checked' | 'skipped';
  note: string;
  tmp_root: string | null;
  tmp_before_count: number | null;
  tmp_before_bytes: number | null;
  tmp_after_count: number | null;
  tmp_after_bytes: number | null;
  tmp_delta_count: number | null;
  tmp_delta_bytes: number | null;
  tmp_warnings: string[];
}

export interface LoadTestResult {
  summary: LoadTestSummary;
  /** distinct transport failure messages (for the operator's stderr; not part of the summary) */
  transportErrors: string[];
}

/** The status recorded for a request that got no HTTP response (refused, reset, timed out). */
export const TRANSPORT_FAILURE_STATUS = '599';

/** Start methods whose render processes serve many jobs and outlive each response by design. */
const REUSING_START_METHODS = new Set(['forkserver', 'fork']);
const POLL_INTERVAL_MS = 100;

/**
 * A one-paragraph template holding the skill's first required placeholder (definition order; the first
 * field when none is required) and a task filling it.
 */
export function buildLoadTestInputs(skill: LoadTestSkill): LoadTestInputs {
  const field = skill.fields.find((candidate) => candidate.required) ?? skill.fields[0];
  if (!field) throw new Error(`skill '${skill.name}' has no fields`);
  const value = field.type === 'list[str]' ? ['load test'] : 'load test';
  return {
    template: buildDocx({ paragraphs: [`Load test: 【${field.placeholder}】`] }),
    task: { task_type: skill.name, payload: { [field.key]: value } },
    placeholder: field.placeholder,
  };
}

/** A pid is alive when signal 0 can be sent to it, or when only permission is lacking (EPERM). */
export function isPidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

interface RequestOutcome {
  status: string;
  latencyMs: number;
  timeoutRequestId: string | null;
  subprocessPid: number | null;
  startMethod: string | null;
  /** a 200 whose zip held no readable api_result.json */
  unreadableResult: boolean;
  transportError: string | null;
}

/** Runs the load test; never throws for request failures (they are counted). */
export async function runLoadTest(options: LoadTestOptions): Promise<LoadTestResult> {
  const tmpBefore = options.tmpRoot === null ? null : await tmpWatermark(options.tmpRoot, 0);

  const outcomes = await sendAll(options);

  const statusCounts = new Map<string, number>();
  const pids = new Set<number>();
  const startMethods = new Set<string>();
  const timeoutIds: string[] = [];
  const transportErrors = new Set<string>();
  let unreadableResults = 0;
  for (const outcome of outcomes) {
    statusCounts.set(outcome.status, (statusCounts.get(outcome.status) ?? 0) + 1);
    if (outcome.subprocessPid !== null) pids.add(outcome.subprocessPid);
    if (outcome.startMethod !== null) startMethods.add(outcome.startMethod);
    if (outcome.timeoutRequestId !== null) timeoutIds.push(outcome.timeoutRequestId);
    if (outcome.transportError !== null) transportErrors.add(outcome.transportError);
    if (outcome.unreadableResult) unreadableResults += 1;
  }
  const pidsSeen = [...pids].sort((a, b) => a - b);
  const latencies = outcomes.map((outcome) => Math.round(outcome.latencyMs)).sort((a, b) => a - b);

  const reusing = [...startMethods].filter((method) => REUSING_START_METHODS.has(method)).sort();
  const checkPids = options.checkSubprocessLeaks && reusing.length === 0;
  const settled = await settle({
    pids: checkPids ? pidsSeen : [],
    tmpRoot: options.tmpRoot,
    tmpBefore,
    graceMs: options.checkSubprocessLeaks || options.tmpRoot !== null ? options.leakGraceMs : 0,
  });
  const leakedPids = checkPids ? settled.alivePids : [];

  let note: string;
  if (!options.checkSubprocessLeaks) {
    note = 'leak check not requested (--check-subprocess-leaks)';
  } else if (reusing.length > 0) {
    note =
      `leak check skipped: subprocess_start_method=${reusing.join(',')} reuses render processes across jobs ` +
      'by design, so their pids outlive each response';
  } else if (pidsSeen.length === 0) {
    note = 'no subprocess pids were reported by 200 responses; nothing to check';
  } else {
    note =
      `checked ${pidsSeen.length} subprocess pid(s) after a grace of up to ${options.leakGraceMs} ms: ` +
      (leakedPids.length === 0 ? 'none alive' : `${leakedPids.length} still alive`);
  }
  if (unreadableResults > 0) note += `; ${unreadableResults} 200 response(s) had no readable api_result.json`;

  const tmpAfter = settled.tmpAfter;
  const tmpWarnings = [...new Set([...(tmpBefore?.warnings ?? []), ...(tmpAfter?.warnings ?? [])])];
  const summary: LoadTestSummary = {
    base_url: options.baseUrl,
    skill: options.skill,
    requests: options.requests,
    concurrency: options.concurrency,
    status_counts: Object.fromEntries(sortedCountMap(Object.fromEntries(statusCounts))),
    latency_ms: {
      p50: nearestRankPercentile(latencies, 50),
      p95: nearestRankPercentile(latencies, 95),
      avg:
        latencies.length === 0
          ? null
          : Math.round(latencies.reduce((sum, v) => sum + v, 0) / latencies.length),
    },
    timeout_request_ids: timeoutIds.sort(),
    subprocess_pids_seen: pidsSeen,
    leaked_pids: leakedPids,
    leak_check: checkPids ? 'checked' : 'skipped',
    note,
    tmp_root: options.tmpRoot,
    tmp_before_count: tmpBefore?.count ?? null,
    tmp_before_bytes: tmpBefore?.bytes ?? null,
    tmp_after_count: tmpAfter?.count ?? null,
    tmp_after_bytes: tmpAfter?.bytes ?? null,
    tmp_delta_count: tmpBefore && tmpAfter ? tmpAfter.count - tmpBefore.count : null,
    tmp_delta_bytes: tmpBefore && tmpAfter ? tmpAfter.bytes - tmpBefore.bytes : null,
    tmp_warnings: tmpWarnings,
  };
  return { summary, transportErrors: [...transportErrors] };
}

/** The summary as JSON, fields in the documented order, `status_counts` keys sorted. */
export function loadTestSummaryToJson(summary: LoadTestSummary): string {
  return toOrderedJson({ ...summary, status_counts: sortedCountMap(summary.status_counts) });
}

/** Sends every request with at most `concurrency` in flight; results in request order. */
async function sendAll(options: LoadTestOptions): Promise<RequestOutcome[]> {
  const url = `${options.baseUrl.replace(/\/+$/, '')}/v1/run`;
  const templateBlob = new Blob([new Uint8Array(options.inputs.template)], {
    type: 'application/vnd.openxmlformats-officedocument.wordprocessingml.document',
  });
  const taskBlob = new Blob([JSON.stringify(options.inputs.task)], { type: 'application/json' });
  const outcomes: RequestOutcome[] = new Array(options.requests);
  let next = 0;
  const lane = async (): Promise<void> => {
    while (next < options.requests) {
      const index = next;
      next += 1;
      outcomes[index] = await sendOne(url, options, templateBlob, taskBlob);
    }
  };
  const lanes = Math.max(1, Math.min(options.concurrency, options.requests));
  await Promise.all(Array.from({ length: lanes }, lane));
  return outcomes;
}

async function sendOne(
  url: string,
  options: LoadTestOptions,
  templateBlob: Blob,
  taskBlob: Blob,
): Promise<RequestOutcome> {
  const form = new FormData();
  form.append('template', templateBlob, 'load_test.docx');
  form.append('task', taskBlob, 'load_test_task.json');
  form.append('skill', options.skill);
  const started = performance.now();
  const outcome: RequestOutcome = {
    status: TRANSPORT_FAILURE_STATUS,
    latencyMs: 0,
    timeoutRequestId: null,
    subprocessPid: null,
    startMethod: null,
    unreadableResult: false,
    transportError: null,
  };
  try {
    const response = await fetch(url, {
      method: 'POST',
      body: form,
      signal: AbortSignal.timeout(Math.max(1, Math.round(options.timeoutSeconds * 1000))),
    });
    // The body is part of the request: a stream cut short is a transport failure, not a status.
    const body = new Uint8Array(await response.arrayBuffer());
    outcome.status = String(response.status);
    if (response.status === 200) {
      const result = readApiResult(body);
      if (result === null) outcome.unreadableResult = true;
      else {
        outcome.subprocessPid = result.pid;
        outcome.startMethod = result.startMethod;
      }
    } else if (response.status === 408) {
      outcome.timeoutRequestId = errorRequestId(body) ?? response.headers.get('x-docops-request-id');
    }
  } catch (error) {
    outcome.status = TRANSPORT_FAILURE_STATUS;
    outcome.transportError = describeTransportError(error);
  }
  outcome.latencyMs = performance.now() - started;
  return outcome;
}

/** `subprocess_pid` and `subprocess_start_method` of the zip's `api_result.json`, or null when unreadable. */
function readApiResult(zip: Uint8Array): { pid: number | null; startMethod: string | null } | null {
  try {
    const entries = unzipSync(zip, { filter: (file) => file.name === 'api_result.json' });
    const raw = entries['api_result.json'];
    if (!raw) return null;
    const parsed: unknown = JSON.parse(new TextDecoder().decode(raw));
    if (typeof parsed !== 'object' || parsed === null) return null;
    const record = parsed as Record<string, unknown>;
    const pid = record.subprocess_pid;
    const method = record.subprocess_start_method;
    return {
      pid: typeof pid === 'number' && Number.isSafeInteger(pid) && pid > 0 ? pid : null,
      startMethod: typeof method === 'string' ? method.trim().toLowerCase() : null,
    };
  } catch {
    return null;
  }
}

/** `detail.request_id` of an error body. */
function errorRequestId(body: Uint8Array): string | null {
  try {
    const parsed = JSON.parse(new TextDecoder().decode(body)) as { detail?: { request_id?: unknown } } | null;
    const id = parsed?.detail?.request_id;
    return typeof id === 'string' && id !== '' ? id : null;
  } catch {
    return null;
  }
}

function describeTransportError(error: unknown): string {
  if (error instanceof Error) {
    if (error.name === 'TimeoutError') return 'request timed out';
    const cause = (error as Error & { cause?: unknown }).cause;
    const code = (cause as NodeJS.ErrnoException | undefined)?.code;
    if (typeof code === 'string') return code;
    if (cause instanceof Error && cause.message) return cause.message;
    return error.message;
  }
  return String(error);
}

interface SettleInput {
  pids: number[];
  tmpRoot: string | null;
  tmpBefore: Awaited<ReturnType<typeof tmpWatermark>> | null;
  graceMs: number;
}

interface Settled {
  alivePids: number[];
  tmpAfter: Awaited<ReturnType<typeof tmpWatermark>> | null;
}

/**
 * Waits up to the grace for the observed pids to exit and the temp tree to shrink back to its starting
 * size (the server removes workspaces after each response); returns early once both hold. The pids still
 * alive at the end are the leaked ones.
 */
async function settle(input: SettleInput): Promise<Settled> {
  const deadline = performance.now() + input.graceMs;
  for (;;) {
    const alivePids = input.pids.filter(isPidAlive);
    const tmpAfter = input.tmpRoot === null ? null : await tmpWatermark(input.tmpRoot, 0);
    const tmpSettled =
      tmpAfter === null ||
      input.tmpBefore === null ||
      (tmpAfter.count <= input.tmpBefore.count && tmpAfter.bytes <= input.tmpBefore.bytes);
    const remaining = deadline - performance.now();
    if ((alivePids.length === 0 && tmpSettled) || remaining <= 0) return { alivePids, tmpAfter };
    await new Promise((resolve) => setTimeout(resolve, Math.min(POLL_INTERVAL_MS, remaining)));
  }
}
