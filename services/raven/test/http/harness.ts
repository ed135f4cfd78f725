// Starts the compiled `raven-zero` bin on a free port with a temporary storage tree, and talks to it.
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { request as httpRequest, type IncomingHttpHeaders } from 'node:http';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { testRedisUrl } from '@quintet/kernel/testing';
import { Redis } from 'ioredis';
import { beforeEach } from 'vitest';

export const BIN = resolve(import.meta.dirname, '../../bin/raven-zero.js');
export const WORDLIST = resolve(import.meta.dirname, '../../data/diceware_words.txt');

/**
 * The store every `startRaven` server uses unless its caller chooses: `RAVEN_TEST_STORE=redis` (the `raven-redis`
 * project) runs each server on the Redis test server under its own key prefix; the acceptance files then skip
 * when that server is not reachable (and fail in CI, where `testRedisUrl` throws).
 */
const redisStoreUrl = process.env.RAVEN_TEST_STORE === 'redis' ? await testRedisUrl() : undefined;
if (redisStoreUrl === null) {
  beforeEach((context) => {
    context.skip('Redis test server not reachable');
  });
}

/** Env marker for a test that depends on the embedded store: `startRaven({ ...EMBEDDED_STORE, ... })`. */
export const EMBEDDED_STORE = { RAVEN_TEST_STORE: 'embedded' } as const;

let redisServers = 0;

/** Removes every key under `prefix` (SCAN + UNLINK). */
async function dropRedisPrefix(url: string, prefix: string): Promise<void> {
  const admin = new Redis(url, { lazyConnect: true, maxRetriesPerRequest: 1 });
  admin.on('error', () => {});
  try {
    await admin.connect();
    let cursor = '0';
    do {
      const [next, keys] = await admin.scan(cursor, 'MATCH', `${prefix}*`, 'COUNT', 500);
      cursor = next;
      if (keys.length > 0) await admin.unlink(...keys);
    } while (cursor !== '0');
  } finally {
    admin.disconnect();
  }
}

export async function freePort(): Promise<number> {
  return new Promise((resolvePort, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      const port = typeof address === 'object' && address ? address.port : 0;
      server.close(() => resolvePort(port));
    });
  });
}

export interface RunningRaven {
  url: string;
  port: number;
  dir: string;
  storagePath: string;
  tempPath: string;
  logDir: string;
  process: ChildProcess;
  /** every stdout line so far */
  stdout: string[];
  stderr: () => string;
  storedFiles(): string[];
  stop(): Promise<number | null>;
}

/** The minimal environment of a test server (no inherited configuration). */
export function baseEnv(dir: string): Record<string, string> {
  return {
    PATH: process.env.PATH ?? '',
    HOME: dir,
    STORAGE_PATH: join(dir, 'storage', 'uploads'),
    TEMP_PATH: join(dir, 'storage', 'temp'),
    LOG_DIR: join(dir, 'logs'),
    KDF_LOG2_N: '12',
  };
}

