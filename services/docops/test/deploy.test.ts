// The deployment files the seed's promises rest on (spec §2 S11 and the Docker/nginx paragraph):
// deploy/nginx/docops.conf and deploy/docops/Dockerfile, parsed and checked; `nginx -t` when installed.
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const REPO = fileURLToPath(new URL('../../../', import.meta.url));
const NGINX_CONF = join(REPO, 'deploy/nginx/docops.conf');
const DOCKERFILE = join(REPO, 'deploy/docops/Dockerfile');
const DEFAULT_MAX_UPLOAD_BYTES = 26214400;
const DEFAULT_REQUEST_TIMEOUT_SECONDS = 60;

// --- nginx ------------------------------------------------------------------------------------------

interface NginxDirective {
  name: string;
  args: string[];
  block: NginxDirective[] | null;
}

/** nginx's configuration syntax: directives end with `;`, blocks are `{ ... }`, `#` starts a comment. */
function parseNginx(text: string): NginxDirective[] {
  const tokens: string[] = [];
  const tokenPattern = /#[^\n]*|"((?:\\.|[^"\\])*)"|'((?:\\.|[^'\\])*)'|([{};])|([^\s{};"'#]+)/g;
  for (const match of text.matchAll(tokenPattern)) {
    if (match[0].startsWith('#')) continue;
    tokens.push(match[1] ?? match[2] ?? match[3] ?? match[4] ?? '');
  }
  let position = 0;
  const parseBlock = (nested: boolean): NginxDirective[] => {
    const directives: NginxDirective[] = [];
    while (position < tokens.length) {
      const token = tokens[position++] as string;
      if (token === '}') {
        if (!nested) throw new Error('unexpected }');
        return directives;
      }
      if (token === '{' || token === ';') throw new Error(`unexpected ${token}`);
      const args: string[] = [];
      for (;;) {
        const next = tokens[position++];
        if (next === undefined) throw new Error(`directive ${token} is not terminated`);
        if (next === ';') {
          directives.push({ name: token, args, block: null });
          break;
        }
        if (next === '{') {
          directives.push({ name: token, args, block: parseBlock(true) });
          break;
        }
        if (next === '}') throw new Error(`directive ${token} is not terminated`);
        args.push(next);
      }
    }
    if (nested) throw new Error('missing }');
    return directives;
  };
  return parseBlock(false);
}

/** nginx size: bytes, or a k/m/g suffix (case-insensitive). */
function nginxSizeBytes(value: string): number {
  const match = /^(\d+)([kmg]?)$/i.exec(value);
  if (!match) throw new Error(`not an nginx size: ${value}`);
  const unit = (match[2] ?? '').toLowerCase();
  return Number(match[1]) * (unit === 'k' ? 1024 : unit === 'm' ? 1024 ** 2 : unit === 'g' ? 1024 ** 3 : 1);
}

/** nginx time: units ms, s, m, h, d, w, M, y, possibly combined (`1m30s`); a bare number is seconds. */
function nginxTimeSeconds(value: string): number {
  if (/^\d+$/.test(value)) return Number(value);
  const units: Record<string, number> = {
    ms: 0.001,
    s: 1,
    m: 60,
    h: 3600,
    d: 86400,
    w: 604800,
    M: 2592000,
    y: 31536000,
  };
  let total = 0;
  let rest = value;
  while (rest !== '') {
    const match = /^(\d+)(ms|s|m|h|d|w|M|y)/.exec(rest);
    if (!match) throw new Error(`not an nginx time: ${value}`);
    total += Number(match[1]) * (units[match[2] as string] ?? 0);
    rest = rest.slice(match[0].length);
  }
  return total;
}

function directivesNamed(directives: NginxDirective[], name: string): NginxDirective[] {
  return directives.filter((directive) => directive.name === name);
}

/** Every directive at any depth. */
function allDirectives(directives: NginxDirective[]): NginxDirective[] {
  return directives.flatMap((directive) => [directive, ...allDirectives(directive.block ?? [])]);
}

