/**
 * `raven-zero upload|download|status|delete` (spec §3.1): argument parsing and output only; the HTTP work is
 * in domain/client.ts. Exit codes: 0 ok, 1 usage or local error, 2 the server refused (4xx), 3 transport
 * error, 5xx or integrity mismatch. Errors are one line on stderr.
 */
import { resolve } from 'node:path';
import type { Readable, Writable } from 'node:stream';
import { type Command, InvalidArgumentError } from 'commander';
import {
  ClientError,
  deleteUpload,
  downloadFile,
  EXIT_LOCAL,
  fetchStatus,
  formatStatus,
  formatUpload,
  resolveServer,
  resolveTarget,
  uploadFile,
} from '../domain/client.js';

/** The process surroundings of the client commands; tests pass their own. */
export interface ClientIo {
  stdin: Readable;
  stdout: Writable;
  stderr: Writable;
  env: NodeJS.ProcessEnv;
  cwd: () => string;
  setExitCode: (code: number) => void;
}

const processIo: ClientIo = {
  stdin: process.stdin,
  stdout: process.stdout,
  stderr: process.stderr,
  env: process.env,
  cwd: () => process.cwd(),
  setExitCode: (code) => {
    process.exitCode = code;
  },
};

function positiveInteger(value: string): number {
  if (!/^\s*\+?\d+\s*$/.test(value)) throw new InvalidArgumentError('expected a positive integer');
  const parsed = Number.parseInt(value, 10);
  if (parsed < 1) throw new InvalidArgumentError('expected a positive integer');
  return parsed;
}

function oneLine(text: string): string {
  return text.replace(/[\r\n]+/g, ' ').trim();
}

/** Runs one command body, mapping failures to an exit code and a one-line message. */
async function run(io: ClientIo, body: () => Promise<void>): Promise<void> {
  try {
    await body();
    io.setExitCode(0);
  } catch (error) {
    const code = error instanceof ClientError ? error.exitCode : EXIT_LOCAL;
    const message = error instanceof Error ? error.message : String(error);
    io.stderr.write(`raven-zero: ${oneLine(message)}\n`);
    io.setExitCode(code);
  }
}

interface ServerOption {
  server?: string;
}

/** Adds `upload`, `download`, `status` and `delete` to the `raven-zero` program. */
export function registerClientCommands(program: Command, io: ClientIo = processIo): void {
  const serverHelp = 'server base URL (default: RAVEN_SERVER, else http://127.0.0.1:8000)';

  program
    .command('upload')
    .description('upload a file (or stdin with -) and print its key and links')
    .argument('<file>', 'the file to upload, or - for stdin')
    .option('--server <url>', serverHelp)
    .option('--expiry <minutes>', 'minutes until the file self-destructs', positiveInteger)
    .option('--uses <n>', 'number of downloads allowed', positiveInteger)
    .option('--password <password>', 'require this password as a second factor')
    .option('--name <name>', 'filename sent to the server (stdin default: stdin.bin)')
    .option('--json', "print the server's JSON answer as is")
    .action(
      (
        file: string,
        options: ServerOption & {
          expiry?: number;
          uses?: number;
          password?: string;
          name?: string;
          json?: boolean;
        },
      ) =>
        run(io, async () => {
          const server = resolveServer(options.server, io.env);
          const result = await uploadFile({
            server,
            source: file === '-' ? { stream: io.stdin } : { path: resolve(io.cwd(), file) },
            name: options.name,
            expiry: options.expiry,
            uses: options.uses,
            password: options.password,
          });
          io.stdout.write(options.json ? `${result.raw}\n` : formatUpload(result.body));
        }),
    );

  program
    .command('download')
    .description('download a file (consumes one use) and verify its SHA-256')
    .argument('<key>', 'the key, or a download/share/preview link')
    .option('--server <url>', serverHelp)
    .option('-o, --output <path>', "where to write: a path, or - for stdout (default: the server's filename)")
    .option('--password <password>', 'the password set at upload')
    .option('--force', 'overwrite an existing file')
    .action(
      (keyOrUrl: string, options: ServerOption & { output?: string; password?: string; force?: boolean }) =>
        run(io, async () => {
          const target = resolveTarget(keyOrUrl, resolveServer(options.server, io.env));
          const result = await downloadFile({
            ...target,
            output: options.output,
            password: options.password,
            force: options.force === true,
            stdout: io.stdout,
            cwd: io.cwd(),
          });
          if (result.path !== '-') {
            io.stderr.write(
              `saved ${result.path} (${result.bytes} bytes, sha256 ${result.sha256} verified)\n`,
            );
          }
        }),
    );

  program
    .command('status')
    .description('show the status of an upload (consumes nothing)')
    .argument('<key>', 'the key, or a download/share/preview link')
    .option('--server <url>', serverHelp)
    .option('--json', "print the server's JSON answer as is")
    .action((keyOrUrl: string, options: ServerOption & { json?: boolean }) =>
      run(io, async () => {
        const target = resolveTarget(keyOrUrl, resolveServer(options.server, io.env));
        const result = await fetchStatus(target);
        io.stdout.write(options.json ? `${result.raw}\n` : formatStatus(result.body));
      }),
    );

  program
    .command('delete')
    .description('destroy an upload now')
    .argument('<key>', 'the key, or a download/share/preview link')
    .option('--server <url>', serverHelp)
    .option('--password <password>', 'the password set at upload')
    .action((keyOrUrl: string, options: ServerOption & { password?: string }) =>
      run(io, async () => {
        const target = resolveTarget(keyOrUrl, resolveServer(options.server, io.env));
        await deleteUpload({ ...target, password: options.password });
        io.stderr.write(`deleted ${target.key}\n`);
      }),
    );
}
