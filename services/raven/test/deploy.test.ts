// Deployment assets (spec §2.1, §8 case 40): deploy/raven/docker-compose.yml and deploy/raven/Dockerfile,
// checked without Docker; `docker compose config -q` runs too when a compose CLI is installed.
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join, posix, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { loadConfig } from '../src/config.js';

const REPO = resolve(import.meta.dirname, '../../..');
const DEPLOY = join(REPO, 'deploy/raven');
const COMPOSE_FILE = join(DEPLOY, 'docker-compose.yml');
const DOCKERFILE = join(DEPLOY, 'Dockerfile');

interface ComposeService {
  build?: string | { context?: string; dockerfile?: string };
  image?: string;
  expose?: (string | number)[];
  environment?: string[] | Record<string, string>;
  volumes?: string[];
  depends_on?: string[] | Record<string, unknown>;
  restart?: string;
  networks?: string[] | Record<string, unknown>;
}

interface ComposeFile {
  services: Record<string, ComposeService>;
  networks?: Record<string, { driver?: string } | null>;
}

const compose = parse(readFileSync(COMPOSE_FILE, 'utf8')) as ComposeFile;

function environment(service: ComposeService): Record<string, string> {
  const env = service.environment ?? {};
  if (!Array.isArray(env)) return env;
  return Object.fromEntries(
    env.map((entry) => {
      const eq = entry.indexOf('=');
      return [entry.slice(0, eq), entry.slice(eq + 1)];
    }),
  );
}

function names(value: string[] | Record<string, unknown> | undefined): string[] {
  if (value === undefined) return [];
  return Array.isArray(value) ? value : Object.keys(value);
}

/** Dockerfile instructions: continuation lines joined, comments and blank lines dropped. */
function instructions(text: string): { op: string; args: string }[] {
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
      const space = line.search(/\s/);
      return { op: line.slice(0, space).toUpperCase(), args: line.slice(space + 1).trim() };
    });
}

describe('docker-compose.yml (the seed topology)', () => {
  const app = compose.services.app;
  const valkey = compose.services.valkey;

  it('has exactly the services app and valkey', () => {
    expect(Object.keys(compose.services).sort()).toEqual(['app', 'valkey']);
  });

  it('builds app from deploy/raven/Dockerfile with the repository root as context', () => {
    const build = app?.build;
    expect(typeof build).toBe('object');
    const { context, dockerfile } = build as { context: string; dockerfile: string };
    expect(resolve(DEPLOY, context)).toBe(REPO);
    expect(resolve(DEPLOY, context, dockerfile)).toBe(DOCKERFILE);
  });

  it('exposes 8000 and 6379 inside the network only', () => {
    expect(app?.expose?.map(String)).toEqual(['8000']);
    expect(valkey?.expose?.map(String)).toEqual(['6379']);
    expect(app).not.toHaveProperty('ports');
    expect(valkey).not.toHaveProperty('ports');
  });

  it('runs valkey/valkey:9-alpine and points REDIS_URL at it in production mode', () => {
    expect(valkey?.image).toBe('valkey/valkey:9-alpine');
    expect(environment(app ?? {})).toEqual({ REDIS_URL: 'redis://valkey:6379/0', NODE_ENV: 'production' });
  });

  it('mounts ./logs and ./storage where LOG_DIR and STORAGE_PATH/TEMP_PATH point by default', () => {
    expect(app?.volumes).toEqual(['./logs:/app/logs', './storage:/app/storage']);
    const workdir = instructions(readFileSync(DOCKERFILE, 'utf8'))
      .filter((i) => i.op === 'WORKDIR')
      .at(-1)?.args;
    expect(workdir).toBe('/app');
    const config = loadConfig({});
    const mounts = (app?.volumes ?? []).map((volume) => volume.split(':')[1] ?? '');
    const inside = (path: string) =>
      mounts.some((mount) => posix.resolve('/app', path).startsWith(`${mount}/`));
    expect(posix.resolve('/app', config.logDir)).toBe('/app/logs');
    expect(inside(config.storagePath)).toBe(true);
    expect(inside(config.tempPath)).toBe(true);
  });

  it('starts after valkey, restarts on failure, and shares the bridge network raven-net', () => {
    expect(names(app?.depends_on)).toEqual(['valkey']);
    expect(app?.restart).toBe('on-failure');
    expect(names(app?.networks)).toEqual(['raven-net']);
    expect(names(valkey?.networks)).toEqual(['raven-net']);
    expect(compose.networks?.['raven-net']?.driver).toBe('bridge');
  });
});

