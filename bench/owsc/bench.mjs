#!/usr/bin/env node
// OWSC benchmarks for spec §6 (O1-O8) and the WebSocket fan-out with 100 clients. Each target generates its
// input in a temporary directory, runs the real `openworld-chem` bin (CLI commands, or `dashboard` processes on
// free ports with the settings the target names) and prints one JSON line.
// Usage: node bench/owsc/bench.mjs [O1 O2 ... O8 WS100]   (default: all)
//   BENCH_QUICK=1   shrink every workload (smoke run of the script itself)
//   BENCH_OUT=path  also write all results as one JSON document
//   REDIS_URL=...   Redis for the two-instance fan-out of O5 (default redis://127.0.0.1:6379/14; skipped when absent)
import { spawn, spawnSync } from 'node:child_process';
import { once } from 'node:events';
import { createWriteStream, mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import autocannon from 'autocannon';
import WebSocket from 'ws';
import {
  freePort,
  latencySummary,
  percentile,
  procStatusKb,
  round,
  runTargets,
  sleep,
  withScratchDatabase,
} from '../lib.mjs';

const root = fileURLToPath(new URL('../..', import.meta.url));
const BIN = join(root, 'services/owsc/bin/openworld-chem.js');
const QUICK = process.env.BENCH_QUICK === '1' || process.env.BENCH_QUICK === 'true';
const REDIS_URL = process.env.REDIS_URL || 'redis://127.0.0.1:6379/14';
const MiB = 1024 * 1024;
const n = (full, quick) => (QUICK ? quick : full);

const liveChildren = new Set();
const liveDirs = new Set();
function cleanupSync() {
  for (const child of liveChildren) {
    try {
      child.kill('SIGKILL');
    } catch {}
  }
  for (const dir of liveDirs) rmSync(dir, { recursive: true, force: true });
}
process.on('exit', cleanupSync);
for (const signal of ['SIGINT', 'SIGTERM']) process.on(signal, () => process.exit(130));

function makeTempDir(label) {
  const dir = mkdtempSync(join(tmpdir(), `owsc-bench-${label}-`));
  liveDirs.add(dir);
  return dir;
}

/** Environment that keeps every file the service writes inside `dir`. */
function isolatedEnv(dir, extra = {}) {
  return {
    ...process.env,
    OW_SC_DATA_DIR: join(dir, 'data'),
    OW_SC_ARTIFACTS_DIR: join(dir, 'artifacts'),
    OW_SC_REPORTS_DIR: join(dir, 'reports'),
    OW_SC_PROVENANCE_LEDGER: join(dir, 'provenance/ledger.jsonl'),
    OW_SC_LINEAGE_LEDGER: join(dir, 'lineage/samples.jsonl'),
    OW_SC_TMP_DIR: dir,
    LOG_LEVEL: 'warn',
    ...extra,
  };
}

const SPECIES = ['SO4', 'As', 'Ni'];
const BASE = { SO4: 200, As: 0.008, Ni: 0.08 };

/** Writes a tidy numeric-time CSV of `rows` rows (3 species) or until `maxBytes`; returns { rows, bytes }. */
async function writeTidyCsv(path, { rows = Number.POSITIVE_INFINITY, maxBytes = Number.POSITIVE_INFINITY }) {
  const out = createWriteStream(path);
  const header = 'time,species,concentration\n';
  let bytes = header.length;
  let written = 0;
  let chunk = header;
  let seed = 12345;
  const random = () => {
    seed = (seed * 1103515245 + 12345) & 0x7fffffff;
    return seed / 0x7fffffff;
  };
  while (written < rows) {
    const species = SPECIES[written % 3];
    const value = (BASE[species] * (0.6 + random() * 0.5)).toPrecision(8);
    const line = `${Math.floor(written / 3)},${species},${value}\n`;
    if (bytes + line.length > maxBytes) break;
    chunk += line;
    bytes += line.length;
    written++;
    if (chunk.length > 1 << 20) {
      if (!out.write(chunk)) await once(out, 'drain');
      chunk = '';
    }
  }
  out.end(chunk);
  await once(out, 'finish');
  return { rows: written, bytes };
}

/** Runs the bin under /usr/bin/time; returns { code, wallS, peakRssMb, stderr }. */
function timedCli(args, env) {
  const started = process.hrtime.bigint();
  const result = spawnSync('/usr/bin/time', ['-f', 'OWSC_BENCH_RSS_KB=%M', process.execPath, BIN, ...args], {
    env,
    encoding: 'utf8',
    maxBuffer: 64 * MiB,
  });
  const wallS = Number(process.hrtime.bigint() - started) / 1e9;
  const rss = /OWSC_BENCH_RSS_KB=(\d+)/.exec(result.stderr ?? '');
  return {
    code: result.status,
    wallS,
    peakRssMb: rss ? Number(rss[1]) / 1024 : null,
    stderr: (result.stderr ?? '').replace(/OWSC_BENCH_RSS_KB=\d+\s*/, '').slice(0, 500),
  };
}

function median(values) {
  return percentile(values, 50);
}

function repeatCli(times, args, env) {
  const runs = [];
  for (let i = 0; i < times; i++) runs.push(timedCli(args, env));
  const failed = runs.find((run) => run.code !== 0);
  return {
    runs: times,
    exit_codes: [...new Set(runs.map((run) => run.code))],
    wall_s_median: round(median(runs.map((run) => run.wallS)), 3),
    wall_s_min: round(Math.min(...runs.map((run) => run.wallS)), 3),
    peak_rss_mb_max: round(Math.max(...runs.map((run) => run.peakRssMb ?? 0)), 1),
    ...(failed ? { error: failed.stderr } : {}),
  };
}

// ---------------------------------------------------------------------------------------------------------------
// Dashboard processes

async function startDashboard(dir, extraEnv = {}) {
  const port = await freePort();
  const started = process.hrtime.bigint();
  const child = spawn(process.execPath, [BIN, 'dashboard', '--host', '127.0.0.1', '--port', String(port)], {
    env: isolatedEnv(dir, { OW_SC_RL_PER_SEC: '0', ...extraEnv }),
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  liveChildren.add(child);
  let stderr = '';
  child.stderr.on('data', (data) => {
    stderr = (stderr + data).slice(-4000);
  });
  const base = `http://127.0.0.1:${port}`;
  const deadline = Date.now() + 20_000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`dashboard exited ${child.exitCode}: ${stderr}`);
    try {
      const response = await fetch(`${base}/readyz`);
      if (response.status === 200) break;
    } catch {}
    if (Date.now() > deadline) throw new Error(`dashboard not ready: ${stderr}`);
    await sleep(10);
  }
  const readyMs = Number(process.hrtime.bigint() - started) / 1e6;
  return {
    child,
    port,
    base,
    readyMs,
    async stop() {
      if (child.exitCode === null) {
        child.kill('SIGTERM');
        await Promise.race([once(child, 'exit'), sleep(15_000)]);
        if (child.exitCode === null) child.kill('SIGKILL');
      }
      liveChildren.delete(child);
    },
  };
}

function postFile(url, path, contentType) {
  return new Promise((resolve, reject) => {
    const size = statSync(path).size;
    const started = process.hrtime.bigint();
    const request = http.request(
      url,
      { method: 'POST', headers: { 'content-type': contentType, 'content-length': size } },
      (response) => {
        response.resume();
        response.on('end', () =>
          resolve({ status: response.statusCode, ms: Number(process.hrtime.bigint() - started) / 1e6 }),
        );
      },
    );
    request.on('error', reject);
    import('node:fs').then(({ createReadStream }) => createReadStream(path).pipe(request));
  });
}

function runAutocannon(options) {
  return new Promise((resolve, reject) => {
    autocannon(options, (error, result) => (error ? reject(error) : resolve(result)));
  });
}

// ---------------------------------------------------------------------------------------------------------------
// Targets

const targets = {};

targets.O1 = async () => {
  const dir = makeTempDir('o1');
  const csv = join(dir, 'readings.csv');
  const { rows, bytes } = await writeTidyCsv(csv, { maxBytes: 10 * MiB });
  const env = isolatedEnv(dir);
  timedCli(['-q', 'monitor-batch', '-i', csv, '-o', join(dir, 'out.json')], env); // warm the compile cache
  const result = repeatCli(n(5, 2), ['-q', 'monitor-batch', '-i', csv, '-o', join(dir, 'out.json')], env);
  return { target: 'wall <= 0.5 s incl. start-up, peak RSS <= 150 MB', rows, bytes, ...result };
};

targets.O2 = async () => {
  const dir = makeTempDir('o2');
  const csv = join(dir, 'readings.csv');
  const { rows, bytes } = await writeTidyCsv(csv, { rows: n(1_000_000, 100_000) });
  const env = isolatedEnv(dir, { OW_SC_MAX_CSV_BYTES: '30000000' });
  timedCli(['-q', 'monitor-batch', '-i', csv, '-o', join(dir, 'out.json')], env);
  const result = repeatCli(n(5, 2), ['-q', 'monitor-batch', '-i', csv, '-o', join(dir, 'out.json')], env);
  return { target: 'wall <= 0.8 s incl. start-up, peak RSS <= 200 MB', rows, bytes, ...result };
};

targets.O3 = async () => {
  const dir = makeTempDir('o3');
  const csv = join(dir, 'readings.csv');
  const { rows, bytes } = await writeTidyCsv(csv, { maxBytes: 10 * MiB });
  const server = await startDashboard(dir);
  try {
    const uploads = [];
    const health = runAutocannon({
      url: `${server.base}/health`,
      connections: 20,
      duration: n(12, 4),
    });
    await sleep(300);
    const count = n(8, 2);
    for (let i = 0; i < count; i++)
      uploads.push(await postFile(`${server.base}/api/batches`, csv, 'text/csv'));
    const healthResult = await health;
    return {
      target: 'upload p50 <= 0.6 s; concurrent /health p99 <= 50 ms (20 connections)',
      rows,
      bytes,
      upload_statuses: [...new Set(uploads.map((upload) => upload.status))],
      upload_ms: latencySummary(uploads.map((upload) => upload.ms)),
      health_requests: healthResult.requests.total,
      health_latency_ms: {
        p50: healthResult.latency.p50,
        p99: healthResult.latency.p99,
        max: healthResult.latency.max,
      },
      health_non2xx: healthResult.non2xx,
    };
  } finally {
    await server.stop();
  }
};

targets.O4 = async () => {
  const dir = makeTempDir('o4');
  const server = await startDashboard(dir);
  try {
    await runAutocannon({ url: `${server.base}/api/status`, connections: 50, duration: 2 });
    const result = await runAutocannon({
      url: `${server.base}/api/status`,
      connections: 50,
      duration: n(20, 3),
    });
    return {
      target: '>= 6000 req/s, p99 <= 15 ms (50 connections, 20 s, rate limiting off)',
      requests_per_s: round(result.requests.average, 0),
      latency_ms: { p50: result.latency.p50, p99: result.latency.p99, max: result.latency.max },
      non2xx: result.non2xx,
      errors: result.errors,
    };
  } finally {
    await server.stop();
  }
};

const SENT_FIELD = /"sent":([0-9.e+]+)/;

function openSocket(url) {
  return new Promise((resolve, reject) => {
    const socket = new WebSocket(url);
    socket.once('open', () => resolve(socket));
    socket.once('error', reject);
  });
}

/**
 * Publishers on `publishBase`, subscribers spread over `subscribeBases`; each publisher sends `rate` msg/s for
 * `seconds`. Latency = receive time - send time (same clock, this process).
 */
async function fanout({ publishBase, subscribeBases, subscribers, publishers, rate, seconds }) {
  const latencies = [];
  let received = 0;
  const sockets = [];
  for (let i = 0; i < subscribers; i++) {
    const base = subscribeBases[i % subscribeBases.length].replace('http', 'ws');
    const socket = await openSocket(`${base}/ws/effluent`);
    socket.on('message', (data) => {
      // Only the send time is needed: a full JSON.parse of every delivery would load this process more than
      // the server it measures.
      const match = SENT_FIELD.exec(data.toString());
      if (match === null) return;
      received++;
      latencies.push(performance.timeOrigin + performance.now() - Number(match[1]));
    });
    sockets.push(socket);
  }
  const pubs = [];
  for (let i = 0; i < publishers; i++)
    pubs.push(await openSocket(`${publishBase.replace('http', 'ws')}/ws/effluent`));
  await sleep(200);
  let sent = 0;
  const interval = 1000 / rate;
  const started = performance.now();
  await Promise.all(
    pubs.map(async (socket, index) => {
      await sleep((interval * index) / publishers);
      for (let k = 0; k < rate * seconds; k++) {
        const due = started + k * interval + (interval * index) / publishers;
        const wait = due - performance.now();
        if (wait > 0) await sleep(wait);
        socket.send(
          JSON.stringify({
            species: 'BENCH',
            concentration: 1,
            pub: index,
            seq: k,
            sent: performance.timeOrigin + performance.now(),
          }),
        );
        sent++;
      }
    }),
  );
  await sleep(1000);
  for (const socket of [...sockets, ...pubs]) socket.terminate();
  const expected = sent * subscribers;
  return {
    subscribers,
    publishers,
    rate_per_publisher: rate,
    seconds,
    sent,
    deliveries: received,
    expected_deliveries: expected,
    dropped: expected - received,
    latency_ms: latencySummary(latencies),
  };
}

targets.O5 = async () => {
  const dir = makeTempDir('o5');
  const settings = { OW_SC_WS_MSGS_PER_SEC: '100', OW_SC_WS_MAX_CONNECTIONS: '5000' };
  const single = await startDashboard(dir, settings);
  let one;
  try {
    one = await fanout({
      publishBase: single.base,
      subscribeBases: [single.base],
      subscribers: n(500, 50),
      publishers: 10,
      rate: 20,
      seconds: n(10, 2),
    });
  } finally {
    await single.stop();
  }
  let two = { skipped: `no Redis at ${REDIS_URL}` };
  const redis = await import('ioredis')
    .then(async ({ Redis }) => {
      const client = new Redis(REDIS_URL, {
        lazyConnect: true,
        maxRetriesPerRequest: 0,
        connectTimeout: 1000,
      });
      await client.connect();
      await client.ping();
      client.disconnect();
      return true;
    })
    .catch(() => false);
  if (redis) {
    const channel = `owsc-bench:${process.pid}:${Date.now()}`;
    const redisEnv = { ...settings, OW_SC_REDIS_URL: REDIS_URL, OW_SC_REDIS_CHANNEL: channel };
    const a = await startDashboard(makeTempDir('o5a'), redisEnv);
    const b = await startDashboard(makeTempDir('o5b'), redisEnv);
    try {
      two = await fanout({
        publishBase: a.base,
        subscribeBases: [b.base],
        subscribers: n(500, 50),
        publishers: 10,
        rate: 20,
        seconds: n(10, 2),
      });
    } finally {
      await Promise.all([a.stop(), b.stop()]);
    }
  }
  return {
    target: 'one instance p99 <= 40 ms, no drops; two instances via Redis p99 <= 80 ms',
    one_instance: one,
    two_instances_redis: two,
  };
};

targets.WS100 = async () => {
  const dir = makeTempDir('ws100');
  const server = await startDashboard(dir, { OW_SC_WS_MSGS_PER_SEC: '100' });
  try {
    return {
      target: 'fan-out throughput and p99 latency with 100 clients (issue 4)',
      ...(await fanout({
        publishBase: server.base,
        subscribeBases: [server.base],
        subscribers: 100,
        publishers: 10,
        rate: 50,
        seconds: n(10, 2),
      })),
    };
  } finally {
    await server.stop();
  }
};

targets.O6 = async () => {
  const dir = makeTempDir('o6');
  const csv = join(dir, 'decay.csv');
  const count = n(100_000, 20_000);
  let text = 'time,species,concentration\n';
  for (let t = 0; t < count; t++)
    text += `${t / 1000},Ni,${(50 * Math.exp(-0.3 * (t / 1000))).toPrecision(8)}\n`;
  writeFileSync(csv, text);
  const env = isolatedEnv(dir);
  const args = ['-q', 'process-chemistry', '-i', csv, '-s', 'Ni', '-o', join(dir, 'fit.json')];
  timedCli(args, env);
  const whole = repeatCli(n(5, 2), args, env);
  // The fits alone, in this process, on the compiled domain modules.
  const { fitDecay, fitSorption } = await import(
    pathToFileURL(join(root, 'services/owsc/dist/domain/chemistry.js')).href
  );
  const times = Array.from({ length: count }, (_, i) => i / 1000);
  const decayValues = times.map((t) => 50 * Math.exp(-0.3 * t));
  const sorptionValues = times.map((t) => 12 + 38 * Math.exp(-0.3 * t));
  const timeIt = (fn) => {
    fn();
    const samples = [];
    for (let i = 0; i < 5; i++) {
      const started = performance.now();
      fn();
      samples.push(performance.now() - started);
    }
    return round(median(samples), 1);
  };
  return {
    target: 'decay fit <= 50 ms after parse, whole command <= 0.4 s; sorption fit <= 300 ms',
    readings: count,
    whole_command: whole,
    decay_fit_ms: timeIt(() => fitDecay('Ni', times, decayValues, 'input')),
    sorption_fit_ms: timeIt(() => fitSorption('Ni', times, sorptionValues, 'input', 2, 0.5)),
  };
};

/** RSS of a bare process that only opens PGlite (bench/owsc/pglite-floor.mjs): what the store alone costs. */
function pgliteFloor() {
  const dir = join(makeTempDir('o7-floor'), 'pglite');
  const script = fileURLToPath(new URL('./pglite-floor.mjs', import.meta.url));
  const run = () => {
    const child = spawnSync(process.execPath, [script, dir], {
      encoding: 'utf8',
      env: { ...process.env, MALLOC_TRIM_THRESHOLD_: '1048576' },
    });
    if (child.status !== 0) throw new Error(`pglite-floor failed: ${child.stderr}`);
    return JSON.parse(child.stdout.trim().split('\n').at(-1));
  };
  run(); // the first run creates the data directory (initdb), as the service's first start does
  return { ...run(), node_baseline_mb: nodeBaselineMb() };
}

function nodeBaselineMb() {
  const child = spawnSync(
    process.execPath,
    [
      '-e',
      "setTimeout(() => console.log(/VmRSS:\\s+(\\d+)/.exec(require('fs').readFileSync('/proc/self/status', 'utf8'))[1]), 500)",
    ],
    { encoding: 'utf8' },
  );
  return round(Number(child.stdout.trim()) / 1024, 1);
}

targets.O7 = async () => {
  const measure = async (label, extraEnv) => {
    const runs = [];
    for (let i = 0; i < n(5, 2); i++) {
      const dir = makeTempDir(`o7-${label}`);
      const first = await startDashboard(dir, extraEnv); // a fresh data directory: the database is created
      const firstReadyMs = first.readyMs;
      await first.stop();
      const server = await startDashboard(dir, extraEnv); // the usual start: the database exists
      await sleep(1500);
      runs.push({
        firstReadyMs,
        readyMs: server.readyMs,
        idleRssMb: (procStatusKb(server.child.pid, 'VmRSS') ?? 0) / 1024,
      });
      await server.stop();
    }
    return {
      runs: runs.length,
      first_start_ready_ms: latencySummary(runs.map((run) => run.firstReadyMs)),
      ready_ms: latencySummary(runs.map((run) => run.readyMs)),
      idle_rss_mb_max: round(Math.max(...runs.map((run) => run.idleRssMb)), 1),
    };
  };
  const result = {
    target: 'start-up to /readyz 200 <= 1 s (embedded store); idle RSS <= 120 MB',
    embedded: await measure('embedded', {}),
    embedded_store_floor: pgliteFloor(),
  };
  // The same with PostgreSQL (DATABASE_URL), in a database of its own that is dropped afterwards.
  result.postgres = await withScratchDatabase('owsc_bench', (url) =>
    measure('postgres', { DATABASE_URL: url }),
  );
  return result;
};

targets.O8 = async () => {
  const dir = makeTempDir('o8');
  const csv = join(dir, 'year.csv');
  const species = ['SO4', 'As', 'Ni', 'Cu', 'Zn', 'Pb', 'Cd', 'Cr', 'Hg', 'Se'];
  const start = Date.UTC(2024, 0, 1);
  const steps = n(35_040, 3_504);
  const out = createWriteStream(csv);
  out.write('time,species,concentration\n');
  for (let step = 0; step < steps; step++) {
    const time = new Date(start + step * 15 * 60_000).toISOString();
    let chunk = '';
    for (const sp of species)
      chunk += `${time},${sp},${(1 + ((step * 7 + sp.length) % 13) / 10).toFixed(3)}\n`;
    if (!out.write(chunk)) await once(out, 'drain');
  }
  out.end();
  await once(out, 'finish');
  const permit = join(dir, 'permit.json');
  writeFileSync(
    permit,
    JSON.stringify({
      limits_mgL: Object.fromEntries(species.map((sp) => [sp, 2])),
      daily_max_limits_mgL: Object.fromEntries(species.map((sp) => [sp, 1.8])),
      monthly_average_limits_mgL: Object.fromEntries(species.map((sp) => [sp, 1.5])),
      timezone: 'Europe/Berlin',
    }),
  );
  const env = isolatedEnv(dir, { OW_SC_MAX_CSV_BYTES: '30000000' });
  const args = ['-q', 'stats', '-i', csv, '-p', permit, '-o', join(dir, 'stats.json')];
  timedCli(args, env);
  return {
    target: 'statistics on one year of 15-minute readings for 10 species (350,400 readings) <= 1.5 s',
    readings: steps * species.length,
    ...repeatCli(n(3, 1), args, env),
  };
};

// ---------------------------------------------------------------------------------------------------------------

await runTargets(targets, { quick: QUICK });
