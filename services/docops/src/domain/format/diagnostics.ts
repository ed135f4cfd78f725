// Diagnostics (§3.5): issues grouped by code with a few examples and what to do about them.
import type { FormatBaseline } from '../types.js';
import type { EffectivePolicy } from './effective.js';
import type { FormatIssue, IssueCode } from './validate.js';

export const MAX_DIAGNOSTIC_EXAMPLES = 5;

export interface DiagnosticExample {
  paragraph_path: string;
  run_id: string | null;
  expected?: unknown;
  actual?: unknown;
  tolerance?: unknown;
  template_value?: unknown;
  rendered_value?: unknown;
  context?: Record<string, unknown>;
}

export interface CodeDiagnostics {
  count: number;
  examples: DiagnosticExample[];
  suggestions: string[];
}

export interface Diagnostics {
  issue_count: number;
  codes: IssueCode[];
  by_code: Partial<Record<IssueCode, CodeDiagnostics>>;
}

export interface DiagnosticsContext {
  baseline: FormatBaseline;
  policy: EffectivePolicy;
  templateDominantIndent: number | null;
}

function example(issue: FormatIssue): DiagnosticExample {
  const result: DiagnosticExample = { paragraph_path: issue.paragraph_path, run_id: issue.run_id };
  for (const key of ['expected', 'actual', 'tolerance', 'template_value', 'rendered_value'] as const) {
    if (issue[key] !== null) result[key] = issue[key];
  }
  if (Object.keys(issue.context).length > 0) result.context = issue.context;
  return result;
}

/** What to do about an issue code. */
export function suggestionsFor(code: IssueCode, context: DiagnosticsContext): string[] {
  switch (code) {
    case 'TABLE_FORBIDDEN':
      return [
        'use --format-baseline template to accept the tables of the template',
        'or set forbid_tables: false in the policy',
      ];
    case 'FIRST_LINE_INDENT_MISMATCH': {
      const dominant = context.templateDominantIndent;
      const current = context.policy.first_line_indent_twips;
      return [
        `align first_line_indent_twips with the dominant template indent (${dominant ?? 'none'}; current value: ${current ?? 'null'})`,
        `or raise twips_tolerance (current value: ${context.policy.twips_tolerance})`,
      ];
    }
    case 'NUMPR_PRESENT':
      return ['remove direct numbering (w:numPr) from the template paragraphs, or set forbid_numpr: false'];
    default:
      return ['review the issues in out.format_report.json'];
  }
}

export function buildDiagnostics(issues: readonly FormatIssue[], context: DiagnosticsContext): Diagnostics {
  const groups = new Map<IssueCode, FormatIssue[]>();
  for (const issue of issues) {
    const group = groups.get(issue.code);
    if (group) group.push(issue);
    else groups.set(issue.code, [issue]);
  }
  const codes = [...groups.keys()].sort();
  const byCode: Partial<Record<IssueCode, CodeDiagnostics>> = {};
  for (const code of codes) {
    const group = groups.get(code) ?? [];
    byCode[code] = {
      count: group.length,
      examples: group.slice(0, MAX_DIAGNOSTIC_EXAMPLES).map(example),
      suggestions: suggestionsFor(code, context),
    };
  }
  return { issue_count: issues.length, codes, by_code: byCode };
}
