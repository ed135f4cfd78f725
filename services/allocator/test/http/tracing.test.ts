// Tracing (spec S10, §3.20): W3C traceparent continued and propagated, trace ids on the request's log lines, spans
// exported as OTLP/HTTP JSON to a collector (a local node:http server here) when TRACING_ENABLED=true.
import { once } from 'node:events';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Writable } from 'node:stream';
import { createLogger } from '@quintet/kernel/log';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { type FinishedSpan, OtlpSpanExporter, parseTraceparent, tracesUrl } from '../../src/http/tracing.js';
import { startTestAllocator, type TestAllocator } from '../harness.js';

type Json = Record<string, unknown>;
type OtlpAttribute = { key: string; value: Json };
type OtlpSpan = {
  traceId: string;
  spanId: string;
  parentSpanId?: string;
  name: string;
  kind: number;
  startTimeUnixNano: string;
  endTimeUnixNano: string;
  attributes: OtlpAttribute[];
  status: { code: number };
};
type OtlpExport = {
  resourceSpans: {
    resource: { attributes: OtlpAttribute[] };
    scopeSpans: { scope: Json; spans: OtlpSpan[] }[];
  }[];
};

const TRACE_ID = '4bf92f3577b34da6a3ce929d0e0e4736';
const PARENT_ID = '00f067aa0ba902b7';
const TRACEPARENT_HEADER = /^00-([0-9a-f]{32})-([0-9a-f]{16})-(0[01])$/;

/** A fake OTLP/HTTP collector: records every POST; answers with `status`, or never when `hang`. */
class FakeCollector {
  readonly requests: { path: string; contentType: string | undefined; body: OtlpExport }[] = [];
  status = 200;
  hang = false;
  #server: Server | null = null;
  url = '';

