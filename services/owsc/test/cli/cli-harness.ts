// Runs the compiled `openworld-chem` bin (build first: `npx tsc -b services/owsc`) in a fresh, empty working
// directory with every OW_SC_* output location pointing elsewhere, and checks after each run that the working
// directory is still empty (spec §3.12: nothing else is created there).
import { type SpawnOptions, spawn, spawnSync } from 'node:child_process';
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';

export const BIN = resolve(import.meta.dirname, '../../bin/openworld-chem.js');

if (!existsSync(resolve(import.meta.dirname, '../../dist/cli.js'))) {
  throw new Error('services/owsc/dist/cli.js is missing: run `npx tsc -b services/owsc` before these tests');
}

export interface RunResult {
  status: number | null;
  stdout: string;
  stderr: string;
}

export interface RunOptions {
  env?: Record<string, string>;
  /** variables of the workspace environment to leave out */
  unset?: string[];
  timeoutMs?: number;
}

export interface Workspace {
  /** the (empty) working directory of every run */
  cwd: string;
  /** inputs written by the test */
  inputs: string;
  /** where OW_SC_* outputs go */
  state: string;
  env: Record<string, string>;
  artifacts: string;
  reports: string;
  provenanceLedger: string;
  lineageLedger: string;
  /** writes an input file and returns its absolute path */
  input(name: string, content: string | Buffer): string;
  run(args: string[], options?: RunOptions): RunResult;
  /** the bin as a child process, for runs that must overlap with the test (servers, FIFOs) */
  spawn(args: string[], options?: { env?: Record<string, string> }): ReturnType<typeof spawn>;
  cleanup(): void;
}

/** The environment of the test process without any configuration the bin reads. */
function neutralEnvironment(): Record<string, string> {
  const env: Record<string, string> = {};
  for (const [key, value] of Object.entries(process.env)) {
    if (value === undefined) continue;
    if (/^(OW_SC_|LOG_|OPENAI_)/.test(key)) continue;
    if (
      ['NODE_ENV', 'ENVIRONMENT', 'PORT', 'APP_PORT', 'REDIS_URL', 'DATABASE_URL', 'NODE_OPTIONS'].includes(
        key,
      )
    )
      continue;
    env[key] = value;
  }
  return env;
}

export function workspace(): Workspace {
  const root = mkdtempSync(join(tmpdir(), 'owsc-cli-'));
  const cwd = join(root, 'cwd');
  const inputs = join(root, 'inputs');
  const state = join(root, 'state');
  for (const dir of [cwd, inputs, state]) mkdirSync(dir);
  const artifacts = join(state, 'artifacts');
  const reports = join(state, 'reports');
  const provenanceLedger = join(state, 'provenance', 'ledger.jsonl');
  const lineageLedger = join(state, 'lineage', 'samples.jsonl');
  const env = {
    ...neutralEnvironment(),
    OW_SC_ARTIFACTS_DIR: artifacts,
    OW_SC_REPORTS_DIR: reports,
    OW_SC_PROVENANCE_LEDGER: provenanceLedger,
    OW_SC_LINEAGE_LEDGER: lineageLedger,
    OW_SC_DATA_DIR: join(state, 'data'),
    OW_SC_TMP_DIR: join(state, 'tmp'),
  };
  const assertCleanCwd = (args: string[]) => {
    const left = readdirSync(cwd);
    if (left.length > 0)
      throw new Error(
        `openworld-chem ${args.join(' ')} left files in its working directory: ${left.join(', ')}`,
      );
  };
  return {
    cwd,
    inputs,
    state,
    env,
    artifacts,
    reports,
    provenanceLedger,
    lineageLedger,
    input(name, content) {
      const path = join(inputs, name);
      writeFileSync(path, content);
      return path;
    },
    run(args, options = {}) {
      const runEnv: Record<string, string> = { ...env, ...options.env };
      for (const name of options.unset ?? []) delete runEnv[name];
      const result = spawnSync(process.execPath, [BIN, ...args], {
        cwd,
        env: runEnv,
        encoding: 'utf8',
        timeout: options.timeoutMs ?? 20_000,
      });
      assertCleanCwd(args);
      return { status: result.status, stdout: result.stdout, stderr: result.stderr };
    },
    spawn(args, options = {}) {
      const spawnOptions: SpawnOptions = {
        cwd,
        env: { ...env, ...options.env },
        stdio: ['ignore', 'pipe', 'pipe'],
      };
      return spawn(process.execPath, [BIN, ...args], spawnOptions);
    },
    cleanup() {
      rmSync(root, { recursive: true, force: true });
    },
  };
}

/** Collects a child's output and waits for its exit. */
export function finished(child: ReturnType<typeof spawn>): Promise<RunResult> {
  let stdout = '';
  let stderr = '';
  child.stdout?.on('data', (chunk: Buffer) => {
    stdout += chunk.toString('utf8');
  });
  child.stderr?.on('data', (chunk: Buffer) => {
    stderr += chunk.toString('utf8');
  });
  return new Promise((resolvePromise) => {
    child.once('close', (status) => resolvePromise({ status, stdout, stderr }));
  });
}

/** The JSON log lines of a run's stderr (other lines skipped). */
export function logLines(stderr: string): Record<string, unknown>[] {
  return stderr
    .split('\n')
    .filter((line) => line.startsWith('{'))
    .map((line) => JSON.parse(line) as Record<string, unknown>);
}

/** stderr without the JSON log lines: errors, notes, progress. */
export function humanStderr(stderr: string): string {
  return stderr
    .split('\n')
    .filter((line) => !line.startsWith('{'))
    .join('\n');
}

/** The example of acceptance case 1: `0..8 SO4 200,205,210,215,220,280,300,250,240`. */
export const EXAMPLE_CSV = `time,species,concentration\n${[200, 205, 210, 215, 220, 280, 300, 250, 240]
  .map((value, index) => `${index},SO4,${value}`)
  .join('\n')}\n`;

/** The records of a JSON Lines ledger ([] when it does not exist). */
export function ledgerRecords(path: string): Record<string, unknown>[] {
  if (!existsSync(path)) return [];
  return readFileSync(path, 'utf8')
    .split('\n')
    .filter((line) => line.trim() !== '')
    .map((line) => JSON.parse(line) as Record<string, unknown>);
}
