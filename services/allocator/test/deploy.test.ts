// Deployment and monitoring assets of spec §2 ("Infrastructure files and their validation", S2, S3, S11,
// S16–S18, S20, S21, S28, S29), checked without a container engine: the Dockerfile, the dev and production
// compose files, `.env.example`, the Prometheus configuration and alert rules, the Grafana provisioning and
// dashboards (this service's and the other services'), and the root Makefile's allocator targets. Every
// metric name the alert rules and this service's dashboard use is checked against a running allocator's
// /metrics; the other dashboards against the metrics their services declare. `docker compose config` /
// `docker-compose config` and `promtool` (config, rules, rule unit tests, dashboard expressions) run when
// those tools are installed, and are skipped with a message otherwise.
import { spawn, spawnSync } from 'node:child_process';
import {
  existsSync,
  globSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join, posix, resolve } from 'node:path';
import { MALLOC_TRIM_THRESHOLD_BYTES } from '@quintet/kernel/memory';
import { createMetricsRegistry } from '@quintet/kernel/metrics';
import {
  composeCommand,
  type DockerInstruction,
  dockerfileStages,
  execForm,
  findExecutable,
  makeRunner,
  metricFamilyName,
  promqlLabelNames,
  promqlMetricNames,
  stageEnvironment,
} from '@quintet/kernel/testing-deploy';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse, stringify } from 'yaml';
import { loadConfig, loadEnvironment } from '../src/config.js';
import { startTestAllocator, type TestAllocator } from './harness.js';

const REPO = resolve(import.meta.dirname, '../../..');
const DEPLOY = join(REPO, 'deploy/allocator');
const MONITORING = join(REPO, 'monitoring');
const DASHBOARDS = join(MONITORING, 'grafana/dashboards');
const BIN = join(REPO, 'services/allocator/bin/file-allocator.js');

/** The seed's `.env` block, byte for byte (spec S3). */
const SEED_ENV_BLOCK = `# Database
DATABASE_URL=postgresql://postgres:postgres@postgres:5432/file_allocator
DB_POOL_SIZE=10
DB_MAX_OVERFLOW=20

# Storage Backend
STORAGE_BACKEND=fs://
STORAGE_PATH=/app/storage

# Application
APP_HOST=0.0.0.0
APP_PORT=8000
DEBUG=false
LOG_LEVEL=INFO

# Workers
WORKER_THREADS=4
QUEUE_BACKEND=inproc  # or redis
REDIS_URL=redis://redis:6379/0

# Media Processing
EMBEDDING_MODEL=openai/clip-vit-base-patch32
CLUSTER_THRESHOLD=0.72

# VLM Configuration
GEMINI_API_KEY=your_gemini_api_key
VLM_ENABLED=true
VLM_FALLBACK_TO_CLIP=true

# Observability
METRICS_ENABLED=true
TRACING_ENABLED=false
`;
const SEED_ENV_NAMES = [...SEED_ENV_BLOCK.matchAll(/^([A-Z_]+)=/gm)].map((m) => m[1] as string);

/** Every variable of the configuration table (§3.3), plus the Docker-secret variants of S28. */
const CONFIGURATION_TABLE = [
  'ENV_FILE',
  'ENVIRONMENT',
  'NODE_ENV',
  'DATABASE_URL',
  'DB_POOL_SIZE',
  'DB_MAX_OVERFLOW',
  'DATA_DIR',
  'TMP_DIR',
  'STORAGE_BACKEND',
  'STORAGE_PATH',
  'APP_HOST',
  'APP_PORT',
  'PORT',
  'WEB_CONCURRENCY',
  'DEBUG',
  'LOG_LEVEL',
  'LOG_FORMAT',
  'LOG_FILE',
  'WORKER_THREADS',
  'QUEUE_BACKEND',
  'REDIS_URL',
  'JOB_MAX_RETRIES',
  'JOB_RETRY_BASE_MS',
  'JOB_TIMEOUT_SECONDS',
  'JOB_LEASE_SECONDS',
  'SHUTDOWN_TIMEOUT_SECONDS',
  'MODELS_DIR',
  'EMBEDDING_MODEL',
  'EMBEDDING_MODEL_REQUIRED',
  'EMBEDDING_DIM',
  'CLUSTER_THRESHOLD',
  'MAX_IMAGE_SIZE',
  'VIDEO_KEYFRAMES',
  'FFMPEG_PATH',
  'FFPROBE_PATH',
  'OCR_ENABLED',
  'TEXT_EMBEDDING_MODEL',
  'DOC_CHUNK_SIZE',
  'DOC_CHUNK_OVERLAP',
  'GEMINI_API_KEY',
  'GEMINI_MODEL',
  'GEMINI_BASE_URL',
  'VLM_ENABLED',
  'VLM_TIMEOUT',
  'VLM_FALLBACK_TO_CLIP',
  'SCHEMA_SAMPLE_SIZE',
  'SCHEMA_STABILITY_THRESHOLD',
  'SCHEMA_MAX_TOP_LEVEL_KEYS',
  'SCHEMA_MAX_DEPTH',
  'AUTO_MIGRATE',
  'SEARCH_DEFAULT_LIMIT',
  'SEARCH_MAX_LIMIT',
  'SEARCH_DEFAULT_THRESHOLD',
  'SEARCH_TIMEOUT_SECONDS',
  'DEDUP_HAMMING_THRESHOLD',
  'DEDUP_NEAR_MIN_SIMILARITY',
  'MAX_IMAGE_BYTES',
  'MAX_VIDEO_BYTES',
  'MAX_AUDIO_BYTES',
  'MAX_DOCUMENT_BYTES',
  'MAX_JSON_BYTES',
  'MAX_FILES_PER_REQUEST',
  'MAX_REQUEST_BYTES',
  'MAX_IMAGE_PIXELS',
  'API_KEY',
  'ALLOWED_ORIGINS',
  'INGEST_ALLOWED_ROOT',
  'WEBHOOK_SECRET',
  'WEBHOOK_ALLOWED_HOSTS',
  'METRICS_ENABLED',
  'TRACING_ENABLED',
  'OTEL_EXPORTER_OTLP_ENDPOINT',
  'FAULT_INJECT_FAIL_OWNER',
  'DB_PASSWORD',
  'GEMINI_API_KEY_FILE',
  'API_KEY_FILE',
  'DATABASE_URL_FILE',
  'REDIS_URL_FILE',
  'DB_PASSWORD_FILE',
];