describe('deploy/nginx/docops.conf', () => {
  const conf = parseNginx(readFileSync(NGINX_CONF, 'utf8'));
  const server = conf[0]?.block ?? [];

  it('is a single server block for the http context', () => {
    expect(conf.map((directive) => directive.name)).toEqual(['server']);
    expect(conf[0]?.block).not.toBeNull();
  });

  it('lets a whole multipart body with two file parts at the default limit through', () => {
    const [limit, ...others] = directivesNamed(server, 'client_max_body_size');
    expect(others).toEqual([]);
    const bytes = nginxSizeBytes(limit?.args[0] ?? '');
    expect(bytes).toBeGreaterThanOrEqual(2 * DEFAULT_MAX_UPLOAD_BYTES);
    expect(limit?.args).toEqual(['52m']);
    // no location may lower it again
    for (const directive of allDirectives(server).filter((d) => d.name === 'client_max_body_size')) {
      expect(nginxSizeBytes(directive.args[0] ?? '')).toBeGreaterThanOrEqual(2 * DEFAULT_MAX_UPLOAD_BYTES);
    }
  });

  it('waits longer for the upstream than the request timeout', () => {
    for (const name of ['proxy_read_timeout', 'proxy_send_timeout']) {
      const found = allDirectives(server).filter((directive) => directive.name === name);
      expect(found.length, name).toBeGreaterThan(0);
      for (const directive of found) {
        expect(nginxTimeSeconds(directive.args[0] ?? ''), name).toBeGreaterThan(
          DEFAULT_REQUEST_TIMEOUT_SECONDS,
        );
      }
    }
  });

  it('proxies every location to 127.0.0.1:8000', () => {
    const locations = directivesNamed(server, 'location');
    expect(locations.length).toBeGreaterThan(0);
    for (const location of locations) {
      expect(directivesNamed(location.block ?? [], 'proxy_pass').map((d) => d.args)).toEqual([
        ['http://127.0.0.1:8000'],
      ]);
    }
  });

  it('has the unit helpers right', () => {
    expect(nginxSizeBytes('52m')).toBe(54525952);
    expect(nginxSizeBytes('50M')).toBe(52428800);
    expect(nginxSizeBytes('1024')).toBe(1024);
    expect(nginxTimeSeconds('120s')).toBe(120);
    expect(nginxTimeSeconds('2m')).toBe(120);
    expect(nginxTimeSeconds('1m30s')).toBe(90);
    expect(nginxTimeSeconds('90')).toBe(90);
    expect(() => parseNginx('server { listen 80 }')).toThrow();
  });

  const nginx = spawnSync('nginx', ['-v']).error === undefined;
  if (!nginx) console.warn('deploy.test: nginx not found on PATH: `nginx -t` skipped');

  it.skipIf(!nginx)('passes `nginx -t` inside a minimal main configuration', async () => {
    // Everything nginx writes goes under a temporary prefix, so the check needs no root-owned paths.
    const prefix = await mkdtemp(join(tmpdir(), 'docops-nginx-'));
    try {
      const main = join(prefix, 'nginx.conf');
      await writeFile(
        main,
        [
          'worker_processes 1;',
          `pid ${join(prefix, 'nginx.pid')};`,
          `error_log ${join(prefix, 'error.log')};`,
          'events {}',
          'http {',
          '  access_log off;',
          ...['client_body', 'proxy', 'fastcgi', 'uwsgi', 'scgi'].map(
            (kind) => `  ${kind}_temp_path ${join(prefix, `${kind}_temp`)};`,
          ),
          `  include ${NGINX_CONF};`,
          '}',
          '',
        ].join('\n'),
      );
      const result = spawnSync('nginx', ['-t', '-p', prefix, '-e', join(prefix, 'error.log'), '-c', main], {
        encoding: 'utf8',
      });
      expect(result.stderr).toContain('test is successful');
      expect(result.status).toBe(0);
    } finally {
      await rm(prefix, { recursive: true, force: true });
    }
  });
});

// --- Dockerfile -------------------------------------------------------------------------------------

interface DockerInstruction {
  keyword: string;
  args: string;
}

/** Instructions with continuation lines joined; comments and blank lines dropped. */
function parseDockerfile(text: string): DockerInstruction[] {
  const instructions: DockerInstruction[] = [];
  let pending = '';
  for (const rawLine of text.split('\n')) {
    const line = rawLine.trimEnd();
    if (pending === '' && (line.trim() === '' || line.trimStart().startsWith('#'))) continue;
    if (pending !== '' && line.trimStart().startsWith('#')) continue;
    if (line.endsWith('\\')) {
      pending += `${line.slice(0, -1)} `;
      continue;
    }
    const full = (pending + line).trim();
    pending = '';
    const match = /^(\S+)\s*(.*)$/s.exec(full);
    if (match)
      instructions.push({ keyword: (match[1] as string).toUpperCase(), args: (match[2] as string).trim() });
  }
  if (pending.trim() !== '') throw new Error('Dockerfile ends inside a continued line');
  return instructions;
}

/** The instructions of the last stage (the image that runs). */
function finalStage(instructions: DockerInstruction[]): DockerInstruction[] {
  const lastFrom = instructions.map((i) => i.keyword).lastIndexOf('FROM');
  return instructions.slice(lastFrom);
}

