// Helpers for the services' deployment tests, which check Dockerfiles and Makefile targets as text, without a
// container engine: a Dockerfile reader, a lookup of optional tools on PATH, a `make` runner, and a reader of the
// metric and label names that PromQL expressions (alert rules, dashboards) use.

import { type SpawnSyncReturns, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { delimiter, join } from 'node:path';

/** One Dockerfile instruction: `op` upper-cased, `args` as written (continuation lines joined). */
export interface DockerInstruction {
  op: string;
  args: string;
}

/** Dockerfile instructions: comments dropped, continuation lines joined, split into stages at each FROM. */
export function dockerfileStages(text: string): DockerInstruction[][] {
  const instructions = text
    .split('\n')
    .filter((line) => !/^\s*#/.test(line))
    .join('\n')
    .replace(/\\\n/g, ' ')
    .split('\n')
    .map((line) => line.trim())
    .filter((line) => line !== '')
    .map((line) => {
      const space = line.search(/\s/);
      return space < 0
        ? { op: line.toUpperCase(), args: '' }
        : { op: line.slice(0, space).toUpperCase(), args: line.slice(space + 1).trim() };
    });
  const stages: DockerInstruction[][] = [];
  for (const instruction of instructions) {
    if (instruction.op === 'FROM') stages.push([]);
    stages.at(-1)?.push(instruction);
  }
  return stages;
}

/** The `KEY=value KEY2="value 2"` pairs of one ENV instruction's arguments. */
export function envAssignments(args: string): Record<string, string> {
  const pairs: Record<string, string> = {};
  for (const match of args.matchAll(/([A-Za-z_][A-Za-z0-9_]*)=("[^"]*"|\S+)/g)) {
    pairs[match[1] as string] = (match[2] as string).replace(/^"(.*)"$/, '$1');
  }
  return pairs;
}

/** The environment the ENV instructions of a stage set, later instructions winning. */
export function stageEnvironment(stage: readonly DockerInstruction[]): Record<string, string> {
  const env: Record<string, string> = {};
  for (const step of stage) if (step.op === 'ENV') Object.assign(env, envAssignments(step.args));
  return env;
}

/** The JSON array of an exec-form instruction (`CMD [...]`, `HEALTHCHECK ... CMD [...]`, `VOLUME [...]`). */
export function execForm(args: string): string[] {
  const json = /(\[.*\])\s*$/.exec(args)?.[1];
  if (json === undefined) throw new Error(`not in exec form: ${args}`);
  return JSON.parse(json) as string[];
}

/** The path of program `name` in the first PATH folder that has it, or undefined when none does. */
export function findExecutable(name: string, path = process.env.PATH ?? ''): string | undefined {
  for (const dir of path.split(delimiter)) {
    const candidate = join(dir, name);
    if (dir !== '' && existsSync(candidate)) return candidate;
  }
  return undefined;
}

/**
 * The compose CLI to validate compose files with: `docker compose` (v2) when present, else the standalone
 * `docker-compose`; undefined when neither is installed.
 */
export function composeCommand(): string[] | undefined {
  if (spawnSync('docker', ['compose', 'version'], { stdio: 'ignore' }).status === 0)
    return ['docker', 'compose'];
  const standalone = findExecutable('docker-compose');
  return standalone === undefined ? undefined : [standalone];
}

export interface MakeRunner {
  /** `make --no-print-directory …args` in the runner's folder, with this process's environment unless `env`. */
  run(args: string[], env?: NodeJS.ProcessEnv): SpawnSyncReturns<string>;
  /** A PATH whose only program is make, so that docker, compose, helm… are "not installed". */
  readonly barePath: string;
  /** Removes the folder behind `barePath`. */
  remove(): void;
}

/** Runs the `make` at `makePath` in folder `cwd`; call `remove()` when done. */
export function makeRunner(makePath: string, cwd: string): MakeRunner {
  const barePath = mkdtempSync(join(tmpdir(), 'make-only-'));
  symlinkSync(makePath, join(barePath, 'make'));
  return {
    run: (args, env = process.env) =>
      spawnSync(makePath, ['--no-print-directory', ...args], { cwd, env, encoding: 'utf8' }),
    barePath,
    remove: () => rmSync(barePath, { recursive: true, force: true }),
  };
}

// --- PromQL ----------------------------------------------------------------------------------------------

const PROMQL_KEYWORDS = new Set([
  'by',
  'without',
  'on',
  'ignoring',
  'group_left',
  'group_right',
  'bool',
  'and',
  'or',
  'unless',
  'offset',
  'inf',
  'nan',
]);
const LABEL_LIST = /\b(?:by|without|on|ignoring|group_left|group_right)\s*\(([^)]*)\)/g;

/** The metric names an expression selects: functions, keywords, labels, strings, durations and numbers left out. */
export function promqlMetricNames(expr: string): string[] {
  const stripped = expr
    .replace(/"(?:[^"\\]|\\.)*"/g, '""')
    .replace(/\{[^}]*\}/g, ' ')
    .replace(/\[[^\]]*\]/g, ' ')
    .replace(LABEL_LIST, ' ');
  const names = new Set<string>();
  for (const match of stripped.matchAll(/(?<![\w.$:])([a-zA-Z_:][\w:]*)(?![\w:]|\s*\()/g)) {
    const name = match[1] as string;
    if (!PROMQL_KEYWORDS.has(name.toLowerCase())) names.add(name);
  }
  return [...names];
}

