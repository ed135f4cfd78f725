// The OWSC series of spec §3.9. Names are the contract (the seed's dashboards and alerts use them); series
// without labels are exported without any label.
import {
  Counter,
  createHttpMetrics,
  createMetricsRegistry,
  Gauge,
  Histogram,
  type HttpMetrics,
  type Registry,
} from '@quintet/kernel/metrics';

export interface OwscMetrics {
  registry: Registry;
  http: HttpMetrics;
  httpRateLimited: Counter;
  streamBufferLen: Gauge;
  wsActiveConnections: Gauge;
  wsConnections: Counter;
  wsMessagesReceived: Counter;
  wsMessagesBroadcast: Counter;
  wsErrors: Counter;
  wsMessageSize: Histogram;
  wsMessagesDropped: Counter<'reason'>;
  alerts: Counter<'source' | 'species' | 'type' | 'level'>;
  incidentsOpen: Gauge<'species'>;
  batches: Counter<'outcome'>;
  csvRows: Counter;
  fanoutPublished: Counter;
  fanoutReceived: Counter;
  redisUp: Gauge;
  jobDuration: Histogram<'job'>;
  /** the species label value: the species when the permit limits it, else `other` (bounded cardinality) */
  speciesLabel(species: string): string;
}

/** Creates the registry with every OWSC series, the HTTP request metrics and the default process metrics. */
export function createOwscMetrics(permitSpecies: readonly string[]): OwscMetrics {
  const registry = createMetricsRegistry();
  const registers = [registry];
  const known = new Set(permitSpecies);
  return {
    registry,
    http: createHttpMetrics(registry),
    httpRateLimited: new Counter({
      name: 'http_rate_limited_total',
      help: 'API requests refused with 429',
      registers,
    }),
    streamBufferLen: new Gauge({
      name: 'stream_buffer_len',
      help: 'Items in the stream ring buffer',
      registers,
    }),
    wsActiveConnections: new Gauge({
      name: 'ws_active_connections',
      help: 'Open WebSocket connections (both routes)',
      registers,
    }),
    wsConnections: new Counter({
      name: 'ws_connections_total',
      help: 'WebSocket connections accepted',
      registers,
    }),
    wsMessagesReceived: new Counter({
      name: 'ws_messages_received_total',
      help: 'WebSocket text messages received, dropped ones included',
      registers,
    }),
    wsMessagesBroadcast: new Counter({
      name: 'ws_messages_broadcast_total',
      help: 'Deliveries of a message to a WebSocket client (local or fan-out)',
      registers,
    }),
    wsErrors: new Counter({
      name: 'ws_errors_total',
      help: 'Dropped WebSocket messages and invalid fan-out envelopes',
      registers,
    }),
    wsMessageSize: new Histogram({
      name: 'ws_message_size_bytes',
      help: 'Size of accepted WebSocket messages',
      buckets: [64, 128, 256, 512, 1024, 2048, 4096, 8192],
      registers,
    }),
    wsMessagesDropped: new Counter({
      name: 'ws_messages_dropped_total',
      help: 'Dropped WebSocket messages by reason',
      labelNames: ['reason'],
      registers,
    }),
    alerts: new Counter({
      name: 'owsc_alerts_total',
      help: 'Alerts raised',
      labelNames: ['source', 'species', 'type', 'level'],
      registers,
    }),
    incidentsOpen: new Gauge({
      name: 'owsc_incidents_open',
      help: 'Open stream incidents by species',
      labelNames: ['species'],
      registers,
    }),
    batches: new Counter({
      name: 'owsc_batches_total',
      help: 'Batch uploads by outcome',
      labelNames: ['outcome'],
      registers,
    }),
    csvRows: new Counter({ name: 'owsc_csv_rows_total', help: 'CSV data rows evaluated', registers }),
    fanoutPublished: new Counter({
      name: 'owsc_fanout_published_total',
      help: 'Messages published to the fan-out channel',
      registers,
    }),
    fanoutReceived: new Counter({
      name: 'owsc_fanout_received_total',
      help: 'Messages received from other instances',
      registers,
    }),
    redisUp: new Gauge({
      name: 'owsc_redis_up',
      help: '1 while the Redis fan-out subscriber is connected',
      registers,
    }),
    jobDuration: new Histogram({
      name: 'owsc_job_duration_seconds',
      help: 'Duration of jobs in the worker pool',
      labelNames: ['job'],
      buckets: [0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120],
      registers,
    }),
    speciesLabel: (species) => (known.has(species) ? species : 'other'),
  };
}
