// Everything an OWSC route needs, built once per HTTP process by server.ts.
import type { Logger } from '@quintet/kernel/log';
import type { FixedWindowLimiter } from '@quintet/kernel/rate-limit';
import type { WorkerPool } from '@quintet/kernel/workers';
import type { OwscConfig } from '../config.js';
import type { OpenAiAdviceProvider } from '../domain/advice-provider.js';
import type { LiveMonitor } from '../domain/live.js';
import type { OwscStore } from '../domain/store.js';
import type { OwscMetrics } from './metrics.js';
import type { AlertStreamEvent, StreamHub } from './websocket.js';

/** Where a route is in the life of the process (`/readyz`, shutdown). */
export interface ProcessState {
  /** false until the store is open, and again once shutting down */
  ready: boolean;
  shuttingDown: boolean;
  startedAt: Date;
  /** random per process; shown in `/api/status`, used as the fan-out envelope origin */
  instanceId: string;
}

export interface OwscContext {
  config: OwscConfig;
  logger: Logger;
  store: OwscStore;
  live: LiveMonitor;
  /** child processes for fits, statistics and large CSV evaluations (spec §2.3) */
  jobs: WorkerPool;
  /** the hosted advice provider when `OW_SC_ADVICE_PROVIDER=openai`, else null (catalogue) */
  adviceProvider: OpenAiAdviceProvider | null;
  /** `/api/*` rate limiter (memory, or Redis with an in-memory fallback while Redis is down) */
  limiter: FixedWindowLimiter;
  metrics: OwscMetrics;
  state: ProcessState;
  /** `disabled` without Redis; else whether the fan-out subscriber is connected */
  redisStatus: () => 'disabled' | 'up' | 'down';
  /** the WebSocket clients and the stream ring buffer (`/api/streams`, `/readyz`, `/api/status`) */
  streams: StreamHub;
  /** pushes an event (e.g. an incident acknowledgement) to every `/ws/alerts` client of every instance */
  publishAlertEvent: (event: AlertStreamEvent) => void;
}
