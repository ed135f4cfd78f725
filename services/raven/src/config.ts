// The Raven Zero environment table (spec §3.2): every variable of the seed and of the spec, with its default
// and its check. An invalid value stops `serve` with one message naming the variable.
import { existsSync, readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { parseEnv } from 'node:util';
import {
  ConfigError,
  type Env,
  envBool,
  envInt,
  envList,
  envRaw,
  envSecret,
  isProduction,
  validateRedisUrl,
} from '@quintet/kernel/config';
import { parseRateRule, type RateRule } from '@quintet/kernel/rate-limit';
import { trustedProxyList } from '@quintet/kernel/security';
import { parseAllowedMimeTypes } from './domain/sniff.js';

/** Case-insensitive substrings of the User-Agent of link-preview bots (spec §5 B2). */
export const DEFAULT_LINK_PREVIEW_BOTS = [
  'Slackbot',
  'Slack-ImgProxy',
  'facebookexternalhit',
  'Facebot',
  'Twitterbot',
  'Discordbot',
  'TelegramBot',
  'WhatsApp',
  'LinkedInBot',
  'SkypeUriPreview',
  'MicrosoftPreview',
  'Googlebot',
  'bingbot',
  'Applebot',
  'redditbot',
  'Mastodon',
  'Iframely',
  'Embedly',
  'Pinterestbot',
  'Mattermost-Bot',
  'Zulip',
  'RocketChat',
  'DuckDuckBot',
  'YandexBot',
  'Yahoo! Slurp',
  'vkShare',
  'Google-PageRenderer',
];

export interface RavenConfig {
  host: string;
  production: boolean;
  workers: number;
  redisUrl: string | undefined;
  redisKeyPrefix: string;
  redisCommandTimeoutMs: number;
  redisStartupTimeoutSeconds: number;
  storagePath: string;
  tempPath: string;
  logDir: string;
  logToFile: boolean;
  logLevel: string;
  logMaxBytes: number;
  logBackups: number;
  maxFileSize: number;
  allowedMimeTypes: string[];
  defaultExpiryMinutes: number;
  maxExpiryMinutes: number;
  defaultUses: number;
  maxUses: number;
  keyWords: number;
  kdfLog2n: number;
  uploadRateLimit: RateRule;
  healthRateLimit: RateRule;
  downloadFailLimit: number;
  downloadBlockWindowSeconds: number;
  failCounterTtlSeconds: number;
  trustedProxies: string[];
  ipv6PrefixLength: number;
  publicBaseUrl: string | undefined;
  /** `*` or a list of origins */
  corsOrigins: '*' | string[];
  blockLinkPreviewBots: boolean;
  linkPreviewBots: string[];
  sweepIntervalSeconds: number;
  cleanupIntervalMinutes: number;
  orphanAgeMinutes: number;
  heartbeatIntervalSeconds: number;
  secureShredPasses: number;
  dicewareWordlistPath: string | undefined;
  shutdownGraceSeconds: number;
  uploadIdleTimeoutSeconds: number;
  maxConcurrentTransfers: number;
  kdfMaxQueue: number;
  /** upload keys derived ahead of time (0 = derive each upload's key when it arrives) */
  uploadKeyReserve: number;
  metricsToken: string | undefined;
  /** deprecation notes to log at start-up (e.g. the misspelled health variable) */
  warnings: string[];
}

/**
 * The environment with `ENV_FILE` (default `.env`, when present) merged underneath: the real environment wins.
 */
export function environmentWithEnvFile(env: Env, cwd = process.cwd()): Env {
  const file = resolve(cwd, envRaw(env, 'ENV_FILE') ?? '.env');
  if (!existsSync(file)) return env;
  let parsed: Record<string, string>;
  try {
    parsed = parseEnv(readFileSync(file, 'utf8')) as Record<string, string>;
  } catch {
    throw new ConfigError('ENV_FILE', 'the env file cannot be read');
  }
  return { ...parsed, ...env };
}

function rateRule(env: Env, name: string, fallback: string): RateRule {
  const raw = envRaw(env, name) ?? fallback;
  try {
    return parseRateRule(raw);
  } catch {
    throw new ConfigError(name, `expected a rate such as 30/hour or 5 per minute, got "${raw}"`);
  }
}

/** Reads and checks the whole table; throws ConfigError naming the first bad variable. */
export function loadConfig(env: Env): RavenConfig {
  const warnings: string[] = [];
  const production = isProduction(env);

  const redisUrl = envSecret(env, 'REDIS_URL');
  if (redisUrl !== undefined) {
    try {
      validateRedisUrl(redisUrl);
    } catch {
      throw new ConfigError('REDIS_URL', 'expected a redis:// or rediss:// URL');
    }
  }
  const workers = envInt(env, 'WEB_CONCURRENCY', 1, { min: 1, max: 64 });

  const maxExpiryMinutes = envInt(env, 'MAX_EXPIRY_MINUTES', 60, { min: 1, max: 10_080 });
  const defaultExpiryMinutes = envInt(env, 'DEFAULT_EXPIRY_MINUTES', 10, { min: 1, max: maxExpiryMinutes });
  const maxUses = envInt(env, 'MAX_USES', 5, { min: 1, max: 100 });
  const defaultUses = envInt(env, 'DEFAULT_USES', 1, { min: 1, max: maxUses });

  let healthName = 'HEALTH_RATE_LIMIT';
  if (envRaw(env, 'HEALTH_RATE_LIMIT') === undefined && envRaw(env, 'HEATLH_RATE_LIMIT') !== undefined) {
    healthName = 'HEATLH_RATE_LIMIT';
    warnings.push('HEATLH_RATE_LIMIT is deprecated: use HEALTH_RATE_LIMIT');
  }

  const trustedProxies = envList(env, 'TRUSTED_PROXIES');
  try {
    trustedProxyList(trustedProxies);
  } catch (error) {
    throw new ConfigError('TRUSTED_PROXIES', (error as Error).message);
  }

  let allowedMimeTypes: string[];
  try {
    allowedMimeTypes = parseAllowedMimeTypes(envRaw(env, 'ALLOWED_MIME_TYPES'));
  } catch (error) {
    throw new ConfigError('ALLOWED_MIME_TYPES', (error as Error).message);
  }

  const publicBaseUrl = envRaw(env, 'PUBLIC_BASE_URL')?.replace(/\/+$/, '');
  if (publicBaseUrl !== undefined && !/^https?:\/\/[^/\s]+/i.test(publicBaseUrl)) {
    throw new ConfigError('PUBLIC_BASE_URL', 'expected an absolute http(s) URL');
  }

  const cors = envList(env, 'CORS_ORIGINS');
  const botPattern = envList(env, 'LINK_PREVIEW_BOT_PATTERN');
  const debug = envBool(env, 'DEBUG', false);
  const logLevel = (envRaw(env, 'LOG_LEVEL') ?? (debug ? 'debug' : 'info')).toLowerCase();
  if (!['debug', 'info', 'warning', 'warn', 'error'].includes(logLevel)) {
    throw new ConfigError('LOG_LEVEL', `expected debug, info, warning or error, got "${logLevel}"`);
  }

  return {
    host: envRaw(env, 'HOST') ?? '127.0.0.1',
    production,
    workers,
    redisUrl,
    redisKeyPrefix: envRaw(env, 'REDIS_KEY_PREFIX') ?? 'raven:',
    redisCommandTimeoutMs: envInt(env, 'REDIS_COMMAND_TIMEOUT_MS', 2000, { min: 50, max: 60_000 }),
    redisStartupTimeoutSeconds: envInt(env, 'REDIS_STARTUP_TIMEOUT_SECONDS', 30, { min: 0, max: 3600 }),
    storagePath: envRaw(env, 'STORAGE_PATH') ?? './storage/uploads',
    tempPath: envRaw(env, 'TEMP_PATH') ?? './storage/temp',
    logDir: envRaw(env, 'LOG_DIR') ?? './logs',
    logToFile: envBool(env, 'LOG_TO_FILE', true),
    logLevel: logLevel === 'warning' ? 'warn' : logLevel,
    logMaxBytes: envInt(env, 'LOG_MAX_BYTES', 10_485_760, { min: 1024 }),
    logBackups: envInt(env, 'LOG_BACKUPS', 5, { min: 0, max: 100 }),
    maxFileSize: envInt(env, 'MAX_FILE_SIZE', 10_485_760, { min: 1 }),
    allowedMimeTypes,
    defaultExpiryMinutes,
    maxExpiryMinutes,
    defaultUses,
    maxUses,
    keyWords: envInt(env, 'KEY_WORDS', 3, { min: 3, max: 8 }),
    kdfLog2n: envInt(env, 'KDF_LOG2_N', 15, { min: 12, max: 17 }),
    uploadRateLimit: rateRule(env, 'UPLOAD_RATE_LIMIT', '30/hour'),
    healthRateLimit: rateRule(env, healthName, '1/second'),
    downloadFailLimit: envInt(env, 'DOWNLOAD_FAIL_LIMIT', 10, { min: 1 }),
    downloadBlockWindowSeconds: envInt(env, 'DOWNLOAD_BLOCK_WINDOW', 1800, { min: 1 }),
    failCounterTtlSeconds: envInt(env, 'FAIL_COUNTER_TTL_SECONDS', 600, { min: 1 }),
    trustedProxies,
    ipv6PrefixLength: envInt(env, 'IPV6_PREFIX_LENGTH', 64, { min: 1, max: 128 }),
    publicBaseUrl,
    corsOrigins: cors.length === 0 || cors.includes('*') ? '*' : cors,
    blockLinkPreviewBots: envBool(env, 'BLOCK_LINK_PREVIEW_BOTS', true),
    linkPreviewBots: botPattern.length > 0 ? botPattern : DEFAULT_LINK_PREVIEW_BOTS,
    sweepIntervalSeconds: envInt(env, 'SWEEP_INTERVAL_SECONDS', 30, { min: 1 }),
    cleanupIntervalMinutes: envInt(env, 'CLEANUP_INTERVAL_MINUTES', 10, { min: 1 }),
    orphanAgeMinutes: envInt(env, 'ORPHAN_AGE_MINUTES', 15, { min: 0 }),
    heartbeatIntervalSeconds: envInt(env, 'HEARTBEAT_INTERVAL_SECONDS', 60, { min: 1 }),
    secureShredPasses: envInt(env, 'SECURE_SHRED_PASSES', 1, { min: 0, max: 10 }),
    dicewareWordlistPath: envRaw(env, 'DICEWARE_WORDLIST_PATH'),
    shutdownGraceSeconds: envInt(env, 'SHUTDOWN_GRACE_SECONDS', 10, { min: 0 }),
    uploadIdleTimeoutSeconds: envInt(env, 'UPLOAD_IDLE_TIMEOUT_SECONDS', 30, { min: 1 }),
    maxConcurrentTransfers: envInt(env, 'MAX_CONCURRENT_TRANSFERS', 256, { min: 1 }),
    kdfMaxQueue: envInt(env, 'KDF_MAX_QUEUE', 512, { min: 1 }),
    uploadKeyReserve: envInt(env, 'UPLOAD_KEY_RESERVE', 2, { min: 0, max: 16 }),
    metricsToken: envSecret(env, 'METRICS_TOKEN'),
    warnings,
  };
}

/**
 * The checks that depend on several values: production and cluster workers need the shared store.
 * Returns the message to print, or null when the configuration may start.
 */
export function startupRefusal(config: RavenConfig): string | null {
  if (config.production && config.redisUrl === undefined) {
    return 'REDIS_URL is required in production (NODE_ENV=production): the embedded store cannot be shared between instances';
  }
  if (config.workers > 1 && config.redisUrl === undefined) {
    return 'REDIS_URL is required with more than one worker (WEB_CONCURRENCY/--workers): the embedded store cannot be shared between processes';
  }
  return null;
}

/** The effective configuration for `check-config`: no secrets. */
export function publicConfig(config: RavenConfig): Record<string, unknown> {
  const { metricsToken, redisUrl, ...rest } = config;
  return {
    ...rest,
    redisUrl: redisUrl === undefined ? null : redisUrl.replace(/\/\/[^@/]*@/, '//***@'),
    metricsToken: metricsToken === undefined ? null : '***',
  };
}
