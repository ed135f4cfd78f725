// How a processing failure is classified (spec §3.5): a permanent one fails the asset and is never retried
// within the job run; a transient one fails the attempt, which is retried with backoff, then dead-lettered.

/** Input that can never be processed (undecodable, truncated, unsupported codec, pixel bomb, no text…). */
export class PermanentProcessingError extends Error {
  override readonly name = 'PermanentProcessingError';
}

/** A failure worth retrying (I/O error, timeout, crashed worker, ffmpeg missing, injected fault). */
export class TransientProcessingError extends Error {
  override readonly name = 'TransientProcessingError';
}

/** True when `error` is a PermanentProcessingError (also across worker-thread boundaries, by name). */
export function isPermanentError(error: unknown): boolean {
  return (
    error instanceof PermanentProcessingError ||
    (error as { name?: unknown })?.name === 'PermanentProcessingError'
  );
}
