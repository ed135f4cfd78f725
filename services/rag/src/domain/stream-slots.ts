// Per-process chat stream slots (spec §2.3.6, §3.7): at most MAX_CONCURRENT_STREAMS streams at once; a stream
// waits up to STREAM_SLOT_WAIT_MS for a slot, else it is refused with `stream_capacity_exceeded`. Held slots
// also carry a shutdown signal so a graceful stop can end every open stream with a final frame.
import { ConcurrencyGate, GateFullError } from '@quintet/kernel/limits';

export interface StreamSlot {
  /** aborted when the server shuts down: the stream ends with `upstream_unavailable` + `[DONE]` */
  readonly shutdown: AbortSignal;
  /** gives the slot back; calling it again does nothing */
  release(): void;
}

export class StreamSlots {
  readonly #gate: ConcurrencyGate;
  readonly #open = new Set<AbortController>();
  #closing = false;

  constructor(options: { maxStreams: number; waitMs: number }) {
    this.#gate = new ConcurrencyGate({
      slots: Math.max(1, options.maxStreams),
      queueTimeoutMs: options.waitMs,
    });
  }

  /** A slot, or null when none became free within the wait (or the server is shutting down). */
  async acquire(signal?: AbortSignal): Promise<StreamSlot | null> {
    if (this.#closing) return null;
    let ticket: Awaited<ReturnType<ConcurrencyGate['acquire']>>;
    try {
      ticket = await this.#gate.acquire(signal);
    } catch (error) {
      if (error instanceof GateFullError) return null;
      throw error;
    }
    const shutdown = new AbortController();
    this.#open.add(shutdown);
    if (this.#closing) shutdown.abort();
    return {
      shutdown: shutdown.signal,
      release: () => {
        if (!this.#open.delete(shutdown)) return;
        ticket.release();
      },
    };
  }

  /** Streams holding a slot now (the `rag_active_streams` gauge and the admin summary). */
  get active(): number {
    return this.#gate.inUse;
  }

  /** Refuses new streams and signals every open one to finish (graceful shutdown). */
  shutdown(): void {
    this.#closing = true;
    for (const controller of this.#open) controller.abort();
  }
}
