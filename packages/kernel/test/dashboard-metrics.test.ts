// The Grafana dashboards of DocOps, OWSC, RAG and Raven (monitoring/grafana/dashboards/<service>.json) against
// the services themselves: each compiled bin is started on a free port with its embedded defaults in a temporary
// folder, a few requests give its labelled series a sample, and /metrics must then export every metric name the
// dashboard uses (as a `# HELP`/`# TYPE` line or a sample), with every label its selectors name. A label is
// checked only where the series has a sample: prom-client declares no label names in the exposition, so for a
// labelled series nobody has touched yet only its name can be checked, and the test says which ones those are.
// The File Allocator's dashboard and the alert rules are checked the same way in services/allocator/test.
// It checks services and repository files, not kernel code: it lives here because it spans four services.
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { metricFamilyName, promqlLabelNames, promqlMetricNames } from '../src/testing-deploy.js';

const REPO = resolve(import.meta.dirname, '../../..');
const DASHBOARDS = join(REPO, 'monitoring/grafana/dashboards');
/** Generous: the services start in about a second, but the machine may be busy with other test files. */
const START_TIMEOUT_MS = 30_000;
const STOP_TIMEOUT_MS = 20_000;
const REQUEST_TIMEOUT_MS = 15_000;
/** Labels Prometheus attaches to every scraped series itself (the scrape target's labels, prometheus.yml). */
const TARGET_LABELS = new Set(['job', 'instance', 'service']);

// --- the exposition ---------------------------------------------------------------------------------------

interface Exposition {
  /** metric families named by a `# HELP` or `# TYPE` line, with their type when one is given */
  declared: Map<string, string | undefined>;
  /** series names with at least one sample, and the label names seen on their samples */
  sampled: Map<string, Set<string>>;
}

/** Reads a Prometheus text exposition (format 0.0.4). */
function parseExposition(text: string): Exposition {
  const declared = new Map<string, string | undefined>();
  const sampled = new Map<string, Set<string>>();
  for (const line of text.split('\n')) {
    const comment = /^# (HELP|TYPE) ([a-zA-Z_:][\w:]*)(?: (\S+))?/.exec(line);
    if (comment !== null) {
      const name = comment[2] as string;
      if (comment[1] === 'TYPE') declared.set(name, comment[3]);
      else if (!declared.has(name)) declared.set(name, undefined);
      continue;
    }
    const sample = /^([a-zA-Z_:][\w:]*)(?:\{((?:[^"}]|"(?:[^"\\]|\\.)*")*)\})?\s+\S+/.exec(line);
    if (sample === null) continue;
    const labels = sampled.get(sample[1] as string) ?? new Set<string>();
    for (const label of (sample[2] ?? '').matchAll(/([a-zA-Z_]\w*)\s*=\s*"/g)) labels.add(label[1] as string);
    sampled.set(sample[1] as string, labels);
  }
  return { declared, sampled };
}

/** Whether `series` is exported: declared or sampled, itself or as the _bucket/_sum/_count of a histogram. */
function isExported(series: string, exposition: Exposition): boolean {
  if (exposition.declared.has(series) || exposition.sampled.has(series)) return true;
  const family = metricFamilyName(series);
  if (family === series) return false;
  const type = exposition.declared.get(family);
  return type === 'histogram' || type === 'summary';
}

// --- the dashboards ---------------------------------------------------------------------------------------

interface Dashboard {
  panels: { targets?: { expr: string }[] }[];
}

function dashboardExpressions(file: string): string[] {
  const dashboard = JSON.parse(readFileSync(join(DASHBOARDS, file), 'utf8')) as Dashboard;
  return dashboard.panels.flatMap((panel) => (panel.targets ?? []).map((target) => target.expr));
}

/**
 * Each series an expression selects, with the labels its selector names: the matchers in its own `{…}` and the
 * labels of the expression's by/without/on/ignoring lists (every dashboard expression aggregates one family).
 */
function selectorLabels(expr: string): Map<string, Set<string>> {
  const withoutStrings = expr.replace(/"(?:[^"\\]|\\.)*"/g, '""');
  const grouping = promqlLabelNames(withoutStrings.replace(/\{[^}]*\}/g, ' '));
  const selectors = new Map<string, Set<string>>();
  for (const series of promqlMetricNames(expr)) {
    const labels = new Set(grouping);
    const escaped = series.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
    for (const block of withoutStrings.matchAll(new RegExp(`(?<![\\w:])${escaped}\\s*(\\{[^}]*\\})`, 'g'))) {
      for (const label of promqlLabelNames(block[1] as string)) labels.add(label);
    }
    selectors.set(series, labels);
  }
  return selectors;
}

/** Every series of a dashboard (`up` is Prometheus's own), with the union of the labels its selectors name. */
function dashboardSelectors(file: string): Map<string, Set<string>> {
  const all = new Map<string, Set<string>>();
  for (const expr of dashboardExpressions(file)) {
    for (const [series, labels] of selectorLabels(expr)) {
      if (series === 'up') continue;
      const known = all.get(series) ?? new Set<string>();
      // Prometheus renames a series' own label that clashes with a target label to `exported_<name>`.
      for (const label of labels) {
        const own = label.startsWith('exported_') ? label.slice('exported_'.length) : label;
        if (own !== label || !TARGET_LABELS.has(label)) known.add(own);
      }
      all.set(series, known);
    }
  }
  return all;
}

// --- the services -----------------------------------------------------------------------------------------

interface ServiceSpec {
  dashboard: string;
  bin: string;
  args: (port: number) => string[];
  /** the service's own variables that keep it local (data in `dir`, development mode, /metrics open) */
  env: (dir: string) => Record<string, string>;
  /** answers 200 once the service can take the requests of `exercise` */
  readyPath: string;
  /** requests that give the dashboard's labelled series a sample */
  exercise: (base: string) => Promise<void>;
}

interface RunningService {
  base: string;
  child: ChildProcess;
  dir: string;
  exited: Promise<number | null>;
  output: () => string;
}

function freePort(): Promise<number> {
  return new Promise((done, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() => done(typeof address === 'object' && address !== null ? address.port : 0));
    });
  });
}

