// The OWSC configuration table (spec §3.12): every variable of the seed and of the spec, with its default and
// its check. An invalid value stops start-up (and `dashboard --no-serve`) with exit 4 and
// `configuration error: <VARIABLE>: <reason>`.
import { existsSync, readFileSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import { extname, resolve } from 'node:path';
import { parseEnv } from 'node:util';
import {
  ConfigError,
  type Env,
  envBool,
  envEnum,
  envInt,
  envList,
  envRaw,
  envSecret,
  isProduction,
  validateRedisUrl,
} from '@quintet/kernel/config';
import { trustedProxyList } from '@quintet/kernel/security';
import { DEFAULT_PERMIT, PermitError, parsePermit } from './domain/permit.js';
import type { NondetectPolicy, Permit } from './domain/types.js';

export type LogFormat = 'json' | 'text';

export interface OwscConfig {
  host: string;
  port: number;
  production: boolean;
  apiToken: string | undefined;
  metricsProtect: boolean;
  /** the token `/metrics` requires when protected: the metrics token, else the API token */
  metricsToken: string | undefined;
  rateLimitPerSecond: number;
  trustedProxies: string[];
  /** `*` or the allowed origins */
  corsOrigins: '*' | string[];
  wsMessagesPerSecond: number;
  wsMaxMessageBytes: number;
  wsMaxConnections: number;
  streamBuffer: number;
  maxCsvBytes: number;
  maxCsvRows: number;
  maxJsonBytes: number;
  permit: Permit;
  permitSource: 'default' | 'file';
  permitFile: string | undefined;
  nondetect: NondetectPolicy;
  redisUrl: string | undefined;
  redisChannel: string;
  databaseUrl: string | undefined;
  dataDir: string;
  artifactsDir: string;
  reportsDir: string;
  provenanceLedger: string;
  lineageLedger: string;
  tmpDir: string;
  workers: number;
  jobWorkers: number;
  jobTimeoutSeconds: number;
  shutdownTimeoutSeconds: number;
  adviceProvider: 'catalogue' | 'openai';
  openaiApiKey: string | undefined;
  openaiBaseUrl: string;
  openaiModel: string;
  allowAnonymous: boolean;
  logFormat: LogFormat;
  logLevel: 'trace' | 'debug' | 'info' | 'warn' | 'error';
  logFile: string | undefined;
  /** start-up warnings (production mode with an open API, CORS `*`) */
  warnings: string[];
}

/** An error in the configuration sources themselves (`--config` file): exit 3 when missing, 4 when invalid. */
export class ConfigFileError extends Error {
  override readonly name = 'ConfigFileError';
  constructor(
    message: string,
    readonly missing: boolean,
  ) {
    super(message);
  }
}

function readKeyValueFile(path: string, label: string): Record<string, string> {
  const text = readFileSync(path, 'utf8');
  if (extname(path).toLowerCase() === '.json') {
    let parsed: unknown;
    try {
      parsed = JSON.parse(text);
    } catch {
      throw new ConfigFileError(`${label} ${path}: not valid JSON`, false);
    }
    if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) {
      throw new ConfigFileError(`${label} ${path}: expected a JSON object of variables`, false);
    }
    const out: Record<string, string> = {};
    for (const [key, value] of Object.entries(parsed)) {
      if (value === null || typeof value === 'object') {
        throw new ConfigFileError(`${label} ${path}: ${key} must be a string, number or boolean`, false);
      }
      out[key] = String(value);
    }
    return out;
  }
  try {
    return parseEnv(text) as Record<string, string>;
  } catch {
    throw new ConfigFileError(`${label} ${path}: not a KEY=VALUE file`, false);
  }
}

/**
 * The effective environment: the process environment over the `--config` file over `.env` in the working
 * directory (flags are applied by the commands on top of this).
 */
export function effectiveEnvironment(processEnv: Env, configFile?: string, cwd = process.cwd()): Env {
  const dotenvPath = resolve(cwd, '.env');
  const dotenv = existsSync(dotenvPath) ? readKeyValueFile(dotenvPath, '.env') : {};
  let fromFile: Record<string, string> = {};
  if (configFile !== undefined) {
    const path = resolve(cwd, configFile);
    if (!existsSync(path)) throw new ConfigFileError(`config file not found: ${configFile}`, true);
    fromFile = readKeyValueFile(path, 'config file');
  }
  return { ...dotenv, ...fromFile, ...processEnv };
}

function port(env: Env): number {
  for (const name of ['PORT', 'APP_PORT']) {
    if (envRaw(env, name) !== undefined) return envInt(env, name, 8000, { min: 0, max: 65_535 });
  }
  return 8000;
}

