#!/usr/bin/env node
// Raven Zero benchmarks for spec §6 (T1-T11). Each target starts its own `raven-zero serve` processes with the
// settings the target names (temporary storage, generous rate limits, KDF_LOG2_N=15 unless stated), drives them
// from this process and prints one JSON line. Redis targets use REDIS_URL (default redis://127.0.0.1:6379/14)
// under a unique key prefix that is deleted afterwards.
// Usage: node bench/raven/bench.mjs [T1 T2 ... T11]   (default: all)
//   BENCH_QUICK=1   shrink every workload (smoke run of the script itself)
//   BENCH_OUT=path  also write all results as one JSON document
//   REDIS_URL=...   Redis for T4, T8, T10 (default redis://127.0.0.1:6379/14)
import { spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Redis } from 'ioredis';
import {
  freePort,
  latencySummary,
  percentile,
  procCpuTicks,
  procStatusKb,
  round,
  rssSampler,
  sleep,
} from '../lib.mjs';

const root = fileURLToPath(new URL('../..', import.meta.url));
const BIN = join(root, 'services/raven/bin/raven-zero.js');
const QUICK = process.env.BENCH_QUICK === '1' || process.env.BENCH_QUICK === 'true';
const REDIS_URL = process.env.REDIS_URL || 'redis://127.0.0.1:6379/14';
const MiB = 1024 * 1024;
const GiB = 1024 * MiB;

/** Full count, or the quick count under BENCH_QUICK. */
const n = (full, quick) => (QUICK ? quick : full);

const countBy = (values) => {
  const counts = {};
  for (const value of values) counts[value] = (counts[value] ?? 0) + 1;
  return counts;
};

// ---------------------------------------------------------------------------------------------------------------
// Server processes and temporary directories: every one is tracked and removed on exit, whatever happens.

const liveChildren = new Set();
const liveDirs = new Set();
/** Redis key prefixes in use, flushed on interruption as well. */
const livePrefixes = new Set();

function cleanupSync() {
  for (const child of liveChildren) {
    try {
      child.kill('SIGKILL');
    } catch {}
  }
  liveChildren.clear();
  for (const dir of liveDirs) rmSync(dir, { recursive: true, force: true });
  liveDirs.clear();
}
process.on('exit', cleanupSync);
for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP']) {
  process.on(signal, () => {
    cleanupSync();
    const code = 128 + (signal === 'SIGINT' ? 2 : signal === 'SIGTERM' ? 15 : 1);
    // Servers are gone; remove their Redis keys too (bounded), then leave.
    setTimeout(() => process.exit(code), 3000).unref();
    Promise.allSettled([...livePrefixes].map((prefix) => flushPrefix(prefix))).then(() => process.exit(code));
  });
}

function makeTempDir(label) {
  const dir = mkdtempSync(join(tmpdir(), `raven-bench-${label}-`));
  liveDirs.add(dir);
  return dir;
}

function removeDir(dir) {
  rmSync(dir, { recursive: true, force: true });
  liveDirs.delete(dir);
}

let prefixCounter = 0;
/** A Redis key prefix used by nobody else. */
const uniquePrefix = (label) =>
  `ravenbench:${process.pid}:${Date.now().toString(36)}:${label}:${prefixCounter++}:`;

/** Deletes every key under `prefix` (and nothing else). */
async function flushPrefix(prefix) {
  const client = new Redis(REDIS_URL, { lazyConnect: true, maxRetriesPerRequest: 2 });
  try {
    await client.connect();
    let cursor = '0';
    do {
      const [next, keys] = await client.scan(cursor, 'MATCH', `${prefix}*`, 'COUNT', 1000);
      cursor = next;
      if (keys.length > 0) await client.unlink(...keys);
    } while (cursor !== '0');
  } finally {
    client.disconnect();
  }
}

/**
 * Starts `raven-zero serve` with its own temp dirs. `env` overrides the defaults below; `redisPrefix` selects the
 * Redis store (shared temp dir `shareDir` lets two instances use one storage, as behind one volume).
 * Resolves once `waitPath` answers 200.
 */
