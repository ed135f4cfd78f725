// Prometheus metrics: one registry per service, HTTP request metrics, and aggregation across cluster
// workers so that any worker answering `/metrics` reports the whole server.
import cluster from 'node:cluster';
import { AggregatorRegistry, Counter, collectDefaultMetrics, Histogram, Registry } from 'prom-client';

export { Counter, Gauge, Histogram, Registry } from 'prom-client';

/** A registry with the process's default metrics (CPU, memory, event loop lag). */
export function createMetricsRegistry(options: { prefix?: string; defaultMetrics?: boolean } = {}): Registry {
  const registry = new Registry();
  if (options.defaultMetrics !== false)
    collectDefaultMetrics({ register: registry, ...(options.prefix ? { prefix: options.prefix } : {}) });
  return registry;
}

export interface HttpMetrics {
  observe(method: string, route: string, status: number, seconds: number): void;
}

/**
 * `http_requests_total{method,route,status}` and `http_request_duration_seconds{method,route,status}`;
 * `statusLabel` renames the status label where a service's contract names it otherwise (e.g. `status_code`).
 */
export function createHttpMetrics(registry: Registry, options: { statusLabel?: string } = {}): HttpMetrics {
  const statusLabel = options.statusLabel ?? 'status';
  const requests = new Counter({
    name: 'http_requests_total',
    help: 'HTTP requests by method, route and status',
    labelNames: ['method', 'route', statusLabel],
    registers: [registry],
  });
  const duration = new Histogram({
    name: 'http_request_duration_seconds',
    help: 'HTTP request duration by method, route and status',
    labelNames: ['method', 'route', statusLabel],
    buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60],
    registers: [registry],
  });
  return {
    observe(method, route, status, seconds) {
      const labels = { method, route, [statusLabel]: String(status) };
      requests.inc(labels);
      duration.observe(labels, seconds);
    },
  };
}

const REQUEST = 'quintet:metrics-request';
const RESPONSE = 'quintet:metrics-response';

interface MetricsMessage {
  type: string;
  id: number;
  text?: string;
  error?: string;
}

/**
 * In the cluster primary: answers workers' requests for the metrics of all workers together.
 * Call once in the primary before forking.
 */
export function serveClusterMetrics(): void {
  const aggregator = new AggregatorRegistry();
  cluster.on('message', (worker, message: MetricsMessage) => {
    if (message?.type !== REQUEST) return;
    aggregator
      .clusterMetrics()
      .then((text) => worker.send({ type: RESPONSE, id: message.id, text }))
      .catch((error: Error) => worker.send({ type: RESPONSE, id: message.id, error: error.message }));
  });
}

let nextRequestId = 0;

/**
 * The metrics text for `/metrics`: this process's registry, or — in a cluster worker — the aggregate of every
 * worker, fetched through the primary.
 */
export async function metricsText(registry: Registry): Promise<string> {
  if (!cluster.isWorker || !process.send) return registry.metrics();
  const id = ++nextRequestId;
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      process.off('message', onMessage);
      reject(new Error('cluster metrics timed out'));
    }, 5000);
    const onMessage = (message: MetricsMessage) => {
      if (message?.type !== RESPONSE || message.id !== id) return;
      clearTimeout(timer);
      process.off('message', onMessage);
      if (message.error !== undefined) reject(new Error(message.error));
      else resolve(message.text ?? '');
    };
    process.on('message', onMessage);
    process.send?.({ type: REQUEST, id });
  });
}

/** Lets a cluster worker's registry answer the primary's aggregation requests (no-op outside a cluster). */
export function registerWorkerRegistry(registry: Registry): void {
  if (!cluster.isWorker) return;
  AggregatorRegistry.setRegistries([registry]);
  // prom-client installs the worker's answering listener only when an AggregatorRegistry is constructed.
  new AggregatorRegistry();
}

export const METRICS_CONTENT_TYPE = 'text/plain; version=0.0.4; charset=utf-8';
