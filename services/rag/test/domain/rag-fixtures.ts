// Shared set-up of the storage/retrieval/ingestion tests: a complete configuration, a logger whose lines the
// test can read, the databases to run against (in-memory PGlite with pgvector; the PostgreSQL test server in
// a schema of its own, lexical-only since it has no pgvector) and rows built through plain SQL.
import { randomUUID } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { openDatabase } from '@quintet/kernel/db';
import { createLogger, type Logger } from '@quintet/kernel/log';
import { testDatabaseUrl } from '@quintet/kernel/testing';
import { sql } from 'kysely';
import type { RagConfig } from '../../src/config-types.js';
import { openRagDatabase, type RagDb } from '../../src/domain/database.js';

export function testConfig(overrides: Partial<RagConfig> = {}): RagConfig {
  const price = { input_price: '0.30', output_price: '2.50', index_price: '0.0015' };
  return {
    environment: 'test',
    strictEnvironment: false,
    host: '127.0.0.1',
    port: 8000,
    workers: 1,
    strictMode: true,
    runMigrations: true,
    logLevel: 'info',
    logFile: undefined,
    dataDir: '/nonexistent-data-dir',
    uploadDir: '/nonexistent-data-dir/uploads',
    tmpDir: '/nonexistent-data-dir/tmp',
    tmpMaxAgeHours: 24,
    databaseUrl: undefined,
    dbPoolSize: 10,
    dbMaxOverflow: 20,
    redisUrl: undefined,
    requireRedisInProduction: true,
    jwtSecret: 'x'.repeat(40),
    jwtIssuer: 'rag-assistant',
    jwtAudience: 'rag-users',
    accessTokenExpireMinutes: 15,
    allowDevLogin: false,
    allowRegistration: true,
    requireCsrfHeader: true,
    corsOrigins: [],
    corsAllowCredentials: true,
    corsAllowMethods: ['GET'],
    corsAllowHeaders: ['Authorization'],
    rateLimitPerMinute: 120,
    chatRateLimitPerMinute: 10,
    uploadRateLimitPerMinute: 10,
    loginRateLimitPerMinute: 20,
    trustedProxyIps: [],
    metricsAllowAll: false,
    metricsToken: undefined,
    maxJsonBytes: 10 * 1024 * 1024,
    maxUploadBytes: 25 * 1024 * 1024,
    uploadProfile: 'safe',
    allowedUploadMimes: ['application/pdf', 'text/csv', 'text/markdown', 'text/plain'],
    maxStoresPerUser: 10,
    purgeDeletedAfterDays: 30,
    chatRetentionDays: 0,
    queryLogRetentionDays: 0,
    gcsArchiveBucket: undefined,
    defaultRagBackend: 'gemini_hosted',
    enableGeminiBackend: true,
    enableLocalOpenaiBackend: false,
    geminiMockMode: true,
    allowMockInProd: false,
    geminiApiKey: undefined,
    geminiApiBaseUrl: 'https://generativelanguage.googleapis.com',
    defaultModel: 'gemini-2.5-flash',
    allowedModels: ['gemini-2.5-flash'],
    geminiHttpTimeoutS: 60,
    geminiRetryAttempts: 3,
    geminiStreamRetryAttempts: 2,
    geminiIngestionTimeoutS: 180,
    localLlmBaseUrl: undefined,
    localLlmApiKey: undefined,
    localLlmDefaultModel: undefined,
    localLlmModels: [],
    llmTemperature: 0.2,
    llmMaxOutputTokens: 1024,
    llmStreamIdleTimeoutS: 60,
    embeddingProvider: 'local',
    embeddingModel: undefined,
    embeddingDim: 384,
    ragTopK: 6,
    ragCandidates: 40,
    ragRrfK: 60,
    ragMinTermCoverage: 0.3,
    ragChunkTokens: 300,
    ragChunkOverlap: 50,
    ragMaxContextTokens: 3000,
    ragAnswerSentences: 3,
    ragNoAnswerText: "I couldn't find an answer to that in the selected documents.",
    ragRefuseWithoutContext: true,
    allowMetadataFilters: false,
    metadataFilterAllowedKeys: [],
    streamKeepaliveSecs: 10,
    maxConcurrentStreams: 50,
    streamSlotWaitMs: 2000,
    streamMaxBufferBytes: 1024 * 1024,
    ingestConcurrency: 2,
    ingestWorkerConcurrency: 10,
    ingestJobTimeoutS: 300,
    ingestMaxAttempts: 3,
    ingestInProcess: true,
    pdfMaxPages: 2000,
    watchdogTtlMinutes: 60,
    watchdogCronMinutes: 15,
    modelPricing: { default: price, 'gemini-2.5-flash': price },
    priceCheckStrict: false,
    budgetHoldUsd: '0.05',
    budgetAlertPercent: 80,
    warnings: [],
    ...overrides,
  };
}