function logLevel(env: Env): OwscConfig['logLevel'] {
  const raw = (envRaw(env, 'LOG_LEVEL') ?? 'info').toLowerCase();
  const aliases: Record<string, OwscConfig['logLevel']> = {
    trace: 'trace',
    debug: 'debug',
    info: 'info',
    warn: 'warn',
    warning: 'warn',
    error: 'error',
    critical: 'error',
  };
  const level = aliases[raw];
  if (level === undefined)
    throw new ConfigError('LOG_LEVEL', `expected trace, debug, info, warn or error, got "${raw}"`);
  return level;
}

function loadPermitFile(path: string): Permit {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (error) {
    throw new ConfigError(
      'OW_SC_PERMIT_FILE',
      `cannot read ${path} (${(error as NodeJS.ErrnoException).code})`,
    );
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    throw new ConfigError('OW_SC_PERMIT_FILE', `${path} is not valid JSON`);
  }
  try {
    return parsePermit(value);
  } catch (error) {
    if (error instanceof PermitError) throw new ConfigError('OW_SC_PERMIT_FILE', error.message);
    throw error;
  }
}

function redisUrl(env: Env): string | undefined {
  const name = envSecret(env, 'OW_SC_REDIS_URL') !== undefined ? 'OW_SC_REDIS_URL' : 'REDIS_URL';
  const url = envSecret(env, name);
  if (url === undefined) return undefined;
  try {
    validateRedisUrl(url);
  } catch {
    throw new ConfigError(name, 'expected a redis:// or rediss:// URL');
  }
  return url;
}

function databaseUrl(env: Env): string | undefined {
  const url = envSecret(env, 'DATABASE_URL');
  if (url !== undefined && !/^postgres(ql)?:\/\/\S+$/i.test(url)) {
    throw new ConfigError('DATABASE_URL', 'expected a postgres:// or postgresql:// URL');
  }
  return url;
}

/**
 * Several HTTP workers need the shared PostgreSQL store: the embedded database belongs to one process.
 * Checked for `OW_SC_WORKERS` here and again for `--workers` by the dashboard.
 */
export function checkWorkersStore(workers: number, databaseUrl: string | undefined): void {
  if (workers > 1 && databaseUrl === undefined) {
    throw new ConfigError(
      'DATABASE_URL',
      'required when OW_SC_WORKERS (or --workers) is more than 1: the embedded database cannot be shared between worker processes',
    );
  }
}

