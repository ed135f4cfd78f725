// Environment → typed configuration. Every reader names the variable in its error, so a bad value stops
// start-up with a message an operator can act on.
import { readFileSync } from 'node:fs';

export type Env = Readonly<Record<string, string | undefined>>;

/** An invalid configuration value; `variable` is the environment variable at fault. */
export class ConfigError extends Error {
  override readonly name = 'ConfigError';
  constructor(
    readonly variable: string,
    message: string,
  ) {
    super(`${variable}: ${message}`);
  }
}

const TRUE_WORDS = new Set(['1', 'true', 'yes', 'on']);
const FALSE_WORDS = new Set(['0', 'false', 'no', 'off']);

/** The raw value, trimmed; an empty string counts as unset. */
export function envRaw(env: Env, name: string): string | undefined {
  const value = env[name]?.trim();
  return value === undefined || value === '' ? undefined : value;
}

/** A secret: the content of the file named by `NAME_FILE` (one trailing newline removed) wins over `NAME`. */
export function envSecret(env: Env, name: string): string | undefined {
  const file = envRaw(env, `${name}_FILE`);
  if (file !== undefined) {
    let content: string;
    try {
      content = readFileSync(file, 'utf8');
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code ?? 'unreadable';
      throw new ConfigError(`${name}_FILE`, `cannot read the secret file (${code})`);
    }
    return content.replace(/\r?\n$/, '');
  }
  const value = env[name];
  return value === undefined || value === '' ? undefined : value;
}

/** Parses a boolean word (`1/true/yes/on`, `0/false/no/off`, any case); null when it is none of them. */
export function parseBool(value: string): boolean | null {
  const word = value.trim().toLowerCase();
  if (TRUE_WORDS.has(word)) return true;
  if (FALSE_WORDS.has(word)) return false;
  return null;
}

export function envBool(env: Env, name: string, fallback: boolean): boolean {
  const raw = envRaw(env, name);
  if (raw === undefined) return fallback;
  const value = parseBool(raw);
  if (value === null)
    throw new ConfigError(name, `expected a boolean (1/0, true/false, yes/no, on/off), got "${raw}"`);
  return value;
}

export interface NumberRange {
  min?: number;
  max?: number;
  /** the value must be strictly greater than `min` */
  exclusiveMin?: boolean;
}

function checkRange(name: string, value: number, range: NumberRange): number {
  if (range.min !== undefined) {
    if (range.exclusiveMin ? value <= range.min : value < range.min) {
      throw new ConfigError(name, `must be ${range.exclusiveMin ? '>' : '>='} ${range.min}, got ${value}`);
    }
  }
  if (range.max !== undefined && value > range.max) {
    throw new ConfigError(name, `must be <= ${range.max}, got ${value}`);
  }
  return value;
}

export function envInt(env: Env, name: string, fallback: number, range: NumberRange = {}): number {
  const raw = envRaw(env, name);
  if (raw === undefined) return fallback;
  if (!/^[+-]?\d+$/.test(raw)) throw new ConfigError(name, `expected an integer, got "${raw}"`);
  return checkRange(name, Number.parseInt(raw, 10), range);
}

export function envNumber(env: Env, name: string, fallback: number, range: NumberRange = {}): number {
  const raw = envRaw(env, name);
  if (raw === undefined) return fallback;
  const value = Number(raw);
  if (!Number.isFinite(value) || !/^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$/.test(raw)) {
    throw new ConfigError(name, `expected a number, got "${raw}"`);
  }
  return checkRange(name, value, range);
}

export function envEnum<T extends string>(env: Env, name: string, allowed: readonly T[], fallback: T): T {
  const raw = envRaw(env, name);
  if (raw === undefined) return fallback;
  const value = raw.toLowerCase() as T;
  if (!allowed.includes(value))
    throw new ConfigError(name, `expected one of ${allowed.join(', ')}, got "${raw}"`);
  return value;
}

