#!/usr/bin/env node
// RAG Assistant benchmarks for spec §6 (R1-R7). Each target starts the real `rag-assistant serve` on a free port
// with a temporary DATA_DIR/TMP_DIR (embedded PGlite unless stated), dev login on, rate limits raised so that
// the benchmark measures the service rather than its limits, and prints one JSON line.
// Usage: node bench/rag/bench.mjs [R1 R2 ... R7]   (default: all)
//   BENCH_QUICK=1   shrink every workload (smoke run of the script itself)
//   BENCH_OUT=path  also write all results as one JSON document
import { spawn, spawnSync } from 'node:child_process';
import { once } from 'node:events';
import http from 'node:http';
import { availableParallelism } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import autocannon from 'autocannon';
import { PDFDocument, StandardFonts } from 'pdf-lib';
import {
  cpuTicksOf,
  forgetChild,
  killOnExit,
  latencySummary,
  makeTempDir,
  procStatusKb,
  round,
  rssSampler,
  runTargets,
  sleep,
  startService,
  withScratchDatabase,
} from '../lib.mjs';
import { histogram, histogramDelta, histogramQuantile } from '../metrics.mjs';

const root = fileURLToPath(new URL('../..', import.meta.url));
const BIN = join(root, 'services/rag/bin/rag-assistant.js');
const QUICK = process.env.BENCH_QUICK === '1' || process.env.BENCH_QUICK === 'true';
const n = (full, quick) => (QUICK ? quick : full);
const MiB = 1024 * 1024;

const BENCH_ENV = {
  ALLOW_DEV_LOGIN: 'true',
  RATE_LIMIT_PER_MINUTE: '100000000',
  CHAT_RATE_LIMIT_PER_MINUTE: '100000000',
  UPLOAD_RATE_LIMIT_PER_MINUTE: '100000000',
  LOGIN_RATE_LIMIT_PER_MINUTE: '100000000',
  MAX_STORES_PER_USER: '1000',
  LOG_LEVEL: 'warn',
};

/** `rag-assistant serve ...args` on a free port with DATA_DIR/TMP_DIR under `dir`, once GET /ready answers 200. */
function startServer(dir, extraEnv = {}, args = []) {
  return startService({
    bin: BIN,
    logDir: dir,
    args,
    env: { DATA_DIR: join(dir, 'data'), TMP_DIR: join(dir, 'tmp'), ...BENCH_ENV, ...extraEnv },
    isReady: async ({ base }) => (await fetch(`${base}/ready`)).status === 200,
    pollMs: 10,
  });
}

const JSON_HEADERS = { 'content-type': 'application/json', 'x-requested-with': 'XMLHttpRequest' };

async function devLogin(base, email = 'bench@example.com') {
  const response = await fetch(`${base}/api/auth/token`, {
    method: 'POST',
    headers: JSON_HEADERS,
    body: JSON.stringify({ email }),
  });
  if (response.status !== 200) throw new Error(`dev login: ${response.status} ${await response.text()}`);
  return (await response.json()).access_token;
}

async function api(base, token, method, path, body) {
  const response = await fetch(`${base}${path}`, {
    method,
    headers: { ...JSON_HEADERS, authorization: `Bearer ${token}` },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  });
  const text = await response.text();
  if (response.status >= 300) throw new Error(`${method} ${path}: ${response.status} ${text}`);
  return text === '' ? null : JSON.parse(text);
}

async function upload(base, token, storeId, filename, bytes, type) {
  const form = new FormData();
  form.set('storeId', String(storeId));
  form.set('file', new Blob([bytes], { type }), filename);
  const response = await fetch(`${base}/api/upload`, {
    method: 'POST',
    headers: { authorization: `Bearer ${token}`, 'x-requested-with': 'XMLHttpRequest' },
    body: form,
  });
  const text = await response.text();
  if (response.status !== 200) throw new Error(`upload ${filename}: ${response.status} ${text}`);
  return JSON.parse(text);
}