/** A logger whose JSON lines are kept in `lines`. */
export function capturingLogger(): { logger: Logger; lines: Record<string, unknown>[] } {
  const lines: Record<string, unknown>[] = [];
  const destination = new Writable({
    write(chunk: Buffer, _encoding, callback) {
      for (const line of chunk.toString('utf8').split('\n'))
        if (line.trim() !== '') lines.push(JSON.parse(line));
      callback();
    },
  });
  return { logger: createLogger({ name: 'rag', level: 'debug', destination }), lines };
}

export interface TestBackend {
  name: string;
  /** true where pgvector exists (PGlite) */
  vector: boolean;
  /** the database URL (PostgreSQL, with its own search_path) */
  url?: string;
  open(config?: Partial<RagConfig>, logger?: Logger): Promise<RagDb>;
  cleanup(): Promise<void>;
}

export function pgliteBackend(): TestBackend {
  return {
    name: 'PGlite (pgvector)',
    vector: true,
    open: (config = {}, logger = capturingLogger().logger) =>
      openRagDatabase(testConfig(config), logger, { inMemory: true }),
    cleanup: async () => {},
  };
}

/** The PostgreSQL test server with every table in a schema of its own, dropped by cleanup(). */
export function postgresBackend(serverUrl: string): TestBackend {
  const schema = `rag_test_${randomUUID().replaceAll('-', '')}`;
  const parsed = new URL(serverUrl);
  parsed.searchParams.set('options', `-c search_path=${schema}`);
  const schemaUrl = parsed.toString();
  const admin = async (statement: ReturnType<typeof sql>) => {
    const database = await openDatabase<unknown>({ url: serverUrl, poolSize: 1 });
    try {
      await statement.execute(database.kysely);
    } finally {
      await database.close();
    }
  };
  let created = false;
  return {
    name: 'PostgreSQL (no pgvector)',
    vector: false,
    url: schemaUrl,
    async open(config = {}, logger = capturingLogger().logger) {
      if (!created) await admin(sql`create schema ${sql.id(schema)}`);
      created = true;
      return openRagDatabase(
        testConfig({ databaseUrl: schemaUrl, dbPoolSize: 2, dbMaxOverflow: 2, ...config }),
        logger,
      );
    },
    cleanup: () =>
      created ? admin(sql`drop schema if exists ${sql.id(schema)} cascade`) : Promise.resolve(),
  };
}

/** PGlite always; PostgreSQL when the test server answers. */
export async function testBackends(): Promise<TestBackend[]> {
  const url = await testDatabaseUrl();
  return url === null ? [pgliteBackend()] : [pgliteBackend(), postgresBackend(url)];
}

export async function createUser(db: RagDb, email = `${randomUUID()}@example.com`): Promise<number> {
  const row = await db.kysely.insertInto('users').values({ email }).returning('id').executeTakeFirstOrThrow();
  return row.id;
}

export async function createStore(db: RagDb, userId: number, name = 'Store'): Promise<number> {
  const row = await db.kysely
    .insertInto('stores')
    .values({
      user_id: userId,
      display_name: name,
      fs_name: `fileSearchStores/local-${randomUUID().replaceAll('-', '')}`,
      backend: 'gemini_hosted',
    })
    .returning('id')
    .executeTakeFirstOrThrow();
  return row.id;
}

/** A PENDING document whose original is written under `dir`. */
export async function createDocument(
  db: RagDb,
  storeId: number,
  dir: string,
  content: string | Buffer,
  options: { filename?: string; mimeType?: string } = {},
): Promise<number> {
  const filename = options.filename ?? 'notes.md';
  const row = await db.kysely
    .insertInto('documents')
    .values({
      store_id: storeId,
      filename,
      display_name: filename,
      mime_type: options.mimeType ?? 'text/markdown',
      size_bytes: Buffer.byteLength(content),
      sha256: '0'.repeat(64),
      storage_path: '',
      status: 'PENDING',
    })
    .returning('id')
    .executeTakeFirstOrThrow();
  const directory = join(dir, String(storeId), String(row.id));
  mkdirSync(directory, { recursive: true });
  const path = join(directory, filename);
  writeFileSync(path, content);
  await db.kysely.updateTable('documents').set({ storage_path: path }).where('id', '=', row.id).execute();
  return row.id;
}
