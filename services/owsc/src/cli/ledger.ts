// `openworld-chem ledger verify` (spec §3.6, §3.13): checks every record's digest and the `prev` chain of the
// provenance ledger (or, with --lineage, the lineage ledger). `ok: <n> records` exit 0; the first bad record
// `line <n>: digest mismatch|broken chain` exit 4; a missing ledger exit 3.
import type { Command } from 'commander';
import { runCommand } from './context.js';
import { CliError, ExitCode, fileSystemError } from './output.js';

interface VerifyOptions {
  ledger?: string;
  lineage?: boolean;
}

export function registerLedgerCommands(program: Command): void {
  const ledger = program.command('ledger').description('provenance and lineage ledgers');
  ledger
    .command('verify')
    .description('check the digests and the hash chain of a ledger')
    .option(
      '--ledger <path>',
      'ledger file (default: OW_SC_PROVENANCE_LEDGER, or OW_SC_LINEAGE_LEDGER with --lineage)',
    )
    .option('--lineage', 'verify the lineage ledger instead of the provenance ledger')
    .action((options: VerifyOptions, command: Command) =>
      runCommand(command, async (context) => {
        const config = await context.config();
        const path = options.ledger ?? (options.lineage ? config.lineageLedger : config.provenanceLedger);
        const { verifyLedger } = await import('../domain/ledger.js');
        let verdict: Awaited<ReturnType<typeof verifyLedger>>;
        try {
          verdict = await verifyLedger(path);
        } catch (error) {
          throw fileSystemError(error, 'ledger') ?? error;
        }
        if (!verdict.ok) {
          // The verdict is the command's result (stdout); the failure is also reported as an error (stderr).
          const finding = `line ${verdict.line}: ${verdict.problem}`;
          context.stdout(`${finding}\n`);
          throw new CliError(finding, ExitCode.VALIDATION);
        }
        context.logger.info('ledger_verified', 'ledger verified', { ledger: path, records: verdict.records });
        context.stdout(`ok: ${verdict.records} records\n`);
        return undefined;
      }),
    );
}