async function waitIndexed(base, token, opId, timeoutMs = 600_000) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const status = await api(base, token, 'GET', `/api/upload/op-status/${opId}`);
    if (status.status === 'DONE') return status;
    if (status.status === 'ERROR') throw new Error(`indexing failed: ${status.error}`);
    if (Date.now() > deadline) throw new Error(`indexing of ${opId} did not finish`);
    await sleep(50);
  }
}

// Deterministic English-like text: sentences from a vocabulary, with numbered facts to search for.
const WORDS =
  'pump valve pressure filter sensor reactor coolant flow rate schedule maintenance inspection report budget team customer invoice shipment warehouse supplier contract policy safety training incident review audit quarter revenue margin forecast network server backup latency release feature module test deployment storage capacity energy battery panel turbine compressor'.split(
    ' ',
  );
function textOfBytes(bytes, seed = 1) {
  let state = seed;
  const next = () => {
    state = (state * 1103515245 + 12345) & 0x7fffffff;
    return state;
  };
  const parts = [];
  let size = 0;
  let sentence = 0;
  while (size < bytes) {
    const length = 8 + (next() % 12);
    const words = [];
    for (let i = 0; i < length; i++) words.push(WORDS[next() % WORDS.length]);
    words[0] = words[0][0].toUpperCase() + words[0].slice(1);
    const line = `${words.join(' ')} ${sentence % 7 === 0 ? `code ${seed}x${sentence}` : ''}.${sentence % 6 === 5 ? '\n\n' : ' '}`;
    parts.push(line);
    size += line.length;
    sentence++;
  }
  return parts.join('');
}

async function pdfOfPages(pages) {
  const pdf = await PDFDocument.create();
  const font = await pdf.embedFont(StandardFonts.Helvetica);
  for (let p = 0; p < pages; p++) {
    const page = pdf.addPage([595, 842]);
    const text = textOfBytes(2500, p + 7);
    let y = 800;
    for (let i = 0; i < text.length && y > 40; i += 95) {
      page.drawText(text.slice(i, i + 95).replace(/\n/g, ' '), { x: 40, y, size: 9, font });
      y -= 12;
    }
  }
  return Buffer.from(await pdf.save());
}

function runAutocannon(options, onResponse) {
  return new Promise((resolve, reject) => {
    const instance = autocannon(options, (error, result) => (error ? reject(error) : resolve(result)));
    if (onResponse) instance.on('response', onResponse);
  });
}

/** Reads a chat SSE response; returns first-delta and total times (ms) and the frames' types. */
function chatOnce(base, token, body) {
  return new Promise((resolve, reject) => {
    const started = performance.now();
    let firstDelta = null;
    let buffer = '';
    const types = [];
    const request = http.request(
      `${base}/api/chat`,
      { method: 'POST', headers: { ...JSON_HEADERS, authorization: `Bearer ${token}` } },
      (response) => {
        response.setEncoding('utf8');
        response.on('data', (chunk) => {
          buffer += chunk;
          let index = buffer.indexOf('\n\n');
          while (index >= 0) {
            const frame = buffer.slice(0, index);
            buffer = buffer.slice(index + 2);
            if (frame.startsWith('data: ') && frame !== 'data: [DONE]') {
              const type = JSON.parse(frame.slice(6)).type;
              types.push(type);
              if (type === 'text-delta' && firstDelta === null) firstDelta = performance.now() - started;
            }
            index = buffer.indexOf('\n\n');
          }
        });
        response.on('end', () =>
          resolve({ status: response.statusCode, firstDelta, total: performance.now() - started, types }),
        );
      },
    );
    request.on('error', reject);
    request.end(JSON.stringify(body));
  });
}

/** Indexes ~`chunks` chunks into one new store; returns { storeId, indexed, seconds }. */
async function seedChunks(base, token, chunks) {
  const store = await api(base, token, 'POST', '/api/stores', { display_name: `bench ${Date.now()}` });
  const bytesPerChunk = 1000; // ≈ 250 tokens + overlap at the default 300/50
  let remaining = chunks * bytesPerChunk;
  let part = 0;
  const started = performance.now();
  while (remaining > 0) {
    const size = Math.min(remaining, 10 * MiB);
    const result = await upload(
      base,
      token,
      store.id,
      `corpus-${part}.txt`,
      textOfBytes(size, part + 1),
      'text/plain',
    );
    await waitIndexed(base, token, result.op_id);
    remaining -= size;
    part++;
  }
  const documents = await api(base, token, 'GET', `/api/documents/store/${store.id}`);
  return {
    storeId: store.id,
    indexed: documents.reduce((sum, doc) => sum + (doc.chunk_count ?? 0), 0),
    seconds: (performance.now() - started) / 1000,
  };
}