/** The alert rules of §3.17.4: expression, `for` and severity. */
const ALERTS: Record<string, { expr: string; for: string; severity: string }> = {
  DeadLetterQueueDepthHigh: { expr: 'sum(dead_letter_queue_depth) > 10', for: '5m', severity: 'warning' },
  JobProcessingLatencyHigh: {
    expr: 'histogram_quantile(0.95, sum by (le, job_type) (rate(job_processing_duration_seconds_bucket[5m]))) > 10',
    for: '5m',
    severity: 'warning',
  },
  SearchLatencyHigh: {
    expr: 'histogram_quantile(0.95, sum by (le, search_type) (rate(search_latency_seconds_bucket[5m]))) > 0.5',
    for: '5m',
    severity: 'warning',
  },
  DatabaseConnectionPoolExhausted: {
    expr: 'sum(database_connections{state="active"}) / clamp_min(sum(database_connections), 1) > 0.9',
    for: '2m',
    severity: 'critical',
  },
  WorkerCrashRateHigh: {
    expr: '(sum(rate(worker_crashes_total[1h])) + sum(rate(jobs_processed_total{status="failure"}[1h]))) / clamp_min(sum(rate(jobs_processed_total[1h])), 1e-9) > 0.05',
    for: '5m',
    severity: 'critical',
  },
  VLMAPIFailureRateHigh: {
    expr: 'sum(rate(vlm_requests_total{status="failure"}[5m])) / clamp_min(sum(rate(vlm_requests_total[5m])), 1e-9) > 0.2',
    for: '5m',
    severity: 'warning',
  },
  QueueDepthHigh: { expr: 'sum(queue_depth) > 100', for: '10m', severity: 'warning' },
  IngestFailureRateHigh: {
    expr: 'sum(rate(ingest_requests_total{status="failure"}[5m])) / clamp_min(sum(rate(ingest_requests_total[5m])), 1e-9) > 0.1',
    for: '5m',
    severity: 'warning',
  },
  HighMemoryUsage: { expr: 'process_resident_memory_bytes > 2e9', for: '5m', severity: 'warning' },
  ApplicationDown: { expr: 'up{job="file-allocator"} == 0', for: '1m', severity: 'critical' },
};

/** The seed's example queries (S16). */
const SEED_QUERIES = [
  'rate(ingest_requests_total[5m])',
  'histogram_quantile(0.95, rate(job_processing_duration_seconds_bucket[5m]))',
  'queue_depth',
  'rate(jobs_processed_total{status="failure"}[5m])',
];

/** Dashboard file → the Prometheus job whose series it shows, and the service whose metrics it may use. */
const DASHBOARD_JOBS: Record<string, { job: string; service: string }> = {
  'file-allocator.json': { job: 'file-allocator', service: 'allocator' },
  'docops.json': { job: 'docops', service: 'docops' },
  'owsc.json': { job: 'owsc', service: 'owsc' },
  'rag.json': { job: 'rag', service: 'rag' },
  'raven.json': { job: 'raven', service: 'raven' },
};
/** Where each service declares its metrics. */
const METRICS_SOURCES: Record<string, string> = {
  allocator: 'services/allocator/src/domain/metrics.ts',
  docops: 'services/docops/src/http/metrics.ts',
  owsc: 'services/owsc/src/http/metrics.ts',
  rag: 'services/rag/src/http/metrics.ts',
  raven: 'services/raven/src/http/metrics.ts',
};
/** Labels Prometheus attaches to every scraped series (target labels of monitoring/prometheus.yml). */
const TARGET_LABELS = new Set(['job', 'instance', 'service']);

type Json = null | boolean | number | string | Json[] | { [key: string]: Json };
type JsonObject = { [key: string]: Json };

function read(path: string): string {
  return readFileSync(path, 'utf8');
}

function yamlFile<T>(path: string): T {
  return parse(read(path)) as T;
}

// --- Metric families ------------------------------------------------------------------------------------

interface MetricFamily {
  type: string;
  labels: Set<string>;
}

