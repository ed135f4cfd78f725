// `openworld-chem healthcheck` (spec §3.6): GET the health URL; exit 0 on 200, 5 on refusal or another status,
// 7 on timeout. The images' HEALTHCHECK runs it (no curl in the image).
import type { Command } from 'commander';
import { runCommand } from './context.js';
import { positiveNumber } from './option-values.js';
import { CliError, ExitCode } from './output.js';

interface HealthcheckOptions {
  url?: string;
  timeout: number;
}

interface HealthAnswer {
  status: number;
  body: string;
}

/** One GET with an overall deadline (connect, headers and body). */
async function probe(url: URL, timeoutMs: number): Promise<HealthAnswer> {
  const client = url.protocol === 'https:' ? await import('node:https') : await import('node:http');
  return new Promise<HealthAnswer>((resolve, reject) => {
    const request = client.get(
      url,
      { timeout: timeoutMs, headers: { accept: 'application/json' } },
      (response) => {
        const chunks: Buffer[] = [];
        response.on('data', (chunk: Buffer) => chunks.push(chunk));
        response.on('end', () =>
          resolve({ status: response.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8') }),
        );
        response.on('error', reject);
      },
    );
    const timer = setTimeout(
      () =>
        request.destroy(
          new CliError(`no answer from ${url.href} within ${timeoutMs / 1000} s`, ExitCode.TIMEOUT),
        ),
      timeoutMs,
    );
    request.on('timeout', () =>
      request.destroy(
        new CliError(`no answer from ${url.href} within ${timeoutMs / 1000} s`, ExitCode.TIMEOUT),
      ),
    );
    request.on('error', (error) => reject(error));
    request.on('close', () => clearTimeout(timer));
  });
}

export function registerHealthcheckCommand(program: Command): void {
  program
    .command('healthcheck')
    .description('check a running server: exit 0 when its health URL answers 200')
    .option('--url <url>', 'health URL (default: http://127.0.0.1:<PORT or 8000>/health)')
    .option('--timeout <seconds>', 'give up after this many seconds (exit 7)', positiveNumber, 3)
    .action((options: HealthcheckOptions, command: Command) =>
      runCommand(command, async (context) => {
        const config = await context.config();
        const target = options.url ?? `http://127.0.0.1:${config.port}/health`;
        let url: URL;
        try {
          url = new URL(target);
        } catch {
          throw new CliError(`invalid URL: ${target}`, ExitCode.USAGE);
        }
        if (url.protocol !== 'http:' && url.protocol !== 'https:') {
          throw new CliError(`expected an http(s) URL, got ${target}`, ExitCode.USAGE);
        }
        let answer: HealthAnswer;
        try {
          answer = await probe(url, options.timeout * 1000);
        } catch (error) {
          if (error instanceof CliError) throw error;
          throw new CliError(`cannot reach ${url.href}: ${(error as Error).message}`, ExitCode.NETWORK, [], {
            cause: error,
          });
        }
        if (answer.status !== 200)
          throw new CliError(`unhealthy: ${url.href} answered HTTP ${answer.status}`, ExitCode.NETWORK);
        context.stdout(`${answer.body.trim()}\n`);
        return undefined;
      }),
    );
}