function request(base: string, path: string, init: RequestInit = {}): Promise<Response> {
  return fetch(`${base}${path}`, { ...init, signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS) });
}

/** `request`, its body read, failing with the body when the status is not `status`. */
async function expectStatus(base: string, path: string, status: number, init: RequestInit = {}) {
  const response = await request(base, path, init);
  const body = await response.text();
  if (response.status !== status)
    throw new Error(`${init.method ?? 'GET'} ${path}: ${response.status} instead of ${status}: ${body}`);
  return body;
}

async function startService(spec: ServiceSpec): Promise<RunningService> {
  const dir = mkdtempSync(join(tmpdir(), 'dashboard-metrics-'));
  const port = await freePort();
  // Started directly with node (not through npm/npx) so that SIGTERM reaches the service.
  const child = spawn(process.execPath, [join(REPO, spec.bin), ...spec.args(port)], {
    cwd: dir,
    env: { PATH: process.env.PATH ?? '', HOME: dir, ...spec.env(dir) },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  child.stdout?.on('data', (chunk: Buffer) => {
    output += chunk.toString('utf8');
  });
  child.stderr?.on('data', (chunk: Buffer) => {
    output += chunk.toString('utf8');
  });
  const exited = new Promise<number | null>((done) => child.once('exit', (code) => done(code)));
  const running = { base: `http://127.0.0.1:${port}`, child, dir, exited, output: () => output };
  const deadline = Date.now() + START_TIMEOUT_MS;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`${spec.bin} exited with ${child.exitCode}:\n${output}`);
    try {
      if ((await request(running.base, spec.readyPath)).status === 200) return running;
    } catch {
      // not listening yet
    }
    if (Date.now() > deadline) {
      child.kill('SIGKILL');
      throw new Error(`${spec.bin} not ready on ${spec.readyPath} within ${START_TIMEOUT_MS} ms:\n${output}`);
    }
    await new Promise((done) => setTimeout(done, 100));
  }
}

/** SIGTERM, then the exit code (SIGKILL and null when the service does not exit in time). */
async function stopService(service: RunningService): Promise<number | null> {
  if (service.child.exitCode === null && service.child.signalCode === null) service.child.kill('SIGTERM');
  const timer = setTimeout(() => service.child.kill('SIGKILL'), STOP_TIMEOUT_MS);
  const code = await service.exited;
  clearTimeout(timer);
  return code;
}

/** Sends text messages on a WebSocket, waits up to 2 s for as many answers, then closes it. */
async function sendOnWebSocket(url: string, messages: string[]): Promise<void> {
  const socket = new WebSocket(url);
  await new Promise<void>((done, reject) => {
    socket.addEventListener('open', () => done(), { once: true });
    socket.addEventListener('error', () => reject(new Error(`WebSocket ${url} failed`)), { once: true });
  });
  let answered = 0;
  const answers = new Promise<void>((done) => {
    socket.addEventListener('message', () => {
      if (++answered === messages.length) done();
    });
    setTimeout(done, 2_000);
  });
  for (const message of messages) socket.send(message);
  await answers;
  socket.close();
}

