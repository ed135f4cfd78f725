// Tamper-evident provenance and lineage ledgers (spec §3.13): JSON Lines whose records carry the sha256 of their
// RFC 8785 canonical JSON (`digest`) and the digest of the record before them (`prev`). Appends happen under an
// exclusive lock file `<ledger>.lock`, so concurrent runs keep the chain intact; each record is one write.
import { createHash, randomBytes } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { mkdir, open, readFile, rename, stat, unlink } from 'node:fs/promises';
import { hostname, userInfo } from 'node:os';
import { dirname } from 'node:path';
import canonicalize from 'canonicalize';
import type { ChemistryFit } from './types.js';

export interface ProvenanceInput {
  step: string;
  params: Record<string, unknown>;
  /** paths as given on the command line; each file's sha256 is recorded */
  inputs: string[];
  outputs: string[];
  codeVersion: string | null;
}

export interface LineageInput {
  species: string;
  model: string;
  calibration: ChemistryFit;
  file: string;
  fileSha256: string;
}

export type LedgerVerdict =
  | { ok: true; records: number }
  | { ok: false; line: number; problem: 'digest mismatch' | 'broken chain' };

/** A lock older than this is taken over (its holder crashed or hangs). */
const STALE_LOCK_MS = 30_000;
/** Waiting longer than this for the lock is an error. */
const LOCK_TIMEOUT_MS = 15_000;
const TAIL_CHUNK_BYTES = 64 * 1024;

/** sha256 hex of the RFC 8785 canonical JSON of the record without its `digest`. */
export function recordDigest(record: Record<string, unknown>): string {
  const { digest: _digest, ...content } = record;
  const canonical = canonicalize(content);
  if (canonical === undefined) throw new Error('ledger record cannot be serialised');
  return createHash('sha256').update(canonical).digest('hex');
}

/** sha256 hex of a file's bytes, streamed. */
export async function fileSha256(path: string): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(path)) hash.update(chunk as Buffer);
  return hash.digest('hex');
}

function currentActor(): string {
  try {
    return userInfo().username;
  } catch {
    // Containers may run under a uid without a passwd entry.
    return process.env.USER || process.env.USERNAME || 'unknown';
  }
}

export async function appendProvenance(
  ledgerPath: string,
  input: ProvenanceInput,
): Promise<Record<string, unknown>> {
  const inputDigests: Record<string, string> = {};
  for (const path of input.inputs) inputDigests[path] = await fileSha256(path);
  return appendRecord(ledgerPath, {
    timestamp: Date.now() / 1000,
    actor: currentActor(),
    host: hostname(),
    step: input.step,
    params: input.params,
    inputs: input.inputs,
    outputs: input.outputs,
    input_digests: inputDigests,
    code_version: input.codeVersion,
  });
}

export async function appendLineage(
  ledgerPath: string,
  input: LineageInput,
): Promise<Record<string, unknown>> {
  return appendRecord(ledgerPath, {
    timestamp: Date.now() / 1000,
    sample_id: `${input.species}:${input.fileSha256.slice(0, 12)}`,
    source: 'lab_csv',
    species: input.species,
    method: 'fit_parameters',
    model: input.model,
    calibration: input.calibration,
    file: input.file,
    file_sha256: input.fileSha256,
  });
}

/** Appends `content` plus `prev` and `digest` as one line, under the ledger's lock; returns the full record. */
async function appendRecord(
  ledgerPath: string,
  content: Record<string, unknown>,
): Promise<Record<string, unknown>> {
  await mkdir(dirname(ledgerPath), { recursive: true });
  const release = await acquireLock(`${ledgerPath}.lock`);
  try {
    const tail = await readTail(ledgerPath);
    const record: Record<string, unknown> = { ...content, prev: tail.lastDigest };
    record.digest = recordDigest(record);
    // A torn last line (crash mid-write) must not swallow the new record: start it on a line of its own.
    const line = `${tail.endsWithNewline ? '' : '\n'}${JSON.stringify(record)}\n`;
    const handle = await open(ledgerPath, 'a');
    try {
      await handle.write(line);
      await handle.sync();
    } finally {
      await handle.close();
    }
    return record;
  } finally {
    await release();
  }
}

interface LedgerTail {
  lastDigest: string | null;
  /** true for an empty or missing file */
  endsWithNewline: boolean;
}