/** Metric families of a Prometheus text exposition: `# TYPE` lines, with the labels seen on their series. */
function parseExposition(text: string): Map<string, MetricFamily> {
  const families = new Map<string, MetricFamily>();
  for (const match of text.matchAll(/^# TYPE (\S+) (\S+)$/gm)) {
    families.set(match[1] as string, { type: match[2] as string, labels: new Set() });
  }
  for (const match of text.matchAll(/^([a-zA-Z_:][\w:]*)\{([^}]*)\}/gm)) {
    const name = match[1] as string;
    const owner = families.get(name) ?? families.get(metricFamilyName(name));
    for (const label of (match[2] as string).matchAll(/([a-zA-Z_]\w*)="/g))
      owner?.labels.add(label[1] as string);
  }
  return families;
}

/** Metrics declared in a source file: `new Counter|Gauge|Histogram|Summary({ name: '…', … labelNames: [...] })`. */
function declaredMetrics(source: string): Map<string, MetricFamily> {
  const declared = new Map<string, MetricFamily>();
  const pattern = /new (Counter|Gauge|Histogram|Summary)\(\{\s*name:\s*'([^']+)'/g;
  const matches = [...source.matchAll(pattern)];
  matches.forEach((match, index) => {
    const body = source.slice(match.index, matches[index + 1]?.index ?? source.length);
    const labels = /labelNames:\s*\[([^\]]*)\]/.exec(body)?.[1] ?? '';
    const names = [...labels.matchAll(/'([^']+)'/g)].map((m) => m[1] as string);
    // The kernel's HTTP metrics name their status label by option (`status` unless a service renames it).
    if (/\bstatusLabel\b/.test(labels)) names.push('status');
    declared.set(match[2] as string, { type: (match[1] as string).toLowerCase(), labels: new Set(names) });
  });
  return declared;
}

/** Whether `name` (possibly a histogram's _bucket/_sum/_count series) belongs to a family in `families`. */
function resolves(name: string, families: Map<string, MetricFamily>): MetricFamily | undefined {
  const direct = families.get(name);
  if (direct !== undefined) return direct;
  const base = families.get(metricFamilyName(name));
  return base !== undefined && (base.type === 'histogram' || base.type === 'summary') ? base : undefined;
}

/** Names and labels of an expression that `families` does not provide (`up` is Prometheus's own series). */
function unknownReferences(expr: string, families: Map<string, MetricFamily>): string[] {
  const problems: string[] = [];
  const allowedLabels = new Set(TARGET_LABELS);
  for (const name of promqlMetricNames(expr)) {
    if (name === 'up') continue;
    const found = resolves(name, families);
    if (found === undefined) {
      problems.push(`metric ${name}`);
      continue;
    }
    for (const label of found.labels) {
      allowedLabels.add(label);
      // A series' own label that clashes with a target label is scraped as `exported_<name>`.
      if (TARGET_LABELS.has(label)) allowedLabels.add(`exported_${label}`);
    }
    if (name.endsWith('_bucket')) allowedLabels.add('le');
  }
  for (const label of promqlLabelNames(expr)) if (!allowedLabels.has(label)) problems.push(`label ${label}`);
  return problems;
}

// --- Dockerfile ------------------------------------------------------------------------------------------

describe('deploy/allocator/Dockerfile', () => {
  const all = dockerfileStages(read(join(DEPLOY, 'Dockerfile')));
  const build = all[0] ?? [];
  const runtime = all.at(-1) ?? [];
  const runtimeEnv = stageEnvironment(runtime);
  const runs = (stage: DockerInstruction[]) => stage.filter((s) => s.op === 'RUN').map((s) => s.args);

  it('is multi-stage on node:24-bookworm-slim', () => {
    expect(all).toHaveLength(2);
    expect(build[0]?.args).toBe('node:24-bookworm-slim AS build');
    expect(runtime[0]?.args).toBe('node:24-bookworm-slim');
  });

  it('installs the workspace with npm ci, compiles, builds the database templates, then prunes dev dependencies', () => {
    const commands = runs(build).join('\n');
    expect(commands).toMatch(/npm ci .*--workspace @quintet\/kernel --workspace @quintet\/allocator/);
    expect(commands).toMatch(/npx tsc -b services\/allocator/);
    expect(commands).toMatch(/npm prune --omit=dev .*--workspace @quintet\/allocator/);
    expect(commands.indexOf('npm ci')).toBeLessThan(commands.indexOf('npm prune'));
    // The catalog's migrated template, made from the kernel's before dev dependencies go.
    const kernelTemplate = commands.indexOf('node packages/kernel/scripts/build-pglite-template.mjs');
    const catalogTemplate = commands.indexOf('node services/allocator/scripts/build-pglite-template.mjs');
    expect(kernelTemplate).toBeGreaterThan(commands.indexOf('npx tsc -b services/allocator'));
    expect(catalogTemplate).toBeGreaterThan(kernelTemplate);
    expect(catalogTemplate).toBeLessThan(commands.indexOf('npm prune'));
    const copies = build.filter((s) => s.op === 'COPY').map((s) => s.args);
    expect(copies).toContain('package.json package-lock.json tsconfig*.json ./');
    expect(copies).toContain('services/allocator ./services/allocator');
  });

  it('installs ffmpeg from Debian in the runtime stage', () => {
    expect(runs(runtime).join('\n')).toMatch(/apt-get install -y --no-install-recommends ffmpeg/);
    expect(runs(build).join('\n')).not.toMatch(/ffmpeg/);
  });

  it('copies the compiled service, its bin and its migrations, and puts the bin on PATH', () => {
    const copied = runtime.filter((s) => s.op === 'COPY').map((s) => s.args);
    for (const path of ['bin', 'dist', 'migrations', 'package.json']) {
      expect(copied).toContain(`--from=build /app/services/allocator/${path} ./services/allocator/${path}`);
    }
    expect(existsSync(join(REPO, 'services/allocator/migrations/001_catalog.sql'))).toBe(true);
    expect(read(BIN)).toContain("import('../dist/cli.js')");
    expect(runs(runtime).join('\n')).toContain(
      'ln -s /app/services/allocator/bin/file-allocator.js /usr/local/bin/file-allocator',
    );
    expect(JSON.parse(read(join(REPO, 'services/allocator/package.json'))).bin).toEqual({
      'file-allocator': './bin/file-allocator.js',
    });
  });

  it('runs as a non-root user with /app/storage and /app/data as its only volumes', () => {
    const users = runtime.filter((s) => s.op === 'USER').map((s) => s.args);
    expect(users.length).toBeGreaterThan(0);
    expect(users.at(-1)).not.toMatch(/^(root|0)(:|$)/);
    const volumes = runtime.filter((s) => s.op === 'VOLUME').flatMap((s) => execForm(s.args));
    expect(volumes).toEqual(['/app/storage', '/app/data']);
    // Everything the service writes lies in a volume, so `docker run --read-only` works.
    for (const name of ['STORAGE_PATH', 'DATA_DIR', 'TMP_DIR', 'TMPDIR']) {
      const path = runtimeEnv[name] ?? '';
      expect(
        volumes.some((volume) => path === volume || path.startsWith(`${volume}/`)),
        name,
      ).toBe(true);
    }
    expect(runtime.filter((s) => s.op === 'COPY').map((s) => s.args)).toContain(
      '--from=build --chown=10001:10001 /volumes/ /app/',
    );
  });

  it('exposes 8000, checks health with `file-allocator healthcheck` and serves by default', () => {
    expect(runtime.filter((s) => s.op === 'EXPOSE').map((s) => s.args)).toEqual(['8000']);
    const healthchecks = runtime.filter((s) => s.op === 'HEALTHCHECK');
    expect(healthchecks).toHaveLength(1);
    expect(execForm(healthchecks[0]?.args ?? '')).toEqual(['file-allocator', 'healthcheck']);
    const cmd = runtime.filter((s) => s.op === 'CMD');
    expect(execForm(cmd.at(-1)?.args ?? '')).toEqual(['file-allocator', 'serve']);
    expect(runtime.some((s) => s.op === 'ENTRYPOINT')).toBe(false);
  });

  it('sets only configuration variables of §3.3, and they load (port 8000, embedded database possible)', () => {
    // TMPDIR (Node's temp directory) and glibc's trim threshold are the runtime's, not the service's.
    const names = Object.keys(runtimeEnv).filter(
      (name) => name !== 'TMPDIR' && name !== 'MALLOC_TRIM_THRESHOLD_',
    );
    expect(runtimeEnv.MALLOC_TRIM_THRESHOLD_).toBe(String(MALLOC_TRIM_THRESHOLD_BYTES));
    for (const name of names) expect(CONFIGURATION_TABLE, name).toContain(name);
    // No production mode baked in: the bare image must start on the embedded database.
    expect(runtimeEnv).not.toHaveProperty('NODE_ENV');
    expect(runtimeEnv).not.toHaveProperty('ENVIRONMENT');
    const config = loadConfig(runtimeEnv);
    expect(config).toMatchObject({
      production: false,
      host: '0.0.0.0',
      port: 8000,
      storagePath: '/app/storage',
      dataDir: '/app/data',
      tmpDir: '/app/data/tmp',
      databaseUrl: undefined,
    });
  });

  it('has a .dockerignore that keeps local outputs, data and secrets out of the context', () => {
    const ignored = read(join(DEPLOY, 'Dockerfile.dockerignore')).split('\n');
    for (const entry of ['**/node_modules', '**/dist', '**/.env', '.git', 'storage', 'data']) {
      expect(ignored, entry).toContain(entry);
    }
  });
});

// --- `file-allocator healthcheck` (the image's HEALTHCHECK) ---------------------------------------------

/** Runs the bin asynchronously (the server under test answers from this process) and returns its exit code. */
function runBin(args: string[], cwd: string): Promise<{ code: number | null; stderr: string }> {
  return new Promise((resolvePromise) => {
    const child = spawn(process.execPath, [BIN, ...args], { cwd, stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (chunk: Buffer) => {
      stderr += chunk.toString('utf8');
    });
    child.on('close', (code) => resolvePromise({ code, stderr }));
  });
}

// --- .env.example ---------------------------------------------------------------------------------------

describe('deploy/allocator/.env.example', () => {
  const path = join(DEPLOY, '.env.example');

  it("is exactly the seed's .env block", () => {
    expect(read(path)).toBe(SEED_ENV_BLOCK);
  });

  it('loads as the service reads it: inline comments dropped, every value valid', () => {
    const env = loadEnvironment({ ENV_FILE: path });
    expect(env.QUEUE_BACKEND).toBe('inproc');
    const config = loadConfig(env);
    expect(config).toMatchObject({
      dbPoolSize: 10,
      dbMaxOverflow: 20,
      storageBackend: 'fs://',
      storagePath: '/app/storage',
      host: '0.0.0.0',
      port: 8000,
      debug: false,
      logLevel: 'INFO',
      workerThreads: 4,
      queueBackend: 'inproc',
      redisUrl: 'redis://redis:6379/0',
      embeddingModel: 'openai/clip-vit-base-patch32',
      clusterThreshold: 0.72,
      vlmEnabled: true,
      vlmFallbackToClip: true,
      metricsEnabled: true,
      tracingEnabled: false,
    });
    expect(config.databaseUrl).toBe('postgresql://postgres:postgres@postgres:5432/file_allocator');
  });
});

// --- compose files --------------------------------------------------------------------------------------

interface ComposeService {
  image?: string;
  build?: { context: string; dockerfile: string };
  container_name?: string;
  command?: string[] | string;
  environment?: Record<string, string | number | boolean | null>;
  ports?: string[];
  expose?: string[];
  volumes?: string[];
  secrets?: string[];
  depends_on?: Record<string, { condition: string }> | string[];
  healthcheck?: { test: string[] };
  deploy?: { resources?: Json };
}
interface ComposeFile {
  services: Record<string, ComposeService>;
  secrets?: Record<string, { external?: boolean; file?: string }>;
  volumes?: Record<string, unknown>;
}

const COMPOSE_FILES = ['docker-compose.yml', 'docker-compose.prod.yml'];
const dev = yamlFile<ComposeFile>(join(DEPLOY, 'docker-compose.yml'));
const prod = yamlFile<ComposeFile>(join(DEPLOY, 'docker-compose.prod.yml'));

function service(compose: ComposeFile, name: string): ComposeService {
  const found = compose.services[name];
  if (found === undefined) throw new Error(`no service ${name}`);
  return found;
}

/** Compose interpolation without a shell environment or .env: `${NAME:-default}` → default, `${NAME}` → ''. */
function interpolate(value: string): string {
  return value.replace(
    /\$\{([A-Z_][A-Z0-9_]*)(?::?-([^}]*))?\}/g,
    (_all, _name, fallback?: string) => fallback ?? '',
  );
}

function composedEnv(compose: ComposeFile): Record<string, string> {
  const env: Record<string, string> = {};
  for (const [name, value] of Object.entries(service(compose, 'app').environment ?? {})) {
    env[name] = interpolate(String(value ?? ''));
  }
  return env;
}

/** The host path (relative to the repository) of a bind mount `../../x:/target[:ro]`, or undefined for a volume. */
function bindSource(volume: string): string | undefined {
  const source = volume.split(':')[0] as string;
  return source.startsWith('.') || source.startsWith('/')
    ? posix.normalize(posix.join('deploy/allocator', source))
    : undefined;
}

function mountTarget(compose: ComposeFile, name: string, source: string): string | undefined {
  const entry = service(compose, name).volumes?.find((volume) => bindSource(volume) === source);
  return entry?.split(':')[1];
}

function publishedPorts(svc: ComposeService): string[] {
  return (svc.ports ?? []).map((port) => String(port).split(':')[0] as string);
}

describe.each([
  ['docker-compose.yml', dev],
  ['docker-compose.prod.yml', prod],
])('deploy/allocator/%s', (_file, compose) => {
  const app = service(compose, 'app');

  it('has the seed services: app, postgres, redis, prometheus, grafana', () => {
    expect(Object.keys(compose.services).sort()).toEqual([
      'app',
      'grafana',
      'postgres',
      'prometheus',
      'redis',
    ]);
    expect(service(compose, 'postgres').image).toBe('pgvector/pgvector:pg16');
    expect(service(compose, 'redis').image).toBe('redis:7-alpine');
    expect(service(compose, 'prometheus').image).toMatch(/^prom\/prometheus:v\d+\.\d+\.\d+$/);
    expect(service(compose, 'grafana').image).toMatch(/^grafana\/grafana:\d+\.\d+\.\d+$/);
  });

  it('builds the app from the repository root with the allocator Dockerfile', () => {
    expect(app.build).toEqual({ context: '../..', dockerfile: 'deploy/allocator/Dockerfile' });
    expect(existsSync(join(DEPLOY, app.build?.context ?? '', app.build?.dockerfile ?? ''))).toBe(true);
    expect(app.container_name).toBeUndefined();
  });

  it('gives every service a health check; the app uses `file-allocator healthcheck`', () => {
    expect(app.healthcheck?.test).toEqual(['CMD', 'file-allocator', 'healthcheck']);
    expect(service(compose, 'postgres').healthcheck?.test).toEqual([
      'CMD-SHELL',
      'pg_isready -U postgres -d file_allocator',
    ]);
    expect(service(compose, 'redis').healthcheck?.test).toEqual(['CMD', 'redis-cli', 'ping']);
    for (const name of ['prometheus', 'grafana'])
      expect(service(compose, name).healthcheck?.test[0], name).toBe('CMD');
    expect(app.depends_on).toEqual({
      postgres: { condition: 'service_healthy' },
      redis: { condition: 'service_healthy' },
    });
  });

  it('stores PostgreSQL in postgres_data (database file_allocator) and the assets in the storage volume', () => {
    const postgres = service(compose, 'postgres');
    expect(postgres.environment?.POSTGRES_DB).toBe('file_allocator');
    expect(postgres.environment?.POSTGRES_USER).toBe('postgres');
    expect(postgres.volumes).toContain('postgres_data:/var/lib/postgresql/data');
    expect(app.volumes).toContain('storage:/app/storage');
    expect(Object.keys(compose.volumes ?? {})).toEqual(expect.arrayContaining(['postgres_data', 'storage']));
    // No source or host directory is mounted into the app: the image holds the compiled service.
    for (const volume of app.volumes ?? []) expect(bindSource(volume), volume).toBeUndefined();
  });

  it('publishes Prometheus on 9090 and Grafana on 3000 (admin/admin), with the monitoring files mounted', () => {
    expect(publishedPorts(service(compose, 'prometheus'))).toEqual(['9090']);
    expect(publishedPorts(service(compose, 'grafana'))).toEqual(['3000']);
    expect(mountTarget(compose, 'prometheus', 'monitoring/prometheus.yml')).toBe(
      '/etc/prometheus/prometheus.yml',
    );
    expect(mountTarget(compose, 'prometheus', 'monitoring/alerts.yml')).toBe('/etc/prometheus/alerts.yml');
    expect(mountTarget(compose, 'grafana', 'monitoring/grafana/provisioning')).toBe(
      '/etc/grafana/provisioning',
    );
    const dashboardsTarget = mountTarget(compose, 'grafana', 'monitoring/grafana/dashboards');
    const provider = yamlFile<{ providers: { type: string; options: { path: string } }[] }>(
      join(MONITORING, 'grafana/provisioning/dashboards/dashboards.yml'),
    ).providers[0];
    expect(provider?.type).toBe('file');
    expect(dashboardsTarget).toBe(provider?.options.path);
    for (const volume of [
      ...(service(compose, 'prometheus').volumes ?? []),
      ...(service(compose, 'grafana').volumes ?? []),
    ]) {
      const source = bindSource(volume);
      if (source !== undefined) expect(existsSync(join(REPO, source)), source).toBe(true);
    }
    const grafanaEnv = Object.fromEntries(
      Object.entries(service(compose, 'grafana').environment ?? {}).map(([k, v]) => [
        k,
        interpolate(String(v)),
      ]),
    );
    expect(grafanaEnv).toMatchObject({
      GF_SECURITY_ADMIN_USER: 'admin',
      GF_SECURITY_ADMIN_PASSWORD: 'admin',
    });
  });

  it('passes the app only variables of the configuration table (§3.3), and they load', () => {
    const env = composedEnv(compose);
    for (const name of Object.keys(env)) expect(CONFIGURATION_TABLE, name).toContain(name);
    expect(env.APP_PORT).toBe('8000');
    expect(env.STORAGE_PATH).toBe('/app/storage');
    expect(env.METRICS_ENABLED).toBe('true');
  });
});

describe('deploy/allocator/docker-compose.yml (development)', () => {
  const app = service(dev, 'app');

  it('publishes the API on 8000 and sets every variable of the seed block with its seed value', () => {
    expect(publishedPorts(app)).toEqual(['8000']);
    const env = composedEnv(dev);
    const seed = loadEnvironment({ ENV_FILE: join(DEPLOY, '.env.example') });
    for (const name of SEED_ENV_NAMES) {
      expect(Object.keys(env), name).toContain(name);
      // The placeholder key is not passed on: without a real key the offline labels are used.
      if (name !== 'GEMINI_API_KEY') expect(env[name], name).toBe(seed[name]);
    }
    expect(env.GEMINI_API_KEY).toBe('');
  });

  it('starts against the compose PostgreSQL with the in-process queue', () => {
    const config = loadConfig(composedEnv(dev));
    expect(config).toMatchObject({ production: false, queueBackend: 'inproc', port: 8000, geminiApiKey: '' });
    expect(config.databaseUrl).toBe('postgresql://postgres:postgres@postgres:5432/file_allocator');
    expect(service(dev, 'postgres').environment?.POSTGRES_PASSWORD).toBe('postgres');
  });
});

describe('deploy/allocator/docker-compose.prod.yml', () => {
  const app = service(prod, 'app');
  const env = composedEnv(prod);

  it('runs in production mode on the Redis queue, with the two external secrets as *_FILE variables', () => {
    expect(env).toMatchObject({
      ENVIRONMENT: 'production',
      QUEUE_BACKEND: 'redis',
      REDIS_URL: 'redis://redis:6379/0',
      DB_PASSWORD_FILE: '/run/secrets/db_password',
      GEMINI_API_KEY_FILE: '/run/secrets/gemini_api_key',
    });
    expect(env).not.toHaveProperty('GEMINI_API_KEY');
    expect(env.DATABASE_URL).toBe('postgresql://postgres@postgres:5432/file_allocator');
    expect(prod.secrets).toEqual({ db_password: { external: true }, gemini_api_key: { external: true } });
    expect(app.secrets).toEqual(['db_password', 'gemini_api_key']);
    const postgres = service(prod, 'postgres');
    expect(postgres.secrets).toEqual(['db_password']);
    expect(postgres.environment?.POSTGRES_PASSWORD_FILE).toBe('/run/secrets/db_password');
    expect(postgres.environment).not.toHaveProperty('POSTGRES_PASSWORD');
  });

  it('starts with the secrets read from their files', () => {
    const dir = mkdtempSync(join(tmpdir(), 'allocator-secrets-'));
    try {
      writeFileSync(join(dir, 'db_password'), 'Pr0d-pass');
      writeFileSync(join(dir, 'gemini_api_key'), 'gemini-key-123');
      const withFiles = Object.fromEntries(
        Object.entries(env).map(([name, value]) => [name, value.replace('/run/secrets', dir)]),
      );
      const config = loadConfig(withFiles);
      expect(config).toMatchObject({
        production: true,
        queueBackend: 'redis',
        geminiApiKey: 'gemini-key-123',
      });
      const url = new URL(config.databaseUrl ?? '');
      expect([url.username, url.password, url.host, url.pathname]).toEqual([
        'postgres',
        'Pr0d-pass',
        'postgres:5432',
        '/file_allocator',
      ]);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('can scale the app: no container name, no host port, no shared scratch volume', () => {
    expect(app.ports).toBeUndefined();
    expect(app.container_name).toBeUndefined();
    expect(app.expose).toEqual(['8000']);
    expect(app.volumes).toEqual(['storage:/app/storage']);
    // Each replica opens up to DB_POOL_SIZE + DB_MAX_OVERFLOW connections: PostgreSQL allows three replicas.
    const maxConnections = Number(
      /max_connections=(\d+)/.exec(String(service(prod, 'postgres').command))?.[1],
    );
    expect(maxConnections).toBeGreaterThanOrEqual(
      3 * (Number(env.DB_POOL_SIZE) + Number(env.DB_MAX_OVERFLOW)),
    );
  });

  it("limits the app's resources as the seed's vertical-scaling example", () => {
    expect(app.deploy?.resources).toEqual({
      limits: { cpus: '4', memory: '8G' },
      reservations: { cpus: '2', memory: '4G' },
    });
  });
});

// --- Prometheus -----------------------------------------------------------------------------------------

interface ScrapeConfig {
  job_name: string;
  metrics_path?: string;
  scrape_interval?: string;
  static_configs: { targets: string[]; labels?: Record<string, string> }[];
}
interface PrometheusConfig {
  global: { scrape_interval: string; evaluation_interval: string };
  rule_files: string[];
  scrape_configs: ScrapeConfig[];
}
interface AlertRule {
  alert: string;
  expr: string;
  for: string;
  labels: Record<string, string>;
  annotations: Record<string, string>;
}

const prometheus = yamlFile<PrometheusConfig>(join(MONITORING, 'prometheus.yml'));
const rules = yamlFile<{ groups: { name: string; rules: AlertRule[] }[] }>(
  join(MONITORING, 'alerts.yml'),
).groups.flatMap((group) => group.rules);

describe('monitoring/prometheus.yml', () => {
  const jobs = new Map(prometheus.scrape_configs.map((job) => [job.job_name, job]));

  it('scrapes every 15 s and loads the alert rules beside it', () => {
    expect(prometheus.global).toEqual({ scrape_interval: '15s', evaluation_interval: '15s' });
    expect(prometheus.rule_files).toEqual(['alerts.yml']);
    for (const job of prometheus.scrape_configs) expect(job.scrape_interval, job.job_name).toBeUndefined();
  });

  it('scrapes the allocator at app:8000/metrics (the compose service and port)', () => {
    const job = jobs.get('file-allocator');
    expect(job?.metrics_path).toBe('/metrics');
    expect(job?.static_configs.flatMap((c) => c.targets)).toEqual(['app:8000']);
    expect(Object.keys(dev.services)).toContain('app');
    expect(service(prod, 'app').expose).toContain('8000');
  });

  it("scrapes the other services' /metrics on port 8000", () => {
    expect([...jobs.keys()].sort()).toEqual(['docops', 'file-allocator', 'owsc', 'rag', 'raven']);
    expect(jobs.get('docops')?.static_configs[0]?.targets).toEqual(['docops:8000']);
    expect(jobs.get('owsc')?.static_configs[0]?.targets).toEqual(['owsc:8000']);
    // The RAG compose files name the HTTP service `backend`; Raven's compose service gets the alias `raven`.
    expect(jobs.get('rag')?.static_configs[0]?.targets).toEqual(['backend:8000']);
    expect(
      Object.keys(yamlFile<ComposeFile>(join(REPO, 'deploy/rag/docker-compose.yml')).services),
    ).toContain('backend');
    expect(jobs.get('raven')?.static_configs[0]?.targets).toEqual(['raven:8000']);
    for (const job of jobs.values()) expect(job.metrics_path, job.job_name).toBe('/metrics');
  });
});

describe('monitoring/alerts.yml', () => {
  it('has the ten alerts of §3.17.4 with their exact expressions, durations and severities', () => {
    expect(rules.map((rule) => rule.alert).sort()).toEqual(Object.keys(ALERTS).sort());
    for (const rule of rules) {
      const expected = ALERTS[rule.alert];
      expect({ expr: rule.expr, for: rule.for, severity: rule.labels.severity }, rule.alert).toEqual(
        expected,
      );
    }
  });

  it('gives every alert a summary and a description', () => {
    for (const rule of rules) {
      expect(Object.keys(rule.annotations).sort(), rule.alert).toEqual(['description', 'summary']);
      expect(rule.annotations.summary?.length, rule.alert).toBeGreaterThan(10);
      expect(rule.annotations.description?.length, rule.alert).toBeGreaterThan(30);
    }
  });
});

// --- Grafana --------------------------------------------------------------------------------------------

interface Panel {
  type: string;
  title: string;
  id: number;
  datasource?: { type: string; uid: string };
  gridPos: { h: number; w: number; x: number; y: number };
  targets?: { refId: string; expr: string; legendFormat?: string; datasource?: { uid: string } }[];
}
interface Dashboard {
  uid: string;
  title: string;
  panels: Panel[];
  templating: { list: { name: string; query: { query: string } }[] };
}

const dashboards = new Map(
  readdirSync(DASHBOARDS)
    .filter((file) => file.endsWith('.json'))
    .map((file) => [file, JSON.parse(read(join(DASHBOARDS, file))) as Dashboard]),
);

function expressions(dashboard: Dashboard): string[] {
  return dashboard.panels.flatMap((panel) => (panel.targets ?? []).map((target) => target.expr));
}

/** Panels grouped under the row panel that precedes them. */
function rows(dashboard: Dashboard): Map<string, Panel[]> {
  const grouped = new Map<string, Panel[]>();
  let current: Panel[] | undefined;
  for (const panel of dashboard.panels) {
    if (panel.type === 'row') {
      current = [];
      grouped.set(panel.title, current);
    } else current?.push(panel);
  }
  return grouped;
}

describe('monitoring/grafana provisioning', () => {
  it('provisions Prometheus (uid prometheus, the compose service on 9090) as the default datasource', () => {
    const { datasources } = yamlFile<{ datasources: JsonObject[] }>(
      join(MONITORING, 'grafana/provisioning/datasources/prometheus.yml'),
    );
    expect(datasources).toHaveLength(1);
    expect(datasources[0]).toMatchObject({
      type: 'prometheus',
      uid: 'prometheus',
      url: 'http://prometheus:9090',
      isDefault: true,
      access: 'proxy',
    });
  });

  it('has one dashboard per service, each with a unique uid and one Prometheus job', () => {
    expect([...dashboards.keys()].sort()).toEqual(Object.keys(DASHBOARD_JOBS).sort());
    const uids = [...dashboards.values()].map((dashboard) => dashboard.uid);
    expect(new Set(uids).size).toBe(uids.length);
    const jobNames = prometheus.scrape_configs.map((job) => job.job_name);
    for (const [file, { job }] of Object.entries(DASHBOARD_JOBS)) {
      expect(jobNames, file).toContain(job);
      for (const expr of expressions(dashboards.get(file) as Dashboard))
        expect(expr, file).toContain(`job="${job}"`);
      expect(dashboards.get(file)?.templating.list[0]?.query.query).toBe(
        `label_values(up{job="${job}"}, instance)`,
      );
    }
  });

  it.each([...dashboards.keys()])(
    '%s: panels use the provisioned datasource, unique ids, no overlap',
    (file) => {
      const dashboard = dashboards.get(file) as Dashboard;
      const ids = dashboard.panels.map((panel) => panel.id);
      expect(new Set(ids).size).toBe(ids.length);
      const boxes = dashboard.panels.map((panel) => panel.gridPos);
      boxes.forEach((a, i) => {
        expect(a.x + a.w, `${file} panel ${i}`).toBeLessThanOrEqual(24);
        for (const b of boxes.slice(i + 1)) {
          const overlap = a.x < b.x + b.w && b.x < a.x + a.w && a.y < b.y + b.h && b.y < a.y + a.h;
          expect(overlap, `${file}: ${JSON.stringify(a)} / ${JSON.stringify(b)}`).toBe(false);
        }
      });
      for (const panel of dashboard.panels.filter((p) => p.type !== 'row')) {
        expect(panel.datasource?.uid, panel.title).toBe('prometheus');
        expect(panel.targets?.length, panel.title).toBeGreaterThan(0);
        for (const target of panel.targets ?? [])
          expect(target.datasource?.uid, panel.title).toBe('prometheus');
      }
    },
  );

  it('file-allocator.json has the rows Overview / Job Processing / Database / System with their metrics', () => {
    const grouped = rows(dashboards.get('file-allocator.json') as Dashboard);
    expect([...grouped.keys()]).toEqual(['Overview', 'Job Processing', 'Database', 'System']);
    const required: Record<string, string[]> = {
      Overview: ['http_requests_total', 'http_request_duration_seconds_bucket', 'ingest_requests_total'],
      'Job Processing': [
        'queue_depth',
        'job_processing_duration_seconds_bucket',
        'dead_letter_queue_depth',
        'active_workers',
        'busy_workers',
        'worker_crashes_total',
      ],
      Database: ['database_connections', 'db_query_duration_seconds_bucket'],
      System: ['process_resident_memory_bytes', 'process_cpu_seconds_total', 'nodejs_eventloop_lag_seconds'],
    };
    for (const [row, metrics] of Object.entries(required)) {
      const used = new Set(
        (grouped.get(row) ?? []).flatMap((panel) =>
          (panel.targets ?? []).flatMap((t) => promqlMetricNames(t.expr)),
        ),
      );
      for (const metric of metrics) expect([...used], `${row}: ${metric}`).toContain(metric);
    }
    const titles = [...grouped.values()].flat().map((panel) => panel.title);
    expect(titles).toEqual(expect.arrayContaining(['Request rate', 'Latency p95', 'Error rate']));
  });
});

// --- the metric names against what the services export ---------------------------------------------------

/** The default process/Node metrics of the kernel's registries, as exported. */
async function defaultMetrics(): Promise<Map<string, MetricFamily>> {
  const families = parseExposition(await createMetricsRegistry().metrics());
  // No GC has been observed yet in a fresh registry, so its label does not show on a series.
  families.get('nodejs_gc_duration_seconds')?.labels.add('kind');
  return families;
}

/** What a service declares: its own metrics, the kernel's HTTP metrics if it uses them, the defaults. */
async function serviceMetrics(name: string): Promise<Map<string, MetricFamily>> {
  const families = new Map<string, MetricFamily>();
  const sources = globSync(`services/${name}/src/**/*.ts`, { cwd: REPO }).map((file) =>
    read(join(REPO, file)),
  );
  const everything = sources.join('\n');
  if (/createMetricsRegistry\(\)|defaultMetrics:\s*true/.test(everything)) {
    for (const [metric, found] of await defaultMetrics()) families.set(metric, found);
  }
  if (/createHttpMetrics\(/.test(everything)) {
    const renamed = /statusLabel: '([a-z_]+)'/.exec(everything)?.[1];
    for (const [metric, found] of declaredMetrics(read(join(REPO, 'packages/kernel/src/metrics.ts')))) {
      if (renamed !== undefined && found.labels.delete('status')) found.labels.add(renamed);
      families.set(metric, found);
    }
  }
  for (const [metric, found] of declaredMetrics(read(join(REPO, METRICS_SOURCES[name] as string)))) {
    families.set(metric, found);
  }
  return families;
}

describe('metric names used by the alert rules and the dashboards', () => {
  it('the PromQL reader finds metric and label names, not functions, keywords or numbers', () => {
    const expr = ALERTS.WorkerCrashRateHigh?.expr ?? '';
    expect(promqlMetricNames(expr).sort()).toEqual(['jobs_processed_total', 'worker_crashes_total']);
    expect(promqlLabelNames(expr)).toEqual(['status']);
    expect(promqlMetricNames(ALERTS.JobProcessingLatencyHigh?.expr ?? '')).toEqual([
      'job_processing_duration_seconds_bucket',
    ]);
    expect(promqlLabelNames(ALERTS.JobProcessingLatencyHigh?.expr ?? '')).toEqual(['le', 'job_type']);
    expect(
      promqlMetricNames('rate(process_cpu_seconds_total{job="x", instance=~"$instance"}[$__rate_interval])'),
    ).toEqual(['process_cpu_seconds_total']);
    expect(promqlMetricNames('process_resident_memory_bytes > 2e9 and on (instance) up == 1')).toEqual([
      'process_resident_memory_bytes',
      'up',
    ]);
  });

  describe('against a running allocator', () => {
    let allocator: TestAllocator;
    let exported: Map<string, MetricFamily>;
    const declared = declaredMetrics(read(join(REPO, METRICS_SOURCES.allocator as string)));

    beforeAll(async () => {
      allocator = await startTestAllocator();
      // One request first, so that the HTTP metrics have a series (with their labels) to show.
      expect((await allocator.app.inject({ method: 'GET', url: '/live' })).statusCode).toBe(200);
      const response = await allocator.app.inject({ method: 'GET', url: '/metrics' });
      expect(response.statusCode).toBe(200);
      exported = parseExposition(response.body);
      // Labels of series that have no sample yet (histograms) come from the declarations.
      for (const [name, found] of declared)
        for (const label of found.labels) exported.get(name)?.labels.add(label);
      for (const [name, found] of await defaultMetrics()) {
        for (const label of found.labels) exported.get(name)?.labels.add(label);
      }
    });
    afterAll(async () => {
      await allocator?.close();
    });

    it('exports every metric of the §3.17.4 table with its type', () => {
      expect(exported.get('ingest_requests_total')?.type).toBe('counter');
      expect(exported.get('job_processing_duration_seconds')?.type).toBe('histogram');
      expect(exported.get('queue_depth')?.type).toBe('gauge');
      expect(exported.get('active_workers')?.type).toBe('gauge');
      expect(exported.get('process_resident_memory_bytes')?.type).toBe('gauge');
      for (const [name, found] of declared) expect(exported.get(name)?.type, name).toBe(found.type);
    });

    it('every name and label of the alert rules and the seed queries is exported', () => {
      for (const expr of [...rules.map((rule) => rule.expr), ...SEED_QUERIES]) {
        expect(unknownReferences(expr, exported), expr).toEqual([]);
      }
    });

    it('every name and label of file-allocator.json is exported', () => {
      const exprs = expressions(dashboards.get('file-allocator.json') as Dashboard);
      expect(exprs.length).toBeGreaterThan(20);
      for (const expr of exprs) expect(unknownReferences(expr, exported), expr).toEqual([]);
    });

    it('serves /ready for the image HEALTHCHECK: `file-allocator healthcheck` exits 0, and 1 when unreachable', async () => {
      expect(existsSync(join(REPO, 'services/allocator/dist/cli.js')), 'compile first: tsc -b').toBe(true);
      await allocator.app.listen({ host: '127.0.0.1', port: 0 });
      const port = (allocator.app.server.address() as AddressInfo).port;
      const cwd = mkdtempSync(join(tmpdir(), 'allocator-healthcheck-'));
      try {
        const ok = await runBin(['healthcheck', '--url', `http://127.0.0.1:${port}`], cwd);
        expect(ok, ok.stderr).toMatchObject({ code: 0 });
        await allocator.app.close();
        const down = await runBin(['healthcheck', '--url', `http://127.0.0.1:${port}`], cwd);
        expect(down.code).toBe(1);
        expect(down.stderr).toMatch(/^not reachable: /);
      } finally {
        rmSync(cwd, { recursive: true, force: true });
      }
    });
  });

  it.each(Object.entries(DASHBOARD_JOBS).filter(([file]) => file !== 'file-allocator.json'))(
    '%s uses only metrics and labels its service declares',
    async (file, { service: name }) => {
      const families = await serviceMetrics(name);
      const exprs = expressions(dashboards.get(file) as Dashboard);
      expect(exprs.length).toBeGreaterThan(10);
      for (const expr of exprs) expect(unknownReferences(expr, families), `${file}: ${expr}`).toEqual([]);
      // Each of the service's own metrics (not the kernel's or the defaults) is on its dashboard.
      const used = new Set(exprs.flatMap((expr) => promqlMetricNames(expr).map(metricFamilyName)));
      for (const metric of declaredMetrics(read(join(REPO, METRICS_SOURCES[name] as string))).keys()) {
        expect([...used], `${file}: ${metric}`).toContain(metric);
      }
    },
  );
});

// --- Makefile -------------------------------------------------------------------------------------------

const ALLOCATOR_TARGETS: Record<string, string> = {
  'allocator-up': '-f deploy/allocator/docker-compose.yml up -d --build',
  'allocator-up-prod': '-f deploy/allocator/docker-compose.prod.yml up -d --build',
  'allocator-down': '-f deploy/allocator/docker-compose.yml down',
  'allocator-down-prod': '-f deploy/allocator/docker-compose.prod.yml down',
  'allocator-logs': '-f deploy/allocator/docker-compose.yml logs -f app',
  'allocator-migrate': '-f deploy/allocator/docker-compose.yml run --rm app file-allocator migrate',
  'allocator-backup':
    '-f deploy/allocator/docker-compose.yml exec -T postgres pg_dump -U postgres file_allocator',
};
const MAKE = findExecutable('make');
if (MAKE === undefined)
  console.warn('allocator deploy: running the make targets skipped: make is not installed');

describe('Makefile (allocator targets)', () => {
  const makefile = read(join(REPO, 'Makefile'));

  it('has every allocator target next to the existing owsc and rag ones', () => {
    for (const target of ['allocator-docker-build', ...Object.keys(ALLOCATOR_TARGETS)]) {
      expect(makefile, target).toMatch(new RegExp(`^${target}:.*## allocator: `, 'm'));
    }
    for (const target of [
      'docker-build',
      'docker-run',
      'up-prod',
      'up-dev',
      'down',
      'logs',
      'logs-all',
      'migrate',
      'clean',
      'secrets',
      'demo',
    ]) {
      expect(makefile, target).toMatch(new RegExp(`^${target}:.*## (owsc|rag): `, 'm'));
    }
  });

  describe.skipIf(MAKE === undefined)('with make', () => {
    const { run: make, barePath: bare, remove } = makeRunner(MAKE ?? 'make', REPO);
    afterAll(remove);

    it('runs the compose commands with `docker compose` or `docker-compose`', () => {
      for (const [target, command] of Object.entries(ALLOCATOR_TARGETS)) {
        const dryRun = make(['-n', target]);
        expect(dryRun.status, dryRun.stderr).toBe(0);
        expect(dryRun.stdout.replace(/\s*\\\n\s*/g, ' '), target).toMatch(
          new RegExp(`(docker compose|docker-compose) ${command.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}`),
        );
      }
      const backup = make(['-n', 'allocator-backup']).stdout;
      expect(backup).toContain('exec -T app tar -czf - -C /app storage > storage-backup.tar.gz.partial');
      expect(make(['-n', 'allocator-docker-build']).stdout).toContain(
        'docker build -f deploy/allocator/Dockerfile -t file-allocator:latest .',
      );
    });

    it('skips with a message and exit 0 when docker is missing', () => {
      for (const target of Object.keys(ALLOCATOR_TARGETS)) {
        const run = make([target], { PATH: bare });
        expect(run.status, `${target}: ${run.stderr}`).toBe(0);
        expect(run.stdout.trim()).toBe(`docker-compose is not installed: skipping ${target}`);
      }
      const build = make(['allocator-docker-build'], { PATH: bare });
      expect(build.stdout.trim()).toBe('docker is not installed: skipping allocator-docker-build');
      expect(existsSync(join(REPO, 'backup.sql.partial'))).toBe(false);
    });

    it('lists the allocator targets in `make help`', () => {
      const help = make([]);
      expect(help.status).toBe(0);
      for (const target of ['allocator-docker-build', ...Object.keys(ALLOCATOR_TARGETS)]) {
        expect(help.stdout).toMatch(new RegExp(`^  ${target} +allocator: `, 'm'));
      }
    });
  });
});

// --- Optional: the compose CLI and promtool -------------------------------------------------------------

const COMPOSE = composeCommand();
if (COMPOSE === undefined) {
  console.warn(
    'allocator deploy: `docker compose config` skipped: neither docker compose nor docker-compose is installed',
  );
}
const PROMTOOL = findExecutable('promtool');
if (PROMTOOL === undefined)
  console.warn('allocator deploy: promtool checks skipped: promtool is not installed');

describe.skipIf(COMPOSE === undefined)('compose config', () => {
  it.each(COMPOSE_FILES)('accepts %s', (file) => {
    const [command, ...prefix] = COMPOSE ?? [];
    // An empty environment file: the check must not depend on a local deploy/allocator/.env.
    const dir = mkdtempSync(join(tmpdir(), 'allocator-compose-'));
    try {
      const envFile = join(dir, 'empty.env');
      writeFileSync(envFile, '');
      const result = spawnSync(
        command ?? 'docker',
        [...prefix, '--env-file', envFile, '-f', join(DEPLOY, file), 'config'],
        { encoding: 'utf8', env: { PATH: process.env.PATH ?? '', HOME: dir } },
      );
      expect(result.status, result.stderr).toBe(0);
      const resolved = parse(result.stdout) as ComposeFile;
      expect(Object.keys(resolved.services).sort()).toEqual([
        'app',
        'grafana',
        'postgres',
        'prometheus',
        'redis',
      ]);
      const appEnv = service(resolved, 'app').environment ?? {};
      expect(String(appEnv.APP_PORT)).toBe('8000');
      expect(String(appEnv.QUEUE_BACKEND)).toBe(file === 'docker-compose.yml' ? 'inproc' : 'redis');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe.skipIf(PROMTOOL === undefined)('promtool', () => {
  const promtool = (args: string[], cwd = REPO) =>
    spawnSync(PROMTOOL ?? 'promtool', args, { cwd, encoding: 'utf8' });
  let dir: string;
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'allocator-promtool-'));
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('accepts the configuration and the rules', () => {
    const config = promtool(['check', 'config', 'monitoring/prometheus.yml']);
    expect(config.status, config.stdout + config.stderr).toBe(0);
    const checked = promtool(['check', 'rules', 'monitoring/alerts.yml']);
    expect(checked.status, checked.stdout + checked.stderr).toBe(0);
    expect(checked.stdout).toContain('SUCCESS: 10 rules found');
  });

  it('parses every dashboard expression as PromQL', () => {
    // Grafana's variables replaced by what they stand for; each expression becomes a recording rule.
    const exprs = [...dashboards.values()].flatMap(expressions);
    const file = join(dir, 'dashboards.rules.yml');
    writeFileSync(
      file,
      stringify({
        groups: [
          {
            name: 'dashboards',
            rules: exprs.map((expr, index) => ({
              record: `dashboard:expr_${index}`,
              expr: expr.replaceAll('$__rate_interval', '1m').replaceAll('$instance', '.*'),
            })),
          },
        ],
      }),
    );
    const checked = promtool(['check', 'rules', file]);
    expect(checked.status, checked.stdout + checked.stderr).toBe(0);
    expect(checked.stdout).toContain(`SUCCESS: ${exprs.length} rules found`);
  });

  it('fires the queue and availability alerts exactly at their thresholds and durations', () => {
    const annotation = (name: string, key: string, values: Record<string, string>) =>
      (rules.find((rule) => rule.alert === name)?.annotations[key] ?? '').replace(
        /\{\{ (\$value|\$labels\.\w+) \}\}/g,
        (_all, ref: string) => values[ref] ?? '',
      );
    const expected = (name: string, labels: Record<string, string>, values: Record<string, string>) => ({
      exp_labels: { severity: ALERTS[name]?.severity, ...labels },
      exp_annotations: {
        summary: annotation(name, 'summary', values),
        description: annotation(name, 'description', values),
      },
    });
    const target = { job: 'file-allocator', instance: 'app:8000' };
    const tests = {
      rule_files: [join(MONITORING, 'alerts.yml')],
      evaluation_interval: '1m',
      tests: [
        {
          interval: '1m',
          input_series: [
            // 10 dead-lettered jobs are tolerated; 11 for 5 minutes fire.
            {
              series: 'dead_letter_queue_depth{job="file-allocator",instance="app:8000",job_type="media"}',
              values: '10x5 11x10',
            },
            {
              series: 'dead_letter_queue_depth{job="file-allocator",instance="app:8000",job_type="json"}',
              values: '0x15',
            },
            {
              series: 'queue_depth{job="file-allocator",instance="app:8000",job_type="media"}',
              values: '100x12 101x12',
            },
            { series: 'up{job="file-allocator",instance="app:8000"}', values: '1x3 0x5' },
          ],
          alert_rule_test: [
            { eval_time: '5m', alertname: 'DeadLetterQueueDepthHigh', exp_alerts: [] },
            { eval_time: '10m', alertname: 'DeadLetterQueueDepthHigh', exp_alerts: [] },
            {
              eval_time: '11m',
              alertname: 'DeadLetterQueueDepthHigh',
              exp_alerts: [expected('DeadLetterQueueDepthHigh', {}, { $value: '11' })],
            },
            { eval_time: '12m', alertname: 'QueueDepthHigh', exp_alerts: [] },
            { eval_time: '22m', alertname: 'QueueDepthHigh', exp_alerts: [] },
            {
              eval_time: '23m',
              alertname: 'QueueDepthHigh',
              exp_alerts: [expected('QueueDepthHigh', {}, { $value: '101' })],
            },
            { eval_time: '3m', alertname: 'ApplicationDown', exp_alerts: [] },
            { eval_time: '4m', alertname: 'ApplicationDown', exp_alerts: [] },
            {
              eval_time: '5m',
              alertname: 'ApplicationDown',
              exp_alerts: [expected('ApplicationDown', target, { '$labels.instance': 'app:8000' })],
            },
          ],
        },
      ],
    };
    const file = join(dir, 'alerts.test.yml');
    writeFileSync(file, stringify(tests));
    const result = promtool(['test', 'rules', file], dir);
    expect(result.status, result.stdout + result.stderr).toBe(0);
  });
});

describe('monitoring/README.md', () => {
  it('explains every alert and how to start the stacks', () => {
    const readme = read(join(MONITORING, 'README.md'));
    for (const name of Object.keys(ALERTS)) expect(readme, name).toContain(`\`${name}\``);
    expect(readme).toContain('deploy/allocator/docker-compose.yml');
    expect(readme).toContain('deploy/allocator/docker-compose.prod.yml');
    expect(statSync(join(MONITORING, 'README.md')).size).toBeLessThan(20_000);
    for (const path of [...readme.matchAll(/\b((?:deploy|monitoring)\/[\w./-]*[\w-])/g)].map(
      (m) => m[1] as string,
    )) {
      expect(existsSync(join(REPO, path)), path).toBe(true);
    }
  });
});
