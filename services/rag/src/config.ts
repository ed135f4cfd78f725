// The RAG Assistant environment table (spec §3.13) read into RagConfig, with the start-up refusals of §2.3.7–9:
// secrets from `NAME_FILE` first, every invalid value named, and in staging/production every violated
// invariant listed at once.
import { existsSync, readFileSync } from 'node:fs';
import { BlockList, isIP } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import {
  ConfigError,
  type Env,
  envBool,
  envEnum,
  envInt,
  envNumber,
  envRaw,
  resolvePort,
  validateRedisUrl,
} from '@quintet/kernel/config';
import type { EmbeddingProvider, Environment, ModelPrice, RagConfig, UploadProfile } from './config-types.js';
import type { RagBackend } from './domain/schema.js';
import { PROFILE_MIMES, SUPPORTED_MIMES } from './domain/text/upload-checks.js';

export type { Env, RagConfig };
export { ConfigError };

export const DEV_JWT_SECRET = 'dev_secret_DO_NOT_USE_IN_PRODUCTION_generate_real_secret_with_secrets_module';
/** EMBEDDING_DIM when unset (the build's migrated database template is made for it). */
export const DEFAULT_EMBEDDING_DIM = 384;
export const DEFAULT_NO_ANSWER_TEXT = "I couldn't find an answer to that in the selected documents.";
export const DEFAULT_ALLOWED_MODELS = [
  'gemini-2.5-flash',
  'gemini-2.5-pro',
  'gemini-3.0-pro-thinking',
  'gemini-2.0-flash',
  'gemini-2.0-pro',
  'gemini-1.5-pro',
  'gemini-1.5-flash',
];
const WEAK_DATABASE_PASSWORDS = new Set([
  'changeme_local_only',
  'localdev_password_change_in_production',
  'postgres',
  'password',
  'changeme_demo_password',
]);
/** input/output USD per million tokens of the original's table; index price comes from PRICE_PER_MTOK_INDEX */
const ORIGINAL_PRICES: Readonly<Record<string, [string, string]>> = {
  'gemini-3.0-pro-thinking': ['2', '12'],
  'gemini-3-pro-preview': ['2', '12'],
  'gemini-2.5-pro': ['1.25', '10'],
  'gemini-2.0-pro': ['1', '5'],
  'gemini-1.5-pro': ['1.25', '5'],
  'gemini-2.5-flash': ['0.30', '2.50'],
  'gemini-2.5-flash-lite': ['0.10', '0.40'],
  'gemini-2.0-flash': ['0.10', '0.40'],
  'gemini-1.5-flash': ['0.075', '0.30'],
};
const SECRET_NAMES = [
  'JWT_SECRET',
  'GEMINI_API_KEY',
  'DATABASE_URL',
  'REDIS_URL',
  'LOCAL_LLM_API_KEY',
] as const;

/** Start-up refused in staging/production (or for a rule that holds everywhere): one line per violated rule. */
export class StartupRefusedError extends ConfigError {
  constructor(readonly violations: string[]) {
    super(violations[0]?.split(/[\s=]/)[0] ?? 'ENVIRONMENT', violations.join('\n'));
    this.message = `Refusing to start: ${violations.length} configuration rule(s) violated:\n${violations
      .map((line) => `- ${line}`)
      .join('\n')}`;
  }
}

/** A ConfigError whose message is exactly `message` (it already names the variable). */
function configError(variable: string, message: string): ConfigError {
  const error = new ConfigError(variable, message);
  error.message = message;
  return error;
}

/**
 * A secret: the trimmed content of `NAME_FILE` wins over `NAME`; a `_FILE` naming a missing file stops
 * start-up with `NAME_FILE points to missing file: <path>`.
 */
export function readSecret(env: Env, name: string): string | undefined {
  const file = envRaw(env, `${name}_FILE`);
  if (file !== undefined) {
    if (!existsSync(file)) throw configError(`${name}_FILE`, `${name}_FILE points to missing file: ${file}`);
    let content: string;
    try {
      content = readFileSync(file, 'utf8');
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code ?? 'unreadable';
      throw configError(`${name}_FILE`, `${name}_FILE cannot be read (${code}): ${file}`);
    }
    const value = content.trim();
    return value === '' ? undefined : value;
  }
  return envRaw(env, name);
}