const targets = {};

/**
 * A new server indexes a 10 MB text file, then a 100-page PDF, while `GET /api/stores` runs from 4 connections at
 * `rate` requests/s in all (0: as fast as they go).
 */
async function ingestWhileListing(rate) {
  const dir = makeTempDir('rag-bench-r1');
  const server = await startServer(dir);
  try {
    const token = await devLogin(server.base);
    const store = await api(server.base, token, 'POST', '/api/stores', { display_name: 'ingest' });
    const text = textOfBytes(n(10 * MiB, MiB), 3);
    const pdf = await pdfOfPages(n(100, 10));
    // Every response with the time it ended: the target is about the requests answered while indexing runs.
    const responses = [];
    const load = runAutocannon(
      {
        url: `${server.base}/api/stores`,
        connections: 4,
        duration: n(15, 5),
        ...(rate > 0 ? { overallRate: rate } : {}),
        headers: { authorization: `Bearer ${token}` },
      },
      (_client, _status, _bytes, responseTime) => responses.push([performance.now(), responseTime]),
    );
    await sleep(200);
    let started = performance.now();
    const textOp = await upload(server.base, token, store.id, 'big.txt', text, 'text/plain');
    const textDone = await waitIndexed(server.base, token, textOp.op_id);
    const textSeconds = (performance.now() - started) / 1000;
    const indexingWindow = [started, performance.now()];
    started = performance.now();
    const pdfOp = await upload(server.base, token, store.id, 'hundred.pdf', pdf, 'application/pdf');
    const pdfDone = await waitIndexed(server.base, token, pdfOp.op_id);
    const pdfSeconds = (performance.now() - started) / 1000;
    const stores = await load;
    return {
      text: {
        bytes: text.length,
        chunks: textDone.chunk_count,
        seconds: round(textSeconds, 2),
        mb_per_s: round(text.length / MiB / textSeconds, 2),
      },
      pdf: {
        pages: pdfDone.page_count,
        pages_per_s: round(pdfDone.page_count / pdfSeconds, 1),
        bytes: pdf.length,
        chunks: pdfDone.chunk_count,
        seconds: round(pdfSeconds, 2),
      },
      stores_during_text_indexing: (() => {
        const during = responses.filter(([at]) => at >= indexingWindow[0] && at <= indexingWindow[1]);
        return { requests: during.length, ...latencySummary(during.map(([, ms]) => ms)) };
      })(),
      stores_whole_run: {
        requests: stores.requests.total,
        p50_ms: stores.latency.p50,
        p97_5_ms: stores.latency.p97_5,
        p99_ms: stores.latency.p99,
        non2xx: stores.non2xx,
      },
    };
  } finally {
    await server.stop();
  }
}

targets.R1 = async () => ({
  target: '10 MB text indexed <= 8 s; 100-page PDF <= 5 s; GET /api/stores p95 <= 50 ms meanwhile',
  // The seed's capacity guidance: up to 50 users at 120 requests/min each.
  stores_at_100_per_s: await ingestWhileListing(100),
  // The same with the listing load unpaced: it competes with indexing for the embedded database.
  stores_unpaced: await ingestWhileListing(0),
});

let sharedCorpus = null;
/** One server with ~50,000 chunks (R2, R3, R6 reuse it). */
async function corpusServer() {
  if (sharedCorpus) return sharedCorpus;
  const dir = makeTempDir('rag-bench-corpus');
  const server = await startServer(dir);
  const token = await devLogin(server.base);
  const seeded = await seedChunks(server.base, token, n(50_000, 3_000));
  sharedCorpus = { dir, server, token, ...seeded };
  return sharedCorpus;
}

