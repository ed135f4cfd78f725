// Every metric of spec §3.17.4, on one registry. The seed's PromQL queries and the alert rules in
// monitoring/alerts.yml use these names; a test asserts each appears in /metrics.
import { createHttpMetrics, createMetricsRegistry, type HttpMetrics } from '@quintet/kernel/metrics';
import { Counter, Gauge, Histogram, type Registry } from 'prom-client';

export const JOB_TYPES = ['media', 'json', 'mixed'] as const;

export interface AllocatorMetrics {
  registry: Registry;
  http: HttpMetrics;
  ingestRequests: Counter<'request_type' | 'status'>;
  ingestLatency: Histogram<'request_type'>;
  jobsProcessed: Counter<'job_type' | 'status'>;
  jobDuration: Histogram<'job_type'>;
  assetDuration: Histogram<'kind'>;
  queueDepth: Gauge<'job_type'>;
  deadLetterDepth: Gauge<'job_type'>;
  activeWorkers: Gauge;
  busyWorkers: Gauge;
  workerCrashes: Counter;
  searchLatency: Histogram<'search_type'>;
  searchQueries: Counter<'search_type' | 'status'>;
  databaseConnections: Gauge<'state'>;
  dbQueryDuration: Histogram<'operation'>;
  clustersCreated: Counter;
  duplicatesDetected: Counter<'type'>;
  vlmRequests: Counter<'status'>;
  vlmFallback: Counter<'reason'>;
  schemasCreated: Counter<'storage_choice'>;
}

/** Creates the registry (with default process/Node metrics) and every allocator metric, zero-initialised. */
export function createAllocatorMetrics(): AllocatorMetrics {
  const registry = createMetricsRegistry({ defaultMetrics: true });
  const registers = [registry];
  const metrics: AllocatorMetrics = {
    registry,
    // The spec names the status label `status_code` (§3.17.4).
    http: createHttpMetrics(registry, { statusLabel: 'status_code' }),
    ingestRequests: new Counter({
      name: 'ingest_requests_total',
      help: 'Ingest requests by request type and outcome',
      labelNames: ['request_type', 'status'],
      registers,
    }),
    ingestLatency: new Histogram({
      name: 'ingest_latency_seconds',
      help: 'Time to acknowledge an ingest request',
      labelNames: ['request_type'],
      buckets: [0.01, 0.05, 0.1, 0.2, 0.5, 1, 2, 5],
      registers,
    }),
    jobsProcessed: new Counter({
      name: 'jobs_processed_total',
      help: 'Job attempts by outcome: success, retry (attempt failed, retried), failure (dead-lettered)',
      labelNames: ['job_type', 'status'],
      registers,
    }),
    jobDuration: new Histogram({
      name: 'job_processing_duration_seconds',
      help: 'Wall-clock time of one job attempt',
      labelNames: ['job_type'],
      buckets: [0.1, 0.5, 1, 2, 5, 10, 30, 60],
      registers,
    }),
    assetDuration: new Histogram({
      name: 'asset_processing_duration_seconds',
      help: 'Processing time of one asset',
      labelNames: ['kind'],
      buckets: [0.01, 0.05, 0.1, 0.25, 0.5, 1, 1.5, 2.5, 5, 10],
      registers,
    }),
    queueDepth: new Gauge({
      name: 'queue_depth',
      help: 'Jobs waiting to run (queued, including scheduled retries)',
      labelNames: ['job_type'],
      registers,
    }),
    deadLetterDepth: new Gauge({
      name: 'dead_letter_queue_depth',
      help: 'Dead-lettered jobs not yet requeued or discarded',
      labelNames: ['job_type'],
      registers,
    }),
    activeWorkers: new Gauge({ name: 'active_workers', help: 'Job executors alive', registers }),
    busyWorkers: new Gauge({ name: 'busy_workers', help: 'Job executors running a job', registers }),
    workerCrashes: new Counter({
      name: 'worker_crashes_total',
      help: 'Job executors killed or crashed (timeouts included) and replaced',
      registers,
    }),
    searchLatency: new Histogram({
      name: 'search_latency_seconds',
      help: 'Search latency',
      labelNames: ['search_type'],
      buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.15, 0.2, 0.5, 1, 2],
      registers,
    }),
    searchQueries: new Counter({
      name: 'search_queries_total',
      help: 'Search queries by type and outcome',
      labelNames: ['search_type', 'status'],
      registers,
    }),
    databaseConnections: new Gauge({
      name: 'database_connections',
      help: 'Database connections by state',
      labelNames: ['state'],
      registers,
    }),
    dbQueryDuration: new Histogram({
      name: 'db_query_duration_seconds',
      help: 'Duration of catalog database operations',
      labelNames: ['operation'],
      buckets: [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
      registers,
    }),
    clustersCreated: new Counter({ name: 'clusters_created_total', help: 'Clusters created', registers }),
    duplicatesDetected: new Counter({
      name: 'duplicates_detected_total',
      help: 'Duplicates detected by type',
      labelNames: ['type'],
      registers,
    }),
    vlmRequests: new Counter({
      name: 'vlm_requests_total',
      help: 'VLM (Gemini) requests by outcome',
      labelNames: ['status'],
      registers,
    }),
    vlmFallback: new Counter({
      name: 'vlm_fallback_total',
      help: 'Assets labelled by the fallback labeller, by reason',
      labelNames: ['reason'],
      registers,
    }),
    schemasCreated: new Counter({
      name: 'schemas_created_total',
      help: 'JSON schemas created by storage choice',
      labelNames: ['storage_choice'],
      registers,
    }),
  };
  // Label sets known in advance start at zero, so rate() and the alert expressions have series from the start.
  for (const jobType of JOB_TYPES) {
    metrics.queueDepth.set({ job_type: jobType }, 0);
    metrics.deadLetterDepth.set({ job_type: jobType }, 0);
    for (const status of ['success', 'failure', 'retry'])
      metrics.jobsProcessed.inc({ job_type: jobType, status }, 0);
  }
  for (const requestType of ['media', 'json', 'mixed', 'folder'])
    for (const status of ['success', 'failure'])
      metrics.ingestRequests.inc({ request_type: requestType, status }, 0);
  for (const status of ['success', 'failure']) metrics.vlmRequests.inc({ status }, 0);
  for (const type of ['exact', 'near']) metrics.duplicatesDetected.inc({ type }, 0);
  for (const state of ['active', 'idle']) metrics.databaseConnections.set({ state }, 0);
  for (const searchType of ['text', 'similar'])
    for (const status of ['success', 'failure'])
      metrics.searchQueries.inc({ search_type: searchType, status }, 0);
  metrics.workerCrashes.inc(0);
  metrics.clustersCreated.inc(0);
  return metrics;
}
