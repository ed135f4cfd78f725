// The shape of the RAG Assistant configuration (spec §3.13). `config.ts` reads and checks the environment into
// this; every other module receives it (or the part it needs) and never reads the environment itself.
import type { RagBackend } from './domain/schema.js';

export type Environment = 'development' | 'test' | 'staging' | 'production';
export type UploadProfile = 'safe' | 'office' | 'all-supported' | 'custom';
export type EmbeddingProvider = 'local' | 'gemini' | 'local_openai';

export interface ModelPrice {
  /** USD per million tokens, as decimal strings (exact arithmetic, spec §3.8) */
  input_price: string;
  output_price: string;
  index_price: string;
}

export interface RagConfig {
  environment: Environment;
  /** staging or production */
  strictEnvironment: boolean;
  host: string;
  port: number;
  workers: number;
  strictMode: boolean;
  runMigrations: boolean;
  logLevel: 'trace' | 'debug' | 'info' | 'warn' | 'error';
  logFile: string | undefined;
  dataDir: string;
  uploadDir: string;
  tmpDir: string;
  tmpMaxAgeHours: number;
  /** undefined → embedded PGlite in `${dataDir}/pglite` */
  databaseUrl: string | undefined;
  dbPoolSize: number;
  dbMaxOverflow: number;
  redisUrl: string | undefined;
  requireRedisInProduction: boolean;
  jwtSecret: string;
  jwtIssuer: string;
  jwtAudience: string;
  accessTokenExpireMinutes: number;
  allowDevLogin: boolean;
  allowRegistration: boolean;
  requireCsrfHeader: boolean;
  corsOrigins: string[];
  corsAllowCredentials: boolean;
  corsAllowMethods: string[];
  corsAllowHeaders: string[];
  rateLimitPerMinute: number;
  chatRateLimitPerMinute: number;
  uploadRateLimitPerMinute: number;
  loginRateLimitPerMinute: number;
  trustedProxyIps: string[];
  metricsAllowAll: boolean;
  metricsToken: string | undefined;
  maxJsonBytes: number;
  maxUploadBytes: number;
  uploadProfile: UploadProfile;
  /** the resolved MIME allow-list of the profile (sorted) */
  allowedUploadMimes: string[];
  maxStoresPerUser: number;
  purgeDeletedAfterDays: number;
  chatRetentionDays: number;
  queryLogRetentionDays: number;
  gcsArchiveBucket: string | undefined;
  defaultRagBackend: RagBackend;
  enableGeminiBackend: boolean;
  enableLocalOpenaiBackend: boolean;
  geminiMockMode: boolean;
  allowMockInProd: boolean;
  geminiApiKey: string | undefined;
  geminiApiBaseUrl: string;
  defaultModel: string;
  allowedModels: string[];
  geminiHttpTimeoutS: number;
  geminiRetryAttempts: number;
  geminiStreamRetryAttempts: number;
  geminiIngestionTimeoutS: number;
  localLlmBaseUrl: string | undefined;
  localLlmApiKey: string | undefined;
  localLlmDefaultModel: string | undefined;
  localLlmModels: string[];
  llmTemperature: number;
  llmMaxOutputTokens: number;
  llmStreamIdleTimeoutS: number;
  embeddingProvider: EmbeddingProvider;
  embeddingModel: string | undefined;
  embeddingDim: number;
  ragTopK: number;
  ragCandidates: number;
  ragRrfK: number;
  ragMinTermCoverage: number;
  ragChunkTokens: number;
  ragChunkOverlap: number;
  ragMaxContextTokens: number;
  ragAnswerSentences: number;
  ragNoAnswerText: string;
  ragRefuseWithoutContext: boolean;
  allowMetadataFilters: boolean;
  metadataFilterAllowedKeys: string[];
  streamKeepaliveSecs: number;
  maxConcurrentStreams: number;
  streamSlotWaitMs: number;
  streamMaxBufferBytes: number;
  ingestConcurrency: number;
  ingestWorkerConcurrency: number;
  ingestJobTimeoutS: number;
  ingestMaxAttempts: number;
  /** resolved: true without Redis, false with Redis, unless INGEST_IN_PROCESS says otherwise */
  ingestInProcess: boolean;
  pdfMaxPages: number;
  watchdogTtlMinutes: number;
  watchdogCronMinutes: number;
  /** model → prices; always has `default` */
  modelPricing: Record<string, ModelPrice>;
  priceCheckStrict: boolean;
  /** decimal strings */
  budgetHoldUsd: string;
  budgetAlertPercent: number;
  /** start-up warnings (e.g. sqlite: alias, GCS_ARCHIVE_BUCKET) */
  warnings: string[];
}
