// DocOps's own Prometheus metrics (spec §3.8.4), next to the kernel's HTTP request metrics.
import { Counter, Gauge, Histogram, type Registry } from '@quintet/kernel/metrics';

export interface DocopsMetrics {
  runs: Counter<'outcome'>;
  runDuration: Histogram;
  queueWait: Histogram;
  workerKills: Counter<'reason'>;
}

/** Registers the DocOps metrics; the gauges read the live limiter and pool when scraped. */
export function createDocopsMetrics(
  registry: Registry,
  live: { inflightJobs: () => number; idleWorkers: () => number },
): DocopsMetrics {
  new Gauge({
    name: 'docops_inflight_jobs',
    help: 'Render jobs holding a concurrency slot',
    registers: [registry],
    collect() {
      this.set(live.inflightJobs());
    },
  });
  new Gauge({
    name: 'docops_idle_workers',
    help: 'Ready, unused render processes',
    registers: [registry],
    collect() {
      this.set(live.idleWorkers());
    },
  });
  return {
    runs: new Counter({
      name: 'docops_runs_total',
      help: '/v1/run requests by outcome',
      labelNames: ['outcome'],
      registers: [registry],
    }),
    runDuration: new Histogram({
      name: 'docops_run_duration_seconds',
      help: 'Render job wall time from holding a slot to the job end',
      buckets: [0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60],
      registers: [registry],
    }),
    queueWait: new Histogram({
      name: 'docops_queue_wait_seconds',
      help: 'Wait for a concurrency slot',
      buckets: [0, 0.001, 0.01, 0.05, 0.1, 0.5, 1, 5, 10, 30],
      registers: [registry],
    }),
    workerKills: new Counter({
      name: 'docops_worker_kills_total',
      help: 'Render processes killed or lost, by reason',
      labelNames: ['reason'],
      registers: [registry],
    }),
  };
}