/** Reads and checks the whole table; throws ConfigError naming the first bad variable. */
export function loadConfig(env: Env): OwscConfig {
  const warnings: string[] = [];
  const production = isProduction(env);

  const apiToken = envSecret(env, 'OW_SC_API_TOKEN');
  const metricsProtect = envBool(env, 'OW_SC_METRICS_PROTECT', false);
  const ownMetricsToken = envSecret(env, 'OW_SC_METRICS_TOKEN');
  const metricsToken = ownMetricsToken ?? apiToken;
  if (metricsProtect && metricsToken === undefined) {
    throw new ConfigError(
      'OW_SC_METRICS_TOKEN',
      'OW_SC_METRICS_PROTECT is on but neither OW_SC_METRICS_TOKEN nor OW_SC_API_TOKEN is set',
    );
  }

  const trustedProxies = envList(env, 'OW_SC_TRUST_PROXY');
  try {
    trustedProxyList(trustedProxies);
  } catch (error) {
    throw new ConfigError('OW_SC_TRUST_PROXY', (error as Error).message);
  }

  const corsList = envList(env, 'OW_SC_CORS_ORIGINS');
  const corsOrigins: '*' | string[] = corsList.length === 0 || corsList.includes('*') ? '*' : corsList;
  for (const origin of corsOrigins === '*' ? [] : corsOrigins) {
    if (!/^https?:\/\/[^/\s]+$/i.test(origin)) {
      throw new ConfigError(
        'OW_SC_CORS_ORIGINS',
        `expected origins such as https://example.com, got "${origin}"`,
      );
    }
  }

  const permitFile = envRaw(env, 'OW_SC_PERMIT_FILE');
  const permit = permitFile === undefined ? DEFAULT_PERMIT : loadPermitFile(permitFile);

  const redis = redisUrl(env);
  const database = databaseUrl(env);
  const allowAnonymous = envBool(env, 'OW_SC_ALLOW_ANONYMOUS', false);

  const adviceProvider = envEnum(env, 'OW_SC_ADVICE_PROVIDER', ['catalogue', 'openai'] as const, 'catalogue');
  const openaiApiKey = envSecret(env, 'OPENAI_API_KEY');
  if (adviceProvider === 'openai' && openaiApiKey === undefined) {
    throw new ConfigError('OPENAI_API_KEY', 'required when OW_SC_ADVICE_PROVIDER=openai');
  }
  const openaiBaseUrl = (envRaw(env, 'OPENAI_BASE_URL') ?? 'https://api.openai.com/v1').replace(/\/+$/, '');
  if (!/^https?:\/\/[^/\s]+/i.test(openaiBaseUrl)) {
    throw new ConfigError('OPENAI_BASE_URL', 'expected an absolute http(s) URL');
  }

  const logFormat = envEnum(env, 'LOG_FORMAT', ['json', 'text'] as const, 'json');
  const workers = envInt(env, 'OW_SC_WORKERS', 1, { min: 1, max: 64 });
  checkWorkersStore(workers, database);

  if (production) {
    if (redis !== undefined && database === undefined) {
      throw new ConfigError(
        'DATABASE_URL',
        'required in production when OW_SC_REDIS_URL is set (incidents and acknowledgements must be shared)',
      );
    }
    if (apiToken === undefined && !allowAnonymous) {
      warnings.push(
        'OW_SC_API_TOKEN is not set: /api/* and WebSockets are open to anyone (set OW_SC_ALLOW_ANONYMOUS=1 to silence)',
      );
    }
    if (corsOrigins === '*') warnings.push('OW_SC_CORS_ORIGINS is *: any web origin may call the API');
  }

  return {
    host: envRaw(env, 'OW_SC_HOST') ?? '127.0.0.1',
    port: port(env),
    production,
    apiToken,
    metricsProtect,
    metricsToken,
    rateLimitPerSecond: envInt(env, 'OW_SC_RL_PER_SEC', 10, { min: 0, max: 1_000_000 }),
    trustedProxies,
    corsOrigins,
    wsMessagesPerSecond: envInt(env, 'OW_SC_WS_MSGS_PER_SEC', 20, { min: 0, max: 1_000_000 }),
    wsMaxMessageBytes: envInt(env, 'OW_SC_WS_MAX_MESSAGE_BYTES', 8192, { min: 64, max: 16 * 1024 * 1024 }),
    wsMaxConnections: envInt(env, 'OW_SC_WS_MAX_CONNECTIONS', 5000, { min: 1, max: 1_000_000 }),
    streamBuffer: envInt(env, 'OW_SC_STREAM_BUFFER', 1024, { min: 1, max: 1_000_000 }),
    maxCsvBytes: envInt(env, 'OW_SC_MAX_CSV_BYTES', 10_485_760, { min: 1 }),
    maxCsvRows: envInt(env, 'OW_SC_MAX_CSV_ROWS', 1_000_000, { min: 1 }),
    maxJsonBytes: envInt(env, 'OW_SC_MAX_JSON_BYTES', 1_048_576, { min: 1024 }),
    permit,
    permitSource: permitFile === undefined ? 'default' : 'file',
    permitFile,
    nondetect: envEnum(env, 'OW_SC_NONDETECT', ['zero', 'half', 'dl'] as const, 'zero'),
    redisUrl: redis,
    redisChannel: envRaw(env, 'OW_SC_REDIS_CHANNEL') ?? 'owsc:effluent',
    databaseUrl: database,
    dataDir: envRaw(env, 'OW_SC_DATA_DIR') ?? './data',
    artifactsDir: envRaw(env, 'OW_SC_ARTIFACTS_DIR') ?? './artifacts',
    reportsDir: envRaw(env, 'OW_SC_REPORTS_DIR') ?? './reports',
    provenanceLedger: envRaw(env, 'OW_SC_PROVENANCE_LEDGER') ?? './provenance/ledger.jsonl',
    lineageLedger: envRaw(env, 'OW_SC_LINEAGE_LEDGER') ?? './lineage/samples.jsonl',
    tmpDir: envRaw(env, 'OW_SC_TMP_DIR') ?? tmpdir(),
    workers,
    jobWorkers: envInt(env, 'OW_SC_JOB_WORKERS', Math.min(2, cpus().length), { min: 1, max: 64 }),
    jobTimeoutSeconds: envInt(env, 'OW_SC_JOB_TIMEOUT_S', 120, { min: 1, max: 86_400 }),
    shutdownTimeoutSeconds: envInt(env, 'OW_SC_SHUTDOWN_TIMEOUT_S', 10, { min: 0, max: 3600 }),
    adviceProvider,
    openaiApiKey,
    openaiBaseUrl,
    openaiModel: envRaw(env, 'OPENAI_MODEL') ?? 'gpt-4o-mini',
    allowAnonymous,
    logFormat,
    logLevel: logLevel(env),
    logFile: envRaw(env, 'LOG_FILE'),
    warnings,
  };
}
