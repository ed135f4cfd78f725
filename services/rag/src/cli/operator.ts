// Operator commands (spec §2.1, §2.3.16, §5): secrets, export-openapi, backup, restore, eval.
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chmod, mkdir, mkdtemp, readdir, rename, rm, stat, writeFile } from 'node:fs/promises';
import { basename, dirname, join, resolve } from 'node:path';
import { type Command, InvalidArgumentError, Option } from 'commander';
import {
  CliFailure,
  createCommandLogger,
  ExitCode,
  loadCliConfig,
  openCliDatabase,
  pgliteDir,
  runCommand,
  say,
} from './runtime.js';

/** The secret files `secrets` creates: name → content generator (empty = a placeholder to fill in). */
export const SECRET_FILES: readonly (readonly [string, () => string])[] = [
  ['jwt_secret', () => randomBytes(32).toString('hex')],
  ['gemini_api_key', () => ''],
  ['database_url', () => ''],
  ['redis_url', () => ''],
  ['postgres_password', () => randomBytes(16).toString('hex')],
];

/** Creates the missing secret files (mode 0600, never overwriting); returns the created and the kept paths. */
export async function createSecrets(dir: string): Promise<{ created: string[]; kept: string[] }> {
  await mkdir(dir, { recursive: true, mode: 0o700 });
  const created: string[] = [];
  const kept: string[] = [];
  for (const [name, generate] of SECRET_FILES) {
    const path = join(dir, name);
    const content = generate();
    try {
      await writeFile(path, content === '' ? '' : `${content}\n`, { flag: 'wx', mode: 0o600 });
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
      kept.push(path);
      continue;
    }
    await chmod(path, 0o600); // whatever the umask
    created.push(path);
  }
  return { created, kept };
}

async function secretsCommand(flags: { dir: string }): Promise<void> {
  await runCommand(async () => {
    const { created, kept } = await createSecrets(flags.dir);
    for (const path of created) say(`Created ${path}`);
    for (const path of kept) say(`Kept existing ${path}`);
    if (created.some((path) => basename(path) !== 'jwt_secret' && basename(path) !== 'postgres_password'))
      say('Fill in the empty placeholders (gemini_api_key, database_url, redis_url) before deploying.');
    return ExitCode.OK;
  });
}

async function exportOpenapi(flags: { out?: string }): Promise<void> {
  await runCommand(async () => {
    const { openApiDocument } = await import('../http/api-docs.js');
    const text = `${JSON.stringify(openApiDocument(), null, 2)}\n`;
    if (flags.out === undefined) {
      process.stdout.write(text);
      return ExitCode.OK;
    }
    await mkdir(dirname(resolve(flags.out)), { recursive: true });
    await writeFile(flags.out, text);
    say(`Wrote the OpenAPI document to ${flags.out}`);
    return ExitCode.OK;
  });
}