/** A comma-separated list, items trimmed, empty items dropped. */
export function envList(env: Env, name: string): string[] {
  const raw = envRaw(env, name);
  if (raw === undefined) return [];
  return raw
    .split(',')
    .map((item) => item.trim())
    .filter((item) => item !== '');
}

const SIZE_UNITS: Record<string, number> = {
  '': 1,
  b: 1,
  k: 1024,
  kb: 1024,
  kib: 1024,
  m: 1024 ** 2,
  mb: 1024 ** 2,
  mib: 1024 ** 2,
  g: 1024 ** 3,
  gb: 1024 ** 3,
  gib: 1024 ** 3,
};

/** A byte size: `1048576`, `512k`, `10MB`, `2GiB` (binary units). */
export function envSize(env: Env, name: string, fallback: number, range: NumberRange = {}): number {
  const raw = envRaw(env, name);
  if (raw === undefined) return fallback;
  const match = /^(\d+(?:\.\d+)?)\s*([a-z]*)$/i.exec(raw);
  const unit = SIZE_UNITS[match?.[2]?.toLowerCase() ?? 'x'];
  if (!match || unit === undefined)
    throw new ConfigError(name, `expected a size such as 1048576, 512k or 10MB, got "${raw}"`);
  return checkRange(name, Math.floor(Number(match[1]) * unit), range);
}

const DURATION_UNITS: Record<string, number> = {
  ms: 1,
  s: 1000,
  '': 1000,
  m: 60_000,
  h: 3_600_000,
  d: 86_400_000,
};

/** A duration in milliseconds from `30`, `30s`, `500ms`, `5m`, `1h`, `7d` (a bare number is seconds). */
export function envDurationMs(env: Env, name: string, fallbackMs: number, range: NumberRange = {}): number {
  const raw = envRaw(env, name);
  if (raw === undefined) return fallbackMs;
  const match = /^(\d+(?:\.\d+)?)\s*(ms|s|m|h|d|)$/i.exec(raw);
  const unit = DURATION_UNITS[match?.[2]?.toLowerCase() ?? 'x'];
  if (!match || unit === undefined)
    throw new ConfigError(name, `expected a duration such as 30, 30s, 500ms or 5m, got "${raw}"`);
  return checkRange(name, Number(match[1]) * unit, range);
}

/** True when `NODE_ENV` or `ENVIRONMENT` says production. */
export function isProduction(env: Env): boolean {
  return [env.NODE_ENV, env.ENVIRONMENT].some((value) => value?.trim().toLowerCase() === 'production');
}

/** The listen port: the `--port` flag, else the first set variable of `names`, else the fallback. */
export function resolvePort(
  flag: string | undefined,
  env: Env,
  names: readonly string[],
  fallback: number,
): number {
  if (flag !== undefined) {
    const port = Number(flag);
    if (!Number.isInteger(port) || port < 0 || port > 65535)
      throw new ConfigError('--port', `expected a port number, got "${flag}"`);
    return port;
  }
  for (const name of names) {
    if (envRaw(env, name) !== undefined) return envInt(env, name, fallback, { min: 0, max: 65535 });
  }
  return fallback;
}

/** Throws a ConfigError naming REDIS_URL unless `url` is a `redis://` or `rediss://` URL. */
export function validateRedisUrl(url: string): void {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw new ConfigError('REDIS_URL', 'must be a redis:// or rediss:// URL');
  }
  if (parsed.protocol !== 'redis:' && parsed.protocol !== 'rediss:') {
    throw new ConfigError('REDIS_URL', `must be a redis:// or rediss:// URL, not ${parsed.protocol}//`);
  }
  if (parsed.hostname === '') throw new ConfigError('REDIS_URL', 'has no host');
  const db = parsed.pathname.replace(/^\//, '');
  if (db !== '' && !/^\d+$/.test(db)) throw new ConfigError('REDIS_URL', 'database must be a number');
}
