import type { Command } from 'commander';
import { formatLogSummaryText, logSummaryToJson, summarizeLogFiles } from '../domain/tools/summarize-logs.js';
import { newCommand, runAction } from './common.js';

/** `docops summarize-logs [--json] FILE...` (§3.7.6): always exits 0 once its arguments are valid. */
export function registerSummarizeLogsCommand(program: Command): void {
  const command = newCommand('summarize-logs')
    .description('Summarize DocOps JSON-lines logs: outcome and status counts, latency percentiles')
    .argument('<file...>', 'log files (JSON lines)')
    .option('--json', 'print the summary as JSON')
    .action((files: string[], options: { json?: boolean }) =>
      runAction(async () => {
        const summary = await summarizeLogFiles(files);
        process.stdout.write(options.json ? `${logSummaryToJson(summary)}\n` : formatLogSummaryText(summary));
        return 0;
      }),
    );
  program.addCommand(command);
}