/** A list variable: a JSON array of strings, or a comma list; items trimmed, empty ones dropped. */
export function envListValue(env: Env, name: string, fallback: string[] = []): string[] {
  const raw = envRaw(env, name);
  if (raw === undefined) return fallback;
  if (raw.startsWith('[')) {
    let parsed: unknown;
    try {
      parsed = JSON.parse(raw);
    } catch {
      throw new ConfigError(name, 'expected a JSON array or a comma-separated list');
    }
    if (!Array.isArray(parsed) || parsed.some((item) => typeof item !== 'string')) {
      throw new ConfigError(name, 'expected a JSON array of strings');
    }
    return (parsed as string[]).map((item) => item.trim()).filter((item) => item !== '');
  }
  return raw
    .split(',')
    .map((item) => item.trim())
    .filter((item) => item !== '');
}

function environmentOf(env: Env): Environment {
  const raw = envRaw(env, 'ENVIRONMENT');
  if (raw === undefined) {
    return envRaw(env, 'NODE_ENV')?.toLowerCase() === 'production' ? 'production' : 'development';
  }
  return envEnum(env, 'ENVIRONMENT', ['development', 'test', 'staging', 'production'], 'development');
}

const DECIMAL = /^\d+(\.\d+)?$/;

function decimalValue(name: string, raw: string): string {
  if (!DECIMAL.test(raw)) throw new ConfigError(name, `expected a non-negative decimal number, got "${raw}"`);
  return raw;
}

/** A PRICE_PER_MTOK_* value (or its `_FILE`); undefined when not set explicitly. */
function explicitPrice(env: Env, name: string): string | undefined {
  const raw = readSecret(env, name);
  return raw === undefined ? undefined : decimalValue(name, raw);
}

function priceField(
  name: string,
  entry: Record<string, unknown>,
  field: keyof ModelPrice,
): string | undefined {
  const value = entry[field];
  if (value === undefined || value === null) return undefined;
  const text = typeof value === 'number' ? String(value) : value;
  if (typeof text !== 'string') throw new ConfigError(name, `${field} must be a number`);
  return decimalValue(name, text);
}

/** MODEL_PRICING resolved: every entry complete, `default` always present (spec §3.8). */
function modelPricing(env: Env): Record<string, ModelPrice> {
  const explicit = {
    input_price: explicitPrice(env, 'PRICE_PER_MTOK_INPUT'),
    output_price: explicitPrice(env, 'PRICE_PER_MTOK_OUTPUT'),
    index_price: explicitPrice(env, 'PRICE_PER_MTOK_INDEX'),
  };
  const base: ModelPrice = {
    input_price: explicit.input_price ?? '0.30',
    output_price: explicit.output_price ?? '2.50',
    index_price: explicit.index_price ?? '0.0015',
  };
  const raw = envRaw(env, 'MODEL_PRICING');
  if (raw === undefined) {
    const table: Record<string, ModelPrice> = { default: base };
    for (const [model, [input, output]] of Object.entries(ORIGINAL_PRICES)) {
      table[model] = { input_price: input, output_price: output, index_price: base.index_price };
    }
    return table;
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(raw);
  } catch {
    throw new ConfigError(
      'MODEL_PRICING',
      'expected a JSON object {"<model>": {"input_price", "output_price", "index_price"}}',
    );
  }
  if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) {
    throw new ConfigError('MODEL_PRICING', 'expected a JSON object of models');
  }
  const entries = parsed as Record<string, unknown>;
  const rawDefault = entries.default;
  if (rawDefault === null || typeof rawDefault !== 'object') {
    throw new ConfigError('MODEL_PRICING', 'must contain a "default" entry');
  }
  const defaultEntry = rawDefault as Record<string, unknown>;
  const fallback: ModelPrice = {
    input_price: priceField('MODEL_PRICING', defaultEntry, 'input_price') ?? base.input_price,
    output_price: priceField('MODEL_PRICING', defaultEntry, 'output_price') ?? base.output_price,
    index_price: priceField('MODEL_PRICING', defaultEntry, 'index_price') ?? base.index_price,
  };
  if (Number(fallback.input_price) <= 0 || Number(fallback.output_price) <= 0) {
    throw new ConfigError('MODEL_PRICING', 'the "default" entry needs input_price and output_price > 0');
  }
  const table: Record<string, ModelPrice> = { default: fallback };
  for (const [model, value] of Object.entries(entries)) {
    if (model === 'default') continue;
    if (value === null || typeof value !== 'object') {
      throw new ConfigError('MODEL_PRICING', `the entry for "${model}" must be an object`);
    }
    const entry = value as Record<string, unknown>;
    const field = (name: keyof ModelPrice) =>
      priceField('MODEL_PRICING', entry, name) ?? explicit[name] ?? fallback[name];
    table[model] = {
      input_price: field('input_price'),
      output_price: field('output_price'),
      index_price: field('index_price'),
    };
  }
  return table;
}