/** A tidy CSV of sulphate readings over the default permit's limit: the batch raises alerts. */
const OWSC_CSV =
  'time,species,concentration\n0,SO4,200\n1,SO4,205\n2,SO4,210\n3,SO4,215\n4,SO4,220\n5,SO4,280\n6,SO4,300\n7,SO4,250\n8,SO4,240\n';
/** The smallest PDF Raven's content sniffing accepts. */
const PDF = '%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF\n';
const RAG_HEADERS = { 'x-requested-with': 'XMLHttpRequest' };

const SERVICES: Record<string, ServiceSpec> = {
  docops: {
    dashboard: 'docops.json',
    bin: 'services/docops/bin/docops.js',
    args: (port) => ['serve', '--host', '127.0.0.1', '--port', String(port)],
    env: (dir) => ({ DOCOPS_TMP_DIR: join(dir, 'tmp'), DOCOPS_ENABLE_PDF: '0', DOCOPS_LOG_LEVEL: 'warn' }),
    readyPath: '/readyz',
    async exercise(base) {
      await expectStatus(base, '/healthz', 200);
      // A run without its parts is refused: docops_runs_total{outcome="bad_request"}.
      await expectStatus(base, '/v1/run', 400, { method: 'POST', body: new FormData() });
    },
  },
  owsc: {
    dashboard: 'owsc.json',
    bin: 'services/owsc/bin/openworld-chem.js',
    args: (port) => ['dashboard', '--host', '127.0.0.1', '--port', String(port)],
    env: (dir) => ({
      OW_SC_DATA_DIR: join(dir, 'data'),
      OW_SC_TMP_DIR: join(dir, 'tmp'),
      OW_SC_ARTIFACTS_DIR: join(dir, 'artifacts'),
      OW_SC_REPORTS_DIR: join(dir, 'reports'),
      OW_SC_PROVENANCE_LEDGER: join(dir, 'provenance/ledger.jsonl'),
      OW_SC_LINEAGE_LEDGER: join(dir, 'lineage/samples.jsonl'),
      OW_SC_METRICS_PROTECT: '0',
      OW_SC_JOB_WORKERS: '1',
      OW_SC_SHUTDOWN_TIMEOUT_S: '2',
      LOG_LEVEL: 'warn',
    }),
    readyPath: '/readyz',
    async exercise(base) {
      await expectStatus(base, '/health', 200);
      // An evaluated batch: owsc_batches_total{outcome}, owsc_alerts_total{…}, owsc_job_duration_seconds{job}.
      await expectStatus(base, '/api/batches', 201, {
        method: 'POST',
        headers: { 'content-type': 'text/csv' },
        body: OWSC_CSV,
      });
      // A reading over the limit and a message that is not JSON: ws_* series, ws_messages_dropped_total{reason}.
      await sendOnWebSocket(`${base.replace('http', 'ws')}/ws/effluent`, [
        JSON.stringify({ species: 'SO4', concentration: 900, time: 1 }),
        '{not json',
      ]);
    },
  },
  rag: {
    dashboard: 'rag.json',
    bin: 'services/rag/bin/rag-assistant.js',
    args: (port) => ['serve', '--host', '127.0.0.1', '--port', String(port)],
    // Development mode on the embedded database, Gemini in mock mode; /metrics answers loopback clients.
    env: (dir) => ({
      ENVIRONMENT: 'development',
      DATA_DIR: join(dir, 'data'),
      TMP_DIR: join(dir, 'tmp'),
      GEMINI_MOCK_MODE: 'true',
      ALLOW_DEV_LOGIN: 'true',
      WATCHDOG_CRON_MINUTES: '0',
      LOG_LEVEL: 'warn',
    }),
    readyPath: '/ready',
    async exercise(base) {
      const login = await expectStatus(base, '/api/auth/token', 200, {
        method: 'POST',
        headers: { ...RAG_HEADERS, 'content-type': 'application/json' },
        body: JSON.stringify({ email: 'metrics@example.com' }),
      });
      const headers = { ...RAG_HEADERS, authorization: `Bearer ${JSON.parse(login).access_token}` };
      const store = await expectStatus(base, '/api/stores', 200, {
        method: 'POST',
        headers: { ...headers, 'content-type': 'application/json' },
        body: JSON.stringify({ display_name: 'Metrics' }),
      });
      const storeId = (JSON.parse(store) as { id: number }).id;
      const form = new FormData();
      form.set('storeId', String(storeId));
      form.set(
        'file',
        new Blob(['The Falcon launch is scheduled for May 2026 at the northern site.\n'], {
          type: 'text/markdown',
        }),
        'falcon.md',
      );
      const upload = await expectStatus(base, '/api/upload', 200, { method: 'POST', headers, body: form });
      const opId = (JSON.parse(upload) as { op_id: string }).op_id;
      const deadline = Date.now() + START_TIMEOUT_MS;
      for (;;) {
        const status = await expectStatus(base, `/api/upload/op-status/${opId}`, 200, { headers });
        if ((JSON.parse(status) as { status: string }).status === 'DONE') break;
        if (Date.now() > deadline) throw new Error(`upload not indexed: ${status}`);
        await new Promise((done) => setTimeout(done, 100));
      }
      // An answer (offline in mock mode): rag_retrieval_seconds, llm_tokens_total{type}.
      await expectStatus(base, '/api/chat', 200, {
        method: 'POST',
        headers: { ...headers, 'content-type': 'application/json' },
        body: JSON.stringify({ storeIds: [storeId], question: 'When is the Falcon launch?' }),
      });
    },
  },
  raven: {
    dashboard: 'raven.json',
    bin: 'services/raven/bin/raven-zero.js',
    args: (port) => ['serve', '--host', '127.0.0.1', '--port', String(port)],
    // The embedded store; the cheapest scrypt cost the service accepts keeps the key derivation short.
    env: (dir) => ({
      STORAGE_PATH: join(dir, 'storage/uploads'),
      TEMP_PATH: join(dir, 'storage/temp'),
      LOG_DIR: join(dir, 'logs'),
      LOG_TO_FILE: 'false',
      KDF_LOG2_N: '12',
      LOG_LEVEL: 'warning',
    }),
    readyPath: '/livez',
    async exercise(base) {
      const form = new FormData();
      form.set('file', new Blob([PDF], { type: 'application/pdf' }), 'report.pdf');
      const uploaded = await expectStatus(base, '/upload/', 201, { method: 'POST', body: form });
      const key = (JSON.parse(uploaded) as { key: string }).key;
      await expectStatus(base, `/download/${key}`, 200);
      // The one use is spent: a refused download too.
      await request(base, `/download/${key}`).then((response) => response.arrayBuffer());
    },
  },
};