const SEARCH_QUERIES = [
  'pump pressure maintenance schedule',
  'coolant flow rate inspection',
  'code 3x700',
  'budget forecast quarter revenue',
  'warehouse supplier shipment contract',
];

/**
 * `POST /api/search` over the store from `clients` closed-loop clients for `durationMs`, after one search that
 * loads the store's index into the service's memory (reported as `first_search_ms`): client latencies and the
 * service's own request-duration histogram over the same searches (the spec's "server time"; linear within its
 * buckets, …, 25, 50, 100 ms, …, as PromQL's histogram_quantile).
 */
async function searchLoad(base, token, storeId, { clients, durationMs }) {
  const search = (query) => api(base, token, 'POST', '/api/search', { storeIds: [storeId], query, topK: 8 });
  let started = performance.now();
  await search(SEARCH_QUERIES[0]);
  const firstSearchMs = performance.now() - started;
  const searchHistogram = async () =>
    histogram(await (await fetch(`${base}/metrics`)).text(), 'http_request_duration_seconds', {
      endpoint: '/api/search',
    });
  const before = await searchHistogram();
  const latencies = [];
  let index = 0;
  started = performance.now();
  const until = started + durationMs;
  await Promise.all(
    Array.from({ length: clients }, async () => {
      while (performance.now() < until) {
        const t0 = performance.now();
        await search(SEARCH_QUERIES[index++ % SEARCH_QUERIES.length]);
        latencies.push(performance.now() - t0);
      }
    }),
  );
  const searchesPerSecond = latencies.length / ((performance.now() - started) / 1000);
  const served = histogramDelta(await searchHistogram(), before);
  const share = (seconds) =>
    (served.buckets.find((bucket) => bucket.le === seconds)?.count ?? 0) / served.count;
  return {
    first_search_ms: round(firstSearchMs, 0),
    clients,
    searches: latencies.length,
    searches_per_s: round(searchesPerSecond, 1),
    latency_ms: latencySummary(latencies),
    server_time: {
      requests: served.count,
      p50_ms: round(histogramQuantile(served, 0.5) * 1000, 1),
      p95_ms: round(histogramQuantile(served, 0.95) * 1000, 1),
      share_within_25_ms: round(share(0.025), 3),
      share_within_50_ms: round(share(0.05), 3),
      share_within_100_ms: round(share(0.1), 3),
    },
  };
}

targets.R2 = async () => {
  const { server, token, storeId, indexed, seconds } = await corpusServer();
  return {
    target: 'search over 50,000 chunks: p50 <= 25 ms, p95 <= 60 ms (server time, 20 concurrent clients)',
    chunks: indexed,
    corpus_index_seconds: round(seconds, 1),
    ...(await searchLoad(server.base, token, storeId, { clients: 20, durationMs: n(20_000, 4_000) })),
  };
};

// Issue-level benchmark beyond §6: retrieval latency at 100,000 chunks, one client and 20.
targets['R2-100k'] = async () => {
  const dir = makeTempDir('rag-bench-r2-100k');
  const server = await startServer(dir);
  try {
    const token = await devLogin(server.base);
    const seeded = await seedChunks(server.base, token, n(100_000, 6_000));
    const alone = await searchLoad(server.base, token, seeded.storeId, {
      clients: 1,
      durationMs: n(10_000, 2_000),
    });
    const concurrent = await searchLoad(server.base, token, seeded.storeId, {
      clients: 20,
      durationMs: n(20_000, 4_000),
    });
    return {
      target: 'retrieval over 100,000 chunks in one store: latency one at a time and with 20 clients',
      chunks: seeded.indexed,
      corpus_index_seconds: round(seeded.seconds, 1),
      one_client: alone,
      twenty_clients: concurrent,
      rss_mb: round((procStatusKb(server.child.pid, 'VmRSS') ?? 0) / 1024, 1),
    };
  } finally {
    await server.stop();
  }
};

