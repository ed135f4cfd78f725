// The DocOps environment table (spec §3.11): every variable of the seed, with its default and its check.
import { accessSync, constants, existsSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { type BasicCredentials, parseBasicCredentials } from '@quintet/kernel/auth';
import {
  ConfigError,
  type Env,
  envBool,
  envInt,
  envList,
  envNumber,
  envRaw,
  envSecret,
  isProduction,
} from '@quintet/kernel/config';
import type { WorkerMode } from '@quintet/kernel/workers';

export const START_METHODS = ['spawn', 'forkserver', 'fork', 'cold'] as const;
export type StartMethod = (typeof START_METHODS)[number];

export interface DocopsConfig {
  host: string;
  workers: number;
  maxUploadBytes: number;
  requestTimeoutSeconds: number;
  maxConcurrency: number;
  queueTimeoutSeconds: number;
  /** `DOCOPS_MP_START` as given (echoed in api_result.json) */
  startMethod: StartMethod;
  /** the pool mode it maps to (`fork` is a synonym of `forkserver`) */
  workerMode: WorkerMode;
  workerMaxJobs: number;
  workerWarm: number;
  workerMaxMemoryMb: number;
  maxTemplateUncompressedBytes: number;
  tmpDir: string;
  skillsDir: string | undefined;
  debugArtifacts: boolean;
  enableWebConsole: boolean;
  enableMeta: boolean;
  webBasicAuth: BasicCredentials | null;
  enableMetrics: boolean;
  metricsToken: string | undefined;
  enablePdf: boolean;
  sofficePath: string | undefined;
  corsOrigins: string[];
  commitSha: string;
  shutdownGraceSeconds: number;
  logLevel: string;
  logFile: string | undefined;
  testMode: boolean;
  testSleepSeconds: number;
  production: boolean;
}

function isExecutableFile(path: string): boolean {
  try {
    accessSync(path, constants.X_OK);
    return statSync(path).isFile();
  } catch {
    return false;
  }
}

const LOG_LEVELS = ['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent'];

/** Reads and checks the whole table; throws ConfigError naming the first bad variable. */
export function loadConfig(env: Env): DocopsConfig {
  const production = isProduction(env);
  const maxConcurrency = envInt(env, 'DOCOPS_MAX_CONCURRENCY', 2, { min: 1, max: 1024 });

  const startRaw = (envRaw(env, 'DOCOPS_MP_START') ?? 'spawn').toLowerCase();
  if (!(START_METHODS as readonly string[]).includes(startRaw)) {
    throw new ConfigError(
      'DOCOPS_MP_START',
      `expected one of spawn, forkserver, fork, cold, got "${env.DOCOPS_MP_START}"`,
    );
  }
  const startMethod = startRaw as StartMethod;

  const workersName = envRaw(env, 'DOCOPS_WORKERS') !== undefined ? 'DOCOPS_WORKERS' : 'WEB_CONCURRENCY';
  const basicAuthText = envSecret(env, 'DOCOPS_WEB_BASIC_AUTH');
  const webBasicAuth = basicAuthText === undefined ? null : parseBasicCredentials(basicAuthText);
  if (basicAuthText !== undefined && webBasicAuth === null) {
    throw new ConfigError('DOCOPS_WEB_BASIC_AUTH', 'expected user:pass with a non-empty user and password');
  }

  const skillsDir = envRaw(env, 'DOCOPS_SKILLS_DIR');
  if (skillsDir !== undefined && !(existsSync(skillsDir) && statSync(skillsDir).isDirectory())) {
    throw new ConfigError('DOCOPS_SKILLS_DIR', 'directory not found');
  }

  // A LibreOffice path that is not there would otherwise silently fall back to PATH (or turn PDF export off).
  const enablePdf = envBool(env, 'DOCOPS_ENABLE_PDF', true);
  const sofficePath = envRaw(env, 'DOCOPS_SOFFICE_PATH');
  if (enablePdf && sofficePath !== undefined && !isExecutableFile(sofficePath)) {
    throw new ConfigError('DOCOPS_SOFFICE_PATH', 'not an executable file');
  }

  const testMode = envBool(env, 'DOCOPS_TEST_MODE', false);
  if (testMode && production) {
    throw new ConfigError('DOCOPS_TEST_MODE', 'test hooks are not allowed in production');
  }

  const logLevel = (envRaw(env, 'DOCOPS_LOG_LEVEL') ?? 'info').toLowerCase();
  if (!LOG_LEVELS.includes(logLevel)) {
    throw new ConfigError(
      'DOCOPS_LOG_LEVEL',
      `expected one of ${LOG_LEVELS.join(', ')}, got "${env.DOCOPS_LOG_LEVEL}"`,
    );
  }

  return {
    host: envRaw(env, 'DOCOPS_HOST') ?? '127.0.0.1',
    workers: envInt(env, workersName, 1, { min: 1, max: 256 }),
    maxUploadBytes: envInt(env, 'DOCOPS_MAX_UPLOAD_BYTES', 26_214_400, { min: 1 }),
    requestTimeoutSeconds: envNumber(env, 'DOCOPS_REQUEST_TIMEOUT_SECONDS', 60, {
      min: 0,
      exclusiveMin: true,
    }),
    maxConcurrency,
    queueTimeoutSeconds: envNumber(env, 'DOCOPS_QUEUE_TIMEOUT_SECONDS', 0, { min: 0 }),
    startMethod,
    workerMode: startMethod === 'fork' || startMethod === 'forkserver' ? 'forkserver' : startMethod,
    workerMaxJobs: envInt(env, 'DOCOPS_WORKER_MAX_JOBS', 1000, { min: 1 }),
    workerWarm: envInt(env, 'DOCOPS_WORKER_WARM', maxConcurrency, { min: 0, max: 1024 }),
    workerMaxMemoryMb: envInt(env, 'DOCOPS_WORKER_MAX_MEMORY_MB', 512, { min: 32 }),
    maxTemplateUncompressedBytes: envInt(env, 'DOCOPS_MAX_TEMPLATE_UNCOMPRESSED_BYTES', 104_857_600, {
      min: 1,
    }),
    tmpDir: envRaw(env, 'DOCOPS_TMP_DIR') ?? tmpdir(),
    skillsDir,
    debugArtifacts: envBool(env, 'DOCOPS_DEBUG_ARTIFACTS', false),
    enableWebConsole: envBool(env, 'DOCOPS_ENABLE_WEB_CONSOLE', true),
    enableMeta: envBool(env, 'DOCOPS_ENABLE_META', true),
    webBasicAuth,
    enableMetrics: envBool(env, 'DOCOPS_ENABLE_METRICS', true),
    metricsToken: envSecret(env, 'DOCOPS_METRICS_TOKEN'),
    enablePdf,
    sofficePath,
    corsOrigins: envList(env, 'DOCOPS_CORS_ORIGINS'),
    commitSha: envRaw(env, 'DOCOPS_COMMIT_SHA') ?? 'unknown',
    shutdownGraceSeconds: envNumber(env, 'DOCOPS_SHUTDOWN_GRACE_SECONDS', 30, { min: 0 }),
    logLevel,
    logFile: envRaw(env, 'DOCOPS_LOG_FILE'),
    testMode,
    testSleepSeconds: envNumber(env, 'DOCOPS_TEST_SLEEP_SECONDS', 0, { min: 0 }),
    production,
  };
}
