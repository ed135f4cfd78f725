// The Prometheus series of spec §3.9. Their names and labels are the contract dashboards rely on; the endpoint
// label is the route pattern (`/api/documents/:id`), never the raw path, so cardinality stays bounded.
import { Counter, createMetricsRegistry, Gauge, Histogram, type Registry } from '@quintet/kernel/metrics';

export interface RagMetrics {
  registry: Registry;
  httpRequests: Counter<'method' | 'endpoint' | 'status'>;
  httpDuration: Histogram<'method' | 'endpoint'>;
  geminiCalls: Counter<'operation' | 'status'>;
  geminiLatency: Histogram<'operation'>;
  llmCalls: Counter<'provider' | 'operation' | 'status'>;
  /** type: prompt | completion | index */
  llmTokens: Counter<'model' | 'type'>;
  retrievalSeconds: Histogram<string>;
  ingestJobs: Counter<'status'>;
  /** documents by status, refreshed from the database when `/metrics` is scraped */
  documents: Gauge<'status'>;
  activeStreams: Gauge<string>;
  refusals: Counter<string>;
  /** scope: global | chat | upload | login | admin */
  rateLimitHits: Counter<'scope'>;
}

const LATENCY_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120];

/** A registry with every RAG series plus the Node.js process defaults. */
export function createRagMetrics(sources: { activeStreams?: () => number } = {}): RagMetrics {
  const registry = createMetricsRegistry();
  const registers = [registry];
  return {
    registry,
    httpRequests: new Counter({
      name: 'http_requests_total',
      help: 'HTTP requests by method, route pattern and status',
      labelNames: ['method', 'endpoint', 'status'],
      registers,
    }),
    httpDuration: new Histogram({
      name: 'http_request_duration_seconds',
      help: 'HTTP request duration by method and route pattern',
      labelNames: ['method', 'endpoint'],
      buckets: LATENCY_BUCKETS,
      registers,
    }),
    geminiCalls: new Counter({
      name: 'gemini_api_calls_total',
      help: 'Calls to the Gemini API by operation and outcome',
      labelNames: ['operation', 'status'],
      registers,
    }),
    geminiLatency: new Histogram({
      name: 'gemini_api_latency_seconds',
      help: 'Gemini API call latency by operation',
      labelNames: ['operation'],
      buckets: LATENCY_BUCKETS,
      registers,
    }),
    llmCalls: new Counter({
      name: 'llm_calls_total',
      help: 'Model provider calls by provider, operation and outcome',
      labelNames: ['provider', 'operation', 'status'],
      registers,
    }),
    llmTokens: new Counter({
      name: 'llm_tokens_total',
      help: 'Tokens counted for cost by model and type (prompt, completion, index)',
      labelNames: ['model', 'type'],
      registers,
    }),
    retrievalSeconds: new Histogram({
      name: 'rag_retrieval_seconds',
      help: 'Hybrid retrieval time per query',
      buckets: [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
      registers,
    }),
    ingestJobs: new Counter({
      name: 'rag_ingest_jobs_total',
      help: 'Ingestion jobs by outcome',
      labelNames: ['status'],
      registers,
    }),
    documents: new Gauge({
      name: 'rag_documents',
      help: 'Live documents by status',
      labelNames: ['status'],
      registers,
    }),
    activeStreams: new Gauge({
      name: 'rag_active_streams',
      help: 'Chat streams holding a slot in this process',
      registers,
      collect() {
        if (sources.activeStreams) this.set(sources.activeStreams());
      },
    }),
    refusals: new Counter({
      name: 'rag_refusals_total',
      help: 'Chat answers refused for lack of relevant context',
      registers,
    }),
    rateLimitHits: new Counter({
      name: 'rate_limit_hits_total',
      help: 'Requests refused with 429 by rate-limit scope',
      labelNames: ['scope'],
      registers,
    }),
  };
}