targets.R3 = async () => {
  const dir = makeTempDir('rag-bench-r3');
  const server = await startServer(dir);
  try {
    const token = await devLogin(server.base);
    const seeded = await seedChunks(server.base, token, n(10_000, 1_000));
    const questions = [
      'What is the pump pressure schedule?',
      'Which code is 3x700?',
      'How is the coolant flow rate inspected?',
    ];
    for (let i = 0; i < 5; i++)
      await chatOnce(server.base, token, { storeIds: [seeded.storeId], question: questions[i % 3] });
    const runs = [];
    for (let i = 0; i < n(60, 10); i++)
      runs.push(
        await chatOnce(server.base, token, { storeIds: [seeded.storeId], question: questions[i % 3] }),
      );
    return {
      target: 'offline chat over 10,000 chunks: first text-delta p95 <= 150 ms; whole stream p95 <= 300 ms',
      chunks: seeded.indexed,
      chats: runs.length,
      statuses: [...new Set(runs.map((run) => run.status))],
      first_delta_ms: latencySummary(runs.map((run) => run.firstDelta ?? Number.NaN).filter(Number.isFinite)),
      whole_stream_ms: latencySummary(runs.map((run) => run.total)),
      grounded_like: runs.filter((run) => run.types.includes('source-document')).length,
    };
  } finally {
    await server.stop();
  }
};

/**
 * A fake OpenAI-compatible server streaming `tokensPerSecond` tokens for `seconds`, silent for `pauseSeconds`
 * halfway through, in a process of its own so that its timers do not compete with the 200 clients this process
 * runs.
 */
async function fakeLlm(tokensPerSecond, seconds, pauseSeconds = 0) {
  const source = `
    const http = require('node:http');
    const [rate, seconds, pause] = process.argv.slice(1).map(Number);
    const server = http.createServer((request, response) => {
      if (request.url.endsWith('/models')) return response.end(JSON.stringify({ data: [{ id: 'bench-model' }] }));
      request.resume();
      request.on('end', () => {
        response.writeHead(200, { 'content-type': 'text/event-stream' });
        let sent = 0;
        let silentUntil = 0;
        const total = rate * seconds;
        const timer = setInterval(() => {
          if (sent === Math.floor(total / 2) && silentUntil === 0) silentUntil = Date.now() + pause * 1000;
          if (Date.now() < silentUntil) return;
          if (sent >= total) {
            clearInterval(timer);
            response.write('data: ' + JSON.stringify({ choices: [{ delta: {} }], usage: { prompt_tokens: 100, completion_tokens: total } }) + '\\n\\n');
            return response.end('data: [DONE]\\n\\n');
          }
          sent++;
          response.write('data: ' + JSON.stringify({ choices: [{ delta: { content: 'word ' } }] }) + '\\n\\n');
        }, 1000 / rate);
        response.on('close', () => clearInterval(timer));
      });
    });
    server.listen(0, '127.0.0.1', () => process.stdout.write(server.address().port + '\\n'));
  `;
  const child = spawn(
    process.execPath,
    ['-e', source, String(tokensPerSecond), String(seconds), String(pauseSeconds)],
    { stdio: ['ignore', 'pipe', 'inherit'] },
  );
  killOnExit(child);
  const [data] = await once(child.stdout, 'data');
  return {
    url: `http://127.0.0.1:${Number(String(data).trim())}/v1`,
    close: async () => {
      child.kill('SIGTERM');
      forgetChild(child);
    },
  };
}

