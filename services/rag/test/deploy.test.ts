// Deployment assets of spec §2.2 (acceptance case 34), checked without Docker: the compose files (dev, prod,
// demo), the nginx configs, the Dockerfile and its entrypoint, the cleanup CronJob, the secret placeholders, the
// env examples, the root Makefile's rag targets and the deployment guide. `nginx -t` (and a live run of the
// proxy config against a stub backend) and `docker compose config -q` run when those tools are installed.
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { chmodSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync } from 'node:fs';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { createServer, request, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { delimiter, join, resolve } from 'node:path';
import {
  findExecutable,
  type NginxDirective,
  nginxBinary,
  nginxNamed,
  nginxSizeBytes,
  nginxTestConfig,
  parseNginx,
} from '@quintet/kernel/testing-deploy';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { loadConfig, StartupRefusedError } from '../src/config.js';

const REPO = resolve(import.meta.dirname, '../../..');
const SERVICE = join(REPO, 'services/rag');
const DEPLOY = join(REPO, 'deploy/rag');
const NGINX_DIR = join(REPO, 'deploy/nginx');
const DOCKERFILE = join(DEPLOY, 'Dockerfile');
const ENTRYPOINT = join(DEPLOY, 'entrypoint.sh');
const CRONJOB = join(REPO, 'deploy/k8s/cleanup-tmp-cronjob.yaml');
const GUIDE = join(SERVICE, 'docs/DEPLOYMENT.md');
const DEFAULT_MAX_UPLOAD_BYTES = 25 * 1024 * 1024;
const SECRET_NAMES = ['jwt_secret', 'database_url', 'redis_url', 'gemini_api_key'];
/** Secrets the service reads through NAME_FILE (spec §2.3.7); none may be baked into an image or a compose file. */
const SECRET_VARIABLES = ['JWT_SECRET', 'DATABASE_URL', 'REDIS_URL', 'GEMINI_API_KEY', 'LOCAL_LLM_API_KEY'];
/** Database passwords production start-up refuses (spec §2.3.9). */
const REJECTED_DB_PASSWORDS = [
  'changeme_local_only',
  'localdev_password_change_in_production',
  'postgres',
  'password',
  'changeme_demo_password',
];
/** Every variable of the configuration table (spec §3.13). */
const CONFIGURATION_TABLE = [
  'ENVIRONMENT',
  'PORT',
  'APP_PORT',
  'WEB_CONCURRENCY',
  'STRICT_MODE',
  'RUN_MIGRATIONS',
  'LOG_LEVEL',
  'LOG_FILE',
  'DATA_DIR',
  'UPLOAD_DIR',
  'TMP_DIR',
  'UPLOAD_FOLDER',
  'TMP_MAX_AGE_HOURS',
  'DATABASE_URL',
  'DB_POOL_SIZE',
  'DB_MAX_OVERFLOW',
  'REDIS_URL',
  'REQUIRE_REDIS_IN_PRODUCTION',
  'JWT_SECRET',
  'JWT_ISSUER',
  'JWT_AUDIENCE',
  'ACCESS_TOKEN_EXPIRE_MINUTES',
  'ALLOW_DEV_LOGIN',
  'ALLOW_REGISTRATION',
  'REQUIRE_CSRF_HEADER',
  'CORS_ORIGINS',
  'CORS_ALLOW_CREDENTIALS',
  'CORS_ALLOW_METHODS',
  'CORS_ALLOW_HEADERS',
  'RATE_LIMIT_PER_MINUTE',
  'CHAT_RATE_LIMIT_PER_MINUTE',
  'UPLOAD_RATE_LIMIT_PER_MINUTE',
  'LOGIN_RATE_LIMIT_PER_MINUTE',
  'TRUSTED_PROXY_IPS',
  'METRICS_ALLOW_ALL',
  'METRICS_TOKEN',
  'MAX_JSON_MB',
  'MAX_UPLOAD_MB',
  'UPLOAD_PROFILE',
  'ALLOWED_UPLOAD_MIMES',
  'MAX_STORES_PER_USER',
  'PURGE_DELETED_AFTER_DAYS',
  'CHAT_RETENTION_DAYS',
  'QUERY_LOG_RETENTION_DAYS',
  'GCS_ARCHIVE_BUCKET',
  'DEFAULT_RAG_BACKEND',
  'ENABLE_GEMINI_BACKEND',
  'ENABLE_LOCAL_OPENAI_BACKEND',
  'GEMINI_MOCK_MODE',
  'ALLOW_MOCK_IN_PROD',
  'GEMINI_API_KEY',
  'GEMINI_API_BASE_URL',
  'DEFAULT_MODEL',
  'ALLOWED_MODELS',
  'GEMINI_HTTP_TIMEOUT_S',
  'GEMINI_RETRY_ATTEMPTS',
  'GEMINI_STREAM_RETRY_ATTEMPTS',
  'GEMINI_INGESTION_TIMEOUT_S',
  'LOCAL_LLM_BASE_URL',
  'LOCAL_LLM_API_KEY',
  'LOCAL_LLM_DEFAULT_MODEL',
  'LOCAL_LLM_MODELS',
  'LLM_TEMPERATURE',
  'LLM_MAX_OUTPUT_TOKENS',
  'LLM_STREAM_IDLE_TIMEOUT_S',
  'EMBEDDING_PROVIDER',
  'EMBEDDING_MODEL',
  'EMBEDDING_DIM',
  'RAG_TOP_K',
  'RAG_CANDIDATES',
  'RAG_RRF_K',
  'RAG_MIN_TERM_COVERAGE',
  'RAG_CHUNK_TOKENS',
  'RAG_CHUNK_OVERLAP',
  'RAG_MAX_CONTEXT_TOKENS',
  'RAG_ANSWER_SENTENCES',
  'RAG_NO_ANSWER_TEXT',
  'RAG_REFUSE_WITHOUT_CONTEXT',
  'ALLOW_METADATA_FILTERS',
  'METADATA_FILTER_ALLOWED_KEYS',
  'STREAM_KEEPALIVE_SECS',
  'MAX_CONCURRENT_STREAMS',
  'STREAM_SLOT_WAIT_MS',
  'STREAM_MAX_BUFFER_BYTES',
  'INGEST_CONCURRENCY',
  'INGEST_WORKER_CONCURRENCY',
  'INGEST_JOB_TIMEOUT_S',
  'INGEST_MAX_ATTEMPTS',
  'INGEST_IN_PROCESS',
  'PDF_MAX_PAGES',
  'WATCHDOG_TTL_MINUTES',
  'WATCHDOG_CRON_MINUTES',
  'PRICE_PER_MTOK_INPUT',
  'PRICE_PER_MTOK_OUTPUT',
  'PRICE_PER_MTOK_INDEX',
  'MODEL_PRICING',
  'PRICE_CHECK_STRICT',
  'BUDGET_HOLD_USD',
  'BUDGET_ALERT_PERCENT',
];

function read(path: string): string {
  return readFileSync(path, 'utf8');
}

/** A local HTTP server answering `status` on `path`; for the probes of the Dockerfile and the compose files. */
async function probeTarget(
  path: string,
): Promise<{ port: number; setStatus(status: number): void; close(): Promise<void> }> {
  let status = 200;
  const server = createServer((req, res) => {
    res.writeHead(req.url === path ? status : 404, { 'content-type': 'application/json' });
    res.end('{"status":"ok"}');
  });
  await new Promise<void>((done) => server.listen(0, '127.0.0.1', done));
  return {
    port: (server.address() as AddressInfo).port,
    setStatus: (next) => {
      status = next;
    },
    close: () => new Promise((done) => server.close(() => done())),
  };
}

/** Runs a `node -e` probe (an exec-form health check) with its port 8000 replaced; resolves to the exit code. */
function runNodeProbe(argv: string[], port: number): Promise<number | null> {
  expect(argv[0]).toBe('node');
  const args = argv.slice(1).map((arg) => arg.replace('127.0.0.1:8000', `127.0.0.1:${port}`));
  return new Promise((done) => {
    const child = spawn(process.execPath, args, { stdio: 'ignore' });
    child.once('close', done);
  });
}

/** A probe passes on 200 from `path`, fails on 503, and fails (rather than hangs) when nothing listens. */
async function expectProbeFollows(argv: string[], path: string): Promise<void> {
  const target = await probeTarget(path);
  try {
    expect(await runNodeProbe(argv, target.port)).toBe(0);
    target.setStatus(503);
    expect(await runNodeProbe(argv, target.port)).toBe(1);
  } finally {
    await target.close();
  }
  expect(await runNodeProbe(argv, target.port)).toBe(1);
}

// --- compose files ------------------------------------------------------------------------------------------

interface Healthcheck {
  test?: string[] | string;
  disable?: boolean;
  interval?: string;
}

interface ComposeService {
  build?: { context: string; dockerfile: string };
  image?: string;
  command?: string[];
  env_file?: { path: string; required?: boolean }[];
  environment?: Record<string, string>;
  secrets?: string[];
  ports?: string[];
  expose?: string[];
  volumes?: string[];
  networks?: string[];
  depends_on?: Record<string, { condition: string }>;
  healthcheck?: Healthcheck;
  restart?: string;
}

interface ComposeFile {
  services: Record<string, ComposeService>;
  networks?: Record<string, { internal?: boolean; ipam?: { config: { subnet: string }[] } } | null>;
  secrets?: Record<string, { file: string }>;
  volumes?: Record<string, unknown>;
}

/** Parsed with YAML merge keys (`<<: *anchor`), as compose resolves them. */
function loadCompose(file: string): ComposeFile {
  return parse(read(join(DEPLOY, file)), { merge: true }) as ComposeFile;
}

function service(compose: ComposeFile, name: string): ComposeService {
  const found = compose.services[name];
  if (found === undefined) throw new Error(`no service ${name}`);
  return found;
}

function healthArgv(check: Healthcheck | undefined): string[] {
  const test = check?.test;
  if (!Array.isArray(test) || test[0] !== 'CMD') throw new Error(`not an exec-form health check: ${test}`);
  return test.slice(1);
}

const dev = loadCompose('docker-compose.yml');
const prod = loadCompose('docker-compose.prod.yml');
const demo = loadCompose('docker-compose.demo.yml');
const APP_SERVICES = ['migrations', 'backend', 'worker'];

describe.each([
  ['docker-compose.yml', dev],
  ['docker-compose.prod.yml', prod],
])('deploy/rag/%s (shared shape)', (_file, compose) => {
  it('has db, redis, a one-shot migrations service, backend and worker', () => {
    for (const name of ['db', 'redis', ...APP_SERVICES]) expect(compose.services, name).toHaveProperty(name);
  });

  it('runs PostgreSQL 16 with pgvector and Redis with an append-only file, both with health checks', () => {
    const db = service(compose, 'db');
    expect(db.image).toBe('pgvector/pgvector:pg16');
    expect(db.healthcheck?.test).toEqual(['CMD-SHELL', 'pg_isready -U rag -d rag']);
    expect(db.volumes).toEqual(['pgdata:/var/lib/postgresql/data']);
    const redis = service(compose, 'redis');
    expect(redis.image).toMatch(/^redis:7/);
    expect(redis.command?.join(' ')).toContain('--appendonly yes');
    expect(redis.healthcheck?.test).toEqual(['CMD', 'redis-cli', 'ping']);
  });

  it('builds every app service from deploy/rag/Dockerfile with the repository root as context', () => {
    for (const name of APP_SERVICES) {
      const build = service(compose, name).build;
      expect(resolve(DEPLOY, build?.context ?? '')).toBe(REPO);
      expect(resolve(DEPLOY, build?.context ?? '', build?.dockerfile ?? '')).toBe(DOCKERFILE);
      expect(service(compose, name).env_file).toEqual([{ path: '../../services/rag/.env', required: false }]);
      expect(resolve(DEPLOY, service(compose, name).env_file?.[0]?.path ?? '')).toBe(join(SERVICE, '.env'));
    }
  });

  it('migrates once in the migrations service, then starts backend and worker without migrating again', () => {
    const migrations = service(compose, 'migrations');
    expect(migrations.command).toEqual(['migrate']);
    expect(migrations.restart).toBe('no');
    expect(migrations.environment?.RUN_MIGRATIONS).toBe('true');
    expect(migrations.depends_on).toEqual({ db: { condition: 'service_healthy' } });
    for (const name of ['backend', 'worker']) {
      const app = service(compose, name);
      expect(app.environment?.RUN_MIGRATIONS, name).toBe('false');
      expect(app.depends_on, name).toEqual({
        migrations: { condition: 'service_completed_successfully' },
        redis: { condition: 'service_healthy' },
      });
    }
  });

  it('runs `serve --workers 4` and the standalone `worker` on shared upload and temp volumes', () => {
    expect(service(compose, 'backend').command).toEqual([
      'serve',
      '--host',
      '0.0.0.0',
      '--port',
      '8000',
      '--workers',
      '4',
    ]);
    expect(service(compose, 'worker').command).toEqual(['worker']);
    for (const name of APP_SERVICES) {
      expect(service(compose, name).volumes, name).toEqual(['appdata:/app/data', 'tmp:/app/tmp']);
    }
  });

  it('probes the backend on /ready and disables the HTTP probe for the worker, which listens on nothing', async () => {
    const backend = service(compose, 'backend').healthcheck;
    expect(backend?.disable).toBeUndefined();
    await expectProbeFollows(healthArgv(backend), '/ready');
    expect(service(compose, 'worker').healthcheck).toEqual({ disable: true });
  });
});

describe('deploy/rag/docker-compose.prod.yml', () => {
  const app = (name: string) => service(prod, name);

  it('has exactly db, redis, migrations, backend, worker and proxy', () => {
    expect(Object.keys(prod.services).sort()).toEqual(
      ['backend', 'db', 'migrations', 'proxy', 'redis', 'worker'].sort(),
    );
  });

  it('publishes only the proxy, host port 8888 to nginx-unprivileged on 8080', () => {
    const proxy = app('proxy');
    expect(proxy.image).toMatch(/^nginxinc\/nginx-unprivileged:[\w.-]+$/);
    expect(proxy.ports).toEqual(['8888:8080']);
    for (const [name, other] of Object.entries(prod.services)) {
      if (name !== 'proxy') expect(other.ports, name).toBeUndefined();
    }
    expect(app('backend').expose).toEqual(['8000']);
  });

  it('mounts deploy/nginx/rag.prod.conf as the proxy server and waits for a healthy backend', async () => {
    const [mount, ...others] = app('proxy').volumes ?? [];
    expect(others).toEqual([]);
    const [source, target, mode] = (mount ?? '').split(':');
    expect(resolve(DEPLOY, source ?? '')).toBe(join(NGINX_DIR, 'rag.prod.conf'));
    expect(target).toBe('/etc/nginx/conf.d/default.conf');
    expect(mode).toBe('ro');
    expect(app('proxy').depends_on).toEqual({ backend: { condition: 'service_healthy' } });
    expect(app('proxy').healthcheck?.test).toEqual([
      'CMD',
      'wget',
      '-q',
      '-O',
      '/dev/null',
      'http://127.0.0.1:8080/live',
    ]);
  });

  it('keeps PostgreSQL and Redis on the internal `data` network only', () => {
    expect(prod.networks?.data?.internal).toBe(true);
    expect(app('db').networks).toEqual(['data']);
    expect(app('redis').networks).toEqual(['data']);
    expect(app('migrations').networks).toEqual(['data']);
    expect(app('proxy').networks).toEqual(['edge']);
    expect(app('backend').networks).toEqual(['data', 'edge']);
    expect(prod.networks?.edge?.internal).toBeUndefined();
  });

  it('trusts X-Forwarded-For only from the proxy subnet', () => {
    const subnets = prod.networks?.edge?.ipam?.config.map((entry) => entry.subnet);
    expect(subnets).toHaveLength(1);
    for (const name of APP_SERVICES) expect(app(name).environment?.TRUSTED_PROXY_IPS).toBe(subnets?.[0]);
  });

  it('enforces the production settings in every app service', () => {
    for (const name of APP_SERVICES) {
      expect(app(name).environment, name).toMatchObject({
        ENVIRONMENT: 'production',
        ALLOW_DEV_LOGIN: 'false',
        REQUIRE_CSRF_HEADER: 'true',
        STRICT_MODE: 'true',
      });
    }
  });

  it('reads every secret from /run/secrets through *_FILE and never as a plain variable', () => {
    for (const name of APP_SERVICES) {
      const environment = app(name).environment ?? {};
      expect(app(name).secrets?.sort(), name).toEqual([...SECRET_NAMES].sort());
      for (const secret of SECRET_NAMES) {
        expect(environment[`${secret.toUpperCase()}_FILE`], name).toBe(`/run/secrets/${secret}`);
      }
      for (const variable of SECRET_VARIABLES) expect(environment, name).not.toHaveProperty(variable);
    }
    expect(app('db').environment).toEqual({
      POSTGRES_USER: 'rag',
      POSTGRES_DB: 'rag',
      POSTGRES_PASSWORD_FILE: '/run/secrets/postgres_password',
    });
    expect(app('db').secrets).toEqual(['postgres_password']);
    // every declared secret is a file of services/rag/secrets, named like its placeholder in secrets.example
    const declared = Object.entries(prod.secrets ?? {});
    expect(declared.map(([name]) => name).sort()).toEqual([...SECRET_NAMES, 'postgres_password'].sort());
    for (const [name, { file }] of declared) {
      expect(resolve(DEPLOY, file)).toBe(join(SERVICE, 'secrets', name));
      expect(existsSync(join(SERVICE, 'secrets.example', name)), name).toBe(true);
    }
  });
});

describe('deploy/rag/docker-compose.yml (development)', () => {
  it('publishes the backend (API and UI) on 8000 and nothing else', () => {
    expect(Object.keys(dev.services).sort()).toEqual(['backend', 'db', 'migrations', 'redis', 'worker']);
    expect(service(dev, 'backend').ports).toEqual(['8000:8000']);
    for (const name of ['db', 'redis', 'migrations', 'worker']) {
      expect(service(dev, name).ports, name).toBeUndefined();
    }
  });

  it('connects the app to its own db and redis in development mode', () => {
    const environment = service(dev, 'backend').environment ?? {};
    const db = service(dev, 'db').environment ?? {};
    expect(environment.ENVIRONMENT).toBe('development');
    const url = new URL(environment.DATABASE_URL ?? '');
    expect([url.protocol, url.hostname, url.port, url.pathname]).toEqual([
      'postgresql:',
      'db',
      '5432',
      '/rag',
    ]);
    expect([url.username, url.password]).toEqual([db.POSTGRES_USER, db.POSTGRES_PASSWORD]);
    // the development password is one production refuses, so this file cannot slip into production
    expect(REJECTED_DB_PASSWORDS).toContain(url.password);
    expect(environment.REDIS_URL).toBe('redis://redis:6379/0');
  });
});

describe('deploy/rag/docker-compose.demo.yml', () => {
  const app = service(demo, 'app');

  it('runs `rag-assistant demo` alone, in mock mode, with the UI on host port 8080', () => {
    expect(Object.keys(demo.services)).toEqual(['app']);
    expect(app.command).toEqual([
      'demo',
      '--host',
      '0.0.0.0',
      '--port',
      '8000',
      '--data-dir',
      '/app/data/demo-data',
    ]);
    expect(app.ports).toEqual(['8080:8000']);
    expect(app.environment).toMatchObject({
      GEMINI_MOCK_MODE: 'true',
      ALLOW_DEV_LOGIN: 'true',
      ENVIRONMENT: 'development',
      PORT: '8000',
    });
    expect(resolve(DEPLOY, app.build?.context ?? '', app.build?.dockerfile ?? '')).toBe(DOCKERFILE);
  });

  it('keeps its demo-data in a volume and matches .env.demo.example', () => {
    expect(app.volumes).toContain('demodata:/app/data');
    const example = envFile('.env.demo.example').values;
    for (const [name, value] of Object.entries(app.environment ?? {}))
      expect(example.get(name), name).toBe(value);
  });
});

// --- nginx --------------------------------------------------------------------------------------------------

function single(directives: NginxDirective[] | undefined, name: string): string[] {
  const found = nginxNamed(directives, name);
  expect(found, name).toHaveLength(1);
  return found[0]?.args ?? [];
}

const METRICS_ALLOW_LIST = ['127.0.0.0/8', '10.0.0.0/8', '172.16.0.0/12', '192.168.0.0/16', '::1'];
const NGINX_FILES = {
  'rag.conf': { upstream: '127.0.0.1:8000', listen: '80' },
  'rag.prod.conf': { upstream: 'backend:8000', listen: '8080' },
};

describe.each(Object.entries(NGINX_FILES))('deploy/nginx/%s', (file, expected) => {
  const conf = parseNginx(read(join(NGINX_DIR, file)));
  const server = nginxNamed(conf, 'server')[0]?.block;
  const locations = new Map(nginxNamed(server, 'location').map((l) => [l.args.join(' '), l.block ?? []]));

  it('is an upstream and one server block for the http context', () => {
    expect(conf.map((directive) => directive.name)).toEqual(['upstream', 'server']);
    const upstream = conf[0];
    expect(upstream?.args).toEqual(['rag_backend']);
    expect(single(upstream?.block, 'server')).toEqual([expected.upstream]);
    expect(single(server, 'listen')).toEqual([expected.listen]);
  });

  it('has exactly the /health, /metrics, /api/ and / locations, all proxied to the backend', () => {
    expect([...locations.keys()]).toEqual(['= /health', '= /metrics', '/api/', '/']);
    for (const [path, block] of locations)
      expect(single(block, 'proxy_pass'), path).toEqual(['http://rag_backend']);
  });

  it('passes /health through untouched', () => {
    expect(locations.get('= /health')?.map((d) => d.name)).toEqual(['proxy_pass']);
  });

  it('allows /metrics from loopback and private networks only, then denies all', () => {
    const block = locations.get('= /metrics') ?? [];
    const access = block.filter((d) => d.name === 'allow' || d.name === 'deny');
    expect(access.map((d) => `${d.name} ${d.args.join(' ')}`)).toEqual([
      ...METRICS_ALLOW_LIST.map((range) => `allow ${range}`),
      'deny all',
    ]);
  });

  it('streams /api/ unbuffered and uncached, with 300 s reads and a 50m body limit above MAX_UPLOAD_MB', () => {
    const api = locations.get('/api/');
    expect(single(api, 'proxy_buffering')).toEqual(['off']);
    expect(single(api, 'proxy_cache')).toEqual(['off']);
    expect(single(api, 'proxy_read_timeout')).toEqual(['300s']);
    expect(single(api, 'client_max_body_size')).toEqual(['50m']);
    expect(nginxSizeBytes('50m')).toBeGreaterThan(DEFAULT_MAX_UPLOAD_BYTES);
    expect(nginxNamed(server, 'client_max_body_size')).toEqual([]);
  });

  it('replaces a client-sent X-Forwarded-For with the peer address (the backend trusts the proxy)', () => {
    const headers = nginxNamed(server, 'proxy_set_header').map((d) => d.args);
    expect(headers).toContainEqual(['X-Forwarded-For', '$remote_addr']);
    expect(headers).toContainEqual(['X-Forwarded-Proto', '$scheme']);
    const everywhere = JSON.stringify(conf);
    expect(everywhere).not.toContain('$proxy_add_x_forwarded_for');
  });

  it('has the same locations as its sibling (the host and the compose variants differ only in upstream and port)', () => {
    const other = file === 'rag.conf' ? 'rag.prod.conf' : 'rag.conf';
    const otherServer = nginxNamed(parseNginx(read(join(NGINX_DIR, other))), 'server')[0]?.block ?? [];
    expect(otherServer.filter((d) => d.name !== 'listen')).toEqual(
      (server ?? []).filter((d) => d.name !== 'listen'),
    );
  });
});

const NGINX = nginxBinary();
if (NGINX === undefined)
  console.warn('deploy: `nginx -t` and the live proxy checks skipped: nginx is not installed');

/** The config with its upstream pointed at 127.0.0.1:`upstreamPort` and (optionally) its listen port changed. */
function stubbed(file: string, upstreamPort: number, listenPort?: number): string {
  let text = read(join(NGINX_DIR, file)).replace(
    /server\s+[\w.-]+:8000;/,
    `server 127.0.0.1:${upstreamPort};`,
  );
  if (listenPort !== undefined) text = text.replace(/listen\s+\d+;/, `listen 127.0.0.1:${listenPort};`);
  return text;
}

describe.skipIf(NGINX === undefined)('nginx', () => {
  it.each(Object.keys(NGINX_FILES))('accepts %s with its upstream stubbed (nginx -t)', async (file) => {
    const prefix = await mkdtemp(join(tmpdir(), 'rag-nginx-'));
    try {
      await writeFile(join(prefix, file), stubbed(file, 8000));
      await writeFile(
        join(prefix, 'nginx.conf'),
        nginxTestConfig(prefix, join(prefix, file), { http: ['access_log off;'] }),
      );
      const result = spawnSync(
        NGINX ?? 'nginx',
        ['-t', '-p', prefix, '-e', join(prefix, 'error.log'), '-c', join(prefix, 'nginx.conf')],
        { encoding: 'utf8' },
      );
      expect(result.stderr).toContain('test is successful');
      expect(result.status).toBe(0);
    } finally {
      await rm(prefix, { recursive: true, force: true });
    }
  });

  describe('rag.prod.conf in front of a stub backend', () => {
    let prefix = '';
    let nginx: ChildProcess | undefined;
    let backend: Server | undefined;
    let proxyPort = 0;
    const seen: { url: string; forwardedFor: string | undefined; bodyBytes: number }[] = [];

    beforeAll(async () => {
      backend = createServer((req, res) => {
        let bodyBytes = 0;
        req.on('data', (chunk: Buffer) => {
          bodyBytes += chunk.length;
        });
        req.on('end', () => {
          seen.push({
            url: req.url ?? '',
            forwardedFor: req.headers['x-forwarded-for'] as string,
            bodyBytes,
          });
          if (req.url === '/api/stream') {
            // one event now, the rest a second later: a buffering proxy would hold the first one back
            res.writeHead(200, { 'content-type': 'text/event-stream' });
            res.write('data: first\n\n');
            setTimeout(() => res.end('data: [DONE]\n\n'), 1000);
            return;
          }
          res.writeHead(200, { 'content-type': 'application/json' });
          res.end(JSON.stringify({ path: req.url }));
        });
      });
      await new Promise<void>((done) => backend?.listen(0, '127.0.0.1', done));
      const backendPort = (backend.address() as AddressInfo).port;
      // a free port for nginx: bind, read, release
      const probe = createServer();
      await new Promise<void>((done) => probe.listen(0, '127.0.0.1', done));
      proxyPort = (probe.address() as AddressInfo).port;
      await new Promise((done) => probe.close(done));

      prefix = await mkdtemp(join(tmpdir(), 'rag-nginx-live-'));
      await writeFile(join(prefix, 'rag.prod.conf'), stubbed('rag.prod.conf', backendPort, proxyPort));
      await writeFile(
        join(prefix, 'nginx.conf'),
        nginxTestConfig(prefix, join(prefix, 'rag.prod.conf'), {
          main: ['daemon off;', 'master_process off;'],
          http: ['access_log off;'],
        }),
      );
      nginx = spawn(
        NGINX ?? 'nginx',
        ['-p', prefix, '-e', join(prefix, 'error.log'), '-c', join(prefix, 'nginx.conf')],
        {
          stdio: 'ignore',
        },
      );
      for (let attempt = 0; attempt < 100; attempt++) {
        const up = await fetch(`http://127.0.0.1:${proxyPort}/health`).then(
          () => true,
          () => false,
        );
        if (up) return;
        await new Promise((done) => setTimeout(done, 50));
      }
      throw new Error(
        `nginx did not start: ${await readFile(join(prefix, 'error.log'), 'utf8').catch(() => '')}`,
      );
    });

    afterAll(async () => {
      nginx?.kill('SIGTERM');
      await new Promise((done) => backend?.close(done));
      if (prefix !== '') await rm(prefix, { recursive: true, force: true });
    });

    it('serves /health, /metrics (from loopback), /api/ and / through the backend', async () => {
      for (const path of ['/health', '/metrics', '/api/stores', '/', '/assets/app.js']) {
        const response = await fetch(`http://127.0.0.1:${proxyPort}${path}`);
        expect(response.status, path).toBe(200);
        expect(await response.json(), path).toEqual({ path });
      }
    });

    it('overwrites a spoofed X-Forwarded-For with the real peer', async () => {
      seen.length = 0;
      await fetch(`http://127.0.0.1:${proxyPort}/metrics`, { headers: { 'X-Forwarded-For': '10.9.8.7' } });
      expect(seen.map((s) => s.forwardedFor)).toEqual(['127.0.0.1']);
    });

    it('delivers the first SSE event of /api/ before the stream ends', async () => {
      const started = Date.now();
      const response = await fetch(`http://127.0.0.1:${proxyPort}/api/stream`);
      const reader = response.body?.getReader();
      const first = await reader?.read();
      const firstAfter = Date.now() - started;
      expect(new TextDecoder().decode(first?.value)).toContain('data: first');
      expect(firstAfter).toBeLessThan(800);
      while (!(await reader?.read())?.done) {
        // drain
      }
    });

    it('lets a 26 MB upload through to /api/ and answers 413 above 50m', async () => {
      const post = (path: string, bytes: number) =>
        new Promise<number>((done, fail) => {
          const req = request(
            {
              host: '127.0.0.1',
              port: proxyPort,
              path,
              method: 'POST',
              headers: { 'content-length': bytes },
            },
            (res) => {
              res.resume();
              res.on('end', () => done(res.statusCode ?? 0));
            },
          );
          req.on('error', fail);
          req.end(Buffer.alloc(bytes));
        });
      seen.length = 0;
      expect(await post('/api/upload', 26 * 1024 * 1024)).toBe(200);
      expect(seen.map((s) => s.bodyBytes)).toEqual([26 * 1024 * 1024]);
      expect(await post('/api/upload', 50 * 1024 * 1024 + 1)).toBe(413);
      expect(seen).toHaveLength(1);
    });
  });
});

// --- Dockerfile and entrypoint ------------------------------------------------------------------------------

interface DockerInstruction {
  keyword: string;
  args: string;
}

/** Instructions with continuation lines joined; comments and blank lines dropped. */
function parseDockerfile(text: string): DockerInstruction[] {
  const joined = text
    .split('\n')
    .filter((line) => !/^\s*#/.test(line))
    .join('\n')
    .replace(/\\\n/g, ' ');
  return joined
    .split('\n')
    .map((line) => line.trim())
    .filter((line) => line !== '')
    .map((line) => {
      const [keyword = '', ...rest] = line.split(/\s+/);
      return { keyword: keyword.toUpperCase(), args: rest.join(' ') };
    });
}

/** `ENV A=1 B=2` → {A: '1', B: '2'} */
function envAssignments(args: string): Record<string, string> {
  return Object.fromEntries([...args.matchAll(/(\w+)=(\S+)/g)].map((m) => [m[1] as string, m[2] as string]));
}

describe('deploy/rag/Dockerfile', () => {
  const instructions = parseDockerfile(read(DOCKERFILE));
  const lastFrom = instructions.map((i) => i.keyword).lastIndexOf('FROM');
  const build = instructions.slice(0, lastFrom);
  const runtime = instructions.slice(lastFrom);
  const runtimeEnv = Object.assign(
    {},
    ...runtime.filter((i) => i.keyword === 'ENV').map((i) => envAssignments(i.args)),
  );

  it('builds every stage on the pinned node:24-bookworm-slim', () => {
    const froms = instructions.filter((i) => i.keyword === 'FROM').map((i) => i.args.split(/\s+/)[0]);
    expect(froms.length).toBeGreaterThanOrEqual(2);
    for (const from of froms) expect(from).toBe('node:24-bookworm-slim');
  });

  it('installs with npm ci, compiles rag, builds the PGlite templates and drops dev dependencies', () => {
    const runs = build
      .filter((i) => i.keyword === 'RUN')
      .map((i) => i.args)
      .join('\n');
    expect(runs).toMatch(/npm ci --ignore-scripts .*--workspace @quintet\/kernel --workspace @quintet\/rag/);
    expect(runs).toContain('npx tsc -b services/rag');
    expect(runs.indexOf('node packages/kernel/scripts/build-pglite-template.mjs')).toBeGreaterThan(
      runs.indexOf('npx tsc -b services/rag'),
    );
    // The migrated template is made from the kernel's, and lands in the dist/ the runtime stage copies.
    expect(runs.indexOf('node services/rag/scripts/build-pglite-template.mjs')).toBeGreaterThan(
      runs.indexOf('node packages/kernel/scripts/build-pglite-template.mjs'),
    );
    expect(runs).toMatch(/npm prune --omit=dev/);
  });

  it('runs as a non-root user with the entrypoint and the serve command', () => {
    const users = runtime.filter((i) => i.keyword === 'USER');
    expect(users.at(-1)?.args).toBe('10001');
    const userIndex = runtime.lastIndexOf(users.at(-1) as DockerInstruction);
    const entrypoint = runtime.findIndex((i) => i.keyword === 'ENTRYPOINT');
    expect(entrypoint).toBeGreaterThan(userIndex);
    expect(JSON.parse(runtime[entrypoint]?.args ?? '')).toEqual(['rag-entrypoint']);
    const copies = runtime.filter((i) => i.keyword === 'COPY').map((i) => i.args);
    expect(copies).toContain('deploy/rag/entrypoint.sh /usr/local/bin/rag-entrypoint');
    const runs = runtime.filter((i) => i.keyword === 'RUN').map((i) => i.args);
    expect(runs.join('\n')).toContain(
      'ln -s /app/services/rag/bin/rag-assistant.js /usr/local/bin/rag-assistant',
    );
    const cmd = runtime.filter((i) => i.keyword === 'CMD');
    expect(cmd).toHaveLength(1);
    expect(JSON.parse(cmd[0]?.args ?? '')).toEqual(['serve', '--host', '0.0.0.0', '--port', '8000']);
    expect(runtime.filter((i) => i.keyword === 'EXPOSE').map((i) => i.args)).toEqual(['8000']);
  });

  it('declares DATA_DIR and TMP_DIR as volumes owned by the service user', () => {
    expect(runtimeEnv).toMatchObject({
      DATA_DIR: '/app/data',
      UPLOAD_DIR: '/app/data/uploads',
      TMP_DIR: '/app/tmp',
    });
    const volumes = runtime.find((i) => i.keyword === 'VOLUME');
    expect(JSON.parse(volumes?.args ?? '[]')).toEqual(['/app/data', '/app/tmp']);
    expect(runtime.map((i) => `${i.keyword} ${i.args}`)).toContain(
      'COPY --from=build --chown=10001:10001 /volumes/ /app/',
    );
    const buildRuns = build.map((i) => i.args).join('\n');
    expect(buildRuns).toContain('mkdir -p /volumes/data/uploads /volumes/tmp');
  });

  it('bakes no secret into the image', () => {
    for (const instruction of instructions.filter((i) => i.keyword === 'ENV' || i.keyword === 'ARG')) {
      for (const variable of [...SECRET_VARIABLES, 'METRICS_TOKEN', 'POSTGRES_PASSWORD']) {
        expect(instruction.args, variable).not.toMatch(new RegExp(`\\b${variable}\\b`));
      }
    }
    const ignore = read(join(DEPLOY, 'Dockerfile.dockerignore')).split('\n');
    for (const pattern of ['**/.env', 'services/rag/secrets', 'services/rag/certs/*.pem']) {
      expect(ignore, pattern).toContain(pattern);
    }
  });

  it('copies only paths that exist in the repository', () => {
    for (const copy of instructions.filter((i) => i.keyword === 'COPY')) {
      const parts = copy.args.split(/\s+/).filter((part) => !part.startsWith('--'));
      for (const source of parts.slice(0, -1)) {
        if (copy.args.includes('--from=') && !source.startsWith('/app/')) continue;
        const repoPath = source.replace(/^\/app\//, '');
        // build outputs and installed modules exist only inside the image
        if (/(^|\/)(dist|node_modules)(\/|$)/.test(repoPath)) continue;
        if (repoPath.includes('*')) {
          expect(
            readdirSync(REPO).some((name) => name.startsWith(repoPath.split('*')[0] ?? '')),
            source,
          ).toBe(true);
          continue;
        }
        expect(existsSync(join(REPO, repoPath)), source).toBe(true);
      }
    }
  });

  it('has a HEALTHCHECK on /live with node fetch (no curl), which follows the status', async () => {
    const healthcheck = runtime.find((i) => i.keyword === 'HEALTHCHECK')?.args ?? '';
    expect(healthcheck).not.toMatch(/\b(curl|wget)\b/);
    const exec = /CMD\s+(\[.*\])\s*$/.exec(healthcheck)?.[1];
    await expectProbeFollows(JSON.parse(exec ?? '[]') as string[], '/live');
  });
});

describe('deploy/rag/entrypoint.sh', () => {
  let root = '';
  let bin = '';

  beforeAll(() => {
    root = mkdtempSync(join(tmpdir(), 'rag-entrypoint-'));
    bin = join(root, 'bin');
    // a stand-in for the bin: records its pid and arguments; `migrate` fails when FAIL_MIGRATE is set
    spawnSync('mkdir', ['-p', bin]);
    const fake = join(bin, 'rag-assistant');
    const script = [
      '#!/bin/sh',
      'echo "$$ $*" >> "$CALLS"',
      'if [ "$1" = migrate ] && [ -n "$FAIL_MIGRATE" ]; then exit 3; fi',
      'exit 0',
      '',
    ].join('\n');
    spawnSync('sh', ['-c', `cat > "${fake}"`], { input: script });
    chmodSync(fake, 0o755);
  });
  afterAll(() => rmSync(root, { recursive: true, force: true }));

  let run = 0;
  /** Runs the entrypoint with fresh writable directories unless `env` overrides them. */
  function entrypoint(args: string[], env: Record<string, string> = {}) {
    run += 1;
    const dir = join(root, `run-${run}`);
    const calls = join(dir, 'calls');
    spawnSync('mkdir', ['-p', dir]);
    const result = spawnSync('sh', [ENTRYPOINT, ...args], {
      encoding: 'utf8',
      env: {
        PATH: `${bin}${delimiter}/usr/bin${delimiter}/bin`,
        CALLS: calls,
        DATA_DIR: join(dir, 'data'),
        TMP_DIR: join(dir, 'tmp'),
        ...env,
      },
    });
    const lines = existsSync(calls) ? read(calls).trim().split('\n') : [];
    const commands = lines.map((line) => line.slice(line.indexOf(' ') + 1));
    const pids = lines.map((line) => Number(line.slice(0, line.indexOf(' '))));
    return { status: result.status, stderr: result.stderr, commands, pids, dir, pid: result.pid };
  }

  it('migrates, then execs `serve` in its own process', () => {
    const result = entrypoint(['serve', '--port', '8000']);
    expect(result.status).toBe(0);
    expect(result.commands).toEqual(['migrate', 'serve --port 8000']);
    expect(result.pids[1]).toBe(result.pid);
    expect(existsSync(join(result.dir, 'data/uploads'))).toBe(true);
    expect(readdirSync(join(result.dir, 'tmp'))).toEqual([]);
  });

  it('migrates before `worker` too, and runs `serve` when no command is given', () => {
    expect(entrypoint(['worker']).commands).toEqual(['migrate', 'worker']);
    expect(entrypoint([]).commands).toEqual(['migrate', 'serve --host 0.0.0.0 --port 8000']);
  });

  it('skips the migration when RUN_MIGRATIONS is false (any boolean spelling)', () => {
    for (const value of ['false', 'FALSE', '0', 'no', 'off']) {
      expect(entrypoint(['serve'], { RUN_MIGRATIONS: value }).commands, value).toEqual(['serve']);
    }
    expect(entrypoint(['serve'], { RUN_MIGRATIONS: 'true' }).commands).toEqual(['migrate', 'serve']);
  });

  it('does not migrate before other commands (cleanup-tmp must not touch the database)', () => {
    for (const command of ['cleanup-tmp', 'migrate', 'create-first-admin']) {
      expect(entrypoint([command]).commands, command).toEqual([command]);
    }
  });

  it('stops with the migration exit code and does not start the server when migrating fails', () => {
    const result = entrypoint(['serve'], { FAIL_MIGRATE: '1' });
    expect(result.status).toBe(3);
    expect(result.commands).toEqual(['migrate']);
  });

  it('exits 1 with a FATAL line when an upload directory cannot be created or written', () => {
    const file = join(root, 'a-file');
    spawnSync('sh', ['-c', `: > "${file}"`]);
    const uncreatable = entrypoint(['serve'], { UPLOAD_DIR: join(file, 'uploads') });
    expect(uncreatable.status).toBe(1);
    expect(uncreatable.stderr.trim()).toMatch(
      /^FATAL: UPLOAD_DIR directory .*a-file\/uploads cannot be created by uid \d+$/,
    );
    expect(uncreatable.commands).toEqual([]);
    // /proc exists and refuses new files even for root
    const unwritable = entrypoint(['serve'], { TMP_DIR: '/proc' });
    expect(unwritable.status).toBe(1);
    expect(unwritable.stderr.trim()).toMatch(/^FATAL: TMP_DIR directory \/proc is not writable by uid \d+$/);
    expect(unwritable.commands).toEqual([]);
  });

  it('checks DATA_DIR only for the embedded database', () => {
    const embedded = entrypoint(['serve'], {
      DATA_DIR: '/proc',
      UPLOAD_DIR: join(root, 'up'),
      TMP_DIR: join(root, 't'),
    });
    expect(embedded.status).toBe(1);
    expect(embedded.stderr).toMatch(/^FATAL: DATA_DIR directory \/proc is not writable/);
    const external = entrypoint(['serve'], {
      DATA_DIR: '/proc',
      UPLOAD_DIR: join(root, 'up'),
      TMP_DIR: join(root, 't'),
      DATABASE_URL_FILE: '/run/secrets/database_url',
    });
    expect(external.status).toBe(0);
    expect(external.commands).toEqual(['migrate', 'serve']);
  });
});

// --- Kubernetes CronJob -------------------------------------------------------------------------------------

describe('deploy/k8s/cleanup-tmp-cronjob.yaml', () => {
  const job = parse(read(CRONJOB)) as {
    apiVersion: string;
    kind: string;
    spec: {
      schedule: string;
      jobTemplate: {
        spec: {
          template: {
            spec: {
              restartPolicy: string;
              securityContext: { runAsNonRoot: boolean; runAsUser: number };
              volumes: { name: string; persistentVolumeClaim?: { claimName: string } }[];
              containers: {
                image: string;
                command: string[];
                env: { name: string; value: string }[];
                volumeMounts: { name: string; mountPath: string }[];
              }[];
            };
          };
        };
      };
    };
  };
  const pod = job.spec.jobTemplate.spec.template.spec;
  const container = pod.containers[0];

  it('runs `rag-assistant cleanup-tmp` at 03:00 every day', () => {
    expect([job.apiVersion, job.kind]).toEqual(['batch/v1', 'CronJob']);
    expect(job.spec.schedule).toBe('0 3 * * *');
    expect(pod.containers).toHaveLength(1);
    expect(container?.command).toEqual(['rag-assistant', 'cleanup-tmp']);
    expect(container?.image).toBe('rag-assistant:latest');
    expect(pod.restartPolicy).toBe('OnFailure');
  });

  it('mounts the TMP_DIR volume where TMP_DIR points, as the image user', () => {
    const env = Object.fromEntries((container?.env ?? []).map((e) => [e.name, e.value]));
    expect(env.TMP_MAX_AGE_HOURS).toBe('24');
    const mount = container?.volumeMounts.find((m) => m.mountPath === env.TMP_DIR);
    expect(mount).toBeDefined();
    expect(pod.volumes.find((v) => v.name === mount?.name)?.persistentVolumeClaim?.claimName).toBe(
      'uploads-tmp-pvc',
    );
    expect(pod.securityContext).toMatchObject({ runAsNonRoot: true, runAsUser: 10001 });
  });
});

// --- secrets, certs and env examples ------------------------------------------------------------------------

/** `JWT_SECRET_FILE` → `JWT_SECRET` (the secret it provides); other names unchanged. */
function withoutFileSuffix(name: string): string {
  const base = name.replace(/_FILE$/, '');
  return SECRET_VARIABLES.includes(base) ? base : name;
}

/** KEY=value lines, and the names of commented `# KEY=default` lines (a secret's NAME_FILE counts as NAME). */
function envFile(name: string): { values: Map<string, string>; mentioned: Set<string> } {
  const values = new Map<string, string>();
  const mentioned = new Set<string>();
  for (const line of read(join(SERVICE, name)).split('\n')) {
    const set = /^([A-Z][A-Z0-9_]*)=(.*)$/.exec(line);
    if (set) {
      values.set(set[1] as string, set[2] as string);
      mentioned.add(withoutFileSuffix(set[1] as string));
    }
    const commented = /^# ([A-Z][A-Z0-9_]*)[=:]/.exec(line);
    if (commented) mentioned.add(withoutFileSuffix(commented[1] as string));
  }
  return { values, mentioned };
}

describe('services/rag/secrets.example', () => {
  const dir = join(SERVICE, 'secrets.example');
  const placeholder = (name: string) => read(join(dir, name)).trim();

  it('holds one placeholder per secret of the production stack', () => {
    expect(readdirSync(dir).sort()).toEqual([...SECRET_NAMES, 'postgres_password', 'README.md'].sort());
  });

  it('has placeholders that production start-up refuses, never usable secrets', () => {
    expect(placeholder('jwt_secret').length).toBeLessThan(32);
    expect(REJECTED_DB_PASSWORDS).toContain(placeholder('postgres_password'));
    const url = new URL(placeholder('database_url'));
    expect(url.password).toBe(placeholder('postgres_password'));
    expect([url.hostname, url.port, url.pathname, url.username]).toEqual(['db', '5432', '/rag', 'rag']);
    expect(placeholder('redis_url')).toBe('redis://redis:6379/0');
    expect(placeholder('gemini_api_key')).toBe('');
  });
});

const OPENSSL = findExecutable('openssl');
if (OPENSSL === undefined)
  console.warn('deploy: the self-signed certificate command skipped: openssl is not installed');

describe('services/rag/certs/README.md', () => {
  const readme = read(join(SERVICE, 'certs/README.md'));

  it("points to Let's Encrypt and the proxy's certificate paths", () => {
    expect(readme).toContain("Let's Encrypt");
    expect(readme).toContain('certbot');
    for (const conf of Object.keys(NGINX_FILES)) {
      const text = read(join(NGINX_DIR, conf));
      expect(text).toContain('/etc/nginx/certs/fullchain.pem');
      expect(text).toContain('/etc/nginx/certs/privkey.pem');
    }
  });

  it.skipIf(OPENSSL === undefined)(
    'gives a self-signed openssl command that writes fullchain.pem and privkey.pem',
    () => {
      const command = /```sh\n(openssl req[\s\S]*?)\n```/.exec(readme)?.[1];
      expect(command).toBeDefined();
      const out = mkdtempSync(join(tmpdir(), 'rag-certs-'));
      try {
        const result = spawnSync('sh', ['-c', (command ?? '').replaceAll('services/rag/certs/', `${out}/`)], {
          encoding: 'utf8',
        });
        expect(result.status, result.stderr).toBe(0);
        expect(read(join(out, 'fullchain.pem'))).toContain('BEGIN CERTIFICATE');
        expect(read(join(out, 'privkey.pem'))).toContain('PRIVATE KEY');
      } finally {
        rmSync(out, { recursive: true, force: true });
      }
    },
  );
});

describe('services/rag/.env examples', () => {
  it('list every variable of the configuration (development and production)', () => {
    for (const file of ['.env.example', '.env.prod.example']) {
      const { mentioned } = envFile(file);
      for (const name of CONFIGURATION_TABLE) expect(mentioned.has(name), `${file}: ${name}`).toBe(true);
      for (const name of mentioned) expect(CONFIGURATION_TABLE, `${file}: ${name}`).toContain(name);
    }
  });

  it('never hold a secret value', () => {
    for (const file of ['.env.example', '.env.prod.example', '.env.demo.example']) {
      const { values } = envFile(file);
      for (const name of SECRET_VARIABLES) expect(values.has(name), `${file}: ${name}`).toBe(false);
    }
  });

  it('match the production stack: production mode, secrets through files, real Gemini unless opted out', () => {
    const { values } = envFile('.env.prod.example');
    const backend = service(prod, 'backend').environment ?? {};
    for (const name of ['ENVIRONMENT', 'ALLOW_DEV_LOGIN', 'REQUIRE_CSRF_HEADER', 'STRICT_MODE']) {
      expect(values.get(name), name).toBe(backend[name]);
    }
    for (const secret of SECRET_NAMES) {
      const variable = `${secret.toUpperCase()}_FILE`;
      expect(values.get(variable), variable).toBe(backend[variable]);
    }
    expect(values.get('GEMINI_MOCK_MODE')).toBe('false');
    expect(values.get('CORS_ORIGINS')).toMatch(/^https:\/\//);
  });

  it('run development with dev login and mock mode', () => {
    const { values } = envFile('.env.example');
    expect(values.get('ENVIRONMENT')).toBe('development');
    expect(values.get('ALLOW_DEV_LOGIN')).toBe('true');
    expect(values.get('GEMINI_MOCK_MODE')).toBe('true');
  });
});

describe('the configurations the deployment files produce', () => {
  let secrets = '';
  beforeAll(() => {
    secrets = mkdtempSync(join(tmpdir(), 'rag-secrets-'));
  });
  afterAll(() => rmSync(secrets, { recursive: true, force: true }));

  /** `.env` from the example (compose `env_file`), then the service's `environment:` (which wins). */
  function composedEnv(example: string, compose: ComposeFile, name: string): Record<string, string> {
    return { ...Object.fromEntries(envFile(example).values), ...service(compose, name).environment };
  }

  /** The prod backend's environment with its /run/secrets files replaced by files of `secrets`. */
  function prodEnv(files: Record<string, string>): Record<string, string> {
    const env = composedEnv('.env.prod.example', prod, 'backend');
    for (const secret of SECRET_NAMES) {
      const path = join(secrets, secret);
      spawnSync('sh', ['-c', 'cat > "$0"', path], { input: files[secret] ?? '' });
      env[`${secret.toUpperCase()}_FILE`] = path;
    }
    return env;
  }

  it('starts the production stack with real secrets', () => {
    const password = 'a3f1c9e07b5d24c8e6f0a1b2c3d4e5f6';
    const config = loadConfig(
      prodEnv({
        jwt_secret: `${'9f'.repeat(32)}\n`,
        database_url: `postgresql://rag:${password}@db:5432/rag\n`,
        redis_url: 'redis://redis:6379/0\n',
        gemini_api_key: 'AIza-test-key\n',
      }),
    );
    expect(config).toMatchObject({
      environment: 'production',
      allowDevLogin: false,
      requireCsrfHeader: true,
      strictMode: true,
      runMigrations: false,
      geminiMockMode: false,
      geminiApiKey: 'AIza-test-key',
      redisUrl: 'redis://redis:6379/0',
      trustedProxyIps: ['172.29.88.0/24'],
      dataDir: '/app/data',
      uploadDir: '/app/data/uploads',
      tmpDir: '/app/tmp',
    });
    expect(config.databaseUrl).toContain(password);
    expect(config.jwtSecret).toBe('9f'.repeat(32));
  });

  it('refuses the secrets.example placeholders', () => {
    const placeholder = (name: string) => read(join(SERVICE, 'secrets.example', name));
    const asShipped = Object.fromEntries(SECRET_NAMES.map((name) => [name, placeholder(name)]));
    expect(() => loadConfig(prodEnv(asShipped))).toThrow(/JWT_SECRET/);
    let refusal: unknown;
    try {
      loadConfig(prodEnv({ ...asShipped, jwt_secret: '9f'.repeat(32) }));
    } catch (error) {
      refusal = error;
    }
    expect(refusal).toBeInstanceOf(StartupRefusedError);
    const violations = (refusal as StartupRefusedError).violations;
    expect(violations.some((line) => line.startsWith('DATABASE_URL'))).toBe(true);
    expect(violations.some((line) => line.startsWith('GEMINI_API_KEY'))).toBe(true);
  });

  it('starts the development and demo stacks as configured', () => {
    const devConfig = loadConfig(composedEnv('.env.example', dev, 'backend'));
    expect(devConfig).toMatchObject({
      environment: 'development',
      allowDevLogin: true,
      geminiMockMode: true,
    });
    expect(devConfig.databaseUrl).toContain('@db:5432/rag');
    const demoConfig = loadConfig(composedEnv('.env.demo.example', demo, 'app'));
    expect(demoConfig).toMatchObject({
      environment: 'development',
      allowDevLogin: true,
      geminiMockMode: true,
      port: 8000,
    });
  });
});

// --- Makefile -----------------------------------------------------------------------------------------------

const MAKEFILE = read(join(REPO, 'Makefile'));
const RAG_TARGETS: Record<string, string> = {
  'up-prod': 'docker compose -f deploy/rag/docker-compose.prod.yml up -d --build',
  'up-dev': 'docker compose -f deploy/rag/docker-compose.yml up -d --build',
  down: 'docker compose -f deploy/rag/docker-compose.yml down',
  'down-prod': 'docker compose -f deploy/rag/docker-compose.prod.yml down',
  logs: 'docker compose -f deploy/rag/docker-compose.yml logs -f backend worker',
  'logs-all': 'docker compose -f deploy/rag/docker-compose.yml logs -f',
  'logs-prod': 'docker compose -f deploy/rag/docker-compose.prod.yml logs -f backend worker',
  migrate: 'docker compose -f deploy/rag/docker-compose.yml run --rm migrations',
  'migrate-prod': 'docker compose -f deploy/rag/docker-compose.prod.yml run --rm migrations',
  clean: 'docker compose -f deploy/rag/docker-compose.yml down -v --remove-orphans',
  demo: 'docker compose -f deploy/rag/docker-compose.demo.yml up -d --build',
  'demo-down': 'docker compose -f deploy/rag/docker-compose.demo.yml down',
};
const MAKE = findExecutable('make');
if (MAKE === undefined) console.warn('deploy: running the make targets skipped: make is not installed');

describe('Makefile (rag targets)', () => {
  it('has every target of the seed and the rag image build', () => {
    for (const target of [...Object.keys(RAG_TARGETS), 'secrets', 'rag-docker-build']) {
      expect(MAKEFILE, target).toMatch(new RegExp(`^${target}:.*## rag: `, 'm'));
    }
  });

  it('names only compose files that exist, each with its migrations service', () => {
    const files = new Set(
      Object.values(RAG_TARGETS).map((command) => /-f (\S+)/.exec(command)?.[1] as string),
    );
    for (const file of files) expect(existsSync(join(REPO, file)), file).toBe(true);
    for (const [target, command] of Object.entries(RAG_TARGETS)) {
      if (!command.includes('migrations')) continue;
      const compose = parse(read(join(REPO, /-f (\S+)/.exec(command)?.[1] ?? '')), {
        merge: true,
      }) as ComposeFile;
      expect(compose.services, target).toHaveProperty('migrations');
    }
  });

  describe.skipIf(MAKE === undefined)('with make', () => {
    // A PATH with make and nothing else: docker is "not installed".
    const bare = mkdtempSync(join(tmpdir(), 'rag-make-'));
    symlinkSync(MAKE ?? '', join(bare, 'make'));
    afterAll(() => rmSync(bare, { recursive: true, force: true }));
    const make = (args: string[], env: NodeJS.ProcessEnv = process.env) =>
      spawnSync(MAKE ?? 'make', ['--no-print-directory', ...args], { cwd: REPO, env, encoding: 'utf8' });

    it('runs the documented commands', () => {
      for (const [target, command] of Object.entries(RAG_TARGETS)) {
        const dryRun = make(['-n', target]);
        expect(dryRun.status, dryRun.stderr).toBe(0);
        expect(dryRun.stdout.trim().endsWith(command), `${target}: ${dryRun.stdout}`).toBe(true);
      }
      expect(make(['-n', 'secrets']).stdout.trim()).toBe(
        'npx --no-install rag-assistant secrets --dir services/rag/secrets',
      );
      expect(make(['-n', 'rag-docker-build']).stdout).toContain(
        'docker build -f deploy/rag/Dockerfile -t rag-assistant:latest .',
      );
    });

    it('skips every compose target with a message and exit 0 when docker compose is missing', () => {
      for (const target of Object.keys(RAG_TARGETS)) {
        const run = make([target], { PATH: bare });
        expect(run.status, `${target}: ${run.stderr}`).toBe(0);
        expect(run.stdout.trim()).toBe(`docker compose is not installed: skipping ${target}`);
      }
      const build = make(['rag-docker-build'], { PATH: bare });
      expect(build.stdout.trim()).toBe('docker is not installed: skipping rag-docker-build');
    });

    it('lists the rag targets in `make help`', () => {
      const help = make([]);
      expect(help.status).toBe(0);
      for (const target of Object.keys(RAG_TARGETS))
        expect(help.stdout).toMatch(new RegExp(`^  ${target} +rag: `, 'm'));
    });
  });
});

// --- deployment guide ---------------------------------------------------------------------------------------

describe('services/rag/docs/DEPLOYMENT.md', () => {
  const guide = read(GUIDE);

  it("has the seed guide's sections", () => {
    const headings = [...guide.matchAll(/^## (.+)$/gm)].map((m) => m[1] as string);
    for (const section of [
      'Quick Start',
      'Make targets',
      'Dev vs Production',
      'Required Environment Variables',
      'Secrets',
      'Running',
      'Networking & Sizing',
      'Migrations',
      'Operations',
      'Capacity & Limits',
      'Metrics & Health Endpoints',
      'Data Retention',
      'Secret Hygiene',
      'Frontend',
      'Performance',
    ]) {
      expect(
        headings.some((heading) => heading.startsWith(section)),
        section,
      ).toBe(true);
    }
  });

  it('gives the Node commands of the seed and every make target', () => {
    for (const command of [
      'rag-assistant create-first-admin',
      'rag-assistant cleanup-tmp',
      'rag-assistant migrate',
      'rag-assistant prune',
      'rag-assistant backup',
      'rag-assistant restore',
      'rag-assistant mark-stuck-error',
      'rag-assistant secrets',
    ]) {
      expect(guide, command).toContain(command);
    }
    for (const target of [...Object.keys(RAG_TARGETS), 'secrets'])
      expect(guide, target).toContain(`make ${target}`);
    expect(guide).not.toMatch(/\bpython\b|alembic|gunicorn -|docker-compose -f/i);
  });

  it('names only files that exist', () => {
    const paths = new Set(
      [...guide.matchAll(/\b((?:deploy|services\/rag)\/[\w./-]*[\w-])/g)]
        .map((m) => m[1] as string)
        .filter((path) => !/^services\/rag\/(secrets(\/|$)|\.env$|certs\/\w+\.pem$)/.test(path)),
    );
    expect(paths.size).toBeGreaterThan(8);
    for (const path of paths) expect(existsSync(join(REPO, path)), path).toBe(true);
  });

  it('documents every variable of the configuration table', () => {
    for (const name of CONFIGURATION_TABLE) expect(guide, name).toContain(name);
  });
});

// --- Optional: the compose CLI ------------------------------------------------------------------------------

const COMPOSE_CLI = spawnSync('docker', ['compose', 'version'], { stdio: 'ignore' }).status === 0;
if (!COMPOSE_CLI) console.warn('deploy: `docker compose config -q` skipped: docker compose is not installed');

describe.skipIf(!COMPOSE_CLI)('docker compose config', () => {
  it.each(['docker-compose.yml', 'docker-compose.prod.yml', 'docker-compose.demo.yml'])(
    'accepts %s',
    (file) => {
      const result = spawnSync('docker', ['compose', '-f', join(DEPLOY, file), 'config', '-q'], {
        encoding: 'utf8',
      });
      expect(result.status, result.stderr).toBe(0);
    },
  );
});