function checkCidrs(name: string, entries: string[]): void {
  const list = new BlockList();
  for (const entry of entries) {
    const [address, prefix, extra] = entry.split('/');
    const family = isIP(address ?? '');
    const bits = family === 6 ? 128 : 32;
    const prefixValid = prefix === undefined || (/^\d{1,3}$/.test(prefix) && Number(prefix) <= bits);
    if (family === 0 || !prefixValid || extra !== undefined) {
      throw new ConfigError(name, `not an IP address or CIDR range: "${entry}"`);
    }
    const type = family === 6 ? 'ipv6' : 'ipv4';
    if (prefix === undefined) list.addAddress(address as string, type);
    else list.addSubnet(address as string, Number(prefix), type);
  }
}

function uploadMimes(env: Env, profile: UploadProfile): string[] {
  if (profile !== 'custom') return [...PROFILE_MIMES[profile]].sort();
  const custom = envListValue(env, 'ALLOWED_UPLOAD_MIMES').map((mime) => mime.toLowerCase());
  if (custom.length === 0) {
    throw new ConfigError(
      'ALLOWED_UPLOAD_MIMES',
      'UPLOAD_PROFILE=custom needs a non-empty list of MIME types',
    );
  }
  for (const mime of custom) {
    if (!SUPPORTED_MIMES.has(mime)) {
      throw new ConfigError('ALLOWED_UPLOAD_MIMES', `"${mime}" is not a supported MIME type`);
    }
  }
  return [...new Set(custom)].sort();
}

function logLevel(env: Env): RagConfig['logLevel'] {
  const raw = envRaw(env, 'LOG_LEVEL')?.toLowerCase();
  const aliases: Record<string, RagConfig['logLevel']> = {
    warning: 'warn',
    critical: 'error',
    fatal: 'error',
  };
  if (raw === undefined) return 'info';
  const level = aliases[raw] ?? raw;
  if (!['trace', 'debug', 'info', 'warn', 'error'].includes(level)) {
    throw new ConfigError('LOG_LEVEL', `expected one of trace, debug, info, warn, error, got "${raw}"`);
  }
  return level as RagConfig['logLevel'];
}

/** DATABASE_URL: a PostgreSQL URL, undefined for the embedded database (a `sqlite:` URL is its legacy alias). */
function databaseUrl(env: Env, warnings: string[]): string | undefined {
  const raw = readSecret(env, 'DATABASE_URL');
  if (raw === undefined) return undefined;
  if (/^sqlite(\+\w+)?:/i.test(raw)) {
    warnings.push(
      'DATABASE_URL is a sqlite: URL: it is treated as the embedded database (DATA_DIR/pglite); set a postgres:// URL for PostgreSQL',
    );
    return undefined;
  }
  if (!/^postgres(ql)?(\+[a-z0-9_]+)?:\/\//i.test(raw)) {
    throw new ConfigError(
      'DATABASE_URL',
      'expected a postgres://, postgresql:// or postgresql+psycopg2:// URL',
    );
  }
  return raw;
}

function numberRange(env: Env, name: string, fallback: number, min: number, max: number): number {
  return envNumber(env, name, fallback, { min, max });
}

