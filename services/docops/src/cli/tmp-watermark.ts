import { tmpWatermark } from '@quintet/kernel/tmp';
import type { Command } from 'commander';
import { toOrderedJson } from '../domain/tools/summarize-logs.js';
import { newCommand, runAction, UsageError } from './common.js';

type Watermark = Awaited<ReturnType<typeof tmpWatermark>>;

/** `docops tmp-watermark --root DIR [--json] [--top-n N]` (§3.7.5): observational, always exits 0. */
export function registerTmpWatermarkCommand(program: Command): void {
  const command = newCommand('tmp-watermark')
    .description('Count the files and bytes under a temp directory and list its largest children')
    .requiredOption('--root <dir>', 'directory to measure')
    .option('--json', 'print {root, count, bytes, top_n, warnings} as JSON')
    .option('--top-n <n>', 'how many of the largest direct children to list', '10')
    .action((options: { root: string; json?: boolean; topN: string }) =>
      runAction(async () => {
        const topN = parseTopN(options.topN);
        const result = await tmpWatermark(options.root, topN);
        process.stdout.write(options.json ? `${watermarkToJson(result)}\n` : formatWatermarkText(result));
        return 0;
      }),
    );
  program.addCommand(command);
}

function parseTopN(raw: string): number {
  const value = raw.trim();
  if (!/^\d+$/.test(value)) throw new UsageError(`--top-n must be a non-negative integer, got '${raw}'`);
  return Number(value);
}

/** Exactly the keys root, count, bytes, top_n, warnings. */
function watermarkToJson(result: Watermark): string {
  return toOrderedJson({
    root: result.root,
    count: result.count,
    bytes: result.bytes,
    top_n: result.top_n.map((entry) => ({ path: entry.path, type: entry.type, bytes: entry.bytes })),
    warnings: result.warnings,
  });
}

function formatWatermarkText(result: Watermark): string {
  const lines = [`root: ${result.root}`, `count: ${result.count}`, `bytes: ${result.bytes}`, 'top_n:'];
  if (result.top_n.length === 0) lines.push('  (none)');
  for (const entry of result.top_n)
    lines.push(`  ${String(entry.bytes).padStart(12)}  ${entry.type.padEnd(4)}  ${entry.path}`);
  lines.push('warnings:');
  if (result.warnings.length === 0) lines.push('  (none)');
  for (const warning of result.warnings) lines.push(`  ${warning}`);
  return `${lines.join('\n')}\n`;
}
