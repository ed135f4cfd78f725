// Starts the compiled `docops serve` as a real process for contract and browser tests.
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const DOCOPS_BIN = fileURLToPath(new URL('../../bin/docops.js', import.meta.url));

/** A free TCP port on 127.0.0.1. */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      const port = typeof address === 'object' && address ? address.port : 0;
      server.close(() => resolve(port));
    });
    server.on('error', reject);
  });
}

export interface DocopsProcess {
  baseUrl: string;
  port: number;
  child: ChildProcess;
  /** DOCOPS_TMP_DIR of this server (a fresh directory) */
  tmpDir: string;
  /** stdout lines parsed as JSON (non-JSON lines are skipped) */
  logs(): Record<string, unknown>[];
  stderr(): string;
  /** SIGTERM and wait for exit; returns the exit code */
  stop(signal?: NodeJS.Signals): Promise<number | null>;
}

/** Starts a server with the given environment on a free port and waits until /readyz answers 200. */
export async function startDocops(
  env: Record<string, string> = {},
  args: string[] = [],
): Promise<DocopsProcess> {
  const port = await freePort();
  const tmpDir = mkdtempSync(join(tmpdir(), 'docops-test-'));
  const child = spawn(process.execPath, [DOCOPS_BIN, 'serve', '--port', String(port), ...args], {
    env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '/tmp', DOCOPS_TMP_DIR: tmpDir, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout?.on('data', (chunk: Buffer) => {
    stdout += chunk.toString('utf8');
  });
  child.stderr?.on('data', (chunk: Buffer) => {
    stderr += chunk.toString('utf8');
  });
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  const baseUrl = `http://127.0.0.1:${port}`;
  const deadline = Date.now() + 15_000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`docops exited with ${child.exitCode}: ${stderr}${stdout}`);
    try {
      const response = await fetch(`${baseUrl}/readyz`);
      if (response.status === 200) break;
    } catch {
      // not listening yet
    }
    if (Date.now() > deadline) {
      child.kill('SIGKILL');
      throw new Error(`docops did not become ready: ${stderr}${stdout}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  return {
    baseUrl,
    port,
    child,
    tmpDir,
    logs: () =>
      stdout
        .split('\n')
        .filter((line) => line.startsWith('{'))
        .map((line) => {
          try {
            return JSON.parse(line) as Record<string, unknown>;
          } catch {
            return {};
          }
        }),
    stderr: () => stderr,
    async stop(signal = 'SIGTERM') {
      if (child.exitCode === null) child.kill(signal);
      const code = await exited;
      rmSync(tmpDir, { recursive: true, force: true });
      return code;
    },
  };
}

/** Runs the bin to completion (for start-up failures); resolves with exit code and output. */
export function runDocops(
  args: string[],
  env: Record<string, string> = {},
  timeoutMs = 15_000,
): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [DOCOPS_BIN, ...args], {
      env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '/tmp', ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => {
      stdout += chunk.toString('utf8');
    });
    child.stderr.on('data', (chunk: Buffer) => {
      stderr += chunk.toString('utf8');
    });
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    // 'close', not 'exit': output still in the pipes arrives before 'close'.
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}