/** Reads and checks the whole environment; throws ConfigError (or StartupRefusedError listing every rule). */
export function loadConfig(env: Env): RagConfig {
  const warnings: string[] = [];
  const environment = environmentOf(env);
  const strictEnvironment = environment === 'staging' || environment === 'production';
  const dataDir = resolve(envRaw(env, 'DATA_DIR') ?? './data');
  const redisUrl = readSecret(env, 'REDIS_URL');
  if (redisUrl !== undefined) validateRedisUrl(redisUrl);

  const jwtSecret = readSecret(env, 'JWT_SECRET') ?? DEV_JWT_SECRET;
  if ([...jwtSecret].length < 32) {
    throw new ConfigError('JWT_SECRET', 'must be at least 32 characters long');
  }

  const corsOrigins = envListValue(env, 'CORS_ORIGINS', strictEnvironment ? [] : ['http://localhost:5173']);
  const corsAllowCredentials = envBool(env, 'CORS_ALLOW_CREDENTIALS', true);
  if (corsAllowCredentials && corsOrigins.includes('*')) {
    throw new ConfigError('CORS_ORIGINS', '"*" cannot be combined with CORS_ALLOW_CREDENTIALS=true');
  }
  const trustedProxyIps = envListValue(env, 'TRUSTED_PROXY_IPS');
  checkCidrs('TRUSTED_PROXY_IPS', trustedProxyIps);

  const uploadProfile = envEnum<UploadProfile>(
    env,
    'UPLOAD_PROFILE',
    ['safe', 'office', 'all-supported', 'custom'],
    'safe',
  );
  const gcsArchiveBucket = envRaw(env, 'GCS_ARCHIVE_BUCKET');
  if (gcsArchiveBucket !== undefined) {
    warnings.push(
      'GCS_ARCHIVE_BUCKET is not built in: originals stay under UPLOAD_DIR; sync that directory to object storage instead',
    );
  }
  const localLlmApiKey = readSecret(env, 'LOCAL_LLM_API_KEY');
  const localLlmDefaultModel = envRaw(env, 'LOCAL_LLM_DEFAULT_MODEL');
  const ingestInProcessRaw = envRaw(env, 'INGEST_IN_PROCESS');
  const ingestInProcess =
    ingestInProcessRaw === undefined || ingestInProcessRaw.toLowerCase() === 'auto'
      ? redisUrl === undefined
      : envBool(env, 'INGEST_IN_PROCESS', redisUrl === undefined);
  const maxJsonMb = envNumber(env, 'MAX_JSON_MB', 10, { min: 0, exclusiveMin: true, max: 1024 });
  const maxUploadMb = envNumber(env, 'MAX_UPLOAD_MB', 25, { min: 0, exclusiveMin: true, max: 10_240 });
  const geminiMockMode = envBool(env, 'GEMINI_MOCK_MODE', true);
  const budgetHold = envRaw(env, 'BUDGET_HOLD_USD') ?? '0.05';

  const config: RagConfig = {
    environment,
    strictEnvironment,
    host: envRaw(env, 'HOST') ?? '0.0.0.0',
    port: resolvePort(undefined, env, ['PORT', 'APP_PORT'], 8000),
    workers: envInt(env, 'WEB_CONCURRENCY', 1, { min: 1, max: 256 }),
    strictMode: envBool(env, 'STRICT_MODE', true),
    runMigrations: envBool(env, 'RUN_MIGRATIONS', true),
    logLevel: logLevel(env),
    logFile: envRaw(env, 'LOG_FILE'),
    dataDir,
    uploadDir: resolve(envRaw(env, 'UPLOAD_DIR') ?? join(dataDir, 'uploads')),
    tmpDir: resolve(envRaw(env, 'TMP_DIR') ?? envRaw(env, 'UPLOAD_FOLDER') ?? join(tmpdir(), 'rag_uploads')),
    tmpMaxAgeHours: envNumber(env, 'TMP_MAX_AGE_HOURS', 24, { min: 0 }),
    databaseUrl: databaseUrl(env, warnings),
    dbPoolSize: envInt(env, 'DB_POOL_SIZE', 10, { min: 1, max: 1000 }),
    dbMaxOverflow: envInt(env, 'DB_MAX_OVERFLOW', 20, { min: 0, max: 1000 }),
    redisUrl,
    requireRedisInProduction: envBool(env, 'REQUIRE_REDIS_IN_PRODUCTION', true),
    jwtSecret,
    jwtIssuer: envRaw(env, 'JWT_ISSUER') ?? 'rag-assistant',
    jwtAudience: envRaw(env, 'JWT_AUDIENCE') ?? 'rag-users',
    accessTokenExpireMinutes: envInt(env, 'ACCESS_TOKEN_EXPIRE_MINUTES', 15, { min: 1, max: 525_600 }),
    allowDevLogin: envBool(env, 'ALLOW_DEV_LOGIN', false),
    allowRegistration: envBool(env, 'ALLOW_REGISTRATION', true),
    requireCsrfHeader: envBool(env, 'REQUIRE_CSRF_HEADER', true),
    corsOrigins,
    corsAllowCredentials,
    corsAllowMethods: envListValue(env, 'CORS_ALLOW_METHODS', [
      'GET',
      'POST',
      'PUT',
      'PATCH',
      'DELETE',
      'OPTIONS',
    ]),
    corsAllowHeaders: envListValue(env, 'CORS_ALLOW_HEADERS', [
      'Authorization',
      'Content-Type',
      'X-Requested-With',
      'X-Request-ID',
    ]),
    rateLimitPerMinute: envInt(env, 'RATE_LIMIT_PER_MINUTE', 120, { min: 1 }),
    chatRateLimitPerMinute: envInt(env, 'CHAT_RATE_LIMIT_PER_MINUTE', 10, { min: 1 }),
    uploadRateLimitPerMinute: envInt(env, 'UPLOAD_RATE_LIMIT_PER_MINUTE', 10, { min: 1 }),
    loginRateLimitPerMinute: envInt(env, 'LOGIN_RATE_LIMIT_PER_MINUTE', 20, { min: 1 }),
    trustedProxyIps,
    metricsAllowAll: envBool(env, 'METRICS_ALLOW_ALL', false),
    metricsToken: readSecret(env, 'METRICS_TOKEN'),
    maxJsonBytes: Math.floor(maxJsonMb * 1024 * 1024),
    maxUploadBytes: Math.floor(maxUploadMb * 1024 * 1024),
    uploadProfile,
    allowedUploadMimes: uploadMimes(env, uploadProfile),
    maxStoresPerUser: envInt(env, 'MAX_STORES_PER_USER', 10, { min: 1 }),
    purgeDeletedAfterDays: envInt(env, 'PURGE_DELETED_AFTER_DAYS', 30, { min: 0 }),
    chatRetentionDays: envInt(env, 'CHAT_RETENTION_DAYS', 0, { min: 0 }),
    queryLogRetentionDays: envInt(env, 'QUERY_LOG_RETENTION_DAYS', 0, { min: 0 }),
    gcsArchiveBucket,
    defaultRagBackend: envEnum<RagBackend>(
      env,
      'DEFAULT_RAG_BACKEND',
      ['gemini_hosted', 'local_openai'],
      'gemini_hosted',
    ),
    enableGeminiBackend: envBool(env, 'ENABLE_GEMINI_BACKEND', true),
    enableLocalOpenaiBackend: envBool(env, 'ENABLE_LOCAL_OPENAI_BACKEND', false),
    geminiMockMode,
    allowMockInProd: envBool(env, 'ALLOW_MOCK_IN_PROD', false),
    geminiApiKey: readSecret(env, 'GEMINI_API_KEY'),
    geminiApiBaseUrl: (
      envRaw(env, 'GEMINI_API_BASE_URL') ?? 'https://generativelanguage.googleapis.com'
    ).replace(/\/+$/, ''),
    defaultModel: envRaw(env, 'DEFAULT_MODEL') ?? 'gemini-2.5-flash',
    allowedModels: envListValue(env, 'ALLOWED_MODELS', DEFAULT_ALLOWED_MODELS),
    geminiHttpTimeoutS: envNumber(env, 'GEMINI_HTTP_TIMEOUT_S', 60, { min: 0, exclusiveMin: true }),
    geminiRetryAttempts: envInt(env, 'GEMINI_RETRY_ATTEMPTS', 3, { min: 0, max: 20 }),
    geminiStreamRetryAttempts: envInt(env, 'GEMINI_STREAM_RETRY_ATTEMPTS', 2, { min: 0, max: 20 }),
    geminiIngestionTimeoutS: envNumber(env, 'GEMINI_INGESTION_TIMEOUT_S', 180, {
      min: 0,
      exclusiveMin: true,
    }),
    localLlmBaseUrl: envRaw(env, 'LOCAL_LLM_BASE_URL')?.replace(/\/+$/, ''),
    localLlmApiKey:
      localLlmApiKey === undefined || localLlmApiKey.toUpperCase() === 'EMPTY' ? undefined : localLlmApiKey,
    localLlmDefaultModel,
    localLlmModels: envListValue(env, 'LOCAL_LLM_MODELS'),
    llmTemperature: numberRange(env, 'LLM_TEMPERATURE', 0.2, 0, 2),
    llmMaxOutputTokens: envInt(env, 'LLM_MAX_OUTPUT_TOKENS', 1024, { min: 1 }),
    llmStreamIdleTimeoutS: envNumber(env, 'LLM_STREAM_IDLE_TIMEOUT_S', 60, { min: 0, exclusiveMin: true }),
    embeddingProvider: envEnum<EmbeddingProvider>(
      env,
      'EMBEDDING_PROVIDER',
      ['local', 'gemini', 'local_openai'],
      'local',
    ),
    embeddingModel: envRaw(env, 'EMBEDDING_MODEL'),
    embeddingDim: envInt(env, 'EMBEDDING_DIM', DEFAULT_EMBEDDING_DIM, { min: 8, max: 4096 }),
    ragTopK: envInt(env, 'RAG_TOP_K', 6, { min: 1, max: 100 }),
    ragCandidates: envInt(env, 'RAG_CANDIDATES', 40, { min: 1, max: 1000 }),
    ragRrfK: envInt(env, 'RAG_RRF_K', 60, { min: 1 }),
    ragMinTermCoverage: numberRange(env, 'RAG_MIN_TERM_COVERAGE', 0.3, 0, 1),
    ragChunkTokens: envInt(env, 'RAG_CHUNK_TOKENS', 300, { min: 16, max: 8192 }),
    ragChunkOverlap: envInt(env, 'RAG_CHUNK_OVERLAP', 50, { min: 0, max: 4096 }),
    ragMaxContextTokens: envInt(env, 'RAG_MAX_CONTEXT_TOKENS', 3000, { min: 1 }),
    ragAnswerSentences: envInt(env, 'RAG_ANSWER_SENTENCES', 3, { min: 1, max: 20 }),
    ragNoAnswerText: envRaw(env, 'RAG_NO_ANSWER_TEXT') ?? DEFAULT_NO_ANSWER_TEXT,
    ragRefuseWithoutContext: envBool(env, 'RAG_REFUSE_WITHOUT_CONTEXT', true),
    allowMetadataFilters: envBool(env, 'ALLOW_METADATA_FILTERS', false),
    metadataFilterAllowedKeys: envListValue(env, 'METADATA_FILTER_ALLOWED_KEYS'),
    streamKeepaliveSecs: envNumber(env, 'STREAM_KEEPALIVE_SECS', 10, { min: 0 }),
    maxConcurrentStreams: envInt(env, 'MAX_CONCURRENT_STREAMS', 50, { min: 1 }),
    streamSlotWaitMs: envInt(env, 'STREAM_SLOT_WAIT_MS', 2000, { min: 0 }),
    streamMaxBufferBytes: envInt(env, 'STREAM_MAX_BUFFER_BYTES', 1_048_576, { min: 1024 }),
    ingestConcurrency: envInt(env, 'INGEST_CONCURRENCY', 2, { min: 1, max: 256 }),
    ingestWorkerConcurrency: envInt(env, 'INGEST_WORKER_CONCURRENCY', 10, { min: 1, max: 256 }),
    ingestJobTimeoutS: envNumber(env, 'INGEST_JOB_TIMEOUT_S', 300, { min: 0, exclusiveMin: true }),
    ingestMaxAttempts: envInt(env, 'INGEST_MAX_ATTEMPTS', 3, { min: 1, max: 100 }),
    ingestInProcess,
    pdfMaxPages: envInt(env, 'PDF_MAX_PAGES', 2000, { min: 1 }),
    watchdogTtlMinutes: envInt(env, 'WATCHDOG_TTL_MINUTES', 60, { min: 1 }),
    watchdogCronMinutes: envInt(env, 'WATCHDOG_CRON_MINUTES', 15, { min: 0 }),
    modelPricing: modelPricing(env),
    priceCheckStrict: envBool(env, 'PRICE_CHECK_STRICT', false),
    budgetHoldUsd: decimalValue('BUDGET_HOLD_USD', budgetHold),
    budgetAlertPercent: numberRange(env, 'BUDGET_ALERT_PERCENT', 80, 0, 1000),
    warnings,
  };
  if (config.ragChunkOverlap >= config.ragChunkTokens) {
    throw new ConfigError('RAG_CHUNK_OVERLAP', 'must be smaller than RAG_CHUNK_TOKENS');
  }
  const violations = productionViolations(config, env);
  if (violations.length > 0) throw new StartupRefusedError(violations);
  return config;
}

