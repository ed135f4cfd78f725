// The platform stacks: deploy/docker-compose.yml (development) and deploy/docker-compose.prod.yml (production)
// with all five services, their proxy deploy/nginx/platform.conf, the PostgreSQL initialisation script under
// deploy/postgres/initdb, the root Makefile's platform-* targets and the runbook deploy/README.md. Repository
// files only (no kernel code): it lives here because tests live in the workspaces. Checked without a container
// engine; `docker compose config` / `docker-compose config`, `promtool check config` and nginx (`nginx -t` and a
// live run in front of stub services) run when those tools are installed and are skipped with a message
// otherwise.
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import {
  chmodSync,
  existsSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { createServer, type Server } from 'node:http';
import { type AddressInfo, BlockList, connect } from 'node:net';
import { tmpdir } from 'node:os';
import { delimiter, join, posix, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import {
  composeCommand,
  findExecutable,
  nginxBinary,
  nginxNamed,
  nginxSizeBytes,
  nginxTestConfig,
  parseNginx,
} from '../src/testing-deploy.js';

const REPO = resolve(import.meta.dirname, '../../..');
const DEPLOY = join(REPO, 'deploy');
const PLATFORM_CONF = join(DEPLOY, 'nginx/platform.conf');
const INIT_SCRIPT = join(DEPLOY, 'postgres/initdb/10-service-databases.sh');

function read(path: string): string {
  return readFileSync(path, 'utf8');
}

// --- compose model ----------------------------------------------------------------------------------------

interface ServiceNetwork {
  aliases?: string[];
  ipv4_address?: string;
}
interface ComposeService {
  image?: string;
  build?: { context: string; dockerfile: string; args?: Record<string, string> };
  command?: string[];
  environment?: Record<string, string | number | boolean | null>;
  ports?: string[];
  volumes?: string[];
  secrets?: string[];
  tmpfs?: string[];
  networks?: string[] | Record<string, ServiceNetwork | null>;
  depends_on?: string[] | Record<string, { condition: string }>;
  healthcheck?: { test?: string[]; disable?: boolean };
  restart?: string;
  read_only?: boolean;
  cap_drop?: string[];
  security_opt?: string[];
}
interface ComposeNetwork {
  internal?: boolean;
  ipam?: { config: { subnet: string; ip_range?: string }[] };
}
interface ComposeFile {
  services: Record<string, ComposeService>;
  networks?: Record<string, ComposeNetwork | null>;
  secrets?: Record<string, { file?: string; external?: boolean }>;
  volumes?: Record<string, unknown>;
}

/** A compose file as compose reads it (YAML merge keys resolved). */
function composeFile(name: string): ComposeFile {
  return parse(read(join(DEPLOY, name)), { merge: true }) as ComposeFile;
}

const dev = composeFile('docker-compose.yml');
const prod = composeFile('docker-compose.prod.yml');
const BOTH: [string, ComposeFile][] = [
  ['docker-compose.yml', dev],
  ['docker-compose.prod.yml', prod],
];

/** Compose interpolation without a shell environment or .env: `${NAME:-default}` → default, `${NAME}` → ''. */
function interpolate(value: string): string {
  return value.replace(
    /\$\{([A-Z_][A-Z0-9_]*)(?::?-([^}]*))?\}/g,
    (_all, _name, fallback?: string) => fallback ?? '',
  );
}

function service(compose: ComposeFile, name: string): ComposeService {
  const found = compose.services[name];
  if (found === undefined) throw new Error(`no service ${name}`);
  return found;
}

function environment(compose: ComposeFile, name: string): Record<string, string> {
  return Object.fromEntries(
    Object.entries(service(compose, name).environment ?? {}).map(([key, value]) => [
      key,
      interpolate(String(value ?? '')),
    ]),
  );
}

function networksOf(svc: ComposeService): Map<string, ServiceNetwork> {
  const networks = svc.networks ?? [];
  return Array.isArray(networks)
    ? new Map(networks.map((network) => [network, {}]))
    : new Map(Object.entries(networks).map(([network, settings]) => [network, settings ?? {}]));
}

/** Host names on `network`: each attached service's name and aliases → the service. */
function hostNames(compose: ComposeFile, network: string): Map<string, string> {
  const names = new Map<string, string>();
  for (const [name, svc] of Object.entries(compose.services)) {
    const settings = networksOf(svc).get(network);
    if (settings === undefined) continue;
    names.set(name, name);
    for (const alias of settings.aliases ?? []) names.set(alias, name);
  }
  return names;
}

/** `host:container` port mappings. */
function published(svc: ComposeService): { host: number; container: number }[] {
  return (svc.ports ?? []).map((port) => {
    const [host, container] = String(port).split(':');
    return { host: Number(host), container: Number(container) };
  });
}

/** The repository path of a bind-mount source (relative to deploy/), or undefined for a named volume. */
function bindSource(volume: string): string | undefined {
  const source = volume.split(':')[0] as string;
  return source.startsWith('.') || source.startsWith('/')
    ? posix.normalize(posix.join('deploy', source))
    : undefined;
}

// --- what the stacks must hold ---------------------------------------------------------------------------

/** The services built from the repository, and their Dockerfiles. */
const BUILT: Record<string, string> = {
  docops: 'deploy/docops/Dockerfile',
  owsc: 'deploy/owsc/Dockerfile',
  'file-allocator': 'deploy/allocator/Dockerfile',
  'rag-migrations': 'deploy/rag/Dockerfile',
  'rag-backend': 'deploy/rag/Dockerfile',
  'rag-worker': 'deploy/rag/Dockerfile',
  raven: 'deploy/raven/Dockerfile',
};
const ALL_SERVICES = [...Object.keys(BUILT), 'postgres', 'redis', 'proxy', 'prometheus', 'grafana'].sort();
/** The proxy's host ports (equal to nginx's listen ports) and the service behind each. */
const PROXY_PORTS: Record<number, string> = {
  8888: 'rag-backend',
  8881: 'docops',
  8882: 'owsc',
  8883: 'file-allocator',
  8884: 'raven',
};
const PROXY_ADDRESS = '172.29.89.10';
const MIB = 1024 * 1024;
/**
 * The largest request body each service accepts at its defaults (services/<name>/docs/DEPLOYMENT.md), and the
 * variables that would change it (the stacks leave them unset).
 */
const UPLOAD_LIMITS: Record<string, { bytes: number; variables: string[] }> = {
  'rag-backend': { bytes: 25 * MIB, variables: ['MAX_UPLOAD_MB'] },
  // two file parts at DOCOPS_MAX_UPLOAD_BYTES
  docops: { bytes: 2 * 26_214_400, variables: ['DOCOPS_MAX_UPLOAD_BYTES'] },
  owsc: { bytes: 10_485_760, variables: ['OW_SC_MAX_CSV_BYTES'] },
  'file-allocator': { bytes: 1024 * MIB, variables: ['MAX_REQUEST_BYTES'] },
  // MAX_FILE_SIZE plus the multipart slack Raven Zero allows
  raven: { bytes: 10_485_760 + MIB, variables: ['MAX_FILE_SIZE'] },
};
/** The variables through which each service reaches PostgreSQL and Redis (its src/config.ts). */
const STORE_VARIABLES: Record<string, { database?: string[]; redis: string }> = {
  owsc: { database: ['DATABASE_URL', 'DATABASE_URL_FILE'], redis: 'OW_SC_REDIS_URL' },
  'file-allocator': { database: ['DATABASE_URL'], redis: 'REDIS_URL' },
  'rag-backend': { database: ['DATABASE_URL', 'DATABASE_URL_FILE'], redis: 'REDIS_URL' },
  'rag-worker': { database: ['DATABASE_URL', 'DATABASE_URL_FILE'], redis: 'REDIS_URL' },
  'rag-migrations': { database: ['DATABASE_URL', 'DATABASE_URL_FILE'], redis: 'REDIS_URL' },
  raven: { redis: 'REDIS_URL' },
};
/** The variables naming the peer whose X-Forwarded-For a service trusts. */
const TRUSTED_PROXY_VARIABLES: Record<string, string> = {
  owsc: 'OW_SC_TRUST_PROXY',
  'rag-backend': 'TRUSTED_PROXY_IPS',
  raven: 'TRUSTED_PROXIES',
};
/** `create_service_database <name> <PREFIX>` lines of the init script: database/role → variable prefix. */
const INIT_DATABASES = new Map(
  [...read(INIT_SCRIPT).matchAll(/^create_service_database (\w+) (\w+)$/gm)].map((m) => [
    m[1] as string,
    m[2] as string,
  ]),
);

interface PrometheusConfig {
  scrape_configs: { job_name: string; static_configs: { targets: string[] }[] }[];
}
const SCRAPE_TARGETS = (
  parse(read(join(REPO, 'monitoring/prometheus.yml'))) as PrometheusConfig
).scrape_configs.flatMap((job) =>
  job.static_configs.flatMap((config) => config.targets.map((target) => ({ job: job.job_name, target }))),
);

/** The database URL a service is given: the plain variable, or (production) the URL its secret file will hold. */
function databaseUrl(env: Record<string, string>): URL | undefined {
  const url = env.DATABASE_URL;
  return url === undefined ? undefined : new URL(url);
}

describe.each(BOTH)('deploy/%s', (_file, compose) => {
  it('holds the stores, the five services (RAG as migrations, backend and worker), the proxy and monitoring', () => {
    expect(Object.keys(compose.services).sort()).toEqual(ALL_SERVICES);
    expect(service(compose, 'postgres').image).toBe('pgvector/pgvector:pg16');
    expect(service(compose, 'redis').image).toBe('redis:7-alpine');
    expect(service(compose, 'proxy').image).toMatch(/^nginxinc\/nginx-unprivileged:\d+\.\d+[\w.-]*$/);
    expect(service(compose, 'prometheus').image).toMatch(/^prom\/prometheus:v\d+\.\d+\.\d+$/);
    expect(service(compose, 'grafana').image).toMatch(/^grafana\/grafana:\d+\.\d+\.\d+$/);
  });

  it('builds each service from the repository root with its own Dockerfile, which exists', () => {
    for (const [name, dockerfile] of Object.entries(BUILT)) {
      const build = service(compose, name).build;
      expect(build?.dockerfile, name).toBe(dockerfile);
      expect(resolve(DEPLOY, build?.context ?? ''), name).toBe(REPO);
      expect(existsSync(join(REPO, dockerfile)), dockerfile).toBe(true);
    }
    // The three RAG containers run one image.
    const ragImages = ['rag-migrations', 'rag-backend', 'rag-worker'].map(
      (name) => service(compose, name).image,
    );
    expect(new Set(ragImages).size).toBe(1);
    for (const [name, svc] of Object.entries(compose.services)) {
      if (BUILT[name] === undefined) expect(svc.build, name).toBeUndefined();
      expect(svc.image, name).toBeDefined();
    }
  });

  it('mounts only files and directories that exist', () => {
    for (const [name, svc] of Object.entries(compose.services)) {
      for (const volume of svc.volumes ?? []) {
        const source = bindSource(volume);
        if (source === undefined) {
          expect(Object.keys(compose.volumes ?? {}), `${name}: ${volume}`).toContain(volume.split(':')[0]);
        } else {
          expect(existsSync(join(REPO, source)), `${name}: ${source}`).toBe(true);
        }
      }
    }
    expect(service(compose, 'proxy').volumes).toContain(
      './nginx/platform.conf:/etc/nginx/conf.d/default.conf:ro',
    );
    expect(service(compose, 'postgres').volumes).toContain(
      './postgres/initdb:/docker-entrypoint-initdb.d:ro',
    );
  });

  it('gives every long-running service a health check; only rag-migrations runs once', () => {
    for (const [name, svc] of Object.entries(compose.services)) {
      if (name === 'rag-migrations') {
        expect(svc.restart).toBe('no');
        expect(svc.command).toEqual(['migrate']);
        continue;
      }
      expect(svc.restart, name).toBe('unless-stopped');
      expect(svc.healthcheck?.disable, name).toBeUndefined();
      expect(svc.healthcheck?.test?.[0], name).toMatch(/^CMD(-SHELL)?$/);
      expect(svc.healthcheck?.test?.length, name).toBeGreaterThan(1);
    }
    for (const name of ['rag-backend', 'rag-worker']) {
      expect(service(compose, name).depends_on, name).toMatchObject({
        'rag-migrations': { condition: 'service_completed_successfully' },
      });
    }
    // PostgreSQL counts as ready only over TCP, which the entrypoint opens after the init scripts ran.
    expect(service(compose, 'postgres').healthcheck?.test?.[1]).toContain('-h 127.0.0.1');
  });

  it('publishes only the proxy (8888 and 8881-8884), Prometheus 9090 and Grafana 3000', () => {
    const publishing = Object.entries(compose.services)
      .filter(([, svc]) => (svc.ports ?? []).length > 0)
      .map(([name]) => name)
      .sort();
    expect(publishing).toEqual(['grafana', 'prometheus', 'proxy']);
    const proxyPorts = published(service(compose, 'proxy'));
    expect(proxyPorts.map((p) => p.host)).toContain(8888);
    expect(proxyPorts.map((p) => p.host).sort()).toEqual(Object.keys(PROXY_PORTS).map(Number).sort());
    for (const { host, container } of proxyPorts) expect(container, String(host)).toBe(host);
    expect(published(service(compose, 'prometheus'))).toEqual([{ host: 9090, container: 9090 }]);
    expect(published(service(compose, 'grafana'))).toEqual([{ host: 3000, container: 3000 }]);
  });

  it("resolves every Prometheus target to a service on Prometheus's network, on port 8000", () => {
    const prometheusNetworks = [...networksOf(service(compose, 'prometheus')).keys()];
    const reachable = new Map(prometheusNetworks.flatMap((network) => [...hostNames(compose, network)]));
    const scraped = new Set<string>();
    for (const { job, target } of SCRAPE_TARGETS) {
      const [host, port] = target.split(':');
      const name = reachable.get(host ?? '');
      expect(name, `${job}: ${target}`).toBeDefined();
      expect(port, target).toBe('8000');
      scraped.add(name ?? '');
    }
    expect([...scraped].sort()).toEqual(['docops', 'file-allocator', 'owsc', 'rag-backend', 'raven']);
    // Grafana reaches Prometheus by the datasource's host name.
    const datasource = read(join(REPO, 'monitoring/grafana/provisioning/datasources/prometheus.yml'));
    expect(datasource).toContain('url: http://prometheus:9090');
    expect([...networksOf(service(compose, 'grafana')).keys()]).toEqual(['monitoring']);
    expect(hostNames(compose, 'monitoring').get('prometheus')).toBe('prometheus');
  });

  it("resolves every upstream of the proxy to a service on the proxy's network", () => {
    const onEdge = hostNames(compose, 'edge');
    expect([...networksOf(service(compose, 'proxy')).keys()]).toEqual(['edge']);
    for (const [, host, port] of read(PLATFORM_CONF).matchAll(/^\s*set \$\w+ ([\w-]+):(\d+);/gm)) {
      expect(onEdge.get(host ?? ''), host).toBeDefined();
      expect(port).toBe('8000');
    }
  });

  it('pins the proxy outside the dynamic address range and trusts X-Forwarded-For from that address only', () => {
    const edge = compose.networks?.edge?.ipam?.config[0];
    const cidr = (value: string | undefined) => {
      const [address, prefix] = (value ?? '').split('/');
      const list = new BlockList();
      list.addSubnet(address ?? '', Number(prefix));
      return list;
    };
    const subnet = cidr(edge?.subnet);
    const dynamic = cidr(edge?.ip_range);
    const address = networksOf(service(compose, 'proxy')).get('edge')?.ipv4_address;
    expect(address).toBe(PROXY_ADDRESS);
    expect(subnet.check(PROXY_ADDRESS)).toBe(true);
    expect(dynamic.check(PROXY_ADDRESS)).toBe(false);
    for (const [name, variable] of Object.entries(TRUSTED_PROXY_VARIABLES)) {
      expect(environment(compose, name)[variable], name).toBe(PROXY_ADDRESS);
    }
  });

  it('keeps PostgreSQL and Redis on the internal `data` network, shared by the services that use them', () => {
    expect(compose.networks?.data?.internal).toBe(true);
    for (const store of ['postgres', 'redis']) {
      expect([...networksOf(service(compose, store)).keys()], store).toEqual(['data']);
    }
    for (const name of Object.keys(STORE_VARIABLES)) {
      expect([...networksOf(service(compose, name)).keys()], name).toContain('data');
    }
    expect([...networksOf(service(compose, 'docops')).keys()]).toEqual(['edge']);
  });

  it('gives each service its store settings under the names its configuration reads', () => {
    const redisDatabases = new Map<string, string>();
    for (const [name, variables] of Object.entries(STORE_VARIABLES)) {
      const env = environment(compose, name);
      const redis = new URL(env[variables.redis] ?? 'missing:');
      expect(`${redis.protocol}//${redis.host}`, `${name}: ${variables.redis}`).toBe('redis://redis:6379');
      redisDatabases.set(name.startsWith('rag-') ? 'rag' : name, redis.pathname);
      if (variables.database !== undefined) {
        const given = variables.database.filter((variable) => env[variable] !== undefined);
        expect(given, name).toHaveLength(1);
      }
    }
    // One Redis database per service (BullMQ queues and rate-limit keys never meet).
    expect(new Set(redisDatabases.values()).size).toBe(redisDatabases.size);
    const allocator = environment(compose, 'file-allocator');
    expect(allocator.QUEUE_BACKEND).toBe('redis');
    expect(allocator.APP_PORT).toBe('8000');
  });

  it('leaves the upload limits at the defaults the proxy is sized for', () => {
    for (const [name, { variables }] of Object.entries(UPLOAD_LIMITS)) {
      for (const variable of variables) expect(environment(compose, name)[variable], name).toBeUndefined();
    }
  });
});

describe('deploy/docker-compose.yml (development)', () => {
  it('runs every service in development mode, RAG with its dev login and mock mode, with no secrets', () => {
    expect(environment(dev, 'rag-backend')).toMatchObject({
      ENVIRONMENT: 'development',
      ALLOW_DEV_LOGIN: 'true',
      GEMINI_MOCK_MODE: 'true',
      RUN_MIGRATIONS: 'false',
      METRICS_ALLOW_ALL: 'true',
    });
    expect(environment(dev, 'rag-migrations').RUN_MIGRATIONS).toBe('true');
    expect(environment(dev, 'file-allocator').ENVIRONMENT).toBe('development');
    for (const name of ['docops', 'owsc', 'raven'])
      expect(environment(dev, name).NODE_ENV, name).toBe('development');
    expect(dev.secrets).toBeUndefined();
    for (const [name, svc] of Object.entries(dev.services)) expect(svc.secrets, name).toBeUndefined();
  });

  it("connects each service to its own database, created by the init script with the service's password", () => {
    const postgres = environment(dev, 'postgres');
    const seen = new Set<string>();
    for (const name of Object.keys(STORE_VARIABLES)) {
      const url = databaseUrl(environment(dev, name));
      if (url === undefined) continue;
      const database = url.pathname.slice(1);
      expect(url.host, name).toBe('postgres:5432');
      expect(url.username, name).toBe(database);
      const prefix = INIT_DATABASES.get(database);
      expect(prefix, `${name}: ${database}`).toBeDefined();
      expect(decodeURIComponent(url.password), name).toBe(postgres[`${prefix}_DB_PASSWORD`]);
      seen.add(database);
    }
    expect([...seen].sort()).toEqual([...INIT_DATABASES.keys()].sort());
  });
});

describe('deploy/docker-compose.prod.yml (production)', () => {
  const declared = Object.keys(prod.secrets ?? {});

  it('declares every secret a service mounts, uses every declared one, and reads them through *_FILE', () => {
    const used = new Set<string>();
    for (const [name, svc] of Object.entries(prod.services)) {
      for (const secret of svc.secrets ?? []) {
        expect(declared, `${name}: ${secret}`).toContain(secret);
        used.add(secret);
      }
      for (const [variable, value] of Object.entries(environment(prod, name))) {
        // Raven Zero's LOG_TO_FILE is a boolean, not a secret file.
        if (!variable.endsWith('_FILE') || variable === 'LOG_TO_FILE') continue;
        const secret = /^\/run\/secrets\/(\w+)$/.exec(value)?.[1];
        expect(secret, `${name}: ${variable}`).toBeDefined();
        expect(svc.secrets ?? [], `${name}: ${variable}`).toContain(secret);
      }
    }
    expect([...used].sort()).toEqual([...declared].sort());
    for (const [secret, source] of Object.entries(prod.secrets ?? {})) {
      expect(source.file, secret).toBe(`\${PLATFORM_SECRETS_DIR:-./secrets}/${secret}`);
    }
  });

  it('puts no password, key or token in a plain variable', () => {
    for (const name of Object.keys(prod.services)) {
      for (const [variable, value] of Object.entries(environment(prod, name))) {
        if (/^[a-z]+:\/\//.test(value)) expect(new URL(value).password, `${name}: ${variable}`).toBe('');
        expect(variable, name).not.toMatch(/(PASSWORD|SECRET|TOKEN|API_KEY|BASIC_AUTH)$/);
      }
    }
  });

  it('runs every service in production mode with the production settings of its guide', () => {
    for (const name of ['docops', 'owsc', 'raven'])
      expect(environment(prod, name).NODE_ENV, name).toBe('production');
    expect(environment(prod, 'file-allocator')).toMatchObject({
      ENVIRONMENT: 'production',
      DATABASE_URL: 'postgresql://file_allocator@postgres:5432/file_allocator',
      DB_PASSWORD_FILE: '/run/secrets/allocator_db_password',
    });
    expect(environment(prod, 'rag-backend')).toMatchObject({
      ENVIRONMENT: 'production',
      ALLOW_DEV_LOGIN: 'false',
      REQUIRE_CSRF_HEADER: 'true',
      STRICT_MODE: 'true',
      JWT_SECRET_FILE: '/run/secrets/rag_jwt_secret',
      DATABASE_URL_FILE: '/run/secrets/rag_database_url',
      GEMINI_MOCK_MODE: 'false',
      CORS_ORIGINS: 'http://localhost:8888',
    });
    expect(environment(prod, 'owsc')).toMatchObject({
      DATABASE_URL_FILE: '/run/secrets/owsc_database_url',
      OW_SC_API_TOKEN_FILE: '/run/secrets/owsc_api_token',
    });
    expect(environment(prod, 'docops').DOCOPS_WEB_BASIC_AUTH_FILE).toBe('/run/secrets/docops_web_basic_auth');
    const postgres = environment(prod, 'postgres');
    expect(postgres.POSTGRES_PASSWORD_FILE).toBe('/run/secrets/postgres_password');
    for (const prefix of INIT_DATABASES.values()) {
      expect(postgres[`${prefix}_DB_PASSWORD_FILE`], prefix).toMatch(/^\/run\/secrets\/\w+_db_password$/);
    }
  });

  it('runs the services and the proxy read-only, without capabilities or privilege escalation', () => {
    for (const name of [...Object.keys(BUILT), 'proxy']) {
      const svc = service(prod, name);
      expect(svc.read_only, name).toBe(true);
      expect(svc.cap_drop, name).toEqual(['ALL']);
      expect(svc.security_opt, name).toEqual(['no-new-privileges:true']);
    }
    expect(service(prod, 'docops').tmpfs).toEqual(['/tmp']);
  });
});

// --- nginx ------------------------------------------------------------------------------------------------

const nginxConf = parseNginx(read(PLATFORM_CONF));
/** listen port → server block */
const servers = new Map(
  nginxNamed(nginxConf, 'server').map((server) => [
    Number(nginxNamed(server.block, 'listen')[0]?.args[0]),
    server.block ?? [],
  ]),
);
const METRICS_ALLOW_LIST = ['127.0.0.1', '::1', '10.0.0.0/8', '172.16.0.0/12', '192.168.0.0/16'];

describe('deploy/nginx/platform.conf', () => {
  it('has one server per proxy port, proxying to that port’s service, and the unpublished health server', () => {
    expect([...servers.keys()].sort()).toEqual([...Object.keys(PROXY_PORTS).map(Number), 8080].sort());
    for (const [port, name] of Object.entries(PROXY_PORTS)) {
      const server = servers.get(Number(port));
      const upstream = nginxNamed(server, 'set')[0]?.args;
      expect(upstream?.[1], port).toBe(`${name}:8000`);
      const variable = upstream?.[0] ?? '';
      for (const location of nginxNamed(server, 'location')) {
        expect(
          nginxNamed(location.block, 'proxy_pass')[0]?.args,
          `${port} ${location.args.join(' ')}`,
        ).toEqual([`http://${variable}`]);
      }
    }
    const health = nginxNamed(servers.get(8080), 'location').find((l) => l.args.join(' ') === '= /healthz');
    expect(nginxNamed(health?.block, 'return')[0]?.args).toEqual(['200', 'ok\\n']);
  });

  it('allows /metrics from loopback and the private ranges only, on every service port', () => {
    for (const port of Object.keys(PROXY_PORTS)) {
      const metrics = nginxNamed(servers.get(Number(port)), 'location').find(
        (l) => l.args.join(' ') === '= /metrics',
      );
      const access = (metrics?.block ?? []).filter((d) => d.name === 'allow' || d.name === 'deny');
      expect(
        access.map((d) => `${d.name} ${d.args.join(' ')}`),
        port,
      ).toEqual([...METRICS_ALLOW_LIST.map((range) => `allow ${range}`), 'deny all']);
    }
  });

  it('sets client_max_body_size at or above each service’s largest upload, the largest being 1 GiB', () => {
    const limits: number[] = [];
    for (const [port, name] of Object.entries(PROXY_PORTS)) {
      const server = servers.get(Number(port));
      const sizes = [
        ...nginxNamed(server, 'client_max_body_size'),
        ...nginxNamed(server, 'location').flatMap((l) => nginxNamed(l.block, 'client_max_body_size')),
      ].map((d) => nginxSizeBytes(d.args[0] ?? ''));
      const largest = Math.max(...sizes);
      expect(largest, name).toBeGreaterThanOrEqual(UPLOAD_LIMITS[name]?.bytes ?? Number.POSITIVE_INFINITY);
      limits.push(largest);
    }
    expect(Math.max(...limits)).toBeGreaterThanOrEqual(
      Math.max(...Object.values(UPLOAD_LIMITS).map((l) => l.bytes)),
    );
    expect(Math.max(...limits)).toBeGreaterThanOrEqual(1024 * MIB);
  });

  it('replaces a client-sent X-Forwarded-For and upgrades only the OWSC WebSockets', () => {
    const headers = nginxNamed(nginxConf, 'proxy_set_header').map((d) => d.args);
    expect(headers).toContainEqual(['X-Forwarded-For', '$remote_addr']);
    expect(headers).toContainEqual(['Connection', '']);
    expect(read(PLATFORM_CONF)).not.toContain('$proxy_add_x_forwarded_for');
    const upgraded = [...servers].flatMap(([port, server]) =>
      nginxNamed(server, 'location')
        .filter((l) => nginxNamed(l.block, 'proxy_set_header').some((d) => d.args[0] === 'Upgrade'))
        .map((l) => `${port} ${l.args.join(' ')}`),
    );
    expect(upgraded).toEqual(['8882 /ws/']);
  });

  it('logs no query string anywhere and no path at all for Raven Zero', () => {
    const formats = new Map(
      nginxNamed(nginxConf, 'log_format').map((d) => [d.args[0], d.args.slice(1).join('')]),
    );
    for (const [name, format] of formats) {
      for (const variable of ['$request ', '$request"', '$request_uri', '$args', '$query_string']) {
        expect(format.includes(variable), `${name}: ${variable}`).toBe(false);
      }
    }
    expect(formats.get('platform_no_path')).not.toContain('$uri');
    expect(nginxNamed(servers.get(8884), 'access_log')[0]?.args).toEqual(['/dev/stdout', 'platform_no_path']);
    expect(nginxNamed(nginxConf, 'access_log')[0]?.args).toEqual(['/dev/stdout', 'platform']);
  });
});

const NGINX = nginxBinary();
if (NGINX === undefined)
  console.warn('platform deploy: `nginx -t` and the live proxy check SKIPPED: nginx is not installed');

/**
 * platform.conf with its logs in `prefix`: a process started by Node has a socket, not a pipe, as stdout and
 * stderr, which nginx cannot open as /dev/stdout (in the container they are pipes).
 */
function withLogsIn(prefix: string, text: string): string {
  return text
    .replaceAll('/dev/stdout', join(prefix, 'access.log'))
    .replaceAll('/dev/stderr', join(prefix, 'error.log'));
}

async function freePort(): Promise<number> {
  const probe = createServer();
  await new Promise<void>((done) => probe.listen(0, '127.0.0.1', done));
  const { port } = probe.address() as AddressInfo;
  await new Promise((done) => probe.close(done));
  return port;
}

describe.skipIf(NGINX === undefined)('nginx', () => {
  it('accepts platform.conf as it is mounted (nginx -t)', () => {
    const prefix = mkdtempSync(join(tmpdir(), 'platform-nginx-'));
    try {
      writeFileSync(join(prefix, 'platform.conf'), withLogsIn(prefix, read(PLATFORM_CONF)));
      writeFileSync(join(prefix, 'nginx.conf'), nginxTestConfig(prefix, join(prefix, 'platform.conf')));
      const result = spawnSync(
        NGINX ?? 'nginx',
        ['-t', '-p', prefix, '-e', join(prefix, 'error.log'), '-c', join(prefix, 'nginx.conf')],
        { encoding: 'utf8' },
      );
      expect(result.stderr).toContain('test is successful');
      expect(result.status).toBe(0);
    } finally {
      rmSync(prefix, { recursive: true, force: true });
    }
  });

  describe('in front of stub services', () => {
    let prefix = '';
    let nginx: ChildProcess | undefined;
    const accessLog = () => (existsSync(join(prefix, 'access.log')) ? read(join(prefix, 'access.log')) : '');
    const stubs: Server[] = [];
    /** service → the port nginx listens on for it */
    const proxyPort = new Map<string, number>();
    let healthPort = 0;

    beforeAll(async () => {
      let text = read(PLATFORM_CONF);
      for (const name of Object.values(PROXY_PORTS)) {
        const stub = createServer((req, res) => {
          req.resume();
          req.on('end', () => {
            res.writeHead(200, { 'content-type': 'application/json' });
            res.end(
              JSON.stringify({ service: name, url: req.url, forwardedFor: req.headers['x-forwarded-for'] }),
            );
          });
        });
        stub.on('upgrade', (_req, socket) => {
          socket.end('HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n');
        });
        await new Promise<void>((done) => stub.listen(0, '127.0.0.1', done));
        stubs.push(stub);
        const stubPort = (stub.address() as AddressInfo).port;
        text = text.replace(new RegExp(`(set \\$\\w+ )${name}:8000;`), `$1127.0.0.1:${stubPort};`);
      }
      for (const [port, name] of Object.entries(PROXY_PORTS)) {
        const listen = await freePort();
        proxyPort.set(name, listen);
        text = text.replace(`listen ${port};`, `listen 127.0.0.1:${listen};`);
      }
      healthPort = await freePort();
      text = text.replace('listen 8080;', `listen 127.0.0.1:${healthPort};`);

      prefix = mkdtempSync(join(tmpdir(), 'platform-nginx-live-'));
      writeFileSync(join(prefix, 'platform.conf'), withLogsIn(prefix, text));
      writeFileSync(
        join(prefix, 'nginx.conf'),
        nginxTestConfig(prefix, join(prefix, 'platform.conf'), {
          main: ['daemon off;', 'master_process off;'],
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
        const up = await fetch(`http://127.0.0.1:${healthPort}/healthz`).then(
          (r) => r.ok,
          () => false,
        );
        if (up) return;
        await new Promise((done) => setTimeout(done, 50));
      }
      throw new Error(
        `nginx did not start: ${existsSync(join(prefix, 'error.log')) ? read(join(prefix, 'error.log')) : ''}`,
      );
    });

    afterAll(async () => {
      nginx?.kill('SIGTERM');
      await Promise.all(stubs.map((stub) => new Promise((done) => stub.close(done))));
      if (prefix !== '') rmSync(prefix, { recursive: true, force: true });
    });

    it('routes each port to its service, with the real peer as X-Forwarded-For, /metrics from loopback', async () => {
      for (const [name, port] of proxyPort) {
        for (const path of ['/', '/api/x?page=2', '/metrics']) {
          const response = await fetch(`http://127.0.0.1:${port}${path}`, {
            headers: { 'X-Forwarded-For': '10.9.8.7' },
          });
          expect(response.status, `${name} ${path}`).toBe(200);
          expect(await response.json(), `${name} ${path}`).toEqual({
            service: name,
            url: path,
            forwardedFor: '127.0.0.1',
          });
        }
      }
    });

    it('passes the OWSC WebSocket upgrade through', async () => {
      const socket = connect(proxyPort.get('owsc') ?? 0, '127.0.0.1');
      const head = await new Promise<string>((done, fail) => {
        let received = '';
        socket.on('data', (chunk) => {
          received += chunk.toString();
          if (received.includes('\r\n\r\n')) done(received);
        });
        socket.on('error', fail);
        socket.write(
          'GET /ws/effluent?token=t0ken HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n' +
            'Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n',
        );
      });
      socket.destroy();
      expect(head.split('\r\n')[0]).toBe('HTTP/1.1 101 Switching Protocols');
    });

    it('answers 413 itself above the OWSC limit and passes a body at the limit', async () => {
      const port = proxyPort.get('owsc') ?? 0;
      const atLimit = await fetch(`http://127.0.0.1:${port}/api/batches`, {
        method: 'POST',
        body: new Uint8Array(UPLOAD_LIMITS.owsc?.bytes ?? 0),
      });
      expect(atLimit.status).toBe(200);
      const above = await fetch(`http://127.0.0.1:${port}/api/batches`, {
        method: 'POST',
        body: new Uint8Array(12 * MIB),
      });
      expect(above.status).toBe(413);
    });

    it('logs paths without query strings, and Raven Zero requests without their path', async () => {
      await (await fetch(`http://127.0.0.1:${proxyPort.get('raven')}/download/secret-words-here`)).text();
      await (await fetch(`http://127.0.0.1:${proxyPort.get('owsc')}/api/streams?token=t0ken`)).text();
      // nginx writes a line once the response is complete
      for (let attempt = 0; attempt < 50 && !accessLog().includes('/api/streams'); attempt++) {
        await new Promise((done) => setTimeout(done, 20));
      }
      const log = accessLog();
      expect(log).toContain('"GET /api/streams HTTP/1.1" 200');
      expect(log).not.toContain('t0ken');
      expect(log).not.toContain('secret-words-here');
      expect(log).toMatch(/"GET" 200 /);
    });
  });
});

// --- PostgreSQL initialisation ----------------------------------------------------------------------------

describe('deploy/postgres/initdb/10-service-databases.sh', () => {
  let dir = '';
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'platform-initdb-'));
    // A stand-in psql: records its arguments and the SQL it is given, one JSON line per call.
    writeFileSync(
      join(dir, 'psql'),
      `#!/bin/sh\nnode -e 'let sql = ""; process.stdin.on("data", (c) => { sql += c; }).on("end", () => require("fs").appendFileSync(process.env.PSQL_LOG, JSON.stringify({ args: process.argv.slice(1), sql }) + "\\n"))' -- "$@"\n`,
    );
    chmodSync(join(dir, 'psql'), 0o755);
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  const run = (env: Record<string, string>, log: string) =>
    spawnSync('bash', [INIT_SCRIPT], {
      encoding: 'utf8',
      env: {
        PATH: `${dir}${delimiter}${process.env.PATH ?? ''}`,
        POSTGRES_USER: 'postgres',
        POSTGRES_DB: 'postgres',
        PSQL_LOG: join(dir, log),
        ...env,
      },
    });

  it('is executable and creates, per service, the role and the database with its password, then pgvector', () => {
    expect(statSync(INIT_SCRIPT).mode & 0o111).not.toBe(0);
    expect([...INIT_DATABASES]).toEqual([
      ['owsc', 'OWSC'],
      ['file_allocator', 'ALLOCATOR'],
      ['rag', 'RAG'],
    ]);
    writeFileSync(join(dir, 'owsc_password'), "it's-a-secret");
    const result = run(
      {
        OWSC_DB_PASSWORD_FILE: join(dir, 'owsc_password'),
        ALLOCATOR_DB_PASSWORD: 'a-pw',
        RAG_DB_PASSWORD: 'r-pw',
      },
      'ok.log',
    );
    expect(result.status, result.stderr).toBe(0);
    const calls = read(join(dir, 'ok.log'))
      .trim()
      .split('\n')
      .map((line) => JSON.parse(line) as { args: string[]; sql: string });
    expect(calls).toHaveLength(6);
    const passwords: Record<string, string> = { owsc: "it's-a-secret", file_allocator: 'a-pw', rag: 'r-pw' };
    for (const [index, database] of ['owsc', 'file_allocator', 'rag'].entries()) {
      const create = calls[2 * index];
      const extension = calls[2 * index + 1];
      expect(create?.args).toEqual([
        '-v',
        'ON_ERROR_STOP=1',
        '--username',
        'postgres',
        '--dbname',
        'postgres',
        '-v',
        `name=${database}`,
        '-v',
        `password=${passwords[database]}`,
      ]);
      expect(create?.sql).toBe(
        'CREATE ROLE :"name" LOGIN PASSWORD :\'password\';\nCREATE DATABASE :"name" OWNER :"name";\nREVOKE ALL ON DATABASE :"name" FROM PUBLIC;\n',
      );
      expect(extension?.args).toEqual([
        '-v',
        'ON_ERROR_STOP=1',
        '--username',
        'postgres',
        '--dbname',
        database,
      ]);
      expect(extension?.sql).toBe('CREATE EXTENSION IF NOT EXISTS vector;\n');
    }
  });

  it('stops with a message naming the variables when a password is missing', () => {
    const result = run({ OWSC_DB_PASSWORD: 'o-pw', RAG_DB_PASSWORD: 'r-pw' }, 'missing.log');
    expect(result.status).not.toBe(0);
    expect(result.stderr).toContain(
      'initdb: neither ALLOCATOR_DB_PASSWORD_FILE nor ALLOCATOR_DB_PASSWORD gives a password for the role file_allocator',
    );
  });
});

// --- Makefile ---------------------------------------------------------------------------------------------

const PLATFORM_TARGETS: Record<string, string> = {
  'platform-up': '-p quintet-dev -f deploy/docker-compose.yml up -d --build',
  'platform-up-prod': '-p quintet -f deploy/docker-compose.prod.yml up -d --build',
  'platform-down': '-p quintet-dev -f deploy/docker-compose.yml down',
  'platform-down-prod': '-p quintet -f deploy/docker-compose.prod.yml down',
  'platform-logs': '-p quintet-dev -f deploy/docker-compose.yml logs -f',
  'platform-logs-prod': '-p quintet -f deploy/docker-compose.prod.yml logs -f',
  'platform-config': '-p quintet-dev -f deploy/docker-compose.yml config',
};
const MAKE = findExecutable('make');
if (MAKE === undefined) console.warn('platform deploy: the make targets SKIPPED: make is not installed');

describe.skipIf(MAKE === undefined)('Makefile (platform targets)', () => {
  const make = (args: string[], env: NodeJS.ProcessEnv = process.env) =>
    spawnSync(MAKE ?? 'make', ['--no-print-directory', ...args], { cwd: REPO, env, encoding: 'utf8' });

  it('runs the compose commands with `docker compose` or `docker-compose`, prod with the secrets directory', () => {
    for (const [target, command] of Object.entries(PLATFORM_TARGETS)) {
      const dryRun = make(['-n', target]);
      expect(dryRun.status, dryRun.stderr).toBe(0);
      expect(dryRun.stdout, target).toMatch(
        new RegExp(`(docker compose|docker-compose) ${command.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}`),
      );
      if (target.endsWith('-prod')) {
        expect(dryRun.stdout, target).toContain(`PLATFORM_SECRETS_DIR=${join(REPO, 'deploy/secrets')} `);
      }
    }
    expect(make(['-n', 'platform-config']).stdout).toMatch(
      /-p quintet -f deploy\/docker-compose\.prod\.yml config/,
    );
  });

  it('skips with a message and exit 0 when neither compose CLI is installed', () => {
    const bare = mkdtempSync(join(tmpdir(), 'platform-make-'));
    try {
      symlinkSync(MAKE ?? '', join(bare, 'make'));
      for (const target of Object.keys(PLATFORM_TARGETS)) {
        const run = make([target], { PATH: bare });
        expect(run.status, `${target}: ${run.stderr}`).toBe(0);
        expect(run.stdout.trim()).toBe(`docker-compose is not installed: skipping ${target}`);
      }
    } finally {
      rmSync(bare, { recursive: true, force: true });
    }
  });

  it('lists the platform targets in `make help` beside the existing ones', () => {
    const help = make([]);
    expect(help.status).toBe(0);
    for (const target of [...Object.keys(PLATFORM_TARGETS), 'platform-secrets']) {
      expect(help.stdout).toMatch(new RegExp(`^  ${target} +platform: `, 'm'));
    }
    for (const target of [
      'docker-build',
      'up-prod',
      'up-dev',
      'secrets',
      'demo',
      'allocator-up',
      'helm-lint',
    ]) {
      expect(help.stdout).toMatch(new RegExp(`^  ${target} +`, 'm'));
    }
  });

  it('platform-secrets writes every secret of the production file once, consistent with each other', () => {
    const dir = mkdtempSync(join(tmpdir(), 'platform-secrets-'));
    try {
      const secrets = join(dir, 'secrets');
      const first = make(['platform-secrets', `PLATFORM_SECRETS_DIR=${secrets}`]);
      expect(first.status, first.stderr).toBe(0);
      expect(readdirSync(secrets).sort()).toEqual(Object.keys(prod.secrets ?? {}).sort());
      expect(statSync(secrets).mode & 0o777).toBe(0o700);
      const secret = (name: string) => read(join(secrets, name));
      for (const name of [
        'postgres_password',
        'owsc_db_password',
        'allocator_db_password',
        'rag_db_password',
        'rag_jwt_secret',
      ]) {
        expect(secret(name), name).toMatch(/^[0-9a-f]{64}$/);
        // readable by the containers' users (the directory keeps other host users out)
        expect(statSync(join(secrets, name)).mode & 0o777, name).toBe(0o644);
      }
      expect(secret('owsc_database_url')).toBe(
        `postgresql://owsc:${secret('owsc_db_password')}@postgres:5432/owsc`,
      );
      expect(secret('rag_database_url')).toBe(
        `postgresql://rag:${secret('rag_db_password')}@postgres:5432/rag`,
      );
      expect(secret('docops_web_basic_auth')).toMatch(/^docops:[0-9a-f]{64}$/);
      expect(secret('gemini_api_key')).toBe('');
      expect(secret('rag_db_password')).not.toBe(secret('owsc_db_password'));
      const before = secret('rag_jwt_secret');
      const second = make(['platform-secrets', `PLATFORM_SECRETS_DIR=${secrets}`]);
      expect(second.stdout).toContain(`kept    ${secrets}/rag_jwt_secret`);
      expect(secret('rag_jwt_secret')).toBe(before);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

// --- Optional: the compose CLI and promtool ---------------------------------------------------------------

const COMPOSE = composeCommand();
if (COMPOSE === undefined) {
  console.warn(
    'platform deploy: `docker compose config` SKIPPED: neither docker compose nor docker-compose is installed',
  );
}
const PROMTOOL = findExecutable('promtool');
if (PROMTOOL === undefined)
  console.warn('platform deploy: `promtool check config` SKIPPED: promtool is not installed');

describe.skipIf(COMPOSE === undefined)('compose config', () => {
  it.each(BOTH.map(([file]) => file))('accepts %s', (file) => {
    const [command, ...prefix] = COMPOSE ?? [];
    // An empty environment file (the check must not depend on a local deploy/.env) and a secrets directory of
    // its own.
    const dir = mkdtempSync(join(tmpdir(), 'platform-compose-'));
    try {
      const envFile = join(dir, 'empty.env');
      writeFileSync(envFile, '');
      for (const secret of Object.keys(prod.secrets ?? {})) writeFileSync(join(dir, secret), 'x');
      const result = spawnSync(
        command ?? 'docker',
        [...prefix, '--env-file', envFile, '-f', join(DEPLOY, file), 'config'],
        {
          encoding: 'utf8',
          env: { PATH: process.env.PATH ?? '', HOME: dir, PLATFORM_SECRETS_DIR: dir },
        },
      );
      expect(result.status, result.stderr).toBe(0);
      const resolved = parse(result.stdout) as ComposeFile;
      expect(Object.keys(resolved.services).sort()).toEqual(ALL_SERVICES);
      expect(String(service(resolved, 'rag-backend').environment?.REDIS_URL)).toBe('redis://redis:6379/3');
      if (file === 'docker-compose.prod.yml') {
        for (const source of Object.values(resolved.secrets ?? {}))
          expect(source.file?.startsWith(dir)).toBe(true);
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe.skipIf(PROMTOOL === undefined)('promtool', () => {
  it('accepts monitoring/prometheus.yml (and the rules it loads)', () => {
    const result = spawnSync(PROMTOOL ?? 'promtool', ['check', 'config', 'monitoring/prometheus.yml'], {
      cwd: REPO,
      encoding: 'utf8',
    });
    expect(result.status, result.stdout + result.stderr).toBe(0);
    expect(result.stdout).toContain('SUCCESS');
  });
});

// --- documentation ----------------------------------------------------------------------------------------

describe('the runbook', () => {
  const runbook = read(join(DEPLOY, 'README.md'));
  const readme = read(join(REPO, 'README.md'));

  it('deploy/README.md names the files, every port, every service guide and the make targets', () => {
    for (const text of [
      'deploy/docker-compose.yml',
      'deploy/docker-compose.prod.yml',
      'deploy/nginx/platform.conf',
      'deploy/postgres/initdb/10-service-databases.sh',
      ...Object.keys(PROXY_PORTS),
      '9090',
      '3000',
      ...['docops', 'owsc', 'allocator', 'rag', 'raven'].map((name) => `services/${name}/docs/DEPLOYMENT.md`),
      ...Object.keys(PLATFORM_TARGETS).map((target) => `make ${target}`),
      'make platform-secrets',
    ]) {
      expect(runbook, text).toContain(text);
    }
    for (const secret of Object.keys(prod.secrets ?? {})) expect(runbook, secret).toContain(secret);
  });

  it('the root README has a Platform section after the services table, pointing at the runbook', () => {
    const table = readme.indexOf('| Raven Zero');
    const section = readme.indexOf('\n## Platform\n');
    expect(table).toBeGreaterThan(0);
    expect(section).toBeGreaterThan(table);
    const body = readme.slice(section, readme.indexOf('\n## ', section + 1));
    expect(body).toContain('deploy/README.md');
    expect(body).toContain('make platform-up');
    expect(body).toContain('8888');
  });
});
