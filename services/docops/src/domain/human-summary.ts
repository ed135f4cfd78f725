// The stdout lines of `docops run` (§3.7.2): warnings, the human format summary and the final status.
import type { FormatReport } from './format/engine.js';
import type { RenderJobResult } from './run.js';
import type { EffectiveOptions, ExitCode } from './types.js';

/** `WARNING(unsupported): ...` for warn mode with unsupported tokens, else null. */
export function unsupportedWarningLine(
  unsupportedCount: number,
  mode: EffectiveOptions['unsupported_mode'],
): string | null {
  if (unsupportedCount === 0 || mode !== 'warn') return null;
  return `WARNING(unsupported): unsupported placeholders detected (count=${unsupportedCount}, mode=warn).`;
}

/** Unfixed error-level issue counts by code, sorted by code. */
export function errorCountsByCode(report: FormatReport): [string, number][] {
  const counts = new Map<string, number>();
  for (const issue of report.issues) {
    if (issue.severity !== 'error' || issue.fixed) continue;
    counts.set(issue.code, (counts.get(issue.code) ?? 0) + 1);
  }
  return [...counts].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
}

/** `WARNING(format): format issues detected (CODE=n, ...).` when there are error-level issues, else null. */
export function formatWarningLine(report: FormatReport): string | null {
  const counts = errorCountsByCode(report);
  if (counts.length === 0) return null;
  return `WARNING(format): format issues detected (${counts.map(([code, n]) => `${code}=${n}`).join(', ')}).`;
}

/** The last line: `INFO: success`, or `ERROR: <message>` for exit codes 2, 3 and 4. */
export function finalStatusLine(exitCode: ExitCode): string {
  switch (exitCode) {
    case 0:
      return 'INFO: success';
    case 2:
      return 'ERROR: missing required fields';
    case 3:
      return 'ERROR: template unsupported placeholders';
    case 4:
      return 'ERROR: format validation failed';
  }
}

function quoteArg(value: string): string {
  return /^[\w./:@%+=,-]+$/.test(value) ? value : `'${value.replace(/'/g, `'\\''`)}'`;
}

function showIndent(value: number | null): string {
  return value === null ? 'none' : String(value);
}

export interface HumanSummaryContext {
  options: EffectiveOptions;
  result: Pick<RenderJobResult, 'formatReport' | 'dominantIndent' | 'exitCode'>;
  /** for next_cmd */
  templateArg: string;
  taskArg: string;
}

/** The human summary block (§3.7.2), one string per line. */
export function humanSummaryLines(context: HumanSummaryContext): string[] {
  const { options, result } = context;
  const report = result.formatReport;
  const summary = report.summary;
  const lines = [
    'format_summary:',
    `  format_mode=${options.format_mode} format_fix_mode=${options.format_fix_mode} format_baseline=${options.format_baseline}`,
    `  result=${report.passed ? 'PASSED' : 'FAILED'}`,
  ];
  if (summary === null) {
    lines.push('  observed: not checked (template unsupported placeholders)');
    lines.push(`  issues: 0`, '  errors: 0', '  warnings: 0');
    lines.push('  fix: not applied (nothing was rendered)');
    lines.push('  suggestion: fix the unsupported placeholders listed in out.replace_log.json');
    lines.push(`  next_cmd: docops inspect --template ${quoteArg(context.templateArg)}`);
    return lines;
  }
  const errors = report.issues.filter((issue) => issue.severity === 'error' && !issue.fixed).length;
  const warnings = report.issues.filter((issue) => issue.severity === 'warn').length;
  lines.push(
    `  observed: has_tables ${summary.template_observed.has_tables}->${summary.rendered_observed.has_tables}`,
  );
  lines.push(
    `  dominant_indent: ${showIndent(result.dominantIndent.template)}->${showIndent(result.dominantIndent.rendered)}`,
  );
  lines.push(`  issues: ${report.issues.length}`, `  errors: ${errors}`, `  warnings: ${warnings}`);

  if (summary.skipped) lines.push('  fix: skipped (format_mode=off)');
  else if (options.format_fix_mode === 'none') lines.push('  fix: disabled (format_fix_mode=none)');
  else if (summary.fix_changes.length === 0) lines.push('  fix: no changes needed');
  else {
    const fields = new Map<string, number>();
    for (const change of summary.fix_changes) fields.set(change.field, (fields.get(change.field) ?? 0) + 1);
    const detail = [...fields].map(([field, n]) => `${field}=${n}`).join(', ');
    lines.push(`  fix: applied ${summary.fix_changes.length} change(s) (${detail})`);
  }

  const firstErrorCode = errorCountsByCode(report)[0]?.[0];
  const diagnostics = summary.diagnostics;
  const suggestion =
    firstErrorCode !== undefined
      ? diagnostics?.by_code[firstErrorCode as keyof typeof diagnostics.by_code]?.suggestions[0]
      : undefined;
  lines.push(`  suggestion: ${suggestion ?? 'none'}`);

  const base = `docops run --template ${quoteArg(context.templateArg)} --task ${quoteArg(context.taskArg)}`;
  let next = 'none';
  if (!report.passed && options.format_baseline === 'policy') {
    next = `${base} --format-mode ${options.format_mode} --format-baseline template`;
  } else if (!report.passed) {
    next = `${base} --export-suggested-policy suggested_policy.yaml`;
  }
  lines.push(`  next_cmd: ${next}`);
  return lines;
}
