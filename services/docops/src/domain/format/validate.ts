// Validation after the fix (§3.5): issue codes checked per paragraph in scan order.
import type { Element } from '../docx/dom.js';
import { currentRunText } from '../docx/scan.js';
import type { FormatBaseline, ScanResult } from '../types.js';
import type { EffectivePolicy } from './effective.js';
import { formatParagraphs } from './observe.js';
import {
  directFirstLineIndent,
  directRunStyle,
  fixedLineSpacing,
  hasDirectNumPr,
  paragraphStyleId,
  type RunStyle,
} from './xml.js';

export type IssueCode =
  | 'TABLE_FORBIDDEN'
  | 'NUMPR_PRESENT'
  | 'LINE_SPACING_MISMATCH'
  | 'FIRST_LINE_INDENT_MISMATCH'
  | 'LEADING_WHITESPACE'
  | 'RUN_FONT_MISMATCH'
  | 'RUN_SIZE_MISMATCH';

export type IssueValue = string | number | boolean | null;

export interface FormatIssue {
  code: IssueCode;
  message: string;
  paragraph_path: string;
  run_id: string | null;
  fixable: boolean;
  fixed: boolean;
  expected: IssueValue;
  actual: IssueValue;
  tolerance: number | null;
  template_value: IssueValue;
  rendered_value: IssueValue;
  context: Record<string, unknown>;
  severity: 'error' | 'warn';
  observability: 'observed' | 'unknown';
}

function issue(
  fields: Pick<FormatIssue, 'code' | 'message' | 'paragraph_path'> & Partial<FormatIssue>,
): FormatIssue {
  return {
    run_id: null,
    fixable: false,
    fixed: false,
    expected: null,
    actual: null,
    tolerance: null,
    template_value: null,
    rendered_value: null,
    context: {},
    severity: 'error',
    observability: 'observed',
    ...fields,
  };
}

export interface ValidationInput {
  scan: ScanResult;
  policy: EffectivePolicy;
  baseline: FormatBaseline;
  touchedRunIds: ReadonlySet<string>;
  /** run styles captured before replacement (template baseline expectations) */
  templateRunStyles: Readonly<Record<string, RunStyle>>;
  /** paragraph style ids (w:pStyle) that carry numbering, for `numpr_direct_only: false` */
  numberedStyleIds?: ReadonlySet<string>;
}

function codepointOf(char: string): string {
  return `U+${(char.codePointAt(0) ?? 0).toString(16).toUpperCase().padStart(4, '0')}`;
}

type FontAttribute = 'ascii' | 'eastAsia';

const FONT_CHECKS: { attribute: FontAttribute; key: 'latin_font' | 'east_asia_font'; label: string }[] = [
  { attribute: 'ascii', key: 'latin_font', label: 'latin font' },
  { attribute: 'eastAsia', key: 'east_asia_font', label: 'east asian font' },
];

function runStyleIssues(
  input: ValidationInput,
  paragraphPath: string,
  runId: string,
  run: Element,
): FormatIssue[] {
  const issues: FormatIssue[] = [];
  const actualStyle = directRunStyle(run);
  const templateStyle = input.templateRunStyles[runId] ?? {
    latin_font: null,
    east_asia_font: null,
    size_pt: null,
  };
  const checks: {
    code: IssueCode;
    label: string;
    context: Record<string, unknown>;
    policyValue: string | number;
    templateValue: string | number | null;
    actual: string | number | null;
  }[] = [
    ...FONT_CHECKS.map((check) => ({
      code: 'RUN_FONT_MISMATCH' as const,
      label: check.label,
      context: { attribute: check.attribute },
      policyValue: check.key === 'latin_font' ? input.policy.run_font_latin : input.policy.run_font_east_asia,
      templateValue: templateStyle[check.key],
      actual: actualStyle[check.key],
    })),
    {
      code: 'RUN_SIZE_MISMATCH',
      label: 'size (pt)',
      context: {},
      policyValue: input.policy.run_size_pt,
      templateValue: templateStyle.size_pt,
      actual: actualStyle.size_pt,
    },
  ];
  for (const check of checks) {
    const base = {
      code: check.code,
      paragraph_path: paragraphPath,
      run_id: runId,
      actual: check.actual,
      template_value: check.templateValue,
      rendered_value: check.actual,
      context: check.context,
    };
    if (input.baseline === 'template') {
      const expected = check.templateValue;
      if (expected === check.actual) continue;
      if (expected !== null && check.actual === null) {
        issues.push(
          issue({
            ...base,
            expected,
            message: `run ${check.label} is no longer set directly (template: ${expected})`,
            severity: 'warn',
            observability: 'unknown',
          }),
        );
      } else {
        issues.push(
          issue({
            ...base,
            expected,
            message: `run ${check.label} ${check.actual} differs from the template (${expected ?? 'inherited'})`,
          }),
        );
      }
    } else {
      const expected = check.policyValue;
      if (check.actual === null) {
        const severity = input.policy.treat_inherited_as_error ? 'error' : 'warn';
        issues.push(
          issue({
            ...base,
            expected,
            message: `run ${check.label} is inherited and cannot be checked (expected ${expected})`,
            severity,
            observability: 'unknown',
          }),
        );
      } else if (check.actual !== expected) {
        issues.push(
          issue({
            ...base,
            expected,
            message: `run ${check.label} ${check.actual} differs from ${expected}`,
          }),
        );
      }
    }
  }
  return issues;
}