async function startServer(env = {}, { redisPrefix, shareDir, waitPath = '/readyz', label = 'srv' } = {}) {
  const port = await freePort();
  const dir = shareDir ?? makeTempDir(label);
  const childEnv = {
    PATH: process.env.PATH,
    HOME: process.env.HOME,
    STORAGE_PATH: join(dir, 'uploads'),
    TEMP_PATH: join(dir, 'temp'),
    LOG_DIR: join(dir, 'logs'),
    LOG_TO_FILE: 'false',
    LOG_LEVEL: 'warn',
    ENV_FILE: join(dir, 'no.env'),
    UPLOAD_RATE_LIMIT: '1000000/hour',
    HEALTH_RATE_LIMIT: '1000/second',
    KDF_LOG2_N: '15',
    SHUTDOWN_GRACE_SECONDS: '2',
    ...(redisPrefix ? { REDIS_URL, REDIS_KEY_PREFIX: redisPrefix } : {}),
    ...env,
  };
  const started = performance.now();
  const child = spawn(process.execPath, [BIN, 'serve', '--port', String(port)], {
    cwd: dir,
    env: childEnv,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  liveChildren.add(child);
  let output = '';
  const keep = (chunk) => {
    output = (output + chunk).slice(-4000);
  };
  child.stdout.on('data', keep);
  child.stderr.on('data', keep);
  let exited = false;
  const exitPromise = new Promise((resolve) =>
    child.once('exit', (code, signal) => {
      exited = true;
      liveChildren.delete(child);
      resolve({ code, signal });
    }),
  );
  const baseUrl = `http://127.0.0.1:${port}`;
  const deadline = Date.now() + 60_000;
  for (;;) {
    if (exited) throw new Error(`raven-zero serve exited during startup:\n${output}`);
    if (Date.now() > deadline) {
      child.kill('SIGKILL');
      throw new Error(`raven-zero serve not ready within 60 s:\n${output}`);
    }
    try {
      const response = await fetch(`${baseUrl}${waitPath}`);
      await response.arrayBuffer();
      if (response.status === 200) break;
    } catch {}
    await sleep(2);
  }
  const readyMs = performance.now() - started;
  return {
    baseUrl,
    pid: child.pid,
    dir,
    readyMs,
    async stop({ keepDir = false } = {}) {
      if (!exited) {
        child.kill('SIGTERM');
        const timer = setTimeout(() => child.kill('SIGKILL'), 5000);
        await exitPromise;
        clearTimeout(timer);
      }
      if (!keepDir && !shareDir) removeDir(dir);
    },
  };
}

/** Runs `body(servers...)` and always stops the servers, removes dirs and flushes the Redis prefix. */
async function withServers(specs, body) {
  const servers = [];
  const prefixes = new Set(specs.map((spec) => spec.options?.redisPrefix).filter(Boolean));
  for (const prefix of prefixes) livePrefixes.add(prefix);
  try {
    for (const spec of specs) servers.push(await startServer(spec.env, spec.options));
    return await body(...servers);
  } finally {
    for (const server of servers) await server.stop().catch(() => {});
    for (const spec of specs) if (spec.options?.shareDir) removeDir(spec.options.shareDir);
    for (const prefix of prefixes) {
      await flushPrefix(prefix).catch(() => {});
      livePrefixes.delete(prefix);
    }
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Client operations.

const RANDOM_1MIB = randomBytes(MiB);
const payload = (bytes) => (bytes <= MiB ? RANDOM_1MIB.subarray(0, bytes) : randomBytes(bytes));

// The client is node:http with a multipart body written as head, data and tail: fetch with FormData streams each
// upload through web streams, and the garbage that leaves in this process (12 % of its time in GC at 1 MiB per
// upload) showed up as tail latency the service did not cause.
const agent = new http.Agent({ keepAlive: true });
const BOUNDARY = 'raven-bench-7f3a9c';

/** POST /upload/ (multipart); resolves { status, ms, body }, `ms` to the end of the JSON answer. */
function upload(baseUrl, data, { uses, expiry, filename = 'bench.bin' } = {}) {
  const fields = [
    ...(uses === undefined ? [] : [['uses', String(uses)]]),
    ...(expiry === undefined ? [] : [['expiry', String(expiry)]]),
  ];
  const head = Buffer.from(
    `${fields.map(([name, value]) => `--${BOUNDARY}\r\nContent-Disposition: form-data; name="${name}"\r\n\r\n${value}\r\n`).join('')}--${BOUNDARY}\r\nContent-Disposition: form-data; name="file"; filename="${filename}"\r\nContent-Type: application/octet-stream\r\n\r\n`,
  );
  const tail = Buffer.from(`\r\n--${BOUNDARY}--\r\n`);
  const started = performance.now();
  return new Promise((resolve) => {
    const request = http.request(
      `${baseUrl}/upload/`,
      {
        method: 'POST',
        agent,
        headers: {
          'content-type': `multipart/form-data; boundary=${BOUNDARY}`,
          'content-length': head.length + data.length + tail.length,
        },
      },
      (response) => {
        const chunks = [];
        response.on('data', (chunk) => chunks.push(chunk));
        response.on('end', () => {
          const ms = performance.now() - started;
          let body = null;
          try {
            body = JSON.parse(Buffer.concat(chunks).toString('utf8'));
          } catch {}
          resolve({ status: response.statusCode, ms, body });
        });
        response.on('error', (error) =>
          resolve({ status: `error:${error.code ?? error.message}`, ms: performance.now() - started }),
        );
      },
    );
    request.on('error', (error) =>
      resolve({ status: `error:${error.code ?? error.message}`, ms: performance.now() - started }),
    );
    request.write(head);
    request.write(data);
    request.end(tail);
  });
}

/** GET /download/{key}; time to last byte. */
function download(baseUrl, key) {
  const started = performance.now();
  return new Promise((resolve) => {
    const request = http.get(`${baseUrl}/download/${encodeURIComponent(key)}`, { agent }, (response) => {
      let bytes = 0;
      response.on('data', (chunk) => {
        bytes += chunk.length;
      });
      response.on('end', () =>
        resolve({ status: response.statusCode, ms: performance.now() - started, bytes }),
      );
      response.on('error', (error) =>
        resolve({ status: `error:${error.code ?? error.message}`, ms: performance.now() - started }),
      );
    });
    request.on('error', (error) =>
      resolve({ status: `error:${error.code ?? error.message}`, ms: performance.now() - started }),
    );
  });
}

/** Sequential 1 MiB uploads (T1 workload). */
async function sequentialUploads(baseUrl, count, bytes = MiB) {
  const data = payload(bytes);
  const latencies = [];
  const statuses = [];
  for (let index = 0; index < count; index++) {
    const result = await upload(baseUrl, data);
    latencies.push(result.ms);
    statuses.push(result.status);
  }
  return { latencies, statuses };
}

/** Uploads `count` files of `bytes` (untimed), then downloads each once, sequentially (T2 workload). */
async function sequentialDownloads(baseUrl, count, bytes = 64 * 1024) {
  const data = payload(bytes);
  const keys = [];
  for (let index = 0; index < count; index++) {
    const result = await upload(baseUrl, data, { uses: 1 });
    if (result.status !== 201)
      throw new Error(`setup upload failed: ${result.status} ${JSON.stringify(result.body)}`);
    keys.push(result.body.key);
  }
  const latencies = [];
  const statuses = [];
  let wrongSize = 0;
  for (const key of keys) {
    const result = await download(baseUrl, key);
    latencies.push(result.ms);
    statuses.push(result.status);
    if (result.status === 200 && result.bytes !== bytes) wrongSize++;
  }
  return { latencies, statuses, wrongSize };
}

/** `count` uploads at once; resolves latencies and statuses. */
async function concurrentUploads(baseUrl, count, bytes = MiB) {
  const data = payload(bytes);
  const results = await Promise.all(Array.from({ length: count }, () => upload(baseUrl, data)));
  return { latencies: results.map((r) => r.ms), statuses: results.map((r) => r.status) };
}

// ---------------------------------------------------------------------------------------------------------------
// /metrics: p95 of raven_store_op_seconds from the histogram buckets.

function parseLabels(text) {
  const labels = {};
  for (const match of text.matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)) labels[match[1]] = match[2];
  return labels;
}

/** { op: [{ le, count }] (cumulative, sorted) } for one histogram. */
function histogramBuckets(metricsText, name) {
  const byOp = {};
  const pattern = new RegExp(`^${name}_bucket\\{([^}]*)\\}\\s+(\\S+)`, 'gm');
  for (const match of metricsText.matchAll(pattern)) {
    const labels = parseLabels(match[1]);
    const op = labels.op ?? '';
    const le = labels.le === '+Inf' ? Number.POSITIVE_INFINITY : Number(labels.le);
    if (!byOp[op]) byOp[op] = [];
    byOp[op].push({ le, count: Number(match[2]) });
  }
  for (const buckets of Object.values(byOp)) buckets.sort((a, b) => a.le - b.le);
  return byOp;
}

/** histogram_quantile-style estimate (linear within the bucket) plus the bucket's upper bound, in ms. */
function bucketQuantile(buckets, q) {
  const total = buckets.at(-1)?.count ?? 0;
  if (total === 0) return { count: 0, estimate_ms: null, bucket_le_ms: null };
  const rank = q * total;
  let previousLe = 0;
  let previousCount = 0;
  for (const { le, count } of buckets) {
    if (count >= rank) {
      if (!Number.isFinite(le)) return { count: total, estimate_ms: previousLe * 1000, bucket_le_ms: null };
      const inBucket = count - previousCount;
      const fraction = inBucket === 0 ? 1 : (rank - previousCount) / inBucket;
      return {
        count: total,
        estimate_ms: round((previousLe + (le - previousLe) * fraction) * 1000, 3),
        bucket_le_ms: le * 1000,
      };
    }
    previousLe = le;
    previousCount = count;
  }
  return { count: total, estimate_ms: null, bucket_le_ms: null };
}

async function storeOpP95(baseUrl) {
  const text = await (await fetch(`${baseUrl}/metrics`)).text();
  const byOp = histogramBuckets(text, 'raven_store_op_seconds');
  const perOp = {};
  const merged = new Map();
  for (const [op, buckets] of Object.entries(byOp)) {
    perOp[op] = bucketQuantile(buckets, 0.95);
    for (const { le, count } of buckets) merged.set(le, (merged.get(le) ?? 0) + count);
  }
  const all = bucketQuantile(
    [...merged.entries()].map(([le, count]) => ({ le, count })).sort((a, b) => a.le - b.le),
    0.95,
  );
  return { all, perOp };
}

// ---------------------------------------------------------------------------------------------------------------
// Streaming helpers for T5 (nothing of the 2 GiB is held in memory).

/** Streams a multipart upload of `size` generated bytes; resolves { status, body, ms, sha256 }. */
function streamUpload(baseUrl, size) {
  const boundary = `----ravenbench${randomBytes(8).toString('hex')}`;
  const head = Buffer.from(
    `--${boundary}\r\nContent-Disposition: form-data; name="file"; filename="big.bin"\r\n` +
      'Content-Type: application/octet-stream\r\n\r\n',
  );
  const tail = Buffer.from(`\r\n--${boundary}--\r\n`);
  const url = new URL(`${baseUrl}/upload/`);
  const hash = createHash('sha256');
  const pattern = randomBytes(MiB);
  return new Promise((resolve, reject) => {
    const started = performance.now();
    const request = http.request(
      {
        host: url.hostname,
        port: url.port,
        path: url.pathname,
        method: 'POST',
        headers: {
          'Content-Type': `multipart/form-data; boundary=${boundary}`,
          'Content-Length': String(head.length + size + tail.length),
        },
      },
      (response) => {
        let text = '';
        response.setEncoding('utf8');
        response.on('data', (chunk) => {
          text += chunk;
        });
        response.on('end', () => {
          let body = null;
          try {
            body = JSON.parse(text);
          } catch {}
          resolve({
            status: response.statusCode,
            body,
            ms: performance.now() - started,
            sha256: hash.digest('hex'),
          });
        });
        response.on('error', reject);
      },
    );
    request.on('error', reject);
    (async () => {
      request.write(head);
      let sent = 0;
      let counter = 0;
      while (sent < size) {
        const length = Math.min(MiB, size - sent);
        const chunk = Buffer.allocUnsafe(length);
        pattern.copy(chunk, 0, 0, length);
        chunk.writeUInt32BE(counter++ >>> 0, 0); // every MiB differs
        hash.update(chunk);
        sent += length;
        if (!request.write(chunk)) await once(request, 'drain');
      }
      request.end(tail);
    })().catch(reject);
  });
}

/** Streams a download, counting and hashing; resolves { status, bytes, sha256, headerSha, ms }. */
function streamDownload(baseUrl, key) {
  const url = new URL(`${baseUrl}/download/${encodeURIComponent(key)}`);
  return new Promise((resolve, reject) => {
    const started = performance.now();
    http
      .get({ host: url.hostname, port: url.port, path: url.pathname }, (response) => {
        const hash = createHash('sha256');
        let bytes = 0;
        response.on('data', (chunk) => {
          bytes += chunk.length;
          hash.update(chunk);
        });
        response.on('end', () =>
          resolve({
            status: response.statusCode,
            bytes,
            sha256: hash.digest('hex'),
            headerSha: response.headers['x-sha256'],
            ms: performance.now() - started,
          }),
        );
        response.on('error', reject);
      })
      .on('error', reject);
  });
}

// ---------------------------------------------------------------------------------------------------------------
// T6: requests from many loopback addresses (127.0.0.0/8 is all local on Linux).

function httpGetFrom(agent, baseUrl, path) {
  const url = new URL(`${baseUrl}${path}`);
  return new Promise((resolve) => {
    const started = performance.now();
    const request = http.get(
      { host: url.hostname, port: url.port, path: url.pathname, agent },
      (response) => {
        response.resume();
        response.on('end', () => resolve({ status: response.statusCode, ms: performance.now() - started }));
        response.on('error', (error) =>
          resolve({ status: `error:${error.code}`, ms: performance.now() - started }),
        );
      },
    );
    request.on('error', (error) =>
      resolve({ status: `error:${error.code}`, ms: performance.now() - started }),
    );
  });
}

// ---------------------------------------------------------------------------------------------------------------

const targets = {
  async T1() {
    const count = n(500, 20);
    return withServers([{ env: {}, options: { label: 't1' } }], async (server) => {
      await sequentialUploads(server.baseUrl, n(20, 3));
      const { latencies, statuses } = await sequentialUploads(server.baseUrl, count);
      return {
        target: 'upload p95 <= 200 ms [seed < 500 ms]',
        store: 'embedded',
        kdf_log2n: 15,
        uploads: count,
        file_bytes: MiB,
        status_counts: countBy(statuses),
        latency_ms: latencySummary(latencies),
      };
    });
  },

  async T2() {
    const count = n(500, 20);
    return withServers([{ env: {}, options: { label: 't2' } }], async (server) => {
      await sequentialDownloads(server.baseUrl, n(20, 3));
      const { latencies, statuses, wrongSize } = await sequentialDownloads(server.baseUrl, count);
      return {
        target: 'download (time to last byte) p95 <= 100 ms, p50 <= 85 ms',
        store: 'embedded',
        kdf_log2n: 15,
        downloads: count,
        file_bytes: 64 * 1024,
        status_counts: countBy(statuses),
        wrong_size: wrongSize,
        latency_ms: latencySummary(latencies),
      };
    });
  },

  async T3() {
    const clients = n(100, 20);
    const rounds = n(5, 2);
    return withServers([{ env: {}, options: { label: 't3' } }], async (server) => {
      await concurrentUploads(server.baseUrl, n(10, 3));
      const latencies = [];
      const statuses = [];
      const started = performance.now();
      for (let round_ = 0; round_ < rounds; round_++) {
        const result = await concurrentUploads(server.baseUrl, clients);
        latencies.push(...result.latencies);
        statuses.push(...result.statuses);
      }
      const seconds = (performance.now() - started) / 1000;
      const ok = statuses.filter((status) => status === 201).length;
      return {
        target: '100% 201, p99 <= 6 s, >= 25 uploads/s sustained',
        store: 'embedded',
        clients,
        rounds,
        file_bytes: MiB,
        status_counts: countBy(statuses),
        success_pct: round((100 * ok) / statuses.length),
        uploads_per_s: round(ok / seconds),
        latency_ms: latencySummary(latencies),
      };
    });
  },

  async T4() {
    const prefix = uniquePrefix('t4');
    return withServers([{ env: {}, options: { label: 't4', redisPrefix: prefix } }], async (server) => {
      // A shortened T1 + T2 (300 each) keeps the whole script within its time budget.
      const uploads = await sequentialUploads(server.baseUrl, n(300, 20));
      const downloads = await sequentialDownloads(server.baseUrl, n(300, 20));
      const { all, perOp } = await storeOpP95(server.baseUrl);
      return {
        target: 'Redis store operation p95 <= 2 ms [seed < 10 ms]',
        store: 'redis',
        workload: `T1 + T2 against the Redis store (${uploads.latencies.length} uploads, ${downloads.latencies.length} downloads)`,
        store_op_p95_ms: all.estimate_ms,
        store_op_p95_bucket_le_ms: all.bucket_le_ms,
        store_ops_observed: all.count,
        per_op_p95_ms: Object.fromEntries(
          Object.entries(perOp).map(([op, q]) => [
            op,
            { p95_ms: q.estimate_ms, le_ms: q.bucket_le_ms, count: q.count },
          ]),
        ),
        t1_upload_latency_ms: latencySummary(uploads.latencies),
        t2_download_latency_ms: latencySummary(downloads.latencies),
        status_counts: { upload: countBy(uploads.statuses), download: countBy(downloads.statuses) },
      };
    });
  },

  async T5() {
    const size = n(2 * GiB, 128 * MiB);
    const env = { MAX_FILE_SIZE: String(3 * GiB), UPLOAD_IDLE_TIMEOUT_SECONDS: '120' };
    return withServers([{ env, options: { label: 't5' } }], async (server) => {
      await upload(server.baseUrl, payload(64 * 1024)); // warm-up
      const baselineKb = procStatusKb(server.pid, 'VmRSS');
      const upSampler = rssSampler(server.pid, 20);
      const up = await streamUpload(server.baseUrl, size);
      const upRss = upSampler.stop();
      if (up.status !== 201) throw new Error(`T5 upload failed: ${up.status} ${JSON.stringify(up.body)}`);
      const downSampler = rssSampler(server.pid, 20);
      const down = await streamDownload(server.baseUrl, up.body.key);
      const downRss = downSampler.stop();
      const mbPerS = (ms) => round(size / 1e6 / (ms / 1000));
      return {
        target: '>= 150 MB/s each way; server RSS <= 160 MiB throughout',
        bytes: size,
        upload: { status: up.status, seconds: round(up.ms / 1000, 2), mb_per_s: mbPerS(up.ms) },
        download: {
          status: down.status,
          seconds: round(down.ms / 1000, 2),
          mb_per_s: mbPerS(down.ms),
          bytes: down.bytes,
          sha256_ok:
            down.sha256 === up.sha256 && up.body.sha256 === up.sha256 && down.headerSha === up.sha256,
        },
        rss_mib: {
          baseline: round(baselineKb / 1024),
          peak_upload: round(upRss.peakKb / 1024),
          peak_download: round(downRss.peakKb / 1024),
          peak: round(Math.max(upRss.peakKb, downRss.peakKb) / 1024),
        },
        rss_samples: upRss.samples + downRss.samples,
        sample_interval_ms: 20,
      };
    });
  },

  async T6() {
    const total = n(10_000, 500);
    const ips = 100;
    const concurrency = Number(process.env.T6_CONCURRENCY ?? 10);
    // A high failure limit keeps every request on the lookup path (otherwise after 10 failures per IP the
    // answers would be the cheaper "blocked" 429).
    const env = { DOWNLOAD_FAIL_LIMIT: '100000000' };
    return withServers([{ env, options: { label: 't6' } }], async (server) => {
      const agents = Array.from(
        { length: ips },
        (_, index) =>
          new http.Agent({
            keepAlive: true,
            maxSockets: concurrency,
            localAddress: `127.0.${1 + Math.floor(index / 250)}.${1 + (index % 250)}`,
          }),
      );
      const routes = ['/download/', '/preview/', '/status/'];
      const pathFor = (index) => `${routes[index % routes.length]}zzqx-notaword-${index.toString(36)}`;
      // warm-up
      for (let index = 0; index < 200; index++)
        await httpGetFrom(agents[index % ips], server.baseUrl, pathFor(index));
      const latencies = [];
      const statuses = [];
      let next = 0;
      const cpuBefore = procCpuTicks(server.pid);
      const started = performance.now();
      await Promise.all(
        Array.from({ length: concurrency }, async () => {
          for (;;) {
            const index = next++;
            if (index >= total) return;
            const result = await httpGetFrom(agents[index % ips], server.baseUrl, pathFor(index));
            latencies.push(result.ms);
            statuses.push(result.status);
          }
        }),
      );
      const wallSeconds = (performance.now() - started) / 1000;
      const cpuSeconds = (procCpuTicks(server.pid) - cpuBefore) / 100;
      for (const agent of agents) agent.destroy();
      return {
        target: 'p95 <= 3 ms (no KDF)',
        requests: total,
        client_ips: ips,
        concurrency,
        routes: 'download/preview/status, malformed keys',
        status_counts: countBy(statuses),
        latency_ms: latencySummary(latencies),
        requests_per_s: round(total / wallSeconds),
        server_cpu_seconds: round(cpuSeconds, 2),
        server_cpu_ms_per_request: round((cpuSeconds * 1000) / total, 3),
        server_cpu_pct: round((100 * cpuSeconds) / wallSeconds),
      };
    });
  },

  async T7() {
    const runs = n(10, 2);
    const times = [];
    for (let index = 0; index < runs; index++) {
      const server = await startServer({}, { waitPath: '/livez', label: 't7' });
      times.push(server.readyMs);
      await server.stop();
    }
    return {
      target: 'process start -> /livez 200 <= 1.5 s',
      store: 'embedded',
      runs,
      livez_ms: {
        p50: round(percentile(times, 50)),
        max: round(Math.max(...times)),
        min: round(Math.min(...times)),
      },
    };
  },

  async T8() {
    const wantedRuns = n(100, 3);
    const budgetSeconds = Number(process.env.T8_BUDGET_SECONDS ?? (QUICK ? 30 : 100));
    const prefix = uniquePrefix('t8');
    const shareDir = makeTempDir('t8');
    const env = { MAX_USES: '5' };
    const options = { label: 't8', redisPrefix: prefix, shareDir };
    return withServers(
      [
        { env, options },
        { env, options },
      ],
      async (a, b) => {
        const instances = [a, b];
        let exact = 0;
        const outcomes = {};
        const runTimes = [];
        const started = performance.now();
        let runs = 0;
        const data = payload(4096);
        while (runs < wantedRuns && (performance.now() - started) / 1000 < budgetSeconds) {
          const runStarted = performance.now();
          const created = await upload(instances[runs % 2].baseUrl, data, { uses: 5 });
          if (created.status !== 201) throw new Error(`T8 upload failed: ${created.status}`);
          const results = await Promise.all(
            Array.from({ length: 50 }, (_, index) =>
              download(instances[index % 2].baseUrl, created.body.key),
            ),
          );
          const counts = countBy(results.map((r) => r.status));
          const key = Object.entries(counts)
            .sort()
            .map(([status, count]) => `${count}x${status}`)
            .join(',');
          outcomes[key] = (outcomes[key] ?? 0) + 1;
          if (counts[200] === 5 && counts[410] === 45 && Object.keys(counts).length === 2) exact++;
          runs++;
          runTimes.push(performance.now() - runStarted);
        }
        return {
          target: 'exactly 5 x 200 + 45 x 410 in every run (100 runs)',
          instances: 2,
          store: 'redis',
          runs,
          runs_exact: exact,
          outcomes,
          run_ms: { p50: round(percentile(runTimes, 50)), max: round(Math.max(...runTimes)) },
          ...(runs < 100
            ? { note: `${runs} runs (time budget ${budgetSeconds} s or quick mode), not 100` }
            : {}),
        };
      },
    );
  },

  async T9() {
    const count = n(500, 20);
    return withServers([{ env: { KDF_LOG2_N: '12' }, options: { label: 't9' } }], async (server) => {
      await sequentialUploads(server.baseUrl, n(20, 3));
      const up = await sequentialUploads(server.baseUrl, count);
      await sequentialDownloads(server.baseUrl, n(20, 3));
      const down = await sequentialDownloads(server.baseUrl, count);
      return {
        target: 'upload p95 <= 25 ms, download p95 <= 15 ms (KDF_LOG2_N=12)',
        store: 'embedded',
        kdf_log2n: 12,
        upload: {
          count,
          file_bytes: MiB,
          status_counts: countBy(up.statuses),
          latency_ms: latencySummary(up.latencies),
        },
        download: {
          count,
          file_bytes: 64 * 1024,
          status_counts: countBy(down.statuses),
          wrong_size: down.wrongSize,
          latency_ms: latencySummary(down.latencies),
        },
      };
    });
  },

  async T10() {
    const clients = 50;
    const rounds = n(3, 1);
    const result = {};
    for (const store of ['embedded', 'redis']) {
      const options = { label: 't10', ...(store === 'redis' ? { redisPrefix: uniquePrefix('t10') } : {}) };
      result[store] = await withServers([{ env: {}, options }], async (server) => {
        const perRound = [];
        const latencies = [];
        const statuses = [];
        for (let index = 0; index < rounds; index++) {
          const outcome = await concurrentUploads(server.baseUrl, clients);
          perRound.push(outcome.statuses.filter((status) => status === 201).length);
          latencies.push(...outcome.latencies);
          statuses.push(...outcome.statuses);
        }
        return {
          successes_per_round: perRound.map((ok) => `${ok}/${clients}`),
          status_counts: countBy(statuses),
          latency_ms: latencySummary(latencies),
        };
      });
    }
    return { target: '50/50 on each store (original: 15/50)', clients, rounds, file_bytes: MiB, ...result };
  },

  async T11() {
    const size = 10 * MiB;
    const data = payload(size);
    return withServers(
      [{ env: { MAX_FILE_SIZE: String(16 * MiB) }, options: { label: 't11' } }],
      async (server) => {
        await upload(server.baseUrl, payload(256 * 1024)); // warm-up: code paths loaded, pools created
        await sleep(200);
        const beforeKb = procStatusKb(server.pid, 'VmRSS');
        const sampler = rssSampler(server.pid, 5);
        const result = await upload(server.baseUrl, data);
        const { peakKb, samples } = sampler.stop();
        return {
          target: 'server RSS increase <= 16 MB (original: +73 MB)',
          file_bytes: size,
          status: result.status,
          latency_ms: round(result.ms),
          rss_before_mb: round((beforeKb / 1e3) * 1.024),
          rss_peak_mb: round((peakKb / 1e3) * 1.024),
          rss_increase_mb: round(((peakKb - beforeKb) * 1024) / 1e6),
          rss_samples: samples,
        };
      },
    );
  },
};

const chosen = process.argv.slice(2).length > 0 ? process.argv.slice(2) : Object.keys(targets);
for (const name of chosen) {
  if (!targets[name]) {
    console.error(`unknown target ${name}; known: ${Object.keys(targets).join(' ')}`);
    process.exit(2);
  }
}
const results = {};
for (const name of chosen) {
  const started = performance.now();
  try {
    results[name] = await targets[name]();
  } catch (error) {
    results[name] = { error: String(error?.stack ?? error).slice(0, 2000) };
    process.exitCode = 1;
  }
  results[name].bench_seconds = round((performance.now() - started) / 1000);
  console.log(JSON.stringify({ id: name, ...(QUICK ? { quick: true } : {}), ...results[name] }));
}
if (process.env.BENCH_OUT) writeFileSync(process.env.BENCH_OUT, `${JSON.stringify(results, null, 2)}\n`);
cleanupSync();
