// Everything a Raven Zero route needs, built once per HTTP process by server.ts.

import type { BlockList } from 'node:net';
import type { Logger } from '@quintet/kernel/log';
import type { Registry } from '@quintet/kernel/metrics';
import type { FixedWindowLimiter } from '@quintet/kernel/rate-limit';
import type { RavenConfig } from '../config.js';
import type { RavenService } from '../domain/service-types.js';
import type { RavenStore } from '../domain/store/types.js';
import type { Wordlist } from '../domain/wordlist.js';
import type { RavenMetrics } from './metrics.js';

export interface RavenContext {
  config: RavenConfig;
  logger: Logger;
  service: RavenService;
  store: RavenStore;
  /** `redis` or `embedded` */
  storeKind: 'redis' | 'embedded';
  wordlist: Wordlist;
  limiter: FixedWindowLimiter;
  trustedProxies: BlockList | null;
  metricsRegistry: Registry;
  metrics: RavenMetrics;
  /** when this process's sweeper last ran (ms since epoch), null before its first run */
  schedulerLastRunMs: () => number | null;
  startedAt: Date;
  /** false while starting and once shutting down (`/readyz`) */
  ready: boolean;
}
