// A consecutive-failure circuit breaker for the VLM client (spec §3.6.7: opens after 5 consecutive failures
// for 60 s; calls made while it is open are skipped and fall back to offline labels).

export type CircuitState = 'closed' | 'open' | 'half_open';

export interface CircuitBreakerOptions {
  /** Consecutive failures that open the circuit (≥ 1). */
  failureThreshold: number;
  /** How long the circuit stays open before one trial call is let through (ms, ≥ 0). */
  openMs: number;
  /** Clock in milliseconds; injectable so tests need not wait. */
  now?: () => number;
}

/** Opens after `failureThreshold` consecutive failures for `openMs`; then half-open lets one trial call through. */
export class CircuitBreaker {
  readonly #failureThreshold: number;
  readonly #openMs: number;
  readonly #now: () => number;
  #consecutiveFailures = 0;
  #openedAt: number | null = null;
  // When the half-open trial was handed out; a trial that never reports back is given up after openMs so
  // the breaker cannot stay stuck half-open.
  #trialStartedAt: number | null = null;

  constructor(options: CircuitBreakerOptions) {
    if (!Number.isInteger(options.failureThreshold) || options.failureThreshold < 1) {
      throw new RangeError(`failureThreshold must be a positive integer, got ${options.failureThreshold}`);
    }
    if (!Number.isFinite(options.openMs) || options.openMs < 0) {
      throw new RangeError(`openMs must be a non-negative number, got ${options.openMs}`);
    }
    this.#failureThreshold = options.failureThreshold;
    this.#openMs = options.openMs;
    this.#now = options.now ?? Date.now;
  }

  /** Current state; `open` turns into `half_open` by itself once `openMs` has passed. */
  get state(): CircuitState {
    if (this.#openedAt === null) return 'closed';
    return this.#now() - this.#openedAt >= this.#openMs ? 'half_open' : 'open';
  }

  /** Whether a call may be made now; in half-open state only the first caller gets the trial. */
  allowRequest(): boolean {
    const state = this.state;
    if (state === 'closed') return true;
    if (state === 'open') return false;
    const now = this.#now();
    if (this.#trialStartedAt !== null && now - this.#trialStartedAt < this.#openMs) return false;
    this.#trialStartedAt = now;
    return true;
  }

  /** A call succeeded: the circuit closes and the failure count resets. */
  recordSuccess(): void {
    this.#consecutiveFailures = 0;
    this.#openedAt = null;
    this.#trialStartedAt = null;
  }

  /** A call failed: counts towards opening; a failed half-open trial re-opens the circuit for another `openMs`. */
  recordFailure(): void {
    const state = this.state;
    if (state === 'half_open') {
      this.#openedAt = this.#now();
      this.#trialStartedAt = null;
      return;
    }
    if (state === 'open') return;
    this.#consecutiveFailures += 1;
    if (this.#consecutiveFailures >= this.#failureThreshold) {
      this.#openedAt = this.#now();
      this.#trialStartedAt = null;
    }
  }
}