// --- the test -----------------------------------------------------------------------------------------------

const started = new Map<string, Promise<RunningService>>();
const scraped = new Map<string, Promise<Exposition>>();

beforeAll(() => {
  // All four start at once; each describe below waits for its own service only.
  for (const [name, spec] of Object.entries(SERVICES)) {
    const service = startService(spec);
    started.set(name, service);
    const exposition = service.then(async (running) => {
      await spec.exercise(running.base);
      return parseExposition(await expectStatus(running.base, '/metrics', 200));
    });
    scraped.set(name, exposition);
    // Rejections are reported by the tests that await them.
    exposition.catch(() => {});
  }
});

afterAll(async () => {
  await Promise.all(
    [...started.values()].map(async (service) => {
      const running = await service.catch(() => undefined);
      if (running === undefined) return;
      await stopService(running);
      rmSync(running.dir, { recursive: true, force: true });
    }),
  );
}, 2 * STOP_TIMEOUT_MS);

describe.each(Object.keys(SERVICES))('%s', (name) => {
  const spec = SERVICES[name] as ServiceSpec;
  const selectors = dashboardSelectors(spec.dashboard);

  it(
    `exports every metric that ${spec.dashboard} uses`,
    async () => {
      expect(selectors.size).toBeGreaterThan(10);
      const exposition = await (scraped.get(name) as Promise<Exposition>);
      const missing = [...selectors.keys()].filter((series) => !isExported(series, exposition));
      expect(missing, `${spec.dashboard} uses metrics that ${name} does not export`).toEqual([]);
    },
    2 * START_TIMEOUT_MS,
  );

  it(
    `has every label that the selectors of ${spec.dashboard} name, on series with a sample`,
    async () => {
      const exposition = await (scraped.get(name) as Promise<Exposition>);
      const problems: string[] = [];
      const nameOnly: string[] = [];
      for (const [series, labels] of selectors) {
        const seen = exposition.sampled.get(series);
        if (seen === undefined) {
          if (labels.size > 0) nameOnly.push(`${series} {${[...labels].join(', ')}}`);
          continue;
        }
        for (const label of labels) if (!seen.has(label)) problems.push(`${series}: no label ${label}`);
      }
      expect(problems).toEqual([]);
      if (nameOnly.length > 0) {
        console.info(`${name}: no sample yet, so only the name is checked: ${nameOnly.join('; ')}`);
      }
    },
    2 * START_TIMEOUT_MS,
  );

  it(
    'stops on SIGTERM with exit code 0',
    async () => {
      const running = await (started.get(name) as Promise<RunningService>);
      expect(await stopService(running), running.output()).toBe(0);
    },
    STOP_TIMEOUT_MS + 5_000,
  );
});
