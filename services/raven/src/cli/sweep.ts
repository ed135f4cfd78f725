// `raven-zero sweep` — one-shot expired-blob sweep + orphan cleanup against the configured store and storage
// (spec §3.1, §3.12), then exit. Prints `{"removed":n,"orphans":m}`.
import { hostname } from 'node:os';
import { ConfigError } from '@quintet/kernel/config';
import { connectRedis, type Redis, waitForRedis } from '@quintet/kernel/redis';
import type { Command } from 'commander';
import { environmentWithEnvFile, loadConfig, type RavenConfig, startupRefusal } from '../config.js';
import { type SweepResult, startBackgroundJobs } from '../domain/jobs.js';
import { MemoryRavenStore } from '../domain/store/memory-store.js';
import { RedisRavenStore } from '../domain/store/redis-store.js';
import type { RavenStore } from '../domain/store/types.js';

const HELP_AFTER = `
Uses the same configuration as \`serve\` (STORAGE_PATH, TEMP_PATH, ORPHAN_AGE_MINUTES, REDIS_URL, ...).

With REDIS_URL: shreds every blob whose expiry has passed, then blobs no upload refers to and .part files,
both older than ORPHAN_AGE_MINUTES (waiting up to 10 s for another instance's sweep lock).

Without REDIS_URL (embedded store): the embedded store lives in the server process and starts empty, so, as at
a server's start-up, no blob is referenced and EVERY blob and .part file is removed regardless of age. Run it
in embedded mode only while no server uses this storage.

Exit status: 0 done; 1 bad configuration, Redis unreachable or the sweep failed (one line on stderr).
`;

class SweepError extends Error {}

async function openStore(config: RavenConfig): Promise<{ store: RavenStore; redis: Redis | null }> {
  if (config.redisUrl === undefined) {
    return { store: new MemoryRavenStore({ prefix: config.redisKeyPrefix }), redis: null };
  }
  const redis = connectRedis(config.redisUrl, {
    commandTimeoutMs: config.redisCommandTimeoutMs,
    name: 'raven-zero-sweep',
  });
  redis.on('error', () => {}); // reported once below, when the wait gives up
  try {
    await waitForRedis(redis, config.redisStartupTimeoutSeconds * 1000);
  } catch (error) {
    redis.disconnect();
    const message = error instanceof Error ? error.message : String(error);
    throw new SweepError(message.replace(/\s+/g, ' '));
  }
  return { store: new RedisRavenStore(redis, config.redisKeyPrefix), redis };
}

/** Runs the sweep once against the configured store and storage. */
export async function sweepOnce(config: RavenConfig): Promise<SweepResult> {
  const { store, redis } = await openStore(config);
  const embedded = redis === null;
  const total: SweepResult = { removed: 0, orphans: 0 };
  let problem: string | null = null;
  const jobs = startBackgroundJobs({
    config,
    store,
    instanceId: `sweep-${hostname()}-${process.pid}`,
    embedded,
    runStartupCleanup: false,
    log: (event, fields) => {
      if (event === 'sweep_completed') {
        total.removed += Number(fields.removed ?? 0);
        total.orphans += Number(fields.orphans ?? 0);
      } else if (event === 'sweep_failed') {
        problem = `sweep failed: ${String(fields.error)}`;
      } else if (event === 'sweep_skipped') {
        problem = 'sweep skipped: another instance holds the sweep lock';
      } else if (event === 'shred_failed') {
        process.stderr.write(`WARNING: could not shred a ${String(fields.what)}: ${String(fields.error)}\n`);
      }
    },
  });
  try {
    // Embedded: the expired sweep first (so expired blobs are counted as such), then the start-up rule.
    if (embedded) await jobs.runSweepNow();
    await jobs.startupCleanup();
  } finally {
    jobs.stop();
    await store.close().catch(() => {});
  }
  if (problem !== null) throw new SweepError(problem);
  return total;
}

async function sweep(): Promise<void> {
  try {
    const config = loadConfig(environmentWithEnvFile(process.env));
    const refusal = startupRefusal(config);
    if (refusal !== null) throw new SweepError(refusal);
    const result = await sweepOnce(config);
    process.stdout.write(`${JSON.stringify({ removed: result.removed, orphans: result.orphans })}\n`);
  } catch (error) {
    if (!(error instanceof ConfigError || error instanceof SweepError)) throw error;
    process.stderr.write(`ERROR: ${error.message}\n`);
    process.exitCode = 1;
  }
}

export function registerSweepCommand(program: Command): void {
  program
    .command('sweep')
    .description(
      'one-shot expired-blob sweep and orphan cleanup, then exit (prints {"removed":n,"orphans":m})',
    )
    .addHelpText('after', HELP_AFTER)
    .action(() => sweep());
}
