// Shared assertions of the HTTP contract tests: the error body, workspace cleanup, log lines, processes.
import { readdirSync, readFileSync } from 'node:fs';
import { expect } from 'vitest';
import { type DocopsProcess, startDocops } from './server.js';

export const REQUEST_ID = /^[0-9a-f]{32}$/;

export interface ErrorBody {
  error_code: string;
  message: string;
  detail: Record<string, unknown> & { request_id: string };
}

/**
 * Checks an error response as a client sees it: status, JSON body `{error_code, message, detail}` whose
 * `detail` equals `detail` plus the request id of the `X-Docops-Request-Id` header, `nosniff`, and no
 * `X-Docops-Exit-Code`. Returns the body.
 */
export async function expectError(
  response: Response,
  status: number,
  errorCode: string,
  detail: Record<string, unknown>,
): Promise<ErrorBody> {
  const text = await response.text();
  expect(response.status, text).toBe(status);
  expect(response.headers.get('content-type')).toMatch(/^application\/json/);
  const requestId = response.headers.get('x-docops-request-id');
  expect(requestId).toMatch(REQUEST_ID);
  expect(response.headers.get('x-content-type-options')).toBe('nosniff');
  expect(response.headers.has('x-docops-exit-code')).toBe(false);
  const body = JSON.parse(text) as ErrorBody;
  expect(Object.keys(body).sort()).toEqual(['detail', 'error_code', 'message']);
  expect(body.error_code).toBe(errorCode);
  expect(typeof body.message).toBe('string');
  expect(body.message.length).toBeGreaterThan(0);
  expect(body.detail).toEqual({ ...detail, request_id: requestId });
  // Never a stack trace or a server path.
  expect(text).not.toMatch(/\bat [\w.<>]+ \(|\/tmp\/|\/work\/|node_modules|docops-run-/);
  return body;
}

/** `docops-run-*` workspaces under the server's DOCOPS_TMP_DIR. */
export function workspaces(tmpDir: string): string[] {
  return readdirSync(tmpDir).filter((name) => name.startsWith('docops-run-'));
}

/** Polls until the server's temp dir holds no workspace (cleanup runs after the response); returns what is left. */
export async function settledWorkspaces(tmpDir: string, timeoutMs = 3000): Promise<string[]> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const left = workspaces(tmpDir);
    if (left.length === 0 || Date.now() > deadline) return left;
    await sleep(25);
  }
}

export const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Waits until `predicate` returns a truthy value; throws after the timeout. */
export async function waitFor<T>(
  predicate: () => T | Promise<T>,
  timeoutMs: number,
  what: string,
): Promise<NonNullable<T>> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await predicate();
    if (value) return value as NonNullable<T>;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(20);
  }
}

/** The server's `docops.api` log lines of one request. */
export function apiLines(server: DocopsProcess, requestId: string): Record<string, unknown>[] {
  return server.logs().filter((line) => line.request_id === requestId && line.logger === 'docops.api');
}

/** Waits for the `docops.api` line of `event` for the request (log lines are written after the response). */
export function apiEvent(
  server: DocopsProcess,
  requestId: string,
  event: string,
  timeoutMs = 3000,
): Promise<Record<string, unknown>> {
  return waitFor(
    () => apiLines(server, requestId).find((line) => line.event === event),
    timeoutMs,
    `${event} log line of ${requestId}`,
  );
}

/** True while `pid` exists and is not a zombie. */
export function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'EPERM') return false;
  }
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) !== 'Z';
  } catch {
    return true;
  }
}

/** Waits until every pid has gone; returns those still alive after the timeout. */
export async function survivors(pids: readonly number[], timeoutMs: number): Promise<number[]> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const alive = pids.filter(pidAlive);
    if (alive.length === 0 || Date.now() > deadline) return alive;
    await sleep(20);
  }
}

/** The parent pid of a live process, or null. */
export function parentPid(pid: number): number | null {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return Number(fields[1]);
  } catch {
    return null;
  }
}

/** Every live descendant of `pid` (children, grandchildren, …). */
export function descendantPids(pid: number): number[] {
  const children = new Map<number, number[]>();
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    const parent = parentPid(Number(name));
    if (parent === null) continue;
    children.set(parent, [...(children.get(parent) ?? []), Number(name)]);
  }
  const found: number[] = [];
  const queue = [pid];
  while (queue.length > 0) {
    for (const child of children.get(queue.shift() as number) ?? []) {
      found.push(child);
      queue.push(child);
    }
  }
  return found;
}

/**
 * Starts several servers side by side (start-up is mostly waiting for render processes). If one fails to
 * start, the others are stopped and the error is thrown.
 */
export async function startServers<K extends string>(
  configs: Record<K, { env?: Record<string, string>; args?: string[] }>,
): Promise<Record<K, DocopsProcess>> {
  const names = Object.keys(configs) as K[];
  const results = await Promise.allSettled(
    names.map((name) => startDocops(configs[name].env, configs[name].args)),
  );
  const failure = results.find((result) => result.status === 'rejected');
  if (failure) {
    await Promise.all(results.map((result) => (result.status === 'fulfilled' ? result.value.stop() : null)));
    throw failure.reason;
  }
  return Object.fromEntries(
    names.map((name, index) => [name, (results[index] as PromiseFulfilledResult<DocopsProcess>).value]),
  ) as Record<K, DocopsProcess>;
}

/** Stops every server of a `startServers` result (those that started). */
export async function stopServers(
  servers: Partial<Record<string, DocopsProcess>> | undefined,
): Promise<void> {
  await Promise.all(Object.values(servers ?? {}).map((server) => server?.stop()));
}
