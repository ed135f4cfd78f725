// Tracing (spec S10, §3.20): every request gets a server span. An inbound W3C `traceparent` is continued (same trace
// id, the caller's span as parent), anything else starts a new trace; the response carries the span's own
// `traceparent`, and every log line written through `request.log` carries `trace_id` and `span_id`. With
// TRACING_ENABLED=true and OTEL_EXPORTER_OTLP_ENDPOINT set, finished spans are batched and sent as OTLP/HTTP JSON to
// `<endpoint>/v1/traces`; an export that fails is logged at debug and dropped (tracing never slows or fails a request).
import { randomBytes } from 'node:crypto';
import { type Logger, namedLogger } from '@quintet/kernel/log';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { AllocatorRuntime } from '../runtime.js';

/** The parts of a valid version-00 `traceparent` header. */
export interface TraceParent {
  traceId: string;
  parentSpanId: string;
  sampled: boolean;
}

const TRACEPARENT = /^00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$/;
const ALL_ZERO = /^0+$/;

/** Parses a W3C `traceparent` (version 00, lowercase hex, ids not all zero); anything else → null. */
export function parseTraceparent(header: string | string[] | undefined): TraceParent | null {
  // Several traceparent headers are ambiguous: the W3C rules say to ignore them all.
  if (typeof header !== 'string') return null;
  const match = TRACEPARENT.exec(header.trim());
  if (match === null) return null;
  const [, traceId, parentSpanId, flags] = match as unknown as [string, string, string, string];
  if (ALL_ZERO.test(traceId) || ALL_ZERO.test(parentSpanId)) return null;
  return { traceId, parentSpanId, sampled: (Number.parseInt(flags, 16) & 1) === 1 };
}

function randomId(bytes: number): string {
  for (;;) {
    const id = randomBytes(bytes).toString('hex');
    if (!ALL_ZERO.test(id)) return id;
  }
}

interface RequestSpan {
  traceId: string;
  spanId: string;
  parentSpanId: string | null;
  sampled: boolean;
  startNs: bigint;
}

/** A finished server span, as exported. */
export interface FinishedSpan {
  traceId: string;
  spanId: string;
  parentSpanId: string | null;
  name: string;
  startNs: bigint;
  endNs: bigint;
  attributes: Record<string, string | number>;
  failed: boolean;
}

// Wall-clock nanoseconds with the monotonic clock's resolution: one anchor taken at load time.
const ANCHOR_WALL_NS = BigInt(Date.now()) * 1_000_000n;
const ANCHOR_HR_NS = process.hrtime.bigint();
const nowNs = () => ANCHOR_WALL_NS + (process.hrtime.bigint() - ANCHOR_HR_NS);

const SPAN_KIND_SERVER = 2;
const STATUS_CODE_UNSET = 0;
const STATUS_CODE_ERROR = 2;

function attributeValue(value: string | number): Record<string, unknown> {
  if (typeof value === 'number' && Number.isInteger(value)) return { intValue: value };
  if (typeof value === 'number') return { doubleValue: value };
  return { stringValue: value };
}

function attributeList(attributes: Record<string, string | number>) {
  return Object.entries(attributes).map(([key, value]) => ({ key, value: attributeValue(value) }));
}

export interface ExporterOptions {
  /** `<OTEL_EXPORTER_OTLP_ENDPOINT>/v1/traces` */
  url: string;
  serviceVersion: string;
  logger: Logger;
  /** spans waiting beyond this are dropped (default 2048) */
  maxQueueSize?: number;
  /** spans per POST (default 512) */
  maxBatchSize?: number;
  /** a partial batch is sent this long after its first span (default 1000 ms) */
  scheduleDelayMs?: number;
  /** per POST (default 5000 ms) */
  timeoutMs?: number;
}

/** Batches finished spans and POSTs them as OTLP/HTTP JSON; bounded queue, one export at a time, failures dropped. */
export class OtlpSpanExporter {
  readonly #queue: FinishedSpan[] = [];
  readonly #options: Required<ExporterOptions>;
  #timer: NodeJS.Timeout | undefined;
  #exporting: Promise<void> = Promise.resolve();
  #dropped = 0;