describe('Dockerfile', () => {
  const steps = instructions(readFileSync(DOCKERFILE, 'utf8'));
  const lastStage = steps.slice(steps.map((s) => s.op).lastIndexOf('FROM'));

  it('builds every stage on node:24-slim', () => {
    const froms = steps.filter((s) => s.op === 'FROM').map((s) => s.args.split(/\s+/)[0]);
    expect(froms.length).toBeGreaterThan(1);
    for (const from of froms) expect(from).toBe('node:24-slim');
  });

  it('installs production dependencies of the workspace with npm ci --omit=dev', () => {
    const install = steps.find((s) => s.op === 'RUN' && /npm ci\b.*--omit=dev/.test(s.args));
    expect(install?.args).toMatch(/--workspace @quintet\/raven/);
    expect(
      steps.some((s) => s.op === 'RUN' && /apt-get install/.test(s.args) && /libmagic/.test(s.args)),
    ).toBe(false);
  });

  it('runs as a non-root user, exposes 8000 and starts the bin directly', () => {
    const user = lastStage.filter((s) => s.op === 'USER').at(-1)?.args;
    expect(user).toBeDefined();
    expect(['root', '0']).not.toContain(user?.split(':')[0]);
    expect(lastStage.filter((s) => s.op === 'EXPOSE').map((s) => s.args)).toEqual(['8000']);
    const cmd = lastStage.filter((s) => s.op === 'CMD').at(-1)?.args ?? '';
    expect(JSON.parse(cmd)).toEqual([
      'node_modules/.bin/raven-zero',
      'serve',
      '--host',
      '0.0.0.0',
      '--port',
      '8000',
    ]);
  });

  it('has a HEALTHCHECK probing /livez with node fetch', () => {
    const health = lastStage.find((s) => s.op === 'HEALTHCHECK')?.args ?? '';
    const exec = /CMD\s+(\[.*\])\s*$/.exec(health)?.[1];
    expect(exec).toBeDefined();
    const argv = JSON.parse(exec ?? '[]') as string[];
    expect(argv[0]).toBe('node');
    expect(argv.join(' ')).toMatch(/fetch\('http:\/\/127\.0\.0\.1:8000\/livez'\)/);
  });

  it('copies what the bin needs at run time (package manifest, bin, dist, wordlist, web pages)', () => {
    const copied = lastStage.filter((s) => s.op === 'COPY').map((s) => s.args);
    for (const path of [
      'services/raven/bin',
      'services/raven/dist',
      'services/raven/data',
      'services/raven/web',
    ]) {
      expect(
        copied.some((args) => args.includes(path)),
        path,
      ).toBe(true);
    }
  });
});

function composeCommand(): string[] | undefined {
  for (const candidate of [['docker', 'compose'], ['docker-compose']]) {
    const [command, ...rest] = candidate as [string, ...string[]];
    const probe = spawnSync(command, [...rest, 'version'], { stdio: 'ignore' });
    if (probe.status === 0) return candidate;
  }
  return undefined;
}

const COMPOSE_CLI = composeCommand();
if (COMPOSE_CLI === undefined) {
  console.warn(
    'deploy: `docker compose config -q` skipped: neither `docker compose` nor `docker-compose` is installed',
  );
}

describe.skipIf(COMPOSE_CLI === undefined)('compose CLI', () => {
  it('accepts the file (config -q)', () => {
    const [command, ...rest] = COMPOSE_CLI as [string, ...string[]];
    expect(existsSync(COMPOSE_FILE)).toBe(true);
    execFileSync(command, [...rest, '-f', COMPOSE_FILE, 'config', '-q'], { stdio: 'pipe' });
  });
});