describe('deploy/docops/Dockerfile', () => {
  const instructions = parseDockerfile(readFileSync(DOCKERFILE, 'utf8'));
  const runtime = finalStage(instructions);

  it('builds every stage from node:24 slim', () => {
    const froms = instructions.filter((i) => i.keyword === 'FROM');
    expect(froms.length).toBeGreaterThanOrEqual(2);
    for (const from of froms) expect(from.args).toMatch(/^node:24-slim(\s+AS\s+\S+)?$/i);
    expect(instructions[0]?.keyword === 'FROM' || instructions[0]?.keyword === 'ARG').toBe(true);
  });

  it('installs with npm ci and builds in the first stage, and drops dev dependencies', () => {
    const secondFrom = instructions.findIndex((i, index) => index > 0 && i.keyword === 'FROM');
    const buildRuns = instructions
      .slice(0, secondFrom)
      .filter((i) => i.keyword === 'RUN')
      .map((i) => i.args)
      .join('\n');
    expect(buildRuns).toMatch(/\bnpm ci\b/);
    expect(buildRuns).toMatch(/\btsc -b\b/);
    expect(buildRuns).toMatch(/npm prune --omit=dev/);
  });

  it('runs the exact serve command with docops on PATH', () => {
    const cmds = runtime.filter((i) => i.keyword === 'CMD');
    expect(cmds).toHaveLength(1);
    expect(JSON.parse(cmds[0]?.args ?? '')).toEqual([
      'docops',
      'serve',
      '--host',
      '0.0.0.0',
      '--port',
      '8000',
      '--workers',
      '2',
    ]);
    const runs = runtime.filter((i) => i.keyword === 'RUN').map((i) => i.args);
    expect(
      runs.some((run) =>
        /ln -s \/app\/services\/docops\/bin\/docops\.js \/usr\/local\/bin\/docops/.test(run),
      ),
    ).toBe(true);
  });

  it('runs as a non-root user', () => {
    const users = runtime.filter((i) => i.keyword === 'USER');
    expect(users.length).toBeGreaterThan(0);
    const user = users.at(-1)?.args.split(':')[0] ?? '';
    expect(user).not.toBe('');
    expect(['root', '0']).not.toContain(user);
    // CMD comes after USER, so the server itself runs unprivileged
    const userIndex = runtime.lastIndexOf(users.at(-1) as DockerInstruction);
    expect(runtime.findIndex((i) => i.keyword === 'CMD')).toBeGreaterThan(userIndex);
  });

  it('offers LibreOffice behind WITH_PDF=1', () => {
    expect(runtime.some((i) => i.keyword === 'ARG' && /^WITH_PDF(=0)?$/.test(i.args))).toBe(true);
    const pdfLayer = runtime.find((i) => i.keyword === 'RUN' && i.args.includes('libreoffice-writer-nogui'));
    expect(pdfLayer?.args).toMatch(/"\$WITH_PDF" = "1"/);
  });

  it('copies only paths that exist in the repository', () => {
    for (const copy of instructions.filter((i) => i.keyword === 'COPY')) {
      const parts = copy.args.split(/\s+/).filter((part) => !part.startsWith('--'));
      const sources = parts.slice(0, -1);
      for (const source of sources) {
        const repoPath = source.replace(/^\/app\//, '');
        // build outputs and installed modules exist only inside the image
        if (/(^|\/)(dist|node_modules)(\/|$)/.test(repoPath)) continue;
        expect(existsSync(join(REPO, repoPath)), source).toBe(true);
      }
    }
  });

  const healthcheck = runtime.find((i) => i.keyword === 'HEALTHCHECK');

  it('declares a HEALTHCHECK on /healthz without curl', () => {
    expect(healthcheck?.args).toContain('/healthz');
    expect(healthcheck?.args).not.toMatch(/\b(curl|wget)\b/);
  });

  it('has a HEALTHCHECK probe that passes on 200 and fails otherwise', async () => {
    const exec = /CMD\s+(\[.*\])\s*$/s.exec(healthcheck?.args ?? '');
    const argv = JSON.parse(exec?.[1] ?? '[]') as string[];
    expect(argv[0]).toBe('node');
    let status = 200;
    const server = createServer((req, res) => {
      res.writeHead(req.url === '/healthz' ? status : 404, { 'content-type': 'application/json' });
      res.end('{"status":"ok"}');
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const port = (server.address() as AddressInfo).port;
    const probe = (): Promise<number | null> =>
      new Promise((resolve) => {
        const args = argv.slice(1).map((arg) => arg.replace('127.0.0.1:8000', `127.0.0.1:${port}`));
        const child = spawn(process.execPath, args, { stdio: 'ignore' });
        child.once('close', resolve);
      });
    try {
      expect(await probe()).toBe(0);
      status = 503;
      expect(await probe()).toBe(1);
    } finally {
      await new Promise((resolve) => server.close(resolve));
    }
    // nothing listening: the probe fails instead of hanging or crashing with another code
    expect(await probe()).toBe(1);
  });
});
