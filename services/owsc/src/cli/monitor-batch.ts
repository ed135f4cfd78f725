// `openworld-chem monitor-batch` (spec §3.2, §3.6): evaluates a CSV against the permit, writes the batch result
// as indented JSON, prints a summary on stdout, records provenance; `--fail-on LEVEL` exits 9 after writing
// when an alert reaches LEVEL.
import { join } from 'node:path';
import { type Command, Option } from 'commander';
import { evaluateBatch } from '../domain/batch.js';
import { levelRank } from '../domain/rules.js';
import { ALERT_LEVELS, type AlertLevel, type BatchResult, type EvaluationMode } from '../domain/types.js';
import { runCommand } from './context.js';
import { readPermit, readReadings } from './inputs.js';
import { ExitCode } from './output.js';
import { recordProvenance, writeOutput } from './records.js';

interface MonitorBatchOptions {
  input: string;
  permit?: string;
  out?: string;
  mode: EvaluationMode;
  failOn?: AlertLevel;
}

const SUMMARY_ALERTS = 10;

/** `Compliant` or `Non-compliant: N alert(s)`, the count per level (most severe first), the first 10 alerts. */
export function batchSummary(result: BatchResult): string {
  const counts = Object.fromEntries(ALERT_LEVELS.map((level) => [level, 0])) as Record<AlertLevel, number>;
  for (const alert of result.alerts) counts[alert.level] += 1;
  const lines = [result.count === 0 ? 'Compliant' : `Non-compliant: ${result.count} alert(s)`];
  lines.push(
    [...ALERT_LEVELS]
      .reverse()
      .map((level) => `${level}: ${counts[level]}`)
      .join(', '),
  );
  result.alerts.slice(0, SUMMARY_ALERTS).forEach((alert, index) => {
    lines.push(
      `${index + 1}. [${alert.level.toUpperCase()}] ${alert.time} ${alert.species} ${alert.type}: ${alert.message}`,
    );
  });
  if (result.count > SUMMARY_ALERTS) lines.push(`... and ${result.count - SUMMARY_ALERTS} more`);
  return `${lines.join('\n')}\n`;
}

export function registerMonitorBatchCommand(program: Command): void {
  program
    .command('monitor-batch')
    .description('check a CSV of readings against the permit; write alerts and a summary')
    .requiredOption('-i, --input <csv>', 'readings CSV (tidy or wide)')
    .option('-p, --permit <json>', 'permit file (default: OW_SC_PERMIT_FILE, else the default permit)')
    .option('-o, --out <path>', 'batch result JSON (default: $OW_SC_ARTIFACTS_DIR/alerts.json)')
    .addOption(
      new Option('--mode <mode>', 'latest reading per species, or every exceedance')
        .choices(['latest', 'all'])
        .default('latest'),
    )
    .addOption(
      new Option('--fail-on <level>', 'exit 9 when an alert reaches this level').choices([...ALERT_LEVELS]),
    )
    .action((options: MonitorBatchOptions, command: Command) =>
      runCommand(command, async (context) => {
        const config = await context.config();
        const out = options.out ?? join(config.artifactsDir, 'alerts.json');
        const { logger } = context;
        logger.info('monitor_batch_start', 'monitor batch started', {
          input: options.input,
          mode: options.mode,
        });
        const permit = await readPermit(context, options.permit);
        const parsed = await readReadings(context, options.input);
        const result = evaluateBatch(parsed, permit, options.mode);
        context.completeJob();
        logger.info('monitor_batch_evaluated', 'batch evaluated', {
          alert_count: result.count,
          rows: result.rows,
          readings: result.readings,
        });
        await writeOutput(context, out, `${JSON.stringify(result, null, 2)}\n`);
        await recordProvenance(context, {
          step: 'monitor_batch',
          params: { permit: options.permit !== undefined, mode: options.mode },
          inputs: options.permit === undefined ? [options.input] : [options.input, options.permit],
          outputs: [out],
        });
        context.stdout(batchSummary(result));
        const failOn = options.failOn;
        const failed =
          failOn !== undefined && result.alerts.some((alert) => levelRank(alert.level) >= levelRank(failOn));
        logger.info('monitor_batch_end', 'monitor batch finished', {
          out,
          compliant: result.compliant,
          fail_on_hit: failed,
        });
        return failed ? ExitCode.COMPLIANCE : ExitCode.OK;
      }),
    );
}