  constructor(options: ExporterOptions) {
    this.#options = {
      maxQueueSize: 2048,
      maxBatchSize: 512,
      scheduleDelayMs: 1000,
      timeoutMs: 5000,
      ...options,
    };
  }

  add(span: FinishedSpan): void {
    if (this.#queue.length >= this.#options.maxQueueSize) {
      this.#dropped += 1;
      return;
    }
    this.#queue.push(span);
    if (this.#queue.length >= this.#options.maxBatchSize) this.#schedule(0);
    else this.#schedule(this.#options.scheduleDelayMs);
  }

  /** Sends everything queued now (in batches) and resolves when those exports have finished. */
  flush(): Promise<void> {
    clearTimeout(this.#timer);
    this.#timer = undefined;
    const run = this.#exporting.then(async () => {
      while (this.#queue.length > 0) await this.#export(this.#queue.splice(0, this.#options.maxBatchSize));
    });
    this.#exporting = run;
    return run;
  }

  #schedule(delayMs: number): void {
    if (this.#timer !== undefined && delayMs > 0) return;
    clearTimeout(this.#timer);
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      void this.flush();
    }, delayMs);
    // Pending spans never keep the process alive; close() flushes them on shutdown.
    this.#timer.unref();
  }

  #body(spans: FinishedSpan[]): Record<string, unknown> {
    return {
      resourceSpans: [
        {
          resource: {
            attributes: attributeList({
              'service.name': 'file-allocator',
              'service.version': this.#options.serviceVersion,
            }),
          },
          scopeSpans: [
            {
              scope: { name: 'file-allocator.http', version: this.#options.serviceVersion },
              spans: spans.map((span) => ({
                traceId: span.traceId,
                spanId: span.spanId,
                ...(span.parentSpanId === null ? {} : { parentSpanId: span.parentSpanId }),
                name: span.name,
                kind: SPAN_KIND_SERVER,
                startTimeUnixNano: span.startNs.toString(),
                endTimeUnixNano: span.endNs.toString(),
                attributes: attributeList(span.attributes),
                status: { code: span.failed ? STATUS_CODE_ERROR : STATUS_CODE_UNSET },
              })),
            },
          ],
        },
      ],
    };
  }

  async #export(spans: FinishedSpan[]): Promise<void> {
    const { logger, url, timeoutMs } = this.#options;
    if (this.#dropped > 0) {
      logger.debug({ dropped_spans: this.#dropped }, 'span queue was full; spans dropped');
      this.#dropped = 0;
    }
    try {
      const response = await fetch(url, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify(this.#body(spans)),
        signal: AbortSignal.timeout(timeoutMs),
      });
      await response.arrayBuffer().catch(() => undefined);
      if (!response.ok)
        logger.debug(
          { status_code: response.status, spans: spans.length },
          'span export refused; spans dropped',
        );
    } catch (error) {
      logger.debug(
        { err: (error as Error).message, spans: spans.length },
        'span export failed; spans dropped',
      );
    }
  }
}

/** `OTEL_EXPORTER_OTLP_ENDPOINT` is the collector's base URL; traces go to its `/v1/traces` (OTLP/HTTP). */
export function tracesUrl(endpoint: string): string {
  const url = new URL(endpoint);
  if (url.protocol !== 'http:' && url.protocol !== 'https:')
    throw new Error(`unsupported protocol ${url.protocol}`);
  url.pathname = `${url.pathname.replace(/\/+$/, '')}/v1/traces`;
  return url.toString();
}

const spans = new WeakMap<FastifyRequest, RequestSpan>();

/**
 * Registers the tracing hooks. Call it right after the app is created and before registerConventions: its onRequest
 * hook must run first so that every later line of the request — including the `Request completed` access-log line
 * written in an onResponse hook through `request.log`, and the 401s of the API-key check — carries the trace ids.
 */
export function registerTracing(app: FastifyInstance, runtime: AllocatorRuntime): void {
  const { config } = runtime;
  const logger = namedLogger(runtime.logger, 'allocator.tracing');
  let exporter: OtlpSpanExporter | null = null;
  if (config.tracingEnabled && config.otlpEndpoint !== undefined && config.otlpEndpoint !== '') {
    try {
      exporter = new OtlpSpanExporter({
        url: tracesUrl(config.otlpEndpoint),
        serviceVersion: runtime.version,
        logger,
      });
    } catch (error) {
      logger.warn(
        { err: (error as Error).message },
        'OTEL_EXPORTER_OTLP_ENDPOINT is not a valid http(s) URL; spans are not exported',
      );
    }
  }

  app.addHook('onRequest', async (request, reply) => {
    const parent = parseTraceparent(request.headers.traceparent);
    const span: RequestSpan = {
      traceId: parent?.traceId ?? randomId(16),
      spanId: randomId(8),
      parentSpanId: parent?.parentSpanId ?? null,
      sampled: parent?.sampled ?? true,
      startNs: nowNs(),
    };
    spans.set(request, span);
    reply.header('traceparent', `00-${span.traceId}-${span.spanId}-${span.sampled ? '01' : '00'}`);
    const traced = request.log.child({ trace_id: span.traceId, span_id: span.spanId });
    request.log = traced;
    reply.log = traced;
  });

  if (exporter === null) return;
  const sink = exporter;

  app.addHook('onResponse', async (request, reply) => {
    const span = spans.get(request);
    // The caller decided not to sample this trace: continue it without recording.
    if (span === undefined || !span.sampled) return;
    const route = request.routeOptions.url;
    const attributes: Record<string, string | number> = {
      'http.request.method': request.method,
      'http.response.status_code': reply.statusCode,
      'url.path': request.url.split('?')[0] ?? '/',
      'client.address': request.ip,
    };
    if (route !== undefined) attributes['http.route'] = route;
    sink.add({
      traceId: span.traceId,
      spanId: span.spanId,
      parentSpanId: span.parentSpanId,
      name: route === undefined ? request.method : `${request.method} ${route}`,
      startNs: span.startNs,
      endNs: nowNs(),
      attributes,
      failed: reply.statusCode >= 500,
    });
  });

  app.addHook('onClose', async () => {
    await sink.flush();
  });
}