/** All issues of the document as it is now, in scan order. */
export function validateFormat(input: ValidationInput): FormatIssue[] {
  const { scan, policy } = input;
  const issues: FormatIssue[] = [];
  const tableCount = scan.topLevelTables.length;
  const skipTables = policy.forbid_tables && tableCount > 0;
  if (skipTables) {
    for (let index = 0; index < tableCount; index++) {
      issues.push(
        issue({
          code: 'TABLE_FORBIDDEN',
          message: `table t${index} is not allowed by the policy (forbid_tables)`,
          paragraph_path: `t${index}`,
          expected: false,
          actual: true,
          context: { table_count: tableCount },
        }),
      );
    }
  }
  const tolerance = policy.twips_tolerance;
  for (const paragraph of formatParagraphs(scan)) {
    if (skipTables && paragraph.region === 'table') continue;
    const element = paragraph.element;
    const path = paragraph.path;

    if (policy.forbid_numpr) {
      const styleId = input.numberedStyleIds && !policy.numpr_direct_only ? paragraphStyleId(element) : null;
      const direct = hasDirectNumPr(element);
      const inherited = !direct && styleId !== null && (input.numberedStyleIds?.has(styleId) ?? false);
      if (direct || inherited) {
        issues.push(
          issue({
            code: 'NUMPR_PRESENT',
            message: direct
              ? 'paragraph has direct numbering (w:numPr)'
              : `paragraph style ${styleId} applies numbering (w:numPr)`,
            paragraph_path: path,
            fixable: true,
            expected: false,
            actual: true,
            context: direct ? {} : { style_id: styleId },
          }),
        );
      }
    }

    const expectedLine = policy.line_spacing_twips;
    if (expectedLine !== null) {
      const spacing = fixedLineSpacing(element);
      if (spacing !== null && Math.abs(spacing.line - expectedLine) > tolerance) {
        issues.push(
          issue({
            code: 'LINE_SPACING_MISMATCH',
            message: `line spacing ${spacing.line} twips (${spacing.rule}) differs from ${expectedLine} by more than ${tolerance}`,
            paragraph_path: path,
            expected: expectedLine,
            actual: spacing.line,
            tolerance,
            context: { line_rule: spacing.rule },
          }),
        );
      }
    }

    const expectedIndent = policy.first_line_indent_twips;
    if (expectedIndent !== null) {
      const indent = directFirstLineIndent(element);
      if (indent !== null && Math.abs(indent - expectedIndent) > tolerance) {
        issues.push(
          issue({
            code: 'FIRST_LINE_INDENT_MISMATCH',
            message: `first-line indent ${indent} twips differs from ${expectedIndent} by more than ${tolerance}`,
            paragraph_path: path,
            expected: expectedIndent,
            actual: indent,
            tolerance,
          }),
        );
      }
    }

    if (policy.trim_leading_spaces) {
      for (const run of paragraph.runs) {
        const text = currentRunText(run.element);
        if (text === '') continue;
        const first = String.fromCodePoint(text.codePointAt(0) ?? 0);
        if (policy.trim_chars.includes(first)) {
          issues.push(
            issue({
              code: 'LEADING_WHITESPACE',
              message: `paragraph starts with whitespace ${codepointOf(first)}`,
              paragraph_path: path,
              run_id: run.id,
              fixable: true,
              actual: first,
              context: { codepoint: codepointOf(first) },
            }),
          );
        }
        break;
      }
    }

    for (const run of paragraph.runs) {
      if (!input.touchedRunIds.has(run.id)) continue;
      issues.push(...runStyleIssues(input, path, run.id, run.element));
    }
  }
  return issues;
}
