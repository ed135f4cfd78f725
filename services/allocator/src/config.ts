// The File Allocator environment table (spec §3.3): the seed's `.env` block and every variable the spec adds,
// read from the real environment over the `.env` file of the working directory (or ENV_FILE), secrets from
// `NAME_FILE` first. An invalid value stops start-up with a message naming the variable.
import { existsSync, readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { parseEnv } from 'node:util';
import {
  ConfigError,
  type Env,
  envBool,
  envInt,
  envNumber,
  envRaw,
  envSecret,
  isProduction,
  validateRedisUrl,
} from '@quintet/kernel/config';
import { validateDatabaseUrl } from '@quintet/kernel/db';

export type { Env };
export { ConfigError };

export type QueueBackend = 'inproc' | 'redis';
export type LogLevel = 'DEBUG' | 'INFO' | 'WARNING' | 'ERROR' | 'CRITICAL';

export interface AllocatorConfig {
  environment: string;
  production: boolean;
  databaseUrl: string | undefined;
  dbPoolSize: number;
  dbMaxOverflow: number;
  dataDir: string;
  tmpDir: string;
  storageBackend: 'fs://';
  storagePath: string;
  host: string;
  port: number;
  webConcurrency: number;
  debug: boolean;
  logLevel: LogLevel;
  logFormat: 'json' | 'text';
  logFile: string | undefined;
  workerThreads: number;
  queueBackend: QueueBackend;
  redisUrl: string;
  /** key prefix of the Redis queue (several deployments can share one Redis) */
  redisQueuePrefix: string;
  jobMaxRetries: number;
  jobRetryBaseMs: number;
  jobTimeoutMs: number;
  jobLeaseMs: number;
  shutdownTimeoutMs: number;
  modelsDir: string;
  embeddingModel: string;
  /** EMBEDDING_MODEL was set (environment or .env): a fallback then makes /health degraded */
  embeddingModelExplicit: boolean;
  embeddingModelRequired: boolean;
  embeddingDim: number;
  clusterThreshold: number;
  maxImageSize: number;
  videoKeyframes: number;
  ffmpegPath: string | undefined;
  ffprobePath: string | undefined;
  ocrEnabled: boolean;
  textEmbeddingModel: string;
  docChunkSize: number;
  docChunkOverlap: number;
  geminiApiKey: string;
  geminiModel: string;
  geminiBaseUrl: string;
  vlmEnabled: boolean;
  vlmTimeoutMs: number;
  vlmFallbackToClip: boolean;
  schemaSampleSize: number;
  schemaStabilityThreshold: number;
  schemaMaxTopLevelKeys: number;
  schemaMaxDepth: number;
  autoMigrate: boolean;
  searchDefaultLimit: number;
  searchMaxLimit: number;
  searchDefaultThreshold: number;
  searchTimeoutMs: number;
  dedupHammingThreshold: number;
  dedupNearMinSimilarity: number;
  maxImageBytes: number;
  maxVideoBytes: number;
  maxAudioBytes: number;
  maxDocumentBytes: number;
  maxJsonBytes: number;
  maxFilesPerRequest: number;
  maxRequestBytes: number;
  maxImagePixels: number;
  apiKeys: string[];
  allowedOrigins: string[];
  ingestAllowedRoot: string | undefined;
  webhookSecret: string;
  webhookAllowedHosts: string[];
  metricsEnabled: boolean;
  tracingEnabled: boolean;
  otlpEndpoint: string | undefined;
  faultInjectFailOwner: string | undefined;
}

/** EMBEDDING_DIM when unset (the build's migrated catalog template is made for it). */
export const DEFAULT_EMBEDDING_DIM = 512;
const MIB = 1024 * 1024;
const LOG_LEVELS: readonly LogLevel[] = ['DEBUG', 'INFO', 'WARNING', 'ERROR', 'CRITICAL'];
const DEFAULT_ORIGINS = ['http://localhost:3000', 'http://localhost:8000'];

/**
 * The process environment over the dotenv file (ENV_FILE, else `.env` in `cwd`): real variables win; a
 * missing file is fine; `# comments`, quotes and inline comments after values follow dotenv syntax.
 */
export function loadEnvironment(processEnv: Env, cwd: string = process.cwd()): Env {
  const file = resolve(cwd, envRaw(processEnv, 'ENV_FILE') ?? '.env');
  if (!existsSync(file)) {
    if (envRaw(processEnv, 'ENV_FILE') !== undefined)
      throw new ConfigError('ENV_FILE', `the file ${file} does not exist`);
    return processEnv;
  }
  let fromFile: Record<string, string>;
  try {
    fromFile = parseEnv(readFileSync(file, 'utf8')) as Record<string, string>;
  } catch (error) {
    throw new ConfigError('ENV_FILE', `cannot read ${file}: ${(error as Error).message}`);
  }
  const merged: Record<string, string | undefined> = { ...fromFile };
  for (const [name, value] of Object.entries(processEnv)) if (value !== undefined) merged[name] = value;
  return merged;
}

function unitInterval(env: Env, name: string, fallback: number): number {
  return envNumber(env, name, fallback, { min: 0, max: 1 });
}

function bytes(env: Env, name: string, fallback: number): number {
  return envInt(env, name, fallback, { min: 1 });
}

function comma(value: string | undefined): string[] {
  return (value ?? '')
    .split(',')
    .map((item) => item.trim())
    .filter((item) => item !== '');
}

/** ALLOWED_ORIGINS: comma-separated (the seed's form) or a JSON array string (the original's). */
function parseOrigins(env: Env): string[] {
  const raw = envRaw(env, 'ALLOWED_ORIGINS');
  if (raw === undefined) return DEFAULT_ORIGINS;
  if (raw.startsWith('[')) {
    let parsed: unknown;
    try {
      parsed = JSON.parse(raw);
    } catch {
      throw new ConfigError('ALLOWED_ORIGINS', 'looks like a JSON array but does not parse');
    }
    if (!Array.isArray(parsed) || parsed.some((item) => typeof item !== 'string'))
      throw new ConfigError('ALLOWED_ORIGINS', 'a JSON array of origin strings was expected');
    return (parsed as string[]).map((item) => item.trim()).filter((item) => item !== '');
  }
  return comma(raw);
}

function parseLogLevel(env: Env): LogLevel {
  const raw = envRaw(env, 'LOG_LEVEL');
  if (raw === undefined) return 'INFO';
  const level = raw.toUpperCase() === 'WARN' ? 'WARNING' : (raw.toUpperCase() as LogLevel);
  if (!LOG_LEVELS.includes(level))
    throw new ConfigError('LOG_LEVEL', `expected one of ${LOG_LEVELS.join(', ')}, got "${raw}"`);
  return level;
}

/** DATABASE_URL (or its _FILE), with DB_PASSWORD(_FILE) replacing the password inside it. */
function databaseUrl(env: Env): string | undefined {
  const url = envSecret(env, 'DATABASE_URL')?.trim();
  if (url === undefined || url === '') return undefined;
  validateDatabaseUrl(url);
  const password = envSecret(env, 'DB_PASSWORD');
  if (password === undefined) return url;
  const parsed = new URL(url);
  parsed.password = encodeURIComponent(password);
  return parsed.toString();
}

function queueBackend(env: Env): QueueBackend {
  const raw = envRaw(env, 'QUEUE_BACKEND');
  if (raw === undefined) return envSecret(env, 'REDIS_URL') !== undefined ? 'redis' : 'inproc';
  const value = raw.toLowerCase();
  if (value !== 'inproc' && value !== 'redis')
    throw new ConfigError('QUEUE_BACKEND', `expected inproc or redis, got "${raw}"`);
  return value;
}

/** Reads and validates the whole table (environment already merged with the dotenv file). */
export function loadConfig(env: Env): AllocatorConfig {
  const production = isProduction(env);
  const environment = (envRaw(env, 'ENVIRONMENT') ?? envRaw(env, 'NODE_ENV') ?? 'development').toLowerCase();
  const storageBackend = envRaw(env, 'STORAGE_BACKEND') ?? 'fs://';
  if (storageBackend !== 'fs://')
    throw new ConfigError(
      'STORAGE_BACKEND',
      `unsupported STORAGE_BACKEND '${storageBackend}': only fs:// is available`,
    );
  const dataDir = resolve(envRaw(env, 'DATA_DIR') ?? './data');
  const dbUrl = databaseUrl(env);
  if (production && dbUrl === undefined)
    throw new ConfigError('DATABASE_URL', 'DATABASE_URL is required when ENVIRONMENT=production');
  const redisUrl = envSecret(env, 'REDIS_URL')?.trim() || 'redis://localhost:6379/0';
  const backend = queueBackend(env);
  if (backend === 'redis') validateRedisUrl(redisUrl);
  const logFormat = (envRaw(env, 'LOG_FORMAT') ?? 'json').toLowerCase();
  if (logFormat !== 'json' && logFormat !== 'text')
    throw new ConfigError('LOG_FORMAT', `expected json or text, got "${logFormat}"`);
  const port = envRaw(env, 'PORT') !== undefined ? 'PORT' : 'APP_PORT';
  const geminiApiKey = envSecret(env, 'GEMINI_API_KEY')?.trim() ?? '';
  const apiKeys = comma(envSecret(env, 'API_KEY'));
  const webhookSecret = envSecret(env, 'WEBHOOK_SECRET') ?? '';
  const ingestRoot = envRaw(env, 'INGEST_ALLOWED_ROOT');
  const chunkSize = envInt(env, 'DOC_CHUNK_SIZE', 512, { min: 16, max: 100_000 });
  const debug = envBool(env, 'DEBUG', false);
  return {
    environment,
    production,
    databaseUrl: dbUrl,
    dbPoolSize: envInt(env, 'DB_POOL_SIZE', 10, { min: 1, max: 1000 }),
    dbMaxOverflow: envInt(env, 'DB_MAX_OVERFLOW', 20, { min: 0, max: 1000 }),
    dataDir,
    tmpDir: resolve(envRaw(env, 'TMP_DIR') ?? `${dataDir}/tmp`),
    storageBackend: 'fs://',
    storagePath: resolve(envRaw(env, 'STORAGE_PATH') ?? './storage'),
    host: envRaw(env, 'APP_HOST') ?? '0.0.0.0',
    port: envInt(env, port, 8000, { min: 0, max: 65535 }),
    webConcurrency: envInt(env, 'WEB_CONCURRENCY', 1, { min: 1, max: 64 }),
    debug,
    logLevel: debug ? 'DEBUG' : parseLogLevel(env),
    logFormat,
    logFile: envRaw(env, 'LOG_FILE'),
    workerThreads: envInt(env, 'WORKER_THREADS', 4, { min: 1, max: 64 }),
    queueBackend: backend,
    redisUrl,
    redisQueuePrefix: envRaw(env, 'REDIS_QUEUE_PREFIX') ?? 'file-allocator',
    jobMaxRetries: envInt(env, 'JOB_MAX_RETRIES', 3, { min: 1, max: 100 }),
    jobRetryBaseMs: envInt(env, 'JOB_RETRY_BASE_MS', 1000, { min: 0, max: 3_600_000 }),
    jobTimeoutMs: envNumber(env, 'JOB_TIMEOUT_SECONDS', 600, { min: 0, exclusiveMin: true }) * 1000,
    jobLeaseMs: envNumber(env, 'JOB_LEASE_SECONDS', 120, { min: 0, exclusiveMin: true }) * 1000,
    shutdownTimeoutMs: envNumber(env, 'SHUTDOWN_TIMEOUT_SECONDS', 30, { min: 0 }) * 1000,
    modelsDir: resolve(envRaw(env, 'MODELS_DIR') ?? './models'),
    embeddingModel: envRaw(env, 'EMBEDDING_MODEL') ?? 'openai/clip-vit-base-patch32',
    embeddingModelExplicit: envRaw(env, 'EMBEDDING_MODEL') !== undefined,
    embeddingModelRequired: envBool(env, 'EMBEDDING_MODEL_REQUIRED', false),
    embeddingDim: envInt(env, 'EMBEDDING_DIM', DEFAULT_EMBEDDING_DIM, { min: 1, max: 16_000 }),
    clusterThreshold: unitInterval(env, 'CLUSTER_THRESHOLD', 0.72),
    maxImageSize: envInt(env, 'MAX_IMAGE_SIZE', 1024, { min: 16, max: 16_384 }),
    videoKeyframes: envInt(env, 'VIDEO_KEYFRAMES', 3, { min: 1, max: 32 }),
    ffmpegPath: envRaw(env, 'FFMPEG_PATH'),
    ffprobePath: envRaw(env, 'FFPROBE_PATH'),
    ocrEnabled: envBool(env, 'OCR_ENABLED', true),
    textEmbeddingModel: envRaw(env, 'TEXT_EMBEDDING_MODEL') ?? 'sentence-transformers/all-mpnet-base-v2',
    docChunkSize: chunkSize,
    docChunkOverlap: envInt(env, 'DOC_CHUNK_OVERLAP', 50, { min: 0, max: chunkSize - 1 }),
    geminiApiKey,
    geminiModel: envRaw(env, 'GEMINI_MODEL') ?? 'gemini-2.5-flash',
    geminiBaseUrl: (envRaw(env, 'GEMINI_BASE_URL') ?? 'https://generativelanguage.googleapis.com').replace(
      /\/+$/,
      '',
    ),
    vlmEnabled: envBool(env, 'VLM_ENABLED', true),
    vlmTimeoutMs: envNumber(env, 'VLM_TIMEOUT', 5, { min: 0, exclusiveMin: true }) * 1000,
    vlmFallbackToClip: envBool(env, 'VLM_FALLBACK_TO_CLIP', true),
    schemaSampleSize: envInt(env, 'SCHEMA_SAMPLE_SIZE', 128, { min: 1, max: 100_000 }),
    schemaStabilityThreshold: unitInterval(env, 'SCHEMA_STABILITY_THRESHOLD', 0.6),
    schemaMaxTopLevelKeys: envInt(env, 'SCHEMA_MAX_TOP_LEVEL_KEYS', 20, { min: 1, max: 1600 }),
    schemaMaxDepth: envInt(env, 'SCHEMA_MAX_DEPTH', 2, { min: 1, max: 32 }),
    autoMigrate: envBool(env, 'AUTO_MIGRATE', false),
    searchDefaultLimit: envInt(env, 'SEARCH_DEFAULT_LIMIT', 10, { min: 1, max: 10_000 }),
    searchMaxLimit: envInt(env, 'SEARCH_MAX_LIMIT', 100, { min: 1, max: 10_000 }),
    searchDefaultThreshold: unitInterval(env, 'SEARCH_DEFAULT_THRESHOLD', 0.5),
    searchTimeoutMs: envNumber(env, 'SEARCH_TIMEOUT_SECONDS', 30, { min: 0, exclusiveMin: true }) * 1000,
    dedupHammingThreshold: envInt(env, 'DEDUP_HAMMING_THRESHOLD', 5, { min: 0, max: 64 }),
    dedupNearMinSimilarity: unitInterval(env, 'DEDUP_NEAR_MIN_SIMILARITY', 0.9),
    maxImageBytes: bytes(env, 'MAX_IMAGE_BYTES', 50 * MIB),
    maxVideoBytes: bytes(env, 'MAX_VIDEO_BYTES', 500 * MIB),
    maxAudioBytes: bytes(env, 'MAX_AUDIO_BYTES', 100 * MIB),
    maxDocumentBytes: bytes(env, 'MAX_DOCUMENT_BYTES', 100 * MIB),
    maxJsonBytes: bytes(env, 'MAX_JSON_BYTES', 10 * MIB),
    maxFilesPerRequest: envInt(env, 'MAX_FILES_PER_REQUEST', 100, { min: 1, max: 100_000 }),
    maxRequestBytes: bytes(env, 'MAX_REQUEST_BYTES', 1024 * MIB),
    maxImagePixels: envInt(env, 'MAX_IMAGE_PIXELS', 100_000_000, { min: 1 }),
    apiKeys,
    allowedOrigins: parseOrigins(env),
    ingestAllowedRoot: ingestRoot === undefined ? undefined : resolve(ingestRoot),
    webhookSecret,
    webhookAllowedHosts: comma(envRaw(env, 'WEBHOOK_ALLOWED_HOSTS')).map((host) => host.toLowerCase()),
    metricsEnabled: envBool(env, 'METRICS_ENABLED', true),
    tracingEnabled: envBool(env, 'TRACING_ENABLED', false),
    otlpEndpoint: envRaw(env, 'OTEL_EXPORTER_OTLP_ENDPOINT'),
    faultInjectFailOwner: production ? undefined : envRaw(env, 'FAULT_INJECT_FAIL_OWNER'),
  };
}
