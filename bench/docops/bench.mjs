#!/usr/bin/env node
// DocOps benchmarks for spec §6 (P1-P7). Each target starts its own `docops serve` with the settings the
// target names, drives it from this process (or with `docops load-test`), and prints one JSON line.
// Usage: node bench/docops/bench.mjs [P1 P1f P2 P2f P3 P4 P5 P6 P7]   (default: all)
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { zipSync } from 'fflate';
import { freePort, percentile, procStatusKb, round, sleep } from '../lib.mjs';

const root = fileURLToPath(new URL('../..', import.meta.url));
const BIN = join(root, 'services/docops/bin/docops.js');
const { buildDocx, paragraphXml, tableXml } = await import(
  join(root, 'services/docops/dist/domain/docx/build.js')
);

function childPids(pid) {
  try {
    return readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8')
      .trim()
      .split(/\s+/)
      .filter(Boolean)
      .map(Number);
  } catch {
    return [];
  }
}

async function startServer(env) {
  const port = await freePort();
  const tmpDir = mkdtempSync(join(tmpdir(), 'docops-bench-'));
  const started = performance.now();
  const child = spawn(process.execPath, [BIN, 'serve', '--port', String(port)], {
    env: {
      PATH: process.env.PATH,
      HOME: process.env.HOME,
      DOCOPS_TMP_DIR: tmpDir,
      DOCOPS_LOG_LEVEL: 'warn',
      ...env,
    },
    stdio: ['ignore', 'ignore', 'inherit'],
  });
  const baseUrl = `http://127.0.0.1:${port}`;
  for (;;) {
    try {
      if ((await fetch(`${baseUrl}/readyz`)).status === 200) break;
    } catch {}
    await sleep(5);
  }
  const readyMs = performance.now() - started;
  return {
    baseUrl,
    pid: child.pid,
    tmpDir,
    readyMs,
    async stop() {
      const exited = new Promise((resolve) => child.once('exit', resolve));
      child.kill('SIGTERM');
      await exited;
      rmSync(tmpDir, { recursive: true, force: true });
    },
  };
}

const TITLE_TEMPLATE = buildDocx({
  paragraphs: [
    'Meeting notice: 【MEETING_TITLE】',
    'Date: 【MEETING_DATE】 Time: 【MEETING_TIME】',
    'Location: 【MEETING_LOCATION】',
    'Organizer: 【ORGANIZER】',
    'Attendees: 【ATTENDEES】',
  ],
});
const TITLE_TASK = JSON.stringify({
  task_type: 'meeting_notice',
  payload: {
    meeting_title: 'Quarterly review',
    meeting_date: '2026-12-01',
    meeting_time: '10:00',
    meeting_location: 'Room 4',
    organizer: 'Operations',
    attendees: ['A. Chen', 'B. Osei', 'C. Ruiz'],
  },
});

async function postRun(baseUrl, template, task, fields = {}) {
  const form = new FormData();
  form.append('template', new Blob([template]), 'template.docx');
  form.append('task', new Blob([task]), 'task.json');
  for (const [name, value] of Object.entries(fields)) form.append(name, value);
  const started = performance.now();
  const response = await fetch(`${baseUrl}/v1/run`, { method: 'POST', body: form });
  await response.arrayBuffer();
  return {
    status: response.status,
    ms: performance.now() - started,
    exitCode: response.headers.get('x-docops-exit-code'),
  };
}

/** One client; `paceMs` between request starts (0 = back to back). */
async function loneClient(baseUrl, count, paceMs) {
  const latencies = [];
  const statuses = {};
  for (let index = 0; index < count; index++) {
    const started = performance.now();
    const result = await postRun(baseUrl, TITLE_TEMPLATE, TITLE_TASK);
    latencies.push(result.ms);
    statuses[result.status] = (statuses[result.status] ?? 0) + 1;
    const wait = paceMs - (performance.now() - started);
    if (wait > 0) await sleep(wait);
  }
  return {
    p50_ms: round(percentile(latencies, 50)),
    p95_ms: round(percentile(latencies, 95)),
    status_counts: statuses,
  };
}

function runLoadTest(baseUrl, concurrency, requests) {
  return new Promise((resolve, reject) => {
    const started = performance.now();
    const child = spawn(
      process.execPath,
      [
        BIN,
        'load-test',
        '--base-url',
        baseUrl,
        '--concurrency',
        String(concurrency),
        '--requests',
        String(requests),
      ],
      {
        stdio: ['ignore', 'pipe', 'inherit'],
      },
    );
    let out = '';
    child.stdout.on('data', (chunk) => {
      out += chunk;
    });
    child.on('exit', (code) => {
      const seconds = (performance.now() - started) / 1000;
      try {
        const summary = JSON.parse(out.slice(out.indexOf('{')));
        resolve({ code, seconds, summary });
      } catch (error) {
        reject(error);
      }
    });
  });
}

