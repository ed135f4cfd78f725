// `openworld-chem version [--json]` (spec §3.6): the service version, the Node version and the platform.
import type { Command } from 'commander';
import { serviceVersion } from '../version.js';
import { runCommand } from './context.js';

export function registerVersionCommand(program: Command): void {
  program
    .command('version')
    .description('print the version, the Node.js version and the platform')
    .option('--json', 'print {"version","node","platform"}')
    .action((options: { json?: boolean }, command: Command) =>
      runCommand(command, async (context) => {
        const info = {
          version: serviceVersion(),
          node: process.version,
          platform: `${process.platform}-${process.arch}`,
        };
        context.stdout(
          options.json
            ? `${JSON.stringify(info)}\n`
            : `openworld-chem ${info.version}\nnode ${info.node}\nplatform ${info.platform}\n`,
        );
        return undefined;
      }),
    );
}