/**
 * The start-up invariants of spec §2.3.8–9 that this configuration violates, one line each naming the variable:
 * production applies them all, staging the ones marked * in the spec; two hold in every environment.
 * (Redis reachability at start is checked by the server, which can reach it.)
 */
export function productionViolations(config: RagConfig, env: Env): string[] {
  const production = config.environment === 'production';
  const strict = config.strictEnvironment;
  const violations: string[] = [];
  if (strict && config.allowDevLogin)
    violations.push(`ALLOW_DEV_LOGIN=true is not allowed in ${config.environment}`);
  const rawDatabaseUrl = readSecret(env, 'DATABASE_URL');
  if (production) {
    if (rawDatabaseUrl === undefined) {
      violations.push(
        'DATABASE_URL is required in production (the embedded database is single-machine only)',
      );
    } else if (config.databaseUrl === undefined) {
      violations.push('DATABASE_URL must be a PostgreSQL URL in production, not a sqlite: URL');
    } else {
      const password = databasePassword(config.databaseUrl);
      if (password === '' || WEAK_DATABASE_PASSWORDS.has(password)) {
        violations.push('DATABASE_URL has a blank or default database password');
      }
    }
  }
  if (strict && (config.jwtSecret === DEV_JWT_SECRET || config.jwtSecret.includes('dev_secret'))) {
    violations.push(
      'JWT_SECRET is the development placeholder; generate a real secret (rag-assistant secrets)',
    );
  }
  if (strict && config.redisUrl === undefined && config.requireRedisInProduction) {
    violations.push('REDIS_URL is required (REQUIRE_REDIS_IN_PRODUCTION=true)');
  }
  if (strict && !config.requireCsrfHeader)
    violations.push(`REQUIRE_CSRF_HEADER=false is not allowed in ${config.environment}`);
  if (strict && !config.strictMode)
    violations.push(`STRICT_MODE=false is not allowed in ${config.environment}`);
  if (strict && config.geminiMockMode && !config.allowMockInProd && config.enableGeminiBackend) {
    violations.push(
      'GEMINI_MOCK_MODE=true needs ALLOW_MOCK_IN_PROD=true while the gemini_hosted backend is enabled',
    );
  }
  if (!config.geminiMockMode && config.geminiApiKey === undefined) {
    violations.push('GEMINI_API_KEY is required when GEMINI_MOCK_MODE=false');
  }
  if (production || config.priceCheckStrict) {
    const defaults = config.modelPricing.default;
    const names: [keyof NonNullable<typeof defaults>, string][] = [
      ['input_price', 'PRICE_PER_MTOK_INPUT'],
      ['output_price', 'PRICE_PER_MTOK_OUTPUT'],
      ['index_price', 'PRICE_PER_MTOK_INDEX'],
    ];
    for (const [field, name] of names) {
      if (defaults === undefined || Number(defaults[field]) <= 0)
        violations.push(`${name} must be greater than 0`);
    }
  }
  if (strict && config.corsOrigins.length === 0)
    violations.push('CORS_ORIGINS must list the allowed origins');
  return violations;
}

function databasePassword(url: string): string {
  try {
    return decodeURIComponent(new URL(url.replace(/^postgres(ql)?\+[a-z0-9_]+:/i, 'postgresql:')).password);
  } catch {
    return '';
  }
}

/** `--workers` > 1 (or WEB_CONCURRENCY) needs a shared database: the embedded one is single-process. */
export function checkWorkers(workers: number, config: Pick<RagConfig, 'databaseUrl'>): void {
  if (workers > 1 && config.databaseUrl === undefined) {
    throw new ConfigError('WEB_CONCURRENCY', 'more than one worker requires DATABASE_URL (PostgreSQL)');
  }
}

/** Every secret variable name (for redaction and the `secrets` command). */
export const SECRET_VARIABLES: readonly string[] = SECRET_NAMES;
