// `backup --output FILE.tar.gz` and `restore --input FILE.tar.gz [--force]` (spec S29) for the embedded mode:
// one archive holding the PGlite data directory (`pglite/`) and STORAGE_PATH (`storage/`). With PostgreSQL,
// pg_dump/psql and `tar` of the storage folder are the way, as the deployment guide says.
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { cp, mkdir, mkdtemp, readdir, rename, rm } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { openCatalog } from '../domain/database.js';
import { CliFailure, cliConfig, commandLogger, runCommand, say } from './runtime.js';

const POSTGRES_MESSAGE =
  'backup/restore are for the embedded database; with DATABASE_URL use pg_dump/psql and tar the storage folder';

function tar(args: string[]): Promise<void> {
  return new Promise((resolvePromise, reject) => {
    const child = spawn('tar', args, { stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (chunk: Buffer) => {
      stderr = (stderr + chunk.toString('utf8')).slice(-2000);
    });
    child.on('error', (error) => reject(new CliFailure(`cannot run tar: ${error.message}`)));
    child.on('close', (code) =>
      code === 0 ? resolvePromise() : reject(new CliFailure(`tar failed: ${stderr.trim()}`)),
    );
  });
}

/** rename, or copy + delete when the two paths are on different file systems */
async function moveDirectory(from: string, to: string): Promise<void> {
  try {
    await rename(from, to);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'EXDEV') throw error;
    await cp(from, to, { recursive: true });
    await rm(from, { recursive: true, force: true });
  }
}

async function isEmptyDir(path: string): Promise<boolean> {
  if (!existsSync(path)) return true;
  return (await readdir(path)).length === 0;
}

export async function backupCommand(flags: { output: string }): Promise<void> {
  await runCommand(async () => {
    const config = cliConfig();
    if (config.databaseUrl !== undefined) throw new CliFailure(POSTGRES_MESSAGE);
    const pgliteDir = join(config.dataDir, 'pglite');
    if (!existsSync(pgliteDir)) throw new CliFailure(`no embedded database in ${pgliteDir}`);
    // Opening takes the directory lock (a running server makes this fail) and closing checkpoints the data.
    const database = await openCatalog({
      databaseUrl: undefined,
      pgliteDir,
      poolSize: 1,
      embeddingDim: config.embeddingDim,
      logger: await commandLogger(config),
    });
    await database.close();
    const staging = await mkdtemp(join(config.dataDir, '.backup-'));
    try {
      const output = resolve(flags.output);
      await mkdir(dirname(output), { recursive: true });
      const partial = `${output}.partial`;
      await tar([
        '-czf',
        partial,
        '--exclude=.quintet.lock',
        '-C',
        config.dataDir,
        'pglite',
        '--transform',
        `s,^${config.storagePath.replace(/^\//, '').replaceAll(',', '\\,')},storage,`,
        '-C',
        '/',
        config.storagePath.replace(/^\//, ''),
      ]);
      await rename(partial, output);
      say(`backup written to ${output}`);
      return 0;
    } finally {
      await rm(staging, { recursive: true, force: true });
    }
  });
}

export async function restoreCommand(flags: { input: string; force?: boolean }): Promise<void> {
  await runCommand(async () => {
    const config = cliConfig();
    if (config.databaseUrl !== undefined) throw new CliFailure(POSTGRES_MESSAGE);
    const input = resolve(flags.input);
    if (!existsSync(input)) throw new CliFailure(`no such archive: ${input}`);
    const pgliteDir = join(config.dataDir, 'pglite');
    if (!flags.force && (!(await isEmptyDir(pgliteDir)) || !(await isEmptyDir(config.storagePath))))
      throw new CliFailure(
        `refusing to restore over a non-empty database (${pgliteDir}) or storage (${config.storagePath}); use --force`,
      );
    await mkdir(config.dataDir, { recursive: true });
    const staging = await mkdtemp(join(config.dataDir, '.restore-'));
    try {
      await tar(['-xzf', input, '-C', staging]);
      if (!existsSync(join(staging, 'pglite')) || !existsSync(join(staging, 'storage')))
        throw new CliFailure('the archive is not a file-allocator backup (pglite/ and storage/ expected)');
      if (existsSync(pgliteDir)) {
        // The lock check: a running server holds the database.
        const database = await openCatalog({
          databaseUrl: undefined,
          pgliteDir,
          poolSize: 1,
          embeddingDim: config.embeddingDim,
        });
        await database.close();
      }
      await rm(pgliteDir, { recursive: true, force: true });
      await rm(config.storagePath, { recursive: true, force: true });
      await mkdir(dirname(config.storagePath), { recursive: true });
      await moveDirectory(join(staging, 'pglite'), pgliteDir);
      await moveDirectory(join(staging, 'storage'), config.storagePath);
      say(`restored ${input}`);
      return 0;
    } finally {
      await rm(staging, { recursive: true, force: true });
    }
  });
}