const targets = {
  async P1() {
    const server = await startServer({ DOCOPS_MP_START: 'spawn' });
    await loneClient(server.baseUrl, 10, 100);
    const result = await loneClient(server.baseUrl, 200, 100);
    await server.stop();
    return { target: 'p50 <= 20 ms, p95 <= 60 ms', mode: 'spawn', requests: 200, paced_per_s: 10, ...result };
  },
  async P1f() {
    const server = await startServer({ DOCOPS_MP_START: 'forkserver' });
    await loneClient(server.baseUrl, 20, 0);
    const result = await loneClient(server.baseUrl, 200, 0);
    await server.stop();
    return { target: 'p50 <= 10 ms', mode: 'forkserver', requests: 200, ...result };
  },
  async P2() {
    const server = await startServer({ DOCOPS_MP_START: 'spawn', DOCOPS_MAX_CONCURRENCY: '4' });
    await runLoadTest(server.baseUrl, 4, 20);
    const { seconds, summary } = await runLoadTest(server.baseUrl, 4, 400);
    await server.stop();
    const ok = summary.status_counts['200'] ?? 0;
    return {
      target: '>= 20 renders/s, only 200',
      mode: 'spawn',
      renders_per_s: round(ok / seconds),
      status_counts: summary.status_counts,
      latency_ms: summary.latency_ms,
    };
  },
  async P2f() {
    const server = await startServer({ DOCOPS_MP_START: 'forkserver', DOCOPS_MAX_CONCURRENCY: '8' });
    await runLoadTest(server.baseUrl, 8, 50);
    const { seconds, summary } = await runLoadTest(server.baseUrl, 8, 2000);
    await server.stop();
    const ok = summary.status_counts['200'] ?? 0;
    return {
      target: '>= 150 renders/s, only 200',
      mode: 'forkserver',
      renders_per_s: round(ok / seconds),
      status_counts: summary.status_counts,
      latency_ms: summary.latency_ms,
    };
  },
  async P3() {
    // 300 pages: 10,000 paragraphs, 2,000 placeholders, 60 tables; strict preset.
    const parts = [];
    for (let index = 0; index < 10_000; index++) {
      const text =
        index % 5 === 0
          ? `Clause ${index}: 【MEETING_TITLE】 applies.`
          : `Clause ${index}: body text of the agreement, line ${index}.`;
      parts.push(
        paragraphXml(text, { pPr: '<w:spacing w:line="360" w:lineRule="exact"/><w:ind w:firstLine="420"/>' }),
      );
      if (index % 166 === 0 && index / 166 < 60)
        parts.push(
          tableXml([
            ['a', 'b'],
            ['c', 'd'],
          ]),
        );
    }
    const template = buildDocx({ body: parts.join('') });
    const server = await startServer({
      DOCOPS_MP_START: 'forkserver',
      DOCOPS_MAX_CONCURRENCY: '1',
      DOCOPS_WORKER_MAX_JOBS: '1000',
    });
    await postRun(server.baseUrl, TITLE_TEMPLATE, TITLE_TASK);
    const renderPid = childPids(server.pid)[0];
    const latencies = [];
    let exitCode = null;
    for (let index = 0; index < 5; index++) {
      const result = await postRun(server.baseUrl, template, TITLE_TASK, { preset: 'strict' });
      latencies.push(result.ms);
      exitCode = result.exitCode;
    }
    const peakKb = renderPid ? procStatusKb(renderPid, 'VmHWM') : null;
    await server.stop();
    return {
      target: '<= 3 s; render-process peak RSS <= 300 MB',
      template_bytes: template.length,
      exit_code: exitCode,
      latency_ms: { p50: round(percentile(latencies, 50)), max: round(Math.max(...latencies)) },
      render_process_peak_rss_mb: peakKb === null ? null : round(peakKb / 1024),
    };
  },
  async P4() {
    // 24 MB of incompressible "image" parts inside the template.
    const image = new Uint8Array(24 * 1024 * 1024 - 64 * 1024);
    for (let offset = 0; offset < image.length; offset += 65536)
      crypto.getRandomValues(image.subarray(offset, Math.min(image.length, offset + 65536)));
    const template = buildDocx({
      paragraphs: ['Title: 【MEETING_TITLE】'],
      extraParts: { 'word/media/image1.png': image },
    });
    const server = await startServer({ DOCOPS_MP_START: 'spawn' });
    await postRun(server.baseUrl, TITLE_TEMPLATE, TITLE_TASK);
    const before = procStatusKb(server.pid, 'VmRSS');
    let peak = before;
    const poller = setInterval(() => {
      const now = procStatusKb(server.pid, 'VmRSS');
      if (now !== null && now > peak) peak = now;
    }, 5);
    // The upload is over when the response head arrives: measure up to then, then read the zip.
    const form = new FormData();
    form.append('template', new Blob([template]), 'template.docx');
    form.append('task', new Blob([TITLE_TASK]), 'task.json');
    const started = performance.now();
    const response = await fetch(`${server.baseUrl}/v1/run`, { method: 'POST', body: form });
    clearInterval(poller);
    const uploadPeak = peak;
    await response.arrayBuffer();
    const totalMs = performance.now() - started;
    await server.stop();
    return {
      target: 'HTTP-process RSS increase during upload <= 16 MB',
      upload_mb: round(template.length / 1024 / 1024),
      status: response.status,
      latency_ms: round(totalMs),
      http_process_rss_increase_mb: round((uploadPeak - before) / 1024),
    };
  },
  async P5() {
    // 4 GB of zeros declared honestly, deflated to ~4 MB (zip64 not needed: many 256 MB entries).
    const chunk = new Uint8Array(256 * 1024 * 1024);
    const base = buildDocx({ paragraphs: ['x'] });
    const { unzipSync } = await import('fflate');
    const files = unzipSync(base);
    for (let index = 0; index < 16; index++) files[`word/media/bomb${index}.bin`] = [chunk, { level: 9 }];
    const bomb = zipSync(files);
    const server = await startServer({ DOCOPS_MP_START: 'forkserver', DOCOPS_MAX_CONCURRENCY: '1' });
    await postRun(server.baseUrl, TITLE_TEMPLATE, TITLE_TASK);
    // The render process is recycled after the failed job: sample its peak while it lives.
    const renderPid = childPids(server.pid)[0];
    let renderPeak = null;
    const sampler = setInterval(() => {
      const now = renderPid ? procStatusKb(renderPid, 'VmHWM') : null;
      if (now !== null) renderPeak = Math.max(renderPeak ?? 0, now);
    }, 2);
    const result = await postRun(server.baseUrl, bomb, TITLE_TASK);
    clearInterval(sampler);
    const serverPeak = procStatusKb(server.pid, 'VmHWM');
    await server.stop();
    return {
      target: '413 within 1 s, no process over 200 MB',
      upload_mb: round(bomb.length / 1024 / 1024),
      status: result.status,
      time_to_413_ms: round(result.ms),
      render_process_peak_rss_mb: renderPeak === null ? null : round(renderPeak / 1024),
      http_process_peak_rss_mb: serverPeak === null ? null : round(serverPeak / 1024),
    };
  },
  async P6() {
    const times = [];
    for (let index = 0; index < 5; index++) {
      const server = await startServer({ DOCOPS_MP_START: 'spawn' });
      times.push(server.readyMs);
      await server.stop();
    }
    return {
      target: '<= 2 s to /readyz 200',
      ready_ms: { p50: round(percentile(times, 50)), max: round(Math.max(...times)) },
    };
  },
  async P7() {
    // Requests queue for a slot instead of getting 429: every one of the 1,000 renders in its own process.
    const server = await startServer({
      DOCOPS_MP_START: 'spawn',
      DOCOPS_MAX_CONCURRENCY: '4',
      DOCOPS_QUEUE_TIMEOUT_SECONDS: '120',
    });
    const summaryPath = join(server.tmpDir, '..', `docops-p7-${process.pid}.json`);
    const result = await new Promise((resolve) => {
      const child = spawn(
        process.execPath,
        [
          BIN,
          'load-test',
          '--base-url',
          server.baseUrl,
          '--concurrency',
          '8',
          '--requests',
          '1000',
          '--check-subprocess-leaks',
          '--tmp-root',
          server.tmpDir,
          '--write-summary',
          summaryPath,
          '--fail-on-leaks',
        ],
        { stdio: ['ignore', 'ignore', 'inherit'] },
      );
      child.on('exit', (code) => resolve(code));
    });
    const summary = JSON.parse(readFileSync(summaryPath, 'utf8'));
    rmSync(summaryPath, { force: true });
    await server.stop();
    return {
      target: '0 leaked pids, 0 tmp delta',
      exit_code: result,
      status_counts: summary.status_counts,
      pids_seen: summary.subprocess_pids_seen.length,
      leaked_pids: summary.leaked_pids.length,
      tmp_delta_count: summary.tmp_delta_count,
      tmp_delta_bytes: summary.tmp_delta_bytes,
    };
  },
};

const chosen = process.argv.slice(2).length > 0 ? process.argv.slice(2) : Object.keys(targets);
const results = {};
for (const name of chosen) {
  if (!targets[name]) throw new Error(`unknown target ${name}; known: ${Object.keys(targets).join(' ')}`);
  results[name] = await targets[name]();
  console.log(JSON.stringify({ id: name, ...results[name] }));
}
if (process.env.BENCH_OUT) writeFileSync(process.env.BENCH_OUT, `${JSON.stringify(results, null, 2)}\n`);