targets.R4 = async () => {
  const seconds = n(30, 5);
  // Halfway through, the upstream falls silent for longer than one keepalive interval: each stream must then
  // get its keepalive comment on schedule.
  const keepaliveSeconds = n(10, 2);
  const pauseSeconds = keepaliveSeconds * 1.5;
  const fake = await fakeLlm(20, seconds, pauseSeconds);
  const dir = makeTempDir('rag-bench-r4');
  const server = await startServer(dir, {
    ENABLE_LOCAL_OPENAI_BACKEND: 'true',
    LOCAL_LLM_BASE_URL: fake.url,
    LOCAL_LLM_DEFAULT_MODEL: 'bench-model',
    MAX_CONCURRENT_STREAMS: '400',
    STREAM_KEEPALIVE_SECS: String(keepaliveSeconds),
  });
  try {
    const token = await devLogin(server.base);
    const store = await api(server.base, token, 'POST', '/api/stores', {
      display_name: 'streams',
      backend: 'local_openai',
    });
    const doc = await upload(
      server.base,
      token,
      store.id,
      'facts.md',
      '# Pumps\n\nThe pump pressure is 4 bar. The word of the day is word.\n',
      'text/markdown',
    );
    await waitIndexed(server.base, token, doc.op_id);
    const sampler = rssSampler(server.child.pid, 100);
    const streams = n(200, 20);
    const gaps = [];
    const firstBytes = [];
    // ms between a keepalive and the write before it, less the interval
    const keepaliveOffsets = [];
    const results = await Promise.all(
      Array.from(
        { length: streams },
        () =>
          new Promise((resolve, reject) => {
            const started = performance.now();
            let last = null;
            let maxGap = 0;
            let afterKeepalive = false;
            const request = http.request(
              `${server.base}/api/chat`,
              { method: 'POST', headers: { ...JSON_HEADERS, authorization: `Bearer ${token}` } },
              (response) => {
                response.setEncoding('utf8');
                response.on('data', (text) => {
                  const now = performance.now();
                  // Stalls are measured once the stream flows; the wait for its first byte is reported apart.
                  // The silence around a keepalive is the upstream's own gap, not a stall.
                  if (last === null) firstBytes.push(now - started);
                  else if (text.startsWith(': keepalive')) {
                    keepaliveOffsets.push(now - last - keepaliveSeconds * 1000);
                    afterKeepalive = true;
                  } else if (afterKeepalive) afterKeepalive = false;
                  else maxGap = Math.max(maxGap, now - last);
                  last = now;
                });
                response.on('end', () => {
                  gaps.push(maxGap);
                  resolve(response.statusCode);
                });
              },
            );
            request.on('error', reject);
            request.end(
              JSON.stringify({ storeIds: [store.id], question: 'What is the pump pressure word?' }),
            );
          }),
      ),
    );
    const { peakKb } = sampler.stop();
    return {
      target:
        '200 concurrent SSE streams, upstream 20 tokens/s for 30 s: no stall > 1 s beyond upstream gaps, RSS <= 400 MB, keepalives within ±0.5 s of schedule',
      streams,
      seconds,
      upstream_pause_s: pauseSeconds,
      statuses: [...new Set(results)],
      first_byte_ms: latencySummary(firstBytes),
      max_gap_between_writes_ms: latencySummary(gaps),
      upstream_gap_ms: 1000 / 20,
      keepalives: keepaliveOffsets.length,
      keepalive_offset_ms: {
        min: round(Math.min(...keepaliveOffsets)),
        ...latencySummary(keepaliveOffsets.map(Math.abs)),
      },
      peak_rss_mb: round(peakKb / 1024, 1),
    };
  } finally {
    await server.stop();
    await fake.close();
  }
};

targets.R5 = async () => {
  const dir = makeTempDir('rag-bench-r5');
  const server = await startServer(dir);
  try {
    const token = await devLogin(server.base);
    for (let i = 0; i < 5; i++)
      await api(server.base, token, 'POST', '/api/stores', { display_name: `s${i}` });
    const options = {
      url: `${server.base}/api/stores`,
      connections: 10,
      headers: { authorization: `Bearer ${token}` },
    };
    await runAutocannon({ ...options, duration: 2 });
    const paced = await runAutocannon({ ...options, duration: n(20, 4), overallRate: 500 });
    const open = await runAutocannon({ ...options, duration: n(10, 3) });
    return {
      target: '500 req/s of authenticated GET /api/stores with p95 <= 20 ms (one process)',
      paced_500: {
        requests_per_s: round(paced.requests.average, 0),
        p50_ms: paced.latency.p50,
        p97_5_ms: paced.latency.p97_5,
        p99_ms: paced.latency.p99,
        non2xx: paced.non2xx,
      },
      max_throughput: {
        requests_per_s: round(open.requests.average, 0),
        p50_ms: open.latency.p50,
        p99_ms: open.latency.p99,
      },
    };
  } finally {
    await server.stop();
  }
};

