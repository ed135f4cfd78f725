/**
 * Limits shared by the services: a concurrency gate with a FIFO queue and a queue timeout, and a streamed
 * byte cap for uploads. (Rate limits belong here too once a service needs them.)
 */

import { performance } from 'node:perf_hooks';
import { Transform, type TransformCallback } from 'node:stream';

/** No slot became free within the queue timeout (or at once, with a queue timeout of 0). */
export class GateFullError extends Error {
  override name = 'GateFullError';
  readonly waitedMs: number;
  constructor(waitedMs: number) {
    super('no free slot within the queue timeout');
    this.waitedMs = waitedMs;
  }
}

export interface GateTicket {
  /** Gives the slot back (to the next in the queue); calling it again does nothing. */
  release: () => void;
  waitedMs: number;
}

interface Waiter {
  enqueuedAt: number;
  grant: () => void;
  timer: NodeJS.Timeout;
  detachSignal: () => void;
}

/** At most `slots` holders at once; others wait in FIFO order up to `queueTimeoutMs`. */
export class ConcurrencyGate {
  readonly #slots: number;
  readonly #queueTimeoutMs: number;
  readonly #queue: Waiter[] = [];
  #inUse = 0;

  constructor(options: { slots: number; queueTimeoutMs: number }) {
    if (!Number.isInteger(options.slots) || options.slots < 1)
      throw new RangeError('slots must be an integer ≥ 1');
    this.#slots = options.slots;
    this.#queueTimeoutMs = Math.max(0, options.queueTimeoutMs);
  }

  /** Takes a slot, waiting in line if needed; rejects with GateFullError or the signal's abort reason. */
  acquire(signal?: AbortSignal): Promise<GateTicket> {
    if (signal?.aborted) return Promise.reject(signal.reason);
    if (this.#inUse < this.#slots && this.#queue.length === 0) {
      this.#inUse++;
      return Promise.resolve({ release: this.#releaser(), waitedMs: 0 });
    }
    if (this.#queueTimeoutMs === 0) return Promise.reject(new GateFullError(0));

    return new Promise<GateTicket>((resolve, reject) => {
      const waiter: Waiter = {
        enqueuedAt: performance.now(),
        grant: () => {
          leave();
          resolve({ release: this.#releaser(), waitedMs: performance.now() - waiter.enqueuedAt });
        },
        timer: setTimeout(
          () => {
            leave();
            reject(new GateFullError(performance.now() - waiter.enqueuedAt));
          },
          Math.min(this.#queueTimeoutMs, 2 ** 31 - 1),
        ),
        detachSignal: () => {},
      };
      const leave = () => {
        clearTimeout(waiter.timer);
        waiter.detachSignal();
        const index = this.#queue.indexOf(waiter);
        if (index >= 0) this.#queue.splice(index, 1);
      };
      if (signal) {
        const onAbort = () => {
          leave();
          reject(signal.reason);
        };
        signal.addEventListener('abort', onAbort, { once: true });
        waiter.detachSignal = () => signal.removeEventListener('abort', onAbort);
      }
      this.#queue.push(waiter);
    });
  }

  /** Slots currently held. */
  get inUse(): number {
    return this.#inUse;
  }

  /** Callers queued for a slot. */
  get waiting(): number {
    return this.#queue.length;
  }

  get slots(): number {
    return this.#slots;
  }

  #releaser(): () => void {
    let released = false;
    return () => {
      if (released) return;
      released = true;
      const next = this.#queue[0];
      // The slot passes straight to the next in line, so inUse does not change.
      if (next) next.grant();
      else this.#inUse--;
    };
  }
}

/** A stream carried more bytes than allowed; `receivedBytes` is the count when the limit was crossed. */
export class UploadTooLargeError extends Error {
  override name = 'UploadTooLargeError';
  readonly maxBytes: number;
  readonly receivedBytes: number;
  constructor(maxBytes: number, receivedBytes: number) {
    super(`upload exceeds ${maxBytes} bytes`);
    this.maxBytes = maxBytes;
    this.receivedBytes = receivedBytes;
  }
}

/** Counts bytes of a stream and fails once `maxBytes` is crossed: a Transform that errors with UploadTooLargeError{maxBytes, receivedBytes (bytes seen when the limit was crossed, > max)}. */
export function byteLimit(maxBytes: number): Transform {
  let received = 0;
  return new Transform({
    transform(chunk: Buffer | string, encoding: BufferEncoding, callback: TransformCallback) {
      received += typeof chunk === 'string' ? Buffer.byteLength(chunk, encoding) : chunk.length;
      if (received > maxBytes) callback(new UploadTooLargeError(maxBytes, received));
      else callback(null, chunk);
    },
  });
}