/** Reads backwards from the end of the ledger to its last non-blank line. */
async function readTail(ledgerPath: string): Promise<LedgerTail> {
  let handle: Awaited<ReturnType<typeof open>>;
  try {
    handle = await open(ledgerPath, 'r');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT')
      return { lastDigest: null, endsWithNewline: true };
    throw error;
  }
  try {
    const { size } = await handle.stat();
    if (size === 0) return { lastDigest: null, endsWithNewline: true };
    let end = size;
    let collected = Buffer.alloc(0);
    let endsWithNewline = true;
    while (end > 0) {
      const start = Math.max(0, end - TAIL_CHUNK_BYTES);
      const chunk = Buffer.alloc(end - start);
      await handle.read(chunk, 0, chunk.length, start);
      if (end === size) endsWithNewline = chunk[chunk.length - 1] === 0x0a;
      collected = Buffer.concat([chunk, collected]);
      end = start;
      const text = collected.toString('utf8').trimEnd();
      const newline = text.lastIndexOf('\n');
      if (newline >= 0 || end === 0) {
        if (text === '') {
          if (end === 0) return { lastDigest: null, endsWithNewline };
          continue;
        }
        return { lastDigest: digestOfLine(text.slice(newline + 1)), endsWithNewline };
      }
    }
    return { lastDigest: null, endsWithNewline };
  } finally {
    await handle.close();
  }
}

/** The `digest` field of a ledger line, or null when the line is not a record (the chain check reports it). */
function digestOfLine(line: string): string | null {
  try {
    const record = JSON.parse(line) as unknown;
    const digest = (record as { digest?: unknown } | null)?.digest;
    return typeof digest === 'string' ? digest : null;
  } catch {
    return null;
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

interface LockHolder {
  pid: number;
  host: string;
  token: string;
}

/**
 * Takes `<ledger>.lock` with O_EXCL, waiting with short random sleeps. A lock whose holder process is gone (same
 * host) or that is older than 30 s is taken over. Returns the release function.
 */
async function acquireLock(lockPath: string): Promise<() => Promise<void>> {
  const holder: LockHolder = { pid: process.pid, host: hostname(), token: randomBytes(8).toString('hex') };
  const deadline = Date.now() + LOCK_TIMEOUT_MS;
  for (;;) {
    try {
      const handle = await open(lockPath, 'wx');
      try {
        await handle.write(JSON.stringify(holder));
      } finally {
        await handle.close();
      }
      return async () => {
        await unlink(lockPath).catch(() => {});
      };
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
    }
    await takeOverIfStale(lockPath);
    if (Date.now() > deadline)
      throw new Error(`ledger is locked: ${lockPath} (remove it if no run is active)`);
    await sleep(2 + Math.random() * 10);
  }
}

async function takeOverIfStale(lockPath: string): Promise<void> {
  let content: string;
  let modified: number;
  try {
    content = await readFile(lockPath, 'utf8');
    modified = (await stat(lockPath)).mtimeMs;
  } catch {
    return; // released meanwhile
  }
  if (!isStale(content, modified)) return;
  // Move the stale lock aside only if it is still the one judged stale; a rename is atomic, so of several
  // waiters at most one removes it.
  const aside = `${lockPath}.stale-${process.pid}-${randomBytes(4).toString('hex')}`;
  try {
    if ((await readFile(lockPath, 'utf8')) !== content) return;
    await rename(lockPath, aside);
    await unlink(aside);
  } catch {
    // another waiter took it over first
  }
}

function isStale(content: string, modifiedMs: number): boolean {
  if (Date.now() - modifiedMs > STALE_LOCK_MS) return true;
  let holder: Partial<LockHolder>;
  try {
    holder = JSON.parse(content) as Partial<LockHolder>;
  } catch {
    // Being written right now (created, content not yet there); only age makes it stale.
    return false;
  }
  if (holder.host !== hostname() || typeof holder.pid !== 'number') return false;
  try {
    process.kill(holder.pid, 0);
    return false;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'ESRCH';
  }
}

/**
 * Checks every record's digest and the `prev` chain. Lines are numbered physically from 1; blank lines are
 * skipped. A missing ledger rejects with the file system's ENOENT error.
 */
export async function verifyLedger(ledgerPath: string): Promise<LedgerVerdict> {
  const text = await readFile(ledgerPath, 'utf8');
  const lines = text.split('\n');
  let previous: string | null = null;
  let records = 0;
  for (let index = 0; index < lines.length; index++) {
    const line = (lines[index] as string).replace(/\r$/, '');
    if (line.trim() === '') continue;
    const lineNumber = index + 1;
    let record: unknown;
    try {
      record = JSON.parse(line);
    } catch {
      return { ok: false, line: lineNumber, problem: 'digest mismatch' };
    }
    if (typeof record !== 'object' || record === null || Array.isArray(record)) {
      return { ok: false, line: lineNumber, problem: 'digest mismatch' };
    }
    const entry = record as Record<string, unknown>;
    if (typeof entry.digest !== 'string' || entry.digest !== recordDigest(entry)) {
      return { ok: false, line: lineNumber, problem: 'digest mismatch' };
    }
    if ((entry.prev ?? null) !== previous || !('prev' in entry)) {
      return { ok: false, line: lineNumber, problem: 'broken chain' };
    }
    previous = entry.digest;
    records += 1;
  }
  return { ok: true, records };
}
