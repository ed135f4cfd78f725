// Deployment assets of spec §2.1 (acceptance case 41), checked without Docker, Helm or Kubernetes: the two
// Dockerfiles, the quick-start manifests in deploy/k8s, the Helm chart, the root Makefile and the operations
// guide. `helm lint`/`helm template` and `kubeconform` run too when those tools are installed.
import { spawnSync } from 'node:child_process';
import { existsSync, globSync, readdirSync, readFileSync } from 'node:fs';
import { join, posix, resolve } from 'node:path';
import {
  dockerfileStages,
  envAssignments,
  execForm,
  findExecutable,
  makeRunner,
  stageEnvironment,
} from '@quintet/kernel/testing-deploy';
import { Ajv } from 'ajv';
import { afterAll, describe, expect, it } from 'vitest';
import { parse, parseAllDocuments } from 'yaml';
import { loadConfig } from '../src/config.js';

const REPO = resolve(import.meta.dirname, '../../..');
const K8S = join(REPO, 'deploy/k8s');
const CHART = join(REPO, 'charts/openworld-specialty-chemicals');
const GUIDE = join(REPO, 'services/owsc/docs/DEPLOYMENT.md');
const SEED_HELM_SET_KEYS = [
  'image.repository',
  'image.tag',
  'secrets.apiToken',
  'secrets.metricsProtect',
  'secrets.metricsToken',
  'secrets.redisUrl',
];
const VOLUMES = [
  '/app/data',
  '/app/artifacts',
  '/app/reports',
  '/app/logs',
  '/app/provenance',
  '/app/lineage',
];

// Every variable of the configuration table (§3.12), split by how a deployment sets it.
/** chart `secrets.*` key of each variable that goes through `secrets` */
const SECRET_VALUES: Record<string, string> = {
  OW_SC_API_TOKEN: 'apiToken',
  OW_SC_METRICS_PROTECT: 'metricsProtect',
  OW_SC_METRICS_TOKEN: 'metricsToken',
  OW_SC_REDIS_URL: 'redisUrl',
  OW_SC_REDIS_CHANNEL: 'redisChannel',
  DATABASE_URL: 'databaseUrl',
};
/** variables a deployment sets as they are named, under `env.*` */
const ENV_VALUES = [
  'OW_SC_RL_PER_SEC',
  'OW_SC_TRUST_PROXY',
  'OW_SC_CORS_ORIGINS',
  'OW_SC_WS_MSGS_PER_SEC',
  'OW_SC_WS_MAX_MESSAGE_BYTES',
  'OW_SC_WS_MAX_CONNECTIONS',
  'OW_SC_STREAM_BUFFER',
  'OW_SC_MAX_CSV_BYTES',
  'OW_SC_MAX_CSV_ROWS',
  'OW_SC_MAX_JSON_BYTES',
  'OW_SC_NONDETECT',
  'OW_SC_WORKERS',
  'OW_SC_JOB_WORKERS',
  'OW_SC_JOB_TIMEOUT_S',
  'OW_SC_SHUTDOWN_TIMEOUT_S',
  'OW_SC_ADVICE_PROVIDER',
  'OW_SC_ALLOW_ANONYMOUS',
  'LOG_FORMAT',
  'LOG_LEVEL',
  'LOG_FILE',
];
/** variables fixed by the image (ENV, CMD) or by the chart's own volume mounts, not by values */
const FIXED_BY_IMAGE = [
  'NODE_ENV',
  'OW_SC_HOST',
  'OW_SC_DATA_DIR',
  'OW_SC_ARTIFACTS_DIR',
  'OW_SC_REPORTS_DIR',
  'OW_SC_PROVENANCE_LEDGER',
  'OW_SC_LINEAGE_LEDGER',
];
/** PORT/APP_PORT: the CMD passes --port 8000; ENVIRONMENT: NODE_ENV=production already holds */
const NOT_SET_BY_DEPLOYMENTS = ['PORT', 'APP_PORT', 'ENVIRONMENT'];
/** set by the chart's Deployment template itself: /tmp is an emptyDir, the permit comes from `permit` */
const FIXED_BY_CHART = ['OW_SC_TMP_DIR', 'OW_SC_PERMIT_FILE'];
const CONFIGURATION_TABLE = [
  'PORT',
  'APP_PORT',
  'OW_SC_HOST',
  'NODE_ENV',
  'ENVIRONMENT',
  'OW_SC_API_TOKEN',
  'OW_SC_METRICS_PROTECT',
  'OW_SC_METRICS_TOKEN',
  'OW_SC_RL_PER_SEC',
  'OW_SC_TRUST_PROXY',
  'OW_SC_CORS_ORIGINS',
  'OW_SC_WS_MSGS_PER_SEC',
  'OW_SC_WS_MAX_MESSAGE_BYTES',
  'OW_SC_WS_MAX_CONNECTIONS',
  'OW_SC_STREAM_BUFFER',
  'OW_SC_MAX_CSV_BYTES',
  'OW_SC_MAX_CSV_ROWS',
  'OW_SC_MAX_JSON_BYTES',
  'OW_SC_PERMIT_FILE',
  'OW_SC_NONDETECT',
  'OW_SC_REDIS_URL',
  'OW_SC_REDIS_CHANNEL',
  'DATABASE_URL',
  'OW_SC_DATA_DIR',
  'OW_SC_ARTIFACTS_DIR',
  'OW_SC_REPORTS_DIR',
  'OW_SC_PROVENANCE_LEDGER',
  'OW_SC_LINEAGE_LEDGER',
  'OW_SC_TMP_DIR',
  'OW_SC_WORKERS',
  'OW_SC_JOB_WORKERS',
  'OW_SC_JOB_TIMEOUT_S',
  'OW_SC_SHUTDOWN_TIMEOUT_S',
  'OW_SC_ADVICE_PROVIDER',
  'OW_SC_ALLOW_ANONYMOUS',
  'LOG_FORMAT',
  'LOG_LEVEL',
  'LOG_FILE',
];
/** the rate and size limits with their §3.12 defaults: every deployment sets them explicitly */
const LIMIT_DEFAULTS: Record<string, number> = {
  OW_SC_RL_PER_SEC: 10,
  OW_SC_WS_MSGS_PER_SEC: 20,
  OW_SC_WS_MAX_MESSAGE_BYTES: 8192,
  OW_SC_WS_MAX_CONNECTIONS: 5000,
  OW_SC_STREAM_BUFFER: 1024,
  OW_SC_MAX_CSV_BYTES: 10_485_760,
  OW_SC_MAX_CSV_ROWS: 1_000_000,
  OW_SC_MAX_JSON_BYTES: 1_048_576,
};
/** the only names of secrets a deployment may pass: never as plain values */
const SECRET_NAME = /TOKEN|PASSWORD|SECRET|KEY|_URL$/;