/** Label names an expression refers to: in matchers and in by/without/on/ignoring lists. */
export function promqlLabelNames(expr: string): string[] {
  const names = new Set<string>();
  for (const block of expr.replace(/"(?:[^"\\]|\\.)*"/g, '""').matchAll(/\{([^}]*)\}/g)) {
    for (const matcher of (block[1] as string).matchAll(/([a-zA-Z_]\w*)\s*(?:=~|!~|!=|=)/g))
      names.add(matcher[1] as string);
  }
  for (const list of expr.matchAll(LABEL_LIST)) {
    for (const label of (list[1] as string).split(',')) if (label.trim() !== '') names.add(label.trim());
  }
  return [...names];
}

/** `x_bucket` / `x_sum` / `x_count` → `x` (histogram and summary series); other names unchanged. */
export function metricFamilyName(name: string): string {
  return name.replace(/_(bucket|sum|count)$/, '');
}

/** One nginx directive: `name args;` or `name args { block }`. */
export interface NginxDirective {
  name: string;
  args: string[];
  block?: NginxDirective[];
}

/** Parses nginx configuration syntax (`#` comments, quoted strings, nested blocks) for structural checks. */
export function parseNginx(text: string): NginxDirective[] {
  const tokens = [...text.matchAll(/#[^\n]*|"([^"]*)"|'([^']*)'|([{};])|([^\s{};"'#]+)/g)]
    .filter((match) => !match[0].startsWith('#'))
    .map((match) => match[1] ?? match[2] ?? match[3] ?? match[4] ?? '');
  let position = 0;
  const block = (nested: boolean): NginxDirective[] => {
    const directives: NginxDirective[] = [];
    let current: string[] = [];
    while (position < tokens.length) {
      const token = tokens[position++] as string;
      if (token === ';' || token === '{') {
        const [name, ...args] = current;
        if (name === undefined) throw new Error(`unexpected ${token}`);
        directives.push(token === ';' ? { name, args } : { name, args, block: block(true) });
        current = [];
      } else if (token === '}') {
        if (!nested || current.length > 0) throw new Error('unexpected }');
        return directives;
      } else {
        current.push(token);
      }
    }
    if (nested || current.length > 0) throw new Error('unterminated directive or block');
    return directives;
  };
  return block(false);
}

/** The directives of `directives` called `name`. */
export function nginxNamed(directives: NginxDirective[] | undefined, name: string): NginxDirective[] {
  return (directives ?? []).filter((directive) => directive.name === name);
}

/** An nginx size (`25m`, `1025m`, `512k`, `100`) in bytes. */
export function nginxSizeBytes(value: string): number {
  const match = /^(\d+)([kKmMgG]?)$/.exec(value);
  if (!match) throw new Error(`not an nginx size: ${value}`);
  const unit = { '': 1, k: 1024, m: 1024 ** 2, g: 1024 ** 3 }[(match[2] ?? '').toLowerCase()] ?? Number.NaN;
  return Number(match[1]) * unit;
}

/** The nginx binary (on PATH, else Debian's /usr/sbin/nginx), or undefined when nginx is not installed. */
export function nginxBinary(): string | undefined {
  return findExecutable('nginx') ?? (existsSync('/usr/sbin/nginx') ? '/usr/sbin/nginx' : undefined);
}

/**
 * A main nginx.conf around `serverFile` with every writable path under `prefix`, so a test can run `nginx -t`
 * or a live nginx as an ordinary user; `main` and `http` add directives at those levels.
 */
export function nginxTestConfig(
  prefix: string,
  serverFile: string,
  extra: { main?: readonly string[]; http?: readonly string[] } = {},
): string {
  return [
    'worker_processes 1;',
    `pid ${join(prefix, 'nginx.pid')};`,
    `error_log ${join(prefix, 'error.log')};`,
    ...(extra.main ?? []),
    'events {}',
    'http {',
    ...(extra.http ?? []).map((line) => `  ${line}`),
    ...['client_body', 'proxy', 'fastcgi', 'uwsgi', 'scgi'].map(
      (kind) => `  ${kind}_temp_path ${join(prefix, `${kind}_temp`)};`,
    ),
    `  include ${serverFile};`,
    '}',
    '',
  ].join('\n');
}