function runTar(args: string[]): Promise<void> {
  return new Promise((resolvePromise, reject) => {
    const child = spawn('tar', args, { stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (chunk: Buffer) => {
      stderr += chunk.toString();
    });
    child.on('error', (error) => reject(new CliFailure(`tar could not run: ${error.message}`)));
    child.on('close', (code) =>
      code === 0 ? resolvePromise() : reject(new CliFailure(`tar failed (exit ${code}): ${stderr.trim()}`)),
    );
  });
}

async function isDirectory(path: string): Promise<boolean> {
  try {
    return (await stat(path)).isDirectory();
  } catch {
    return false;
  }
}

const LOCK_FILE = '.quintet.lock';

/**
 * Embedded mode only: archives DATA_DIR/pglite as `pglite/` and UPLOAD_DIR as `uploads/`. The database is opened
 * first, which takes the data-directory lock (a running server makes this exit 1 with the spec's message), and
 * checkpointed, so the files on disk are complete while the archive is written.
 */
async function backup(file: string): Promise<void> {
  await runCommand(async () => {
    const config = await loadCliConfig();
    if (config.databaseUrl !== undefined)
      throw new CliFailure('backup covers the embedded database only; back up PostgreSQL with pg_dump');
    const logger = createCommandLogger(config);
    const db = await openCliDatabase(config, logger);
    try {
      const { sql } = await import('kysely');
      await sql`checkpoint`.execute(db.kysely);
      const target = resolve(file);
      await mkdir(dirname(target), { recursive: true });
      const partial = `${target}.partial`;
      const uploads = resolve(config.uploadDir);
      const args = ['-czf', partial, `--exclude=${LOCK_FILE}`, '-C', resolve(config.dataDir), 'pglite'];
      // GNU tar stores the upload directory under the name `uploads`, whatever it is called on disk.
      if (await isDirectory(uploads))
        args.push(
          '--transform',
          `s,^${escapeSed(basename(uploads))}\\(/\\|$\\),uploads\\1,`,
          '-C',
          dirname(uploads),
          basename(uploads),
        );
      try {
        await runTar(args);
        await rename(partial, target);
      } catch (error) {
        await rm(partial, { force: true });
        throw error;
      }
      say(`Backed up ${pgliteDir(config)} and ${config.uploadDir} to ${target}`);
    } finally {
      await db.close();
    }
    return ExitCode.OK;
  });
}

function escapeSed(text: string): string {
  return text.replace(/[\\,.*[\]^$]/g, '\\$&');
}

/**
 * Restores a backup into DATA_DIR/pglite and UPLOAD_DIR (the server must be stopped; the lock is checked by
 * opening the current database when there is one). Existing data is moved aside, not deleted, until the restore
 * is complete.
 */
async function restore(file: string): Promise<void> {
  await runCommand(async () => {
    const config = await loadCliConfig();
    if (config.databaseUrl !== undefined)
      throw new CliFailure(
        'restore covers the embedded database only; restore PostgreSQL with pg_restore/psql',
      );
    const archive = resolve(file);
    if (!(await stat(archive).catch(() => null))?.isFile())
      throw new CliFailure(`Backup file not found: ${file}`);
    const logger = createCommandLogger(config);
    const database = pgliteDir(config);
    if (await isDirectory(database)) {
      // Fails with the spec's message while a server holds the lock.
      const db = await openCliDatabase(config, logger, { runMigrations: false }).catch((error: unknown) => {
        if (error instanceof CliFailure) throw error;
        return null; // an unreadable or outdated database is what a restore replaces
      });
      await db?.close();
    }
    await mkdir(config.dataDir, { recursive: true });
    const staging = await mkdtemp(join(config.dataDir, '.restore-'));
    try {
      await runTar(['-xzf', archive, '-C', staging]);
      const entries = await readdir(staging);
      if (!entries.includes('pglite'))
        throw new CliFailure(`${file} is not a rag-assistant backup (no pglite/ inside)`);
      const stamp = new Date().toISOString().replace(/[:.]/g, '-');
      const moved: string[] = [];
      for (const [from, to] of [
        [join(staging, 'pglite'), database],
        ...(entries.includes('uploads') ? [[join(staging, 'uploads'), config.uploadDir] as const] : []),
      ] as const) {
        if (await stat(to).catch(() => null)) {
          const aside = `${to}.before-restore-${stamp}`;
          await rename(to, aside);
          moved.push(aside);
        }
        await mkdir(dirname(to), { recursive: true });
        await rename(from, to);
      }
      say(
        `Restored ${database}${entries.includes('uploads') ? ` and ${config.uploadDir}` : ''} from ${archive}`,
      );
      for (const aside of moved)
        say(`Previous data kept in ${aside} (delete it once the restore is verified)`);
    } finally {
      await rm(staging, { recursive: true, force: true });
    }
    return ExitCode.OK;
  });
}

function positiveInteger(value: string): number {
  if (!/^\d+$/.test(value.trim()) || Number(value) < 1)
    throw new InvalidArgumentError('expected a positive integer');
  return Number(value.trim());
}

async function evalCommand(flags: { dataset?: string; k: number; json?: boolean }): Promise<void> {
  await runCommand(async () => {
    const config = await loadCliConfig();
    const logger = createCommandLogger(config);
    const { formatEvalReport, runEvaluation } = await import('../domain/eval.js');
    const report = await runEvaluation({
      config,
      logger,
      k: flags.k,
      ...(flags.dataset === undefined ? {} : { datasetPath: flags.dataset }),
    });
    process.stdout.write(flags.json ? `${JSON.stringify(report, null, 2)}\n` : formatEvalReport(report));
    return report.passed ? ExitCode.OK : ExitCode.FAILURE;
  });
}

export function registerOperatorCommands(program: Command): void {
  program
    .command('secrets')
    .description('create missing secret files (jwt_secret, placeholders) with mode 0600; never overwrites')
    .option('--dir <dir>', 'where to create them', './secrets')
    .action((flags: { dir: string }) => secretsCommand(flags));
  program
    .command('export-openapi')
    .description('write the OpenAPI 3.1 document (stdout unless --out)')
    .option('--out <file>', 'output file')
    .action((flags: { out?: string }) => exportOpenapi(flags));
  program
    .command('backup')
    .description('embedded mode: archive the database and UPLOAD_DIR to <file.tar.gz> (server stopped)')
    .argument('<file>', 'the .tar.gz to write')
    .action((file: string) => backup(file));
  program
    .command('restore')
    .description('embedded mode: restore a backup archive into DATA_DIR and UPLOAD_DIR (server stopped)')
    .argument('<file>', 'the .tar.gz written by backup')
    .action((file: string) => restore(file));
  program
    .command('eval')
    .description(
      'retrieval evaluation on a labelled set (default: the bundled set); exit 1 below the thresholds',
    )
    .option('--dataset <file.jsonl>', 'questions (documents in documents/ beside it)')
    .addOption(new Option('--k <n>', 'recall cut-off').argParser(positiveInteger).default(5))
    .option('--json', 'print the full report as JSON')
    .action((flags: { dataset?: string; k: number; json?: boolean }) => evalCommand(flags));
}