  async start(): Promise<void> {
    this.#server = createServer((request: IncomingMessage, response: ServerResponse) => {
      const chunks: Buffer[] = [];
      request.on('data', (chunk: Buffer) => chunks.push(chunk));
      request.on('end', () => {
        this.requests.push({
          path: request.url ?? '',
          contentType: request.headers['content-type'],
          body: JSON.parse(Buffer.concat(chunks).toString('utf8')) as OtlpExport,
        });
        if (this.hang) return;
        response.writeHead(this.status, { 'content-type': 'application/json' }).end('{}');
      });
    });
    this.#server.listen(0, '127.0.0.1');
    await once(this.#server, 'listening');
    this.url = `http://127.0.0.1:${(this.#server.address() as AddressInfo).port}`;
  }

  spans(): OtlpSpan[] {
    return this.requests.flatMap((request) =>
      request.body.resourceSpans.flatMap((resource) => resource.scopeSpans.flatMap((scope) => scope.spans)),
    );
  }

  async waitForSpan(traceId: string, timeoutMs = 5000): Promise<OtlpSpan> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const span = this.spans().find((candidate) => candidate.traceId === traceId);
      if (span !== undefined) return span;
      if (Date.now() > deadline) throw new Error(`no span of trace ${traceId} after ${timeoutMs} ms`);
      await new Promise((resolve) => setTimeout(resolve, 25));
    }
  }

  async stop(): Promise<void> {
    this.#server?.closeAllConnections();
    await new Promise<void>((resolve) => (this.#server ? this.#server.close(() => resolve()) : resolve()));
  }
}

function attributes(span: OtlpSpan): Record<string, unknown> {
  return Object.fromEntries(span.attributes.map(({ key, value }) => [key, Object.values(value)[0]]));
}

function responseTrace(header: unknown): { traceId: string; spanId: string; flags: string } {
  const match = TRACEPARENT_HEADER.exec(String(header));
  expect(match, `traceparent ${String(header)}`).not.toBeNull();
  return { traceId: match?.[1] as string, spanId: match?.[2] as string, flags: match?.[3] as string };
}

function linesOf(allocator: TestAllocator, requestId: string): Json[] {
  return allocator.logs.filter((line) => line.request_id === requestId);
}

describe('parseTraceparent', () => {
  it('accepts version 00 with lowercase ids that are not all zero', () => {
    expect(parseTraceparent(`00-${TRACE_ID}-${PARENT_ID}-01`)).toEqual({
      traceId: TRACE_ID,
      parentSpanId: PARENT_ID,
      sampled: true,
    });
    expect(parseTraceparent(`00-${TRACE_ID}-${PARENT_ID}-00`)?.sampled).toBe(false);
    expect(parseTraceparent(`00-${TRACE_ID}-${PARENT_ID}-03`)?.sampled).toBe(true);
  });

  it('rejects anything else', () => {
    for (const header of [
      undefined,
      '',
      'garbage',
      `01-${TRACE_ID}-${PARENT_ID}-01`,
      `ff-${TRACE_ID}-${PARENT_ID}-01`,
      `00-${'0'.repeat(32)}-${PARENT_ID}-01`,
      `00-${TRACE_ID}-${'0'.repeat(16)}-01`,
      `00-${TRACE_ID.toUpperCase()}-${PARENT_ID}-01`,
      `00-${TRACE_ID.slice(1)}-${PARENT_ID}-01`,
      `00-${TRACE_ID}-${PARENT_ID}-1`,
      `00-${TRACE_ID}-${PARENT_ID}-01-extra`,
      [`00-${TRACE_ID}-${PARENT_ID}-01`, `00-${TRACE_ID}-${PARENT_ID}-01`],
    ])
      expect(parseTraceparent(header), String(header)).toBeNull();
  });

  it('builds the OTLP/HTTP traces URL from the base endpoint', () => {
    expect(tracesUrl('http://collector:4318')).toBe('http://collector:4318/v1/traces');
    expect(tracesUrl('http://collector:4318/')).toBe('http://collector:4318/v1/traces');
    expect(tracesUrl('https://example.test/otlp')).toBe('https://example.test/otlp/v1/traces');
    expect(() => tracesUrl('not a url')).toThrow();
    expect(() => tracesUrl('ftp://collector')).toThrow();
  });
});

describe('trace context on requests and log lines (TRACING_ENABLED unset)', () => {
  const collector = new FakeCollector();
  let allocator: TestAllocator;
  let closed = false;
  beforeAll(async () => {
    await collector.start();
    // An endpoint is configured, but tracing is not enabled: ids propagate and reach the logs, nothing is exported.
    allocator = await startTestAllocator({
      API_KEY: 'trace-key',
      OTEL_EXPORTER_OTLP_ENDPOINT: collector.url,
    });
  });
  afterAll(async () => {
    if (!closed) await allocator?.close();
    await collector.stop();
  });

  it('continues an inbound trace: same trace id in the response header and on every log line', async () => {
    const response = await allocator.app.inject({
      method: 'GET',
      url: '/live',
      headers: { traceparent: `00-${TRACE_ID}-${PARENT_ID}-01`, 'x-request-id': 'trace-continued-1' },
    });
    expect(response.statusCode).toBe(200);
    const trace = responseTrace(response.headers.traceparent);
    expect(trace.traceId).toBe(TRACE_ID);
    expect(trace.spanId).not.toBe(PARENT_ID);
    expect(trace.flags).toBe('01');
    const lines = linesOf(allocator, 'trace-continued-1');
    expect(lines.map((line) => line.message)).toContain('Request completed');
    for (const line of lines) expect(line).toMatchObject({ trace_id: TRACE_ID, span_id: trace.spanId });
  });

  it('keeps the caller\'s "not sampled" decision', async () => {
    const response = await allocator.app.inject({
      method: 'GET',
      url: '/live',
      headers: { traceparent: `00-${TRACE_ID}-${PARENT_ID}-00` },
    });
    expect(responseTrace(response.headers.traceparent)).toMatchObject({ traceId: TRACE_ID, flags: '00' });
  });

  it('ignores a malformed traceparent and starts a new trace', async () => {
    for (const [index, header] of [
      `00-${'0'.repeat(32)}-${PARENT_ID}-01`,
      'nonsense',
      `00-${TRACE_ID}-XYZ-01`,
    ].entries()) {
      const requestId = `trace-malformed-${index}`;
      const response = await allocator.app.inject({
        method: 'GET',
        url: '/live',
        headers: { traceparent: header, 'x-request-id': requestId },
      });
      const trace = responseTrace(response.headers.traceparent);
      expect(trace.traceId).not.toBe(TRACE_ID);
      expect(trace.traceId).not.toBe('0'.repeat(32));
      expect(trace.flags).toBe('01');
      const completed = linesOf(allocator, requestId).find((line) => line.message === 'Request completed');
      expect(completed).toMatchObject({ trace_id: trace.traceId, span_id: trace.spanId });
    }
  });

  it('starts a distinct trace per request without traceparent, also for refused and unknown requests', async () => {
    const seen = new Set<string>();
    for (const [url, status] of [
      ['/live', 200],
      ['/api/v1/ingest/batches', 401],
      ['/no/such/route', 404],
    ] as const) {
      const requestId = `trace-new-${status}`;
      const response = await allocator.app.inject({
        method: 'GET',
        url,
        headers: { 'x-request-id': requestId },
      });
      expect(response.statusCode, url).toBe(status);
      const trace = responseTrace(response.headers.traceparent);
      seen.add(trace.traceId);
      const completed = linesOf(allocator, requestId).find((line) => line.message === 'Request completed');
      expect(completed, url).toMatchObject({
        status_code: status,
        trace_id: trace.traceId,
        span_id: trace.spanId,
      });
    }
    expect(seen.size).toBe(3);
  });

  it('exports nothing while TRACING_ENABLED is false, even on shutdown', async () => {
    closed = true;
    await allocator.close();
    expect(collector.requests).toEqual([]);
  });
});

describe('span export (OTLP/HTTP JSON, TRACING_ENABLED=true)', () => {
  const collector = new FakeCollector();
  let allocator: TestAllocator;
  let closed = false;
  beforeAll(async () => {
    await collector.start();
    allocator = await startTestAllocator({
      TRACING_ENABLED: 'true',
      OTEL_EXPORTER_OTLP_ENDPOINT: collector.url,
    });
  });
  afterEach(() => {
    collector.status = 200;
  });
  afterAll(async () => {
    if (!closed) await allocator?.close();
    await collector.stop();
  });

  it('sends each sampled request span with its route, status and parent to <endpoint>/v1/traces', async () => {
    const before = BigInt(Date.now()) * 1_000_000n;
    const jobId = '1f6b0c8e-3d9a-4c59-9a55-0b0f3e6c2d11';
    const response = await allocator.app.inject({
      method: 'GET',
      url: `/api/v1/ingest/${jobId}/status?verbose=1`,
      headers: { traceparent: `00-${TRACE_ID}-${PARENT_ID}-01` },
    });
    expect(response.statusCode).toBe(404);
    const unsampledTrace = 'aaaabbbbccccddddeeeeffff00001111';
    await allocator.app.inject({
      method: 'GET',
      url: '/live',
      headers: { traceparent: `00-${unsampledTrace}-${PARENT_ID}-00` },
    });
    const { spanId } = responseTrace(response.headers.traceparent);
    const span = await collector.waitForSpan(TRACE_ID);
    const after = BigInt(Date.now()) * 1_000_000n;

    const request = collector.requests[0];
    expect(request?.path).toBe('/v1/traces');
    expect(request?.contentType).toBe('application/json');
    const resource = request?.body.resourceSpans[0];
    expect(
      Object.fromEntries(resource?.resource.attributes.map(({ key, value }) => [key, value]) ?? []),
    ).toEqual({
      'service.name': { stringValue: 'file-allocator' },
      'service.version': { stringValue: allocator.runtime.version },
    });
    expect(resource?.scopeSpans[0]?.scope).toMatchObject({ name: 'file-allocator.http' });
    expect(span).toMatchObject({
      traceId: TRACE_ID,
      spanId,
      parentSpanId: PARENT_ID,
      name: 'GET /api/v1/ingest/:job_id/status',
      kind: 2,
      status: { code: 0 },
    });
    expect(attributes(span)).toEqual({
      'http.request.method': 'GET',
      'http.route': '/api/v1/ingest/:job_id/status',
      'http.response.status_code': 404,
      'url.path': `/api/v1/ingest/${jobId}/status`,
      'client.address': '127.0.0.1',
    });
    expect(span.startTimeUnixNano).toMatch(/^\d+$/);
    expect(span.endTimeUnixNano).toMatch(/^\d+$/);
    const start = BigInt(span.startTimeUnixNano);
    const end = BigInt(span.endTimeUnixNano);
    expect(start >= before - 5_000_000n && end <= after + 5_000_000n).toBe(true);
    expect(end > start).toBe(true);
    // The caller said "not sampled": that request was continued but not recorded.
    expect(collector.spans().some((candidate) => candidate.traceId === unsampledTrace)).toBe(false);
  });

  it('drops spans the collector refuses, logging at debug, without touching the requests', async () => {
    collector.status = 503;
    const response = await allocator.app.inject({ method: 'GET', url: '/live' });
    expect(response.statusCode).toBe(200);
    const { traceId } = responseTrace(response.headers.traceparent);
    await collector.waitForSpan(traceId);
    const refused = () =>
      allocator.logs.find((line) => line.message === 'span export refused; spans dropped');
    const deadline = Date.now() + 2000;
    while (refused() === undefined && Date.now() < deadline)
      await new Promise((resolve) => setTimeout(resolve, 20));
    expect(refused()).toMatchObject({
      level: 'DEBUG',
      logger: 'allocator.tracing',
      status_code: 503,
      spans: 1,
    });
  });

  it('names root spans without a parent, unmatched routes by method, and flushes on close', async () => {
    const response = await allocator.app.inject({ method: 'GET', url: '/no/such/route' });
    expect(response.statusCode).toBe(404);
    const { traceId } = responseTrace(response.headers.traceparent);
    // Closed before the batch delay ran out: the pending span goes out with the shutdown flush.
    closed = true;
    await allocator.close();
    const span = collector.spans().find((candidate) => candidate.traceId === traceId);
    expect(span).toBeDefined();
    expect(span).not.toHaveProperty('parentSpanId');
    expect(span?.name).toBe('GET');
    expect(span?.status).toEqual({ code: 0 });
    expect(attributes(span as OtlpSpan)).not.toHaveProperty('http.route');
    expect(attributes(span as OtlpSpan)['http.response.status_code']).toBe(404);
  });
});

describe('OtlpSpanExporter', () => {
  const collector = new FakeCollector();
  beforeAll(async () => {
    await collector.start();
  });
  afterEach(() => {
    collector.requests.length = 0;
    collector.hang = false;
  });
  afterAll(async () => {
    await collector.stop();
  });

  function capture(): { logger: ReturnType<typeof createLogger>; lines: Json[] } {
    const lines: Json[] = [];
    const destination = new Writable({
      write(chunk: Buffer, _encoding, callback) {
        for (const line of chunk.toString('utf8').split('\n'))
          if (line !== '') lines.push(JSON.parse(line) as Json);
        callback();
      },
    });
    return {
      logger: createLogger({ name: 'test', level: 'debug', destination: destination as never }),
      lines,
    };
  }

  const span = (index: number): FinishedSpan => ({
    traceId: index.toString(16).padStart(32, '0'),
    spanId: (index + 1).toString(16).padStart(16, '0'),
    parentSpanId: null,
    name: 'GET /live',
    startNs: 1_700_000_000_000_000_000n + BigInt(index),
    endNs: 1_700_000_000_000_000_500n + BigInt(index),
    attributes: { 'http.response.status_code': 200, ratio: 0.5 },
    failed: index % 2 === 1, // odd spans stand for 5xx answers
  });

  it('keeps at most maxQueueSize spans, sends them in batches and reports the dropped ones', async () => {
    const { logger, lines } = capture();
    const exporter = new OtlpSpanExporter({
      url: `${collector.url}/v1/traces`,
      serviceVersion: '9.9.9',
      logger,
      maxQueueSize: 5,
      maxBatchSize: 2,
      scheduleDelayMs: 60_000,
    });
    for (let index = 1; index <= 7; index++) exporter.add(span(index));
    await exporter.flush();
    expect(
      collector.requests.map((request) => request.body.resourceSpans[0]?.scopeSpans[0]?.spans.length),
    ).toEqual([2, 2, 1]);
    const sent = collector.spans();
    expect(sent.map((candidate) => candidate.traceId)).toEqual(
      [1, 2, 3, 4, 5].map((index) => span(index).traceId),
    );
    expect(sent[0]).toMatchObject({
      startTimeUnixNano: '1700000000000000001',
      endTimeUnixNano: '1700000000000000501',
      status: { code: 2 },
      attributes: [
        { key: 'http.response.status_code', value: { intValue: 200 } },
        { key: 'ratio', value: { doubleValue: 0.5 } },
      ],
    });
    expect(sent[1]?.status).toEqual({ code: 0 });
    expect(lines.find((line) => line.msg === 'span queue was full; spans dropped')).toMatchObject({
      dropped_spans: 2,
    });
  });

  it('gives up on a collector that does not answer within the timeout', async () => {
    collector.hang = true;
    const { logger, lines } = capture();
    const exporter = new OtlpSpanExporter({
      url: `${collector.url}/v1/traces`,
      serviceVersion: '1',
      logger,
      timeoutMs: 200,
    });
    exporter.add(span(1));
    const started = Date.now();
    await exporter.flush();
    expect(Date.now() - started).toBeLessThan(2000);
    expect(collector.requests.length).toBe(1);
    expect(lines.find((line) => line.msg === 'span export failed; spans dropped')).toMatchObject({
      level: 'debug',
      spans: 1,
    });
  });

  it('drops spans when the collector cannot be reached', async () => {
    const { logger, lines } = capture();
    const exporter = new OtlpSpanExporter({
      url: 'http://127.0.0.1:1/v1/traces',
      serviceVersion: '1',
      logger,
    });
    exporter.add(span(1));
    await exporter.flush();
    expect(lines.find((line) => line.msg === 'span export failed; spans dropped')).toMatchObject({
      spans: 1,
    });
  });
});