type Json = null | boolean | number | string | Json[] | { [key: string]: Json };
type JsonObject = { [key: string]: Json };

function isObject(value: unknown): value is JsonObject {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function read(path: string): string {
  return readFileSync(path, 'utf8');
}

/** The value at a dotted path, or undefined when a segment is missing. */
function at(root: unknown, path: string): unknown {
  let node: unknown = root;
  for (const key of path.split('.')) {
    if (!isObject(node) || !Object.hasOwn(node, key)) return undefined;
    node = node[key];
  }
  return node;
}

function hasPath(root: unknown, path: string): boolean {
  return at(root, path) !== undefined;
}

// --- Dockerfiles ---------------------------------------------------------------------------------------

function insideVolume(path: string): boolean {
  return VOLUMES.some((volume) => posix.resolve('/app', path).startsWith(`${volume}/`) || path === volume);
}

const DOCKERFILES = [
  {
    file: 'deploy/owsc/Dockerfile',
    runtime: 'node:24-bookworm-slim',
    healthcheck: ['node', 'services/owsc/dist/cli.js', 'healthcheck'],
    cmd: ['openworld-chem', 'dashboard', '--host', '0.0.0.0', '--port', '8000'],
  },
  {
    file: 'deploy/owsc/Dockerfile.distroless',
    runtime: 'gcr.io/distroless/nodejs24-debian12:nonroot',
    // distroless: node is the entrypoint, at /nodejs/bin/node, and not on PATH
    healthcheck: ['/nodejs/bin/node', 'services/owsc/dist/cli.js', 'healthcheck'],
    cmd: ['services/owsc/bin/openworld-chem.js', 'dashboard', '--host', '0.0.0.0', '--port', '8000'],
  },
];

describe.each(DOCKERFILES)('$file', ({ file, runtime, healthcheck, cmd }) => {
  const text = read(join(REPO, file));
  const all = dockerfileStages(text);
  const steps = all.flat();
  const runtimeStage = all.at(-1) ?? [];
  const stageNames = all.map((stage) => /\sAS\s+(\S+)/i.exec(stage[0]?.args ?? '')?.[1]).filter(Boolean);
  const runtimeEnv = stageEnvironment(runtimeStage);

  it('builds on node:24-bookworm-slim and runs on a pinned runtime image', () => {
    expect(all.length).toBeGreaterThan(1);
    expect(all[0]?.[0]?.args).toBe('node:24-bookworm-slim AS build');
    expect(runtimeStage[0]?.args).toBe(runtime);
  });

  it('pins every base image to a tag other than latest and fetches nothing with ADD', () => {
    const images = [
      ...steps.filter((s) => s.op === 'FROM').map((s) => s.args.split(/\s+/)[0] as string),
      ...steps
        .filter((s) => s.op === 'COPY')
        .map((s) => /--from=(\S+)/.exec(s.args)?.[1])
        .filter((ref): ref is string => ref !== undefined && !stageNames.includes(ref)),
    ];
    expect(images.length).toBeGreaterThan(1);
    for (const image of images) {
      const tag = /:([^/:@]+)$/.exec(image)?.[1];
      expect(tag, image).toBeDefined();
      expect(tag, image).not.toBe('latest');
    }
    expect(steps.filter((s) => s.op === 'ADD' && /https?:\/\//.test(s.args))).toEqual([]);
  });

  it('installs the kernel and owsc workspaces with the lockfile, compiles owsc and prunes dev dependencies', () => {
    const runs = steps.filter((s) => s.op === 'RUN').map((s) => s.args);
    const install = runs.find((args) => /\bnpm ci\b/.test(args)) ?? '';
    expect(install).toMatch(/--workspace @quintet\/kernel/);
    expect(install).toMatch(/--workspace @quintet\/owsc/);
    expect(JSON.parse(read(join(REPO, 'services/owsc/package.json'))).name).toBe('@quintet/owsc');
    expect(JSON.parse(read(join(REPO, 'packages/kernel/package.json'))).name).toBe('@quintet/kernel');
    expect(runs.some((args) => args.includes('npx tsc -b services/owsc'))).toBe(true);
    expect(runs.some((args) => /npm prune --omit=dev/.test(args))).toBe(true);
  });

  it('copies only sources that exist in the build context', () => {
    const fromContext = steps.filter((s) => s.op === 'COPY' && !s.args.includes('--from='));
    expect(fromContext.length).toBeGreaterThan(0);
    for (const copy of fromContext) {
      const sources = copy.args
        .split(/\s+/)
        .filter((word) => !word.startsWith('--'))
        .slice(0, -1);
      for (const source of sources) expect(globSync(source, { cwd: REPO }).length, source).toBeGreaterThan(0);
    }
  });

  it('ships the bin, the compiled code and the web assets of owsc with the kernel', () => {
    const copied = runtimeStage.filter((s) => s.op === 'COPY').map((s) => s.args);
    for (const path of [
      'services/owsc/package.json',
      'services/owsc/bin',
      'services/owsc/dist',
      'services/owsc/web',
      'packages/kernel/dist',
      'node_modules',
    ]) {
      expect(
        copied.some((args) => args.includes(path)),
        path,
      ).toBe(true);
    }
  });

  it('runs as uid 10001 and exposes 8000', () => {
    const user = runtimeStage.filter((s) => s.op === 'USER').at(-1)?.args;
    expect(user).toBe('10001');
    expect(runtimeStage.filter((s) => s.op === 'EXPOSE').map((s) => s.args)).toEqual(['8000']);
  });

  it('declares the six volumes and points every data directory and ledger into them', () => {
    const volumes = runtimeStage.filter((s) => s.op === 'VOLUME').map((s) => JSON.parse(s.args));
    expect(volumes).toEqual([VOLUMES]);
    expect(runtimeEnv).toMatchObject({
      NODE_ENV: 'production',
      OW_SC_HOST: '0.0.0.0',
      OW_SC_DATA_DIR: '/app/data',
      OW_SC_ARTIFACTS_DIR: '/app/artifacts',
      OW_SC_REPORTS_DIR: '/app/reports',
    });
    expect(runtimeEnv.OW_SC_PROVENANCE_LEDGER).toMatch(/^\/app\/provenance\/[^/]+\.jsonl$/);
    expect(runtimeEnv.OW_SC_LINEAGE_LEDGER).toMatch(/^\/app\/lineage\/[^/]+\.jsonl$/);
    // With --read-only and no tmpfs, uploads can only be staged inside a volume.
    for (const name of Object.keys(runtimeEnv).filter((key) => /^OW_SC_.*(_DIR|_LEDGER)$/.test(key))) {
      expect(insideVolume(runtimeEnv[name] ?? ''), `${name}=${runtimeEnv[name]}`).toBe(true);
    }
    expect(insideVolume(runtimeEnv.OW_SC_TMP_DIR ?? '')).toBe(true);
    for (const name of FIXED_BY_IMAGE) expect(runtimeEnv, name).toHaveProperty(name);
  });

  it('accepts its own environment as a valid configuration', () => {
    const config = loadConfig(runtimeEnv);
    expect(config.production).toBe(true);
    expect(config.host).toBe('0.0.0.0');
    expect(config.dataDir).toBe('/app/data');
  });

  it('keeps secrets out of ENV and ARG', () => {
    for (const step of steps.filter((s) => s.op === 'ENV' || s.op === 'ARG')) {
      const names =
        step.op === 'ENV' ? Object.keys(envAssignments(step.args)) : [step.args.split('=')[0] as string];
      for (const name of names) expect(name, `${step.op} ${name}`).not.toMatch(SECRET_NAME);
    }
  });

  it('probes with the CLI healthcheck and starts `openworld-chem dashboard` on 0.0.0.0:8000', () => {
    const probes = runtimeStage.filter((s) => s.op === 'HEALTHCHECK');
    expect(probes).toHaveLength(1);
    expect(execForm(probes[0]?.args ?? '')).toEqual(healthcheck);
    const commands = runtimeStage.filter((s) => s.op === 'CMD');
    expect(commands).toHaveLength(1);
    expect(execForm(commands[0]?.args ?? '')).toEqual(cmd);
    // the bin loads the same compiled entry point the health check runs
    expect(read(join(REPO, 'services/owsc/bin/openworld-chem.js'))).toContain("'../dist/cli.js'");
  });
});

describe('deploy/owsc/Dockerfile bin link', () => {
  it('links openworld-chem on PATH to the package bin', () => {
    const runtimeStage = dockerfileStages(read(join(REPO, 'deploy/owsc/Dockerfile'))).at(-1) ?? [];
    const bin = JSON.parse(read(join(REPO, 'services/owsc/package.json'))).bin['openworld-chem'] as string;
    const link = runtimeStage.find((s) => s.op === 'RUN' && s.args.includes('ln -s'))?.args;
    expect(link).toBe(`ln -s ${posix.join('/app/services/owsc', bin)} /usr/local/bin/openworld-chem`);
  });
});

// --- Kubernetes quick-start manifests ----------------------------------------------------------------

interface Manifest extends JsonObject {
  kind: string;
}

function manifests(file: string): Manifest[] {
  const documents = parseAllDocuments(read(join(K8S, file)));
  if (!Array.isArray(documents)) throw new Error(`${file}: empty`);
  return documents.map((document) => {
    expect(document.errors, file).toEqual([]);
    const value = document.toJS() as unknown;
    if (!isObject(value) || typeof value.kind !== 'string')
      throw new Error(`${file}: not a Kubernetes object`);
    return value as Manifest;
  });
}

function only(list: Manifest[], kind: string): JsonObject {
  const found = list.filter((item) => item.kind === kind);
  expect(found, kind).toHaveLength(1);
  return found[0] as JsonObject;
}

type Container = {
  name: string;
  ports?: { name?: string; containerPort: number }[];
  env?: { name: string; value?: string; valueFrom?: { secretKeyRef?: { name: string; key: string } } }[];
  readinessProbe?: { httpGet?: { path: string; port: number | string } };
  livenessProbe?: { httpGet?: { path: string; port: number | string } };
  securityContext?: JsonObject;
  volumeMounts?: { name: string; mountPath: string }[];
};

function podSpec(deployment: JsonObject): JsonObject {
  const spec = at(deployment, 'spec.template.spec');
  if (!isObject(spec)) throw new Error('Deployment without a pod template');
  return spec;
}

function container(deployment: JsonObject): Container {
  const containers = podSpec(deployment).containers as unknown as Container[];
  expect(containers).toHaveLength(1);
  return containers[0] as Container;
}

function probePort(c: Container, port: number | string | undefined): number | undefined {
  if (typeof port === 'number') return port;
  return c.ports?.find((p) => p.name === port)?.containerPort;
}

describe('deploy/k8s quick start', () => {
  const files = readdirSync(K8S).filter((f) => /^(owsc-.*|redis)\.yaml$/.test(f));
  const deployment = only(manifests('owsc-deployment.yaml'), 'Deployment');
  const service = only(manifests('owsc-service.yaml'), 'Service');
  const ingress = only(manifests('owsc-ingress.yaml'), 'Ingress');
  const redis = manifests('redis.yaml');
  const app = container(deployment);
  const env = new Map((app.env ?? []).map((e) => [e.name, e]));

  it('has the deployment, service, ingress stub and redis manifests, all parseable', () => {
    expect(files.sort()).toEqual([
      'owsc-deployment.yaml',
      'owsc-ingress.yaml',
      'owsc-service.yaml',
      'redis.yaml',
    ]);
    for (const file of files) expect(manifests(file).length).toBeGreaterThan(0);
  });

  it('serves on 8000 with readiness /readyz and liveness /livez', () => {
    expect(app.ports?.map((p) => p.containerPort)).toEqual([8000]);
    expect(app.readinessProbe?.httpGet?.path).toBe('/readyz');
    expect(probePort(app, app.readinessProbe?.httpGet?.port)).toBe(8000);
    expect(app.livenessProbe?.httpGet?.path).toBe('/livez');
    expect(probePort(app, app.livenessProbe?.httpGet?.port)).toBe(8000);
  });

  it('runs non-root with a read-only root file system, no privilege escalation and no capabilities', () => {
    expect(at(podSpec(deployment), 'securityContext.runAsNonRoot')).toBe(true);
    expect(app.securityContext).toMatchObject({
      runAsNonRoot: true,
      readOnlyRootFilesystem: true,
      allowPrivilegeEscalation: false,
      capabilities: { drop: ['ALL'] },
    });
  });

  it('mounts an emptyDir at /tmp and at every data volume', () => {
    const volumes = podSpec(deployment).volumes as unknown as { name: string; emptyDir?: JsonObject }[];
    const emptyDirs = new Set(volumes.filter((v) => v.emptyDir !== undefined).map((v) => v.name));
    const mounted = (app.volumeMounts ?? []).filter((m) => emptyDirs.has(m.name)).map((m) => m.mountPath);
    expect(mounted.sort()).toEqual(['/tmp', ...VOLUMES].sort());
    expect(env.get('OW_SC_TMP_DIR')?.value).toBe('/tmp');
  });

  it('sets every rate and size limit to its documented default', () => {
    for (const [name, value] of Object.entries(LIMIT_DEFAULTS))
      expect(env.get(name)?.value, name).toBe(`${value}`);
  });

  it('takes tokens and URLs from the Secret owsc-secrets only', () => {
    for (const name of ['OW_SC_API_TOKEN', 'OW_SC_METRICS_TOKEN', 'OW_SC_REDIS_URL', 'DATABASE_URL']) {
      expect(env.get(name)?.valueFrom?.secretKeyRef?.name, name).toBe('owsc-secrets');
    }
    for (const variable of app.env ?? []) {
      if (SECRET_NAME.test(variable.name)) expect(variable.value, variable.name).toBeUndefined();
    }
  });

  it('is a valid configuration in production mode, with the image environment', () => {
    const imageEnv = stageEnvironment(
      dockerfileStages(read(join(REPO, 'deploy/owsc/Dockerfile'))).at(-1) ?? [],
    );
    const plain = Object.fromEntries(
      (app.env ?? []).filter((e) => e.value !== undefined).map((e) => [e.name, e.value]),
    );
    const config = loadConfig({ ...imageEnv, ...plain });
    expect(config.production).toBe(true);
    expect(config.tmpDir).toBe('/tmp');
    expect(config.maxCsvBytes).toBe(LIMIT_DEFAULTS.OW_SC_MAX_CSV_BYTES);
  });

  it('routes the service and the ingress to the pods port 8000', () => {
    const podLabels = at(deployment, 'spec.template.metadata.labels') as JsonObject;
    expect(podLabels).toMatchObject(at(service, 'spec.selector') as JsonObject);
    expect(at(deployment, 'spec.selector.matchLabels')).toEqual(at(service, 'spec.selector'));
    const ports = at(service, 'spec.ports') as { name: string; targetPort: number | string }[];
    expect(ports.map((p) => probePort(app, p.targetPort))).toEqual([8000]);
    const rules = at(ingress, 'spec.rules') as { http: { paths: { backend: JsonObject }[] } }[];
    for (const path of rules.flatMap((rule) => rule.http.paths)) {
      expect(at(path.backend, 'service.name')).toBe(at(service, 'metadata.name'));
      expect(ports.map((p) => p.name)).toContain(at(path.backend, 'service.port.name'));
    }
  });

  it('runs Redis 7 without persistence behind the ClusterIP Service redis:6379', () => {
    const redisDeployment = only(redis, 'Deployment');
    const redisService = only(redis, 'Service');
    const redisContainer = container(redisDeployment) as Container & { image: string; args: string[] };
    expect(redisContainer.image).toMatch(/^redis:7(\.\d+)*-/);
    expect(redisContainer.args).toEqual(['redis-server', '--save', '', '--appendonly', 'no']);
    expect(at(redisService, 'metadata.name')).toBe('redis');
    expect(at(redisService, 'spec.type')).toBe('ClusterIP');
    expect((at(redisService, 'spec.ports') as { port: number }[]).map((p) => p.port)).toEqual([6379]);
    expect(at(redisDeployment, 'spec.template.metadata.labels')).toMatchObject(
      at(redisService, 'spec.selector') as JsonObject,
    );
    expect(redisContainer.securityContext).toMatchObject({
      allowPrivilegeEscalation: false,
      readOnlyRootFilesystem: true,
    });
  });
});

// --- Helm chart ---------------------------------------------------------------------------------------

const TEMPLATES = join(CHART, 'templates');
const values = parse(read(join(CHART, 'values.yaml'))) as JsonObject;
const schema = JSON.parse(read(join(CHART, 'values.schema.json'))) as JsonObject;
const validateValues = new Ajv({ allErrors: true, strict: false }).compile(schema);
const templateFiles = readdirSync(TEMPLATES).sort();
const templates = new Map(templateFiles.map((file) => [file, read(join(TEMPLATES, file))]));

/** Values after `--set key=value` pairs, typed the way Helm types them. */
function withSets(base: JsonObject, sets: [string, string][]): JsonObject {
  const copy = structuredClone(base);
  for (const [key, raw] of sets) {
    const value: Json =
      raw === 'true' ? true : raw === 'false' ? false : /^-?\d+$/.test(raw) ? Number(raw) : raw;
    const path = key.split('.');
    let node: JsonObject = copy;
    for (const segment of path.slice(0, -1)) {
      const next = node[segment];
      if (!isObject(next)) node[segment] = {};
      node = node[segment] as JsonObject;
    }
    node[path.at(-1) as string] = value;
  }
  return copy;
}

/** The `--set key=value` pairs of every `helm install` in the operations guide. */
function guideSets(): [string, string][] {
  return [...read(GUIDE).matchAll(/--set(?:-string)?\s+([\w.]+)=(\S+)/g)].map((m) => [
    m[1] as string,
    m[2] as string,
  ]);
}

/** Template actions in order, e.g. `if .Values.x`, `end`, `include "owsc.name" .`. */
function actions(template: string): string[] {
  return [...template.matchAll(/\{\{-?\s*([\s\S]*?)\s*-?\}\}/g)].map((m) => m[1] as string);
}

describe('charts/openworld-specialty-chemicals', () => {
  it('is a v2 chart named after its directory', () => {
    const chart = parse(read(join(CHART, 'Chart.yaml'))) as JsonObject;
    expect(chart).toMatchObject({
      apiVersion: 'v2',
      name: 'openworld-specialty-chemicals',
      type: 'application',
    });
    expect(chart.version).toMatch(/^\d+\.\d+\.\d+$/);
    expect(chart.appVersion).toBe(JSON.parse(read(join(REPO, 'services/owsc/package.json'))).version);
  });

  it('has the Deployment, Service, Ingress, Secret, HPA and NOTES templates', () => {
    for (const file of [
      '_helpers.tpl',
      'deployment.yaml',
      'service.yaml',
      'ingress.yaml',
      'secret.yaml',
      'hpa.yaml',
      'NOTES.txt',
    ]) {
      expect(templateFiles).toContain(file);
    }
  });

  it('validates values.yaml against values.schema.json', () => {
    expect(validateValues(values), JSON.stringify(validateValues.errors)).toBe(true);
  });

  it('rejects a mistyped value and an unknown env variable', () => {
    expect(validateValues(withSets(values, [['env.OW_SC_RL_PER_SEC', 'fast']]))).toBe(false);
    expect(validateValues(withSets(values, [['env.OW_SC_RL_PER_SECOND', '5']]))).toBe(false);
    expect(validateValues(withSets(values, [['secrets.redisUrl', 'http://redis:6379']]))).toBe(false);
  });

  it("accepts the seed guide's --set keys, and those of this guide, as valid values", () => {
    for (const key of SEED_HELM_SET_KEYS) expect(hasPath(values, key), key).toBe(true);
    const sets = guideSets();
    expect(sets.map(([key]) => key)).toEqual(expect.arrayContaining(SEED_HELM_SET_KEYS));
    for (const [key] of sets) expect(hasPath(values, key), key).toBe(true);
    const installed = withSets(values, sets);
    expect(validateValues(installed), JSON.stringify(validateValues.errors)).toBe(true);
    expect(installed.secrets).toMatchObject({ metricsProtect: true, redisUrl: 'redis://redis:6379/0' });
  });

  it('has the other keys of the spec', () => {
    for (const key of [
      'image.pullPolicy',
      'secrets.redisChannel',
      'secrets.databaseUrl',
      'autoscaling.enabled',
      'autoscaling.minReplicas',
      'autoscaling.maxReplicas',
      'ingress.enabled',
      'ingress.hosts',
      'resources',
      'replicaCount',
    ]) {
      expect(hasPath(values, key), key).toBe(true);
    }
  });

  it('covers every variable of the configuration table that a deployment may set', () => {
    const accounted = [
      ...Object.keys(SECRET_VALUES),
      ...ENV_VALUES,
      ...FIXED_BY_IMAGE,
      ...FIXED_BY_CHART,
      ...NOT_SET_BY_DEPLOYMENTS,
    ];
    expect(accounted.sort()).toEqual([...CONFIGURATION_TABLE].sort());
    for (const [name, key] of Object.entries(SECRET_VALUES))
      expect(hasPath(values, `secrets.${key}`), name).toBe(true);
    for (const name of ENV_VALUES) expect(hasPath(values, `env.${name}`), name).toBe(true);
    for (const [name, value] of Object.entries(LIMIT_DEFAULTS))
      expect(at(values, `env.${name}`), name).toBe(value);
    const deployment = templates.get('deployment.yaml') ?? '';
    for (const name of FIXED_BY_CHART) expect(deployment).toContain(`- name: ${name}`);
  });

  it('has default values the service accepts', () => {
    const env = Object.fromEntries(
      Object.entries(values.env as JsonObject).map(([name, value]) => [
        name,
        value === null ? '' : String(value),
      ]),
    );
    const config = loadConfig({ NODE_ENV: 'production', ...env, OW_SC_TMP_DIR: '/tmp' });
    expect(config.rateLimitPerSecond).toBe(10);
    expect(config.redisChannel).toBe('owsc:effluent');
    expect(at(values, 'secrets.redisChannel')).toBe(config.redisChannel);
  });

  it('references only values that exist in values.yaml', () => {
    for (const [file, text] of templates) {
      for (const match of text.matchAll(/\.Values((?:\.[A-Za-z_][A-Za-z0-9_]*)+)/g)) {
        expect(hasPath(values, (match[1] as string).slice(1)), `${file}: ${match[0]}`).toBe(true);
      }
    }
  });

  it('balances every template block and includes only defined helpers', () => {
    const helpers = new Set(
      actions(templates.get('_helpers.tpl') ?? '').flatMap((a) => /^define "([^"]+)"$/.exec(a)?.[1] ?? []),
    );
    for (const [file, text] of templates) {
      expect((text.match(/\{\{/g) ?? []).length, file).toBe((text.match(/\}\}/g) ?? []).length);
      let depth = 0;
      for (const action of actions(text)) {
        if (/^\/\*/.test(action)) continue;
        if (/^(if|range|with|define)\b/.test(action)) depth += 1;
        if (action === 'end') depth -= 1;
        expect(depth, `${file}: ${action}`).toBeGreaterThanOrEqual(0);
        for (const include of action.matchAll(/include "([^"]+)"/g)) {
          expect(helpers.has(include[1] as string), `${file}: ${include[0]}`).toBe(true);
        }
      }
      expect(depth, file).toBe(0);
    }
  });

  it('renders probes on 8000, the security context and secretKeyRef-only tokens in the Deployment', () => {
    const deployment = templates.get('deployment.yaml') ?? '';
    expect(deployment).toMatch(/readinessProbe:\s+httpGet:\s+path: \/readyz\s+port: 8000/);
    expect(deployment).toMatch(/livenessProbe:\s+httpGet:\s+path: \/livez\s+port: 8000/);
    expect(deployment).toMatch(/containerPort: 8000/);
    for (const field of [
      'runAsNonRoot: true',
      'readOnlyRootFilesystem: true',
      'allowPrivilegeEscalation: false',
      'drop: ["ALL"]',
    ]) {
      expect(deployment).toContain(field);
    }
    expect(deployment).toContain('secretKeyRef:');
    expect(templates.get('secret.yaml')).toMatch(/kind: Secret/);
    // Token and URL values are read by the Secret helper only; no template prints one.
    const secretValue = /\.Values\.secrets\.(apiToken|metricsToken|redisUrl|databaseUrl|openaiApiKey)/;
    for (const [file, text] of templates) {
      if (file === '_helpers.tpl' || file === 'NOTES.txt') continue;
      expect(text, file).not.toMatch(secretValue);
    }
    for (const action of actions(templates.get('NOTES.txt') ?? '')) {
      if (secretValue.test(action)) expect(action, 'NOTES.txt').toMatch(/^(if|else if)\b/);
    }
  });
});

// --- Makefile -----------------------------------------------------------------------------------------

const MAKEFILE = read(join(REPO, 'Makefile'));
const MAKE_TARGETS: Record<string, string> = {
  'docker-build': 'docker build -f deploy/owsc/Dockerfile -t openworld-specialty-chemicals:latest .',
  'docker-run': 'docker run --rm -p 8000:8000 openworld-specialty-chemicals:latest',
  'docker-build-distroless':
    'docker build -f deploy/owsc/Dockerfile.distroless -t openworld-specialty-chemicals:distroless .',
  'docker-run-hardened': 'docker run --rm --read-only -p 8000:8000',
  'helm-lint': 'helm lint',
  'helm-template': 'helm template',
};

/** Shell continuation lines (`\` + newline) joined with one space. */
function joinLines(text: string): string {
  return text.replace(/\s*\\\n\s*/g, ' ');
}

const MAKE = findExecutable('make');
if (MAKE === undefined) console.warn('deploy: running the make targets skipped: make is not installed');

describe('Makefile', () => {
  it('has the targets with the seed commands', () => {
    for (const target of ['help', ...Object.keys(MAKE_TARGETS)]) {
      expect(MAKEFILE, target).toMatch(new RegExp(`^${target}:`, 'm'));
    }
    expect(MAKEFILE).toMatch(/^\.DEFAULT_GOAL := help$/m);
  });

  describe.skipIf(MAKE === undefined)('with make', () => {
    // A PATH with make and nothing else: docker and helm are "not installed".
    const { run: make, barePath: bare, remove } = makeRunner(MAKE ?? 'make', REPO);
    afterAll(remove);

    it('prints the commands the seed names', () => {
      for (const [target, command] of Object.entries(MAKE_TARGETS)) {
        const dryRun = make(['-n', target]);
        expect(dryRun.status, dryRun.stderr).toBe(0);
        expect(joinLines(dryRun.stdout), target).toContain(command);
      }
      const hardened = joinLines(make(['-n', 'docker-run-hardened']).stdout);
      for (const volume of ['artifacts', 'reports', 'logs']) {
        expect(hardened).toContain(`-v ${REPO}/${volume}:/app/${volume}`);
      }
    });

    it('lists the targets by default', () => {
      const help = make([]);
      expect(help.status).toBe(0);
      for (const target of Object.keys(MAKE_TARGETS)) expect(help.stdout).toContain(target);
    });

    it('skips with a message and exit 0 when docker or helm is missing', () => {
      for (const target of Object.keys(MAKE_TARGETS)) {
        const run = make([target], { PATH: bare });
        const tool = target.startsWith('helm') ? 'helm' : 'docker';
        expect(run.status, `${target}: ${run.stderr}`).toBe(0);
        expect(run.stdout.trim()).toBe(`${tool} is not installed: skipping ${target}`);
      }
    });
  });
});

// --- Operations guide ---------------------------------------------------------------------------------

describe('services/owsc/docs/DEPLOYMENT.md', () => {
  const guide = read(GUIDE);

  it('shows the hardened run, the distroless build, the quick start and the chart install', () => {
    expect(joinLines(guide)).toMatch(
      /docker run --rm --read-only -p 8000:8000 -v \$\(pwd\)\/artifacts:\/app\/artifacts -v \$\(pwd\)\/reports:\/app\/reports -v \$\(pwd\)\/logs:\/app\/logs openworld-specialty-chemicals:latest/,
    );
    expect(guide).toContain(
      'docker build -f deploy/owsc/Dockerfile.distroless -t openworld-specialty-chemicals:distroless .',
    );
    expect(guide).toContain('kubectl apply -f deploy/k8s/redis.yaml');
    expect(guide).toContain('redis://redis:6379/0');
    expect(guide).toMatch(/helm install ows \.\/charts\/openworld-specialty-chemicals/);
  });

  it('names only deployment files that exist', () => {
    const paths = new Set(
      [...guide.matchAll(/\b((?:deploy|charts)\/[\w./-]*[\w-])/g)].map((m) => m[1] as string),
    );
    expect(paths.size).toBeGreaterThan(4);
    for (const path of paths) expect(existsSync(join(REPO, path)), path).toBe(true);
  });

  it('documents every variable of the configuration table', () => {
    for (const name of CONFIGURATION_TABLE) expect(guide, name).toContain(`\`${name}\``);
  });
});

// --- Optional: the real tools, when installed ---------------------------------------------------------

const HELM = findExecutable('helm');
const KUBECONFORM = findExecutable('kubeconform');
if (HELM === undefined) console.warn('deploy: helm lint/template skipped: helm is not installed');
if (KUBECONFORM === undefined) console.warn('deploy: kubeconform skipped: kubeconform is not installed');

describe.skipIf(HELM === undefined)('helm', () => {
  const helm = (args: string[]) => spawnSync(HELM ?? 'helm', args, { cwd: REPO, encoding: 'utf8' });

  it('lints the chart and renders it with the guide install values', () => {
    const lint = helm(['lint', CHART]);
    expect(lint.status, lint.stdout + lint.stderr).toBe(0);
    const sets = guideSets().flatMap(([key, value]) => ['--set', `${key}=${value}`]);
    const rendered = helm(['template', 'ows', CHART, ...sets]);
    expect(rendered.status, rendered.stderr).toBe(0);
    const kinds = parseAllDocuments(rendered.stdout)
      .map((document) => (document.toJS() as { kind?: string } | null)?.kind)
      .filter(Boolean);
    expect(kinds).toEqual(expect.arrayContaining(['Deployment', 'Service', 'Secret']));
  });
});

describe.skipIf(KUBECONFORM === undefined)('kubeconform', () => {
  it('accepts the quick-start manifests', () => {
    const files = readdirSync(K8S)
      .filter((f) => /^(owsc-.*|redis)\.yaml$/.test(f))
      .map((f) => join(K8S, f));
    const run = spawnSync(KUBECONFORM ?? 'kubeconform', ['-strict', '-summary', ...files], {
      encoding: 'utf8',
    });
    expect(run.status, run.stdout + run.stderr).toBe(0);
  });
});