// R5's second half: the same authenticated GET /api/stores, unpaced, against 1, 2 and 4 cluster workers sharing
// one PostgreSQL database (the embedded database is single-process). The load generator shares the machine's
// cores with the workers, so scaling is bounded by the cores left to them.
targets.R5scale = async () => {
  const measured = await withScratchDatabase('rag_bench', async (databaseUrl) => {
    const runs = [];
    for (const workers of [1, 2, 4]) {
      const dir = makeTempDir('rag-bench-r5-scale');
      const server = await startServer(dir, { DATABASE_URL: databaseUrl }, ['--workers', String(workers)]);
      try {
        const token = await devLogin(server.base);
        const stores = await api(server.base, token, 'GET', '/api/stores');
        for (let i = stores.length; i < 5; i++)
          await api(server.base, token, 'POST', '/api/stores', { display_name: `s${i}` });
        const options = {
          url: `${server.base}/api/stores`,
          connections: 8 * workers,
          headers: { authorization: `Bearer ${token}` },
        };
        // every worker has started and opened its pool before the measured run
        await runAutocannon({ ...options, duration: 3 });
        const ticksBefore = cpuTicksOf(server.pid, 'postgres');
        const clientBefore = process.cpuUsage();
        const started = performance.now();
        const open = await runAutocannon({ ...options, duration: n(10, 3) });
        const seconds = (performance.now() - started) / 1000;
        const ticks = cpuTicksOf(server.pid, 'postgres');
        const client = process.cpuUsage(clientBefore);
        // cores busy on average: the service's processes, PostgreSQL's, and this load generator
        const cores = (ticks100Hz) => round(ticks100Hz / 100 / seconds, 2);
        runs.push({
          workers,
          requests_per_s: round(open.requests.average, 0),
          p50_ms: open.latency.p50,
          p99_ms: open.latency.p99,
          non2xx: open.non2xx,
          cores_busy: {
            service: cores(ticks.tree - ticksBefore.tree),
            postgres: cores(ticks.named - ticksBefore.named),
            load_generator: cores(((client.user + client.system) / 1e6) * 100),
          },
          service_cpu_us_per_request: round(
            ((ticks.tree - ticksBefore.tree) * 10_000) / open.requests.total,
            0,
          ),
        });
      } finally {
        await server.stop();
      }
    }
    const single = runs[0]?.requests_per_s ?? 0;
    return {
      runs: runs.map((run) => ({ ...run, speedup: round(run.requests_per_s / single, 2) })),
    };
  });
  return {
    target: 'near-linear scaling of authenticated GET /api/stores to 4 workers on PostgreSQL',
    cores: availableParallelism(),
    ...measured,
  };
};

targets.R6 = async () => {
  const empty = [];
  for (let i = 0; i < n(3, 1); i++) {
    const server = await startServer(makeTempDir('rag-bench-r6'));
    empty.push(server.startMs);
    await server.stop();
  }
  const corpus = await corpusServer();
  await corpus.server.stop();
  const restarted = await startServer(corpus.dir);
  corpus.server = restarted;
  await sleep(1000);
  return {
    target: 'start-up to /ready 200 <= 3 s on an empty embedded database, <= 6 s with 50,000 chunks',
    empty_ready_ms: latencySummary(empty),
    with_chunks: {
      chunks: corpus.indexed,
      ready_ms: round(restarted.startMs, 0),
      idle_rss_mb: round((procStatusKb(restarted.child.pid, 'VmRSS') ?? 0) / 1024, 1),
    },
  };
};

targets.R7 = async () => {
  const result = spawnSync(process.execPath, [BIN, 'eval', '--json'], {
    encoding: 'utf8',
    env: { ...process.env, LOG_LEVEL: 'warn' },
    maxBuffer: 64 * MiB,
  });
  let report;
  try {
    report = JSON.parse(result.stdout);
  } catch {
    return { target: 'retrieval quality (§5)', error: (result.stderr || result.stdout).slice(0, 500) };
  }
  return {
    target:
      'recall@5 >= 0.90, MRR@10 >= 0.75, >= 95 % unanswerable refused, <= 5 % answerable refused, >= 90 % contain the fact',
    exit_code: result.status,
    metrics: report.metrics ?? report,
  };
};

await runTargets(targets, { quick: QUICK });
if (sharedCorpus) await sharedCorpus.server.stop();
