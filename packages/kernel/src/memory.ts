// Flat memory for large streamed transfers. Every socket or file read allocates a fresh 16–64 KiB buffer whose
// memory is returned only when V8 collects its tiny JS wrapper. A streamed upload or download creates almost no
// other garbage, so the young generation fills slowly and those buffers pile up (tens of MiB per transfer)
// until V8's external-memory limit forces a collection. A minor collection every MiB of streamed data frees
// them at once and keeps a transfer's footprint near a few buffers; it costs about a millisecond.
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';

type Collect = (options: { type: 'minor' | 'major' }) => void;

/**
 * Bytes of streamed data between two minor collections. Measured on Raven's uploads: every 4 MiB still let
 * old-space collections pile up behind the external memory (p95 +15 ms), every 512 KiB cost more than it saved.
 */
export const GC_PACE_BYTES = 1024 * 1024;

let collector: Collect | null | undefined;

/** The V8 collector, exposed on first use; null if this runtime refuses to expose it. */
function collect(): Collect | null {
  if (collector !== undefined) return collector;
  const existing = (globalThis as { gc?: unknown }).gc;
  if (typeof existing === 'function') {
    collector = existing as Collect;
    return collector;
  }
  try {
    setFlagsFromString('--expose-gc');
    const fresh = runInNewContext('gc') as unknown;
    collector = typeof fresh === 'function' ? (fresh as Collect) : null;
  } catch {
    collector = null;
  }
  return collector;
}

let streamed = 0;

/**
 * Counts `bytes` of streamed data (any transfer in the process); every `GC_PACE_BYTES` a minor collection runs.
 * Call it per chunk from upload and download paths.
 */
export function paceStreamedBytes(bytes: number): void {
  streamed += bytes;
  if (streamed < GC_PACE_BYTES) return;
  streamed = 0;
  collect()?.({ type: 'minor' });
}

/** A full collection now (when the runtime exposes the collector); for a long-lived process after a big job. */
export function collectGarbage(): void {
  collect()?.({ type: 'major' });
}

/** glibc's heap trim threshold the services run with (see useFixedMallocTrim). */
export const MALLOC_TRIM_THRESHOLD_BYTES = 1024 * 1024;

/**
 * Restarts this process in place — same pid, arguments and environment — with MALLOC_TRIM_THRESHOLD_ set,
 * unless it is set already (the operator's value stands). Left to itself, glibc raises its trim threshold up
 * to 64 MiB once large blocks have been freed, so the memory PGlite touches once while it opens (hundreds of MB
 * for a moment) stays resident in the heaps of its threads: the File Allocator idled at 318 MB instead of
 * 243 MB. glibc reads the variable only when a process starts, hence the exec, which costs about 20 ms; other C
 * libraries ignore the variable. Call it first thing in a bin script, before anything else is loaded.
 */
export function useFixedMallocTrim(): void {
  if (process.platform !== 'linux' || process.env.MALLOC_TRIM_THRESHOLD_ !== undefined) return;
  if (typeof process.execve !== 'function') return;
  process.execve(process.execPath, [process.execPath, ...process.execArgv, ...process.argv.slice(1)], {
    ...process.env,
    MALLOC_TRIM_THRESHOLD_: String(MALLOC_TRIM_THRESHOLD_BYTES),
  });
}
