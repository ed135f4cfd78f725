// The Raven Zero metric families (spec §5 B7). Labels never carry keys, filenames or addresses.

import type { HttpMetrics } from '@quintet/kernel/metrics';
import { Counter, Gauge, Histogram, type Registry } from '@quintet/kernel/metrics';

export interface RavenMetrics {
  uploads: Counter<'result'>;
  downloads: Counter<'result'>;
  bytesUploaded: Counter;
  bytesDownloaded: Counter;
  activeUploads: Gauge;
  blocked: Counter;
  rateLimited: Counter<'bucket'>;
  sweepRemoved: Counter<'reason'>;
  kdfSeconds: Histogram;
  storeOpSeconds: Histogram<'op'>;
  http: HttpMetrics;
}

/** Registers every family on `registry`. */
export function createRavenMetrics(registry: Registry): RavenMetrics {
  const registers = [registry];
  const httpDuration = new Histogram({
    name: 'raven_http_request_duration_seconds',
    help: 'HTTP request duration by route template, method and status',
    labelNames: ['route', 'method', 'status'],
    buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60],
    registers,
  });
  return {
    uploads: new Counter({
      name: 'raven_uploads_total',
      help: 'Upload requests by result',
      labelNames: ['result'],
      registers,
    }),
    downloads: new Counter({
      name: 'raven_downloads_total',
      help: 'Download requests by result',
      labelNames: ['result'],
      registers,
    }),
    bytesUploaded: new Counter({
      name: 'raven_bytes_uploaded_total',
      help: 'Plaintext bytes of stored uploads',
      registers,
    }),
    bytesDownloaded: new Counter({
      name: 'raven_bytes_downloaded_total',
      help: 'Plaintext bytes sent to downloaders',
      registers,
    }),
    activeUploads: new Gauge({
      name: 'raven_active_uploads',
      help: 'Uploads being received by this process',
      registers,
    }),
    blocked: new Counter({
      name: 'raven_blocked_total',
      help: 'Requests refused because the client is blocked',
      registers,
    }),
    rateLimited: new Counter({
      name: 'raven_rate_limited_total',
      help: 'Requests refused by a rate limit, by bucket',
      labelNames: ['bucket'],
      registers,
    }),
    sweepRemoved: new Counter({
      name: 'raven_sweep_removed_total',
      help: 'Blobs and partial files removed by the sweeper, by reason',
      labelNames: ['reason'],
      registers,
    }),
    kdfSeconds: new Histogram({
      name: 'raven_kdf_seconds',
      help: 'Time spent deriving keys from passphrases',
      buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
      registers,
    }),
    storeOpSeconds: new Histogram({
      name: 'raven_store_op_seconds',
      help: 'Store operation latency by operation',
      labelNames: ['op'],
      buckets: [0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5, 1, 2.5],
      registers,
    }),
    http: {
      observe(method, route, status, seconds) {
        httpDuration.observe({ route: routeTemplate(route), method, status: String(status) }, seconds);
      },
    },
  };
}

/** `/download/:key/` → `/download/{key}`: the form used in metrics and logs. */
export function routeTemplate(route: string | undefined): string {
  if (route === undefined || route === '') return 'unmatched';
  const template = route.replace(/:([A-Za-z_]+)/g, '{$1}');
  return template.length > 1 ? template.replace(/\/$/, '') : template;
}