/** Spawns `raven-zero serve --port <free>` and waits for `/livez`. */
export async function startRaven(
  env: Record<string, string> = {},
  args: string[] = [],
): Promise<RunningRaven> {
  const dir = mkdtempSync(join(tmpdir(), 'raven-http-'));
  const port = await freePort();
  const { RAVEN_TEST_STORE: storeChoice, ...serverEnv } = env;
  let redisPrefix: string | undefined;
  if (redisStoreUrl && storeChoice !== 'embedded' && serverEnv.REDIS_URL === undefined) {
    redisPrefix = `ravenhttp:${process.pid}:${++redisServers}:`;
    serverEnv.REDIS_URL = redisStoreUrl;
    serverEnv.REDIS_KEY_PREFIX = redisPrefix;
  }
  const fullEnv = { ...baseEnv(dir), ...serverEnv };
  const dropKeys = async () => {
    if (redisStoreUrl && redisPrefix) await dropRedisPrefix(redisStoreUrl, redisPrefix);
  };
  const child = spawn(process.execPath, [BIN, 'serve', '--port', String(port), ...args], {
    cwd: dir,
    env: fullEnv,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const stdout: string[] = [];
  let partial = '';
  child.stdout?.on('data', (chunk: Buffer) => {
    const text = partial + chunk.toString('utf8');
    const lines = text.split('\n');
    partial = lines.pop() ?? '';
    stdout.push(...lines.filter((line) => line !== ''));
  });
  let stderr = '';
  child.stderr?.on('data', (chunk: Buffer) => {
    stderr += chunk.toString('utf8');
  });
  const url = `http://127.0.0.1:${port}`;
  const deadline = Date.now() + 15_000;
  for (;;) {
    if (child.exitCode !== null) {
      await dropKeys();
      throw new Error(`raven-zero exited ${child.exitCode}: ${stderr}`);
    }
    try {
      const response = await fetch(`${url}/livez`);
      if (response.status === 200) break;
    } catch {
      // not listening yet
    }
    if (Date.now() > deadline) {
      child.kill('SIGKILL');
      await dropKeys();
      throw new Error(`raven-zero did not start: ${stderr}`);
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  const storagePath = fullEnv.STORAGE_PATH as string;
  return {
    url,
    port,
    dir,
    storagePath,
    tempPath: fullEnv.TEMP_PATH as string,
    logDir: fullEnv.LOG_DIR as string,
    process: child,
    stdout,
    stderr: () => stderr,
    storedFiles: () => {
      try {
        return readdirSync(storagePath);
      } catch {
        return [];
      }
    },
    stop: async () => {
      const code = await new Promise<number | null>((done) => {
        if (child.exitCode !== null) {
          done(child.exitCode);
          return;
        }
        child.once('exit', (exitCode) => done(exitCode));
        child.kill('SIGTERM');
      });
      rmSync(dir, { recursive: true, force: true });
      await dropKeys();
      return code;
    },
  };
}

/** Runs the bin to completion (for start-up refusals). */
export function runBin(args: string[], env: Record<string, string>, timeoutMs = 20_000) {
  const dir = mkdtempSync(join(tmpdir(), 'raven-http-'));
  const started = Date.now();
  const result = spawnSync(process.execPath, [BIN, ...args], {
    cwd: dir,
    env: { ...baseEnv(dir), ...env },
    encoding: 'utf8',
    timeout: timeoutMs,
  });
  rmSync(dir, { recursive: true, force: true });
  return { ...result, elapsedMs: Date.now() - started };
}

export interface FilePart {
  name: string;
  filename: string;
  contentType?: string;
  data: Buffer | string;
}
export type Part = FilePart | { name: string; value: string };

/** A hand-built multipart/form-data body (exact control over the part headers). */
export function multipart(parts: Part[]): { body: Buffer; contentType: string } {
  const boundary = `----ravenTest${Math.random().toString(16).slice(2)}`;
  const chunks: Buffer[] = [];
  for (const part of parts) {
    if ('value' in part) {
      chunks.push(
        Buffer.from(
          `--${boundary}\r\nContent-Disposition: form-data; name="${part.name}"\r\n\r\n${part.value}\r\n`,
        ),
      );
    } else {
      const filename = part.filename.replace(/\\/g, '\\\\').replace(/"/g, '\\"');
      chunks.push(
        Buffer.from(
          `--${boundary}\r\nContent-Disposition: form-data; name="${part.name}"; filename="${filename}"\r\nContent-Type: ${part.contentType ?? 'application/octet-stream'}\r\n\r\n`,
          'utf8',
        ),
        Buffer.isBuffer(part.data) ? part.data : Buffer.from(part.data),
        Buffer.from('\r\n'),
      );
    }
  }
  chunks.push(Buffer.from(`--${boundary}--\r\n`));
  return { body: Buffer.concat(chunks), contentType: `multipart/form-data; boundary=${boundary}` };
}

/** POST /upload/ with the given parts. */
export async function upload(
  url: string,
  parts: Part[],
  headers: Record<string, string> = {},
): Promise<Response> {
  const { body, contentType } = multipart(parts);
  return fetch(`${url}/upload/`, {
    method: 'POST',
    body: new Uint8Array(body),
    headers: { 'content-type': contentType, ...headers },
  });
}

export const PDF = Buffer.from(
  '%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF\n',
);
export const PNG = Buffer.concat([
  Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
  Buffer.from('0000000d49484452000000010000000108060000001f15c489', 'hex'),
]);

export interface RawResponse {
  status: number;
  headers: IncomingHttpHeaders;
  body: string;
}

/** One request through node:http (to pick the local address or declare a length without sending it). */
export function rawRequest(
  url: string,
  options: { method?: string; headers?: Record<string, string>; localAddress?: string; body?: Buffer },
): Promise<RawResponse> {
  return new Promise((done, reject) => {
    const req = httpRequest(
      url,
      {
        method: options.method ?? 'GET',
        headers: options.headers ?? {},
        ...(options.localAddress ? { localAddress: options.localAddress } : {}),
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (chunk: Buffer) => chunks.push(chunk));
        res.on('end', () =>
          done({
            status: res.statusCode ?? 0,
            headers: res.headers,
            body: Buffer.concat(chunks).toString('utf8'),
          }),
        );
        res.on('error', reject);
      },
    );
    req.on('error', reject);
    if (options.body) req.end(options.body);
    else if (options.headers?.['content-length'] === undefined) req.end();
    else req.flushHeaders();
  });
}
