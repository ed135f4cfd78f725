// `openworld-chem stats` (spec §3.3, §3.6): the regulatory statistics of an ISO-timed CSV as JSON, or as CSV
// with one row per species-month; on stdout, or to --out (atomic, with a provenance record).
import { type Command, Option } from 'commander';
import { computeStatistics } from '../domain/statistics.js';
import type { Statistics } from '../domain/types.js';
import { runCommand } from './context.js';
import { readPermit, readReadings } from './inputs.js';
import { recordProvenance, writeOutput } from './records.js';

interface StatsOptions {
  input: string;
  permit?: string;
  out?: string;
  format: 'json' | 'csv';
}

const CSV_COLUMNS = [
  'species',
  'month',
  'days',
  'n',
  'average',
  'max_daily',
  'max_sample',
  'load_average_kg_d',
  'average_limit',
  'daily_limit',
  'compliant',
] as const;

/** An RFC 4180 field: empty for null, quoted only when it holds a comma, quote or line break. */
function csvField(value: unknown): string {
  if (value === null || value === undefined) return '';
  const text = String(value);
  return /[",\r\n]/.test(text) ? `"${text.replaceAll('"', '""')}"` : text;
}

/** One row per species-month (species sorted, months ascending), CRLF line ends as in RFC 4180. */
export function statisticsCsv(statistics: Statistics): string {
  const lines = [CSV_COLUMNS.join(',')];
  for (const [species, { monthly }] of Object.entries(statistics.species)) {
    for (const month of monthly) {
      const row: Record<(typeof CSV_COLUMNS)[number], unknown> = { species, ...month };
      lines.push(CSV_COLUMNS.map((column) => csvField(row[column])).join(','));
    }
  }
  return `${lines.join('\r\n')}\r\n`;
}

export function registerStatsCommand(program: Command): void {
  program
    .command('stats')
    .description('regulatory statistics: daily values, monthly averages, loads and limit checks')
    .requiredOption('-i, --input <csv>', 'readings CSV with ISO 8601 times')
    .option('-p, --permit <json>', 'permit file (default: OW_SC_PERMIT_FILE, else the default permit)')
    .option('-o, --out <path>', 'write here instead of stdout')
    .addOption(new Option('--format <format>', 'output format').choices(['json', 'csv']).default('json'))
    .action((options: StatsOptions, command: Command) =>
      runCommand(command, async (context) => {
        const permit = await readPermit(context, options.permit);
        const parsed = await readReadings(context, options.input);
        const statistics = computeStatistics(parsed, permit);
        context.completeJob();
        context.logger.info('statistics_computed', 'statistics computed', {
          species: Object.keys(statistics.species).length,
          alert_count: statistics.alerts.length,
        });
        const text =
          options.format === 'csv' ? statisticsCsv(statistics) : `${JSON.stringify(statistics, null, 2)}\n`;
        if (options.out === undefined) {
          context.stdout(text);
          return undefined;
        }
        await writeOutput(context, options.out, text);
        await recordProvenance(context, {
          step: 'statistics',
          params: { permit: options.permit !== undefined, format: options.format },
          inputs: options.permit === undefined ? [options.input] : [options.input, options.permit],
          outputs: [options.out],
        });
        return undefined;
      }),
    );
}
