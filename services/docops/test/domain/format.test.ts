import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import {
  type BuildDocxOptions,
  buildDocx,
  paragraphXml,
  runXml,
  tableXml,
} from '../../src/domain/docx/build.js';
import { openDocxPackage } from '../../src/domain/docx/package.js';
import { replacePlaceholders } from '../../src/domain/docx/replace.js';
import { scanDocument } from '../../src/domain/docx/scan.js';
import { buildDiagnostics } from '../../src/domain/format/diagnostics.js';
import { effectivePolicy } from '../../src/domain/format/effective.js';
import { emptyPassingReport, runFormatEngine } from '../../src/domain/format/engine.js';
import { applySafeFix } from '../../src/domain/format/fix.js';
import {
  dominantIndent,
  dominantLineSpacing,
  dominantValue,
  observationDiff,
  observe,
  templateFacts,
} from '../../src/domain/format/observe.js';
import { captureTemplateRunStyles } from '../../src/domain/format/run-style.js';
import { suggestedPolicy, suggestedPolicyYaml } from '../../src/domain/format/suggested.js';
import { validateFormat } from '../../src/domain/format/validate.js';
import { numberedParagraphStyles, roundHalfEven } from '../../src/domain/format/xml.js';
import { defaultPolicy, type Policy, parsePolicy } from '../../src/domain/policy.js';
import type { EffectiveOptions } from '../../src/domain/types.js';

const dirs: string[] = [];
afterAll(() => {
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
});

async function open(options: BuildDocxOptions) {
  const dir = mkdtempSync(join(tmpdir(), 'docops-format-'));
  dirs.push(dir);
  const path = join(dir, 'template.docx');
  writeFileSync(path, buildDocx(options));
  const pkg = await openDocxPackage(path, { maxUncompressedBytes: 50 * 1024 * 1024 });
  return { pkg, scan: scanDocument(pkg) };
}

const ind = (twips: number) => `<w:ind w:firstLine="${twips}"/>`;
const spacing = (line: number, rule?: string) =>
  `<w:spacing w:line="${line}"${rule ? ` w:lineRule="${rule}"` : ''}/>`;
const p = (text: string, pPr?: string, rPr?: string) =>
  paragraphXml(text, { ...(pPr ? { pPr } : {}), ...(rPr ? { rPr } : {}) });
/** A table whose cells carry a paragraph with the given pPr. */
const tableWith = (cells: string[], pPr: string) =>
  tableXml([cells]).replace(/<w:p><w:r>/g, `<w:p><w:pPr>${pPr}</w:pPr><w:r>`);

type Options = Pick<EffectiveOptions, 'format_mode' | 'format_baseline' | 'format_fix_mode'>;

/** Replaces with `values` and runs the engine, as the pipeline does. */
async function render(
  options: BuildDocxOptions,
  engine: Options,
  values: Record<string, string>,
  policy?: Policy,
) {
  const { pkg, scan } = await open(options);
  const template = templateFacts(scan);
  const styles = captureTemplateRunStyles(scan);
  const replaced = replacePlaceholders(pkg, scan, new Map(Object.entries(values)));
  const changedParts: string[] = [];
  const outcome = runFormatEngine({
    scan,
    policy: policy ?? defaultPolicy(),
    options: engine,
    template,
    touchedRunIds: new Set(replaced.touchedRunIds),
    templateRunStyles: styles,
    markChanged: (part) => changedParts.push(part),
  });
  return { pkg, scan, outcome, report: outcome.report, changedParts, touched: replaced.touchedRunIds };
}

const STRICT_POLICY: Options = { format_mode: 'strict', format_baseline: 'policy', format_fix_mode: 'safe' };
const STRICT_TEMPLATE: Options = {
  format_mode: 'strict',
  format_baseline: 'template',
  format_fix_mode: 'safe',
};
const NO_FIX_POLICY: Options = { format_mode: 'strict', format_baseline: 'policy', format_fix_mode: 'none' };

describe('observation', () => {
  it('builds the histograms over body and table paragraphs, not headers', async () => {
    const { scan } = await open({
      body:
        p('a', ind(420), '<w:rFonts w:ascii="Arial" w:eastAsia="黑体"/>') +
        p('b', '<w:ind w:hanging="360"/><w:numPr><w:ilvl w:val="0"/><w:numId w:val="1"/></w:numPr>') +
        p('c') +
        tableXml([['x']]),
      headers: { header1: p('h', ind(999)) },
    });
    expect(observe(scan)).toEqual({
      has_tables: true,
      has_numpr: true,
      first_line_indent_twips_hist: { '420': 1, '-360': 1, none: 2 },
      run_font_latin_hist: { Arial: 1, none: 3 },
      run_font_east_asia_hist: { 黑体: 1, unknown: 3 },
    });
  });

  it('diffs two observations over all keys', () => {
    const base = {
      has_tables: true,
      has_numpr: false,
      first_line_indent_twips_hist: { '480': 2, none: 1 },
      run_font_latin_hist: {},
      run_font_east_asia_hist: {},
    };
    const rendered = { ...base, has_numpr: true, first_line_indent_twips_hist: { '420': 2, none: 1 } };
    expect(observationDiff(base, rendered)).toEqual({
      has_tables_changed: false,
      has_numpr_changed: true,
      first_line_indent_twips_hist_delta: { '480': -2, none: 0, '420': 2 },
    });
  });
});

describe('dominant values', () => {
  it('picks the most frequent value, ties to the smaller', () => {
    expect(dominantValue([480, 420, 480, 420])).toBe(420);
    expect(dominantValue([480, 480, 420])).toBe(480);
    expect(dominantValue([])).toBeNull();
  });

  it('prefers body paragraphs over table paragraphs with indent 0 (case 32)', async () => {
    const { scan } = await open({ body: p('body', ind(480)) + tableWith(['a', 'b', 'c'], ind(0)) });
    expect(dominantIndent(scan)).toBe(480);
  });

  it('ignores "none" and indents below 200; uses tables only when the body has none', async () => {
    const { scan } = await open({ body: p('a', ind(100)) + p('b') + tableWith(['a', 'b'], ind(300)) });
    expect(dominantIndent(scan)).toBe(300);
    const { scan: empty } = await open({ body: p('a', ind(100)) + p('b', '<w:ind w:hanging="420"/>') });
    expect(dominantIndent(empty)).toBeNull();
  });

  it('line spacing: exact/atLeast body paragraphs only, with the rule used', async () => {
    const { scan } = await open({
      body:
        p('a', spacing(400, 'atLeast')) +
        p('b', spacing(400, 'atLeast')) +
        p('c', spacing(360, 'exact')) +
        p('d', spacing(240)) +
        p('e', spacing(240, 'auto')) +
        p('f', spacing(240, 'auto')),
    });
    expect(dominantLineSpacing(scan)).toEqual({ line: 400, rule: 'atLeast' });
    const { scan: auto } = await open({ body: p('a', spacing(360, 'auto')) });
    expect(dominantLineSpacing(auto)).toBeNull();
  });
});

describe('effective policy', () => {
  it('policy baseline uses the policy as is', async () => {
    const { scan } = await open({ body: p('a', ind(480)) + tableXml([['x']]) });
    const { policy, overrides } = effectivePolicy(defaultPolicy(), 'policy', templateFacts(scan));
    expect(overrides).toEqual({});
    expect(policy).toMatchObject({
      forbid_tables: true,
      first_line_indent_twips: 420,
      line_spacing_twips: 360,
    });
  });

  it('template baseline adopts tables, dominant indent and dominant line spacing (cases 30, 31)', async () => {
    const { scan } = await open({ body: p('a', `${spacing(300, 'exact')}${ind(480)}`) + tableXml([['x']]) });
    const { policy, overrides } = effectivePolicy(defaultPolicy(), 'template', templateFacts(scan));
    expect(overrides).toEqual({
      forbid_tables: false,
      first_line_indent_twips: 480,
      line_spacing_twips: 300,
    });
    expect(policy).toMatchObject({
      forbid_tables: false,
      first_line_indent_twips: 480,
      line_spacing_twips: 300,
    });
  });

  it('records only changed values; no dominant spacing disables spacing', async () => {
    const { scan } = await open({ body: p('a', ind(420)) });
    const { policy, overrides } = effectivePolicy(defaultPolicy(), 'template', templateFacts(scan));
    expect(overrides).toEqual({ line_spacing_twips: null });
    expect(policy.line_spacing_twips).toBeNull();
    expect(policy.forbid_tables).toBe(true);
  });
});

describe('validation (case 33)', () => {
  it('ignores line spacing with lineRule=auto and flags exact/atLeast beyond the tolerance', async () => {
    const { report } = await render(
      {
        body: p('a', spacing(480, 'auto')) + p('b', spacing(370, 'exact')) + p('c', spacing(400, 'atLeast')),
      },
      NO_FIX_POLICY,
      {},
    );
    const issues = report.issues.filter((i) => i.code === 'LINE_SPACING_MISMATCH');
    expect(issues.map((i) => [i.paragraph_path, i.expected, i.actual, i.tolerance])).toEqual([
      ['p2', 360, 400, 20],
    ]);
    expect(issues[0]).toMatchObject({
      fixable: false,
      fixed: false,
      severity: 'error',
      observability: 'observed',
    });
  });

  it('passes an indent within the tolerance and flags one beyond it', async () => {
    const { report } = await render(
      { body: p('a', ind(435)) + p('b', ind(480)) + p('c') },
      NO_FIX_POLICY,
      {},
    );
    const issues = report.issues.filter((i) => i.code === 'FIRST_LINE_INDENT_MISMATCH');
    expect(issues).toHaveLength(1);
    expect(issues[0]).toMatchObject({ paragraph_path: 'p1', expected: 420, actual: 480, tolerance: 20 });
  });

  it('checks fonts and sizes of touched runs only; inherited → warn/unknown, explicit mismatch → error', async () => {
    const { report } = await render(
      {
        body:
          p('【MEETING_TITLE】', undefined, '<w:sz w:val="28"/>') +
          p('untouched', undefined, '<w:sz w:val="40"/><w:rFonts w:ascii="Arial"/>') +
          p('【MEETING_DATE】'),
      },
      { format_mode: 'report', format_baseline: 'policy', format_fix_mode: 'none' },
      { MEETING_TITLE: 'x', MEETING_DATE: 'y' },
    );
    const runIssues = report.issues.filter((i) => i.code.startsWith('RUN_'));
    expect(runIssues.every((i) => i.run_id === 'p0:r0' || i.run_id === 'p2:r0')).toBe(true);
    const size0 = runIssues.find((i) => i.run_id === 'p0:r0' && i.code === 'RUN_SIZE_MISMATCH');
    expect(size0).toMatchObject({ severity: 'error', observability: 'observed', expected: 12, actual: 14 });
    const size2 = runIssues.find((i) => i.run_id === 'p2:r0' && i.code === 'RUN_SIZE_MISMATCH');
    expect(size2).toMatchObject({ severity: 'warn', observability: 'unknown', expected: 12, actual: null });
    // warnings do not fail the report
    expect(report.error_count).toBe(1);
    expect(report.passed).toBe(false);
  });

  it('treat_inherited_as_error makes inherited values errors', async () => {
    const policy = parsePolicy('treat_inherited_as_error: true\n');
    const { report } = await render(
      { body: p('【MEETING_DATE】') },
      NO_FIX_POLICY,
      { MEETING_DATE: 'y' },
      policy,
    );
    const runIssues = report.issues.filter((i) => i.code.startsWith('RUN_'));
    expect(runIssues).toHaveLength(3);
    expect(runIssues.every((i) => i.severity === 'error' && i.observability === 'unknown')).toBe(true);
  });

  it('template baseline compares touched runs with their captured style', async () => {
    // a merged split token whose first run has no size and second a rsid-only difference: nothing to report
    const fonts = '<w:rFonts w:ascii="Arial" w:eastAsia="黑体"/><w:sz w:val="24"/>';
    const { report } = await render({ body: p('【MEETING_TITLE】', undefined, fonts) }, STRICT_TEMPLATE, {
      MEETING_TITLE: 'Kickoff',
    });
    expect(report.issues).toEqual([]);
    expect(report.passed).toBe(true);
  });

  it('template baseline: a run that lost its direct style is warn/unknown, a changed one error', async () => {
    const { scan } = await open({ body: p('【A】', undefined, '<w:sz w:val="24"/>') + p('【B】') });
    const facts = templateFacts(scan);
    const { policy } = effectivePolicy(defaultPolicy(), 'template', facts);
    const issues = validateFormat({
      scan,
      policy,
      baseline: 'template',
      touchedRunIds: new Set(['p0:r0', 'p1:r0']),
      templateRunStyles: {
        'p0:r0': { latin_font: null, east_asia_font: null, size_pt: 16 },
        'p1:r0': { latin_font: null, east_asia_font: null, size_pt: 11 },
      },
    });
    expect(issues.map((i) => [i.run_id, i.code, i.severity, i.observability, i.expected, i.actual])).toEqual([
      ['p0:r0', 'RUN_SIZE_MISMATCH', 'error', 'observed', 16, 12],
      ['p1:r0', 'RUN_SIZE_MISMATCH', 'warn', 'unknown', 11, null],
    ]);
    expect(issues[0]).toMatchObject({ template_value: 16, rendered_value: 12 });
  });

  it('TABLE_FORBIDDEN per table at t{i}; table paragraphs are then skipped', async () => {
    const { report } = await render(
      { body: p('a') + tableWith(['x'], ind(999)) + tableXml([['y']]) },
      NO_FIX_POLICY,
      {},
    );
    expect(report.issues.map((i) => [i.code, i.paragraph_path, i.context])).toEqual([
      ['TABLE_FORBIDDEN', 't0', { table_count: 2 }],
      ['TABLE_FORBIDDEN', 't1', { table_count: 2 }],
    ]);
    // with tables allowed the table paragraph is checked
    const allowed = await render(
      { body: p('a') + tableWith(['x'], ind(999)) },
      NO_FIX_POLICY,
      {},
      parsePolicy('forbid_tables: false'),
    );
    expect(allowed.report.issues.map((i) => [i.code, i.paragraph_path])).toEqual([
      ['FIRST_LINE_INDENT_MISMATCH', 't0.r0.c0.p0'],
    ]);
  });

  it('NUMPR_PRESENT (fixable, not fixed) and LEADING_WHITESPACE after replacement', async () => {
    const numPr = '<w:numPr><w:ilvl w:val="0"/><w:numId w:val="1"/></w:numPr>';
    const { report } = await render(
      {
        body:
          p('item', numPr) +
          p('【MEETING_TITLE】 text') +
          p('\u3000indented') +
          `<w:p>${runXml('')}${runXml(' x')}</w:p>`,
      },
      STRICT_POLICY,
      { MEETING_TITLE: ' starts with space' },
    );
    const codes = report.issues
      .filter((i) => !i.code.startsWith('RUN_'))
      .map((i) => [i.code, i.paragraph_path, i.run_id, i.fixable, i.fixed]);
    expect(codes).toEqual([
      ['NUMPR_PRESENT', 'p0', null, true, false],
      ['LEADING_WHITESPACE', 'p1', 'p1:r0', true, false],
      ['LEADING_WHITESPACE', 'p2', 'p2:r0', true, false],
      ['LEADING_WHITESPACE', 'p3', 'p3:r1', true, false],
    ]);
    const issue = report.issues.find((i) => i.paragraph_path === 'p2');
    expect(issue?.context).toEqual({ codepoint: 'U+3000' });
  });

  it('numpr_direct_only: false also finds numbering through paragraph styles', async () => {
    const styles =
      '<w:style w:type="paragraph" w:styleId="List"><w:name w:val="List"/><w:pPr><w:numPr><w:numId w:val="1"/></w:numPr></w:pPr></w:style>' +
      '<w:style w:type="paragraph" w:styleId="List2"><w:name w:val="List 2"/><w:basedOn w:val="List"/></w:style>';
    const { pkg, scan } = await open({ body: p('a', '<w:pStyle w:val="List2"/>') + p('b'), styles });
    const numbered = numberedParagraphStyles(pkg.xml('word/styles.xml'));
    expect([...numbered].sort()).toEqual(['List', 'List2']);
    const policy = { ...parsePolicy('numpr_direct_only: false'), line_spacing_rule: 'exact' as const };
    const issues = validateFormat({
      scan,
      policy,
      baseline: 'policy',
      touchedRunIds: new Set(),
      templateRunStyles: {},
      numberedStyleIds: numbered,
    });
    expect(issues.map((i) => [i.code, i.paragraph_path, i.context])).toEqual([
      ['NUMPR_PRESENT', 'p0', { style_id: 'List2' }],
    ]);
  });

  it('rounds half points like the original (w:sz 21 → 10)', () => {
    expect(roundHalfEven(10.5)).toBe(10);
    expect(roundHalfEven(11.5)).toBe(12);
    expect(roundHalfEven(12)).toBe(12);
  });
});

describe('safe fix (case 34)', () => {
  it('changes only touched body paragraphs, never table paragraphs, and records each change', async () => {
    const { report, changedParts, pkg } = await render(
      {
        body:
          p('【MEETING_TITLE】', ind(480)) +
          p('untouched', ind(480)) +
          tableXml([['【MEETING_DATE】']]) +
          p('【MEETING_TIME】', `<w:pStyle w:val="Normal"/><w:jc w:val="center"/>`),
      },
      STRICT_POLICY,
      { MEETING_TITLE: 'a', MEETING_DATE: 'b', MEETING_TIME: 'c' },
      parsePolicy('forbid_tables: false'),
    );
    expect(report.summary?.fix_changes).toEqual([
      {
        paragraph_path: 'p0',
        field: 'first_line_indent_twips',
        before: 480,
        after: 420,
        reason: 'safe_fix_to_effective_policy',
      },
      {
        paragraph_path: 'p0',
        field: 'line_spacing_twips',
        before: null,
        after: 360,
        reason: 'safe_fix_to_effective_policy',
      },
      {
        paragraph_path: 'p2',
        field: 'first_line_indent_twips',
        before: null,
        after: 420,
        reason: 'safe_fix_to_effective_policy',
      },
      {
        paragraph_path: 'p2',
        field: 'line_spacing_twips',
        before: null,
        after: 360,
        reason: 'safe_fix_to_effective_policy',
      },
    ]);
    expect(report.summary?.fix_applied).toBe(true);
    expect(changedParts).toContain('word/document.xml');
    // the untouched paragraph keeps its 480 and is reported
    expect(
      report.issues.filter((i) => i.code === 'FIRST_LINE_INDENT_MISMATCH').map((i) => i.paragraph_path),
    ).toEqual(['p1']);
    const xml = new TextDecoder().decode(pkg.readPart('word/document.xml'));
    // schema order inside w:pPr: pStyle … spacing, ind … jc
    expect(xml).toContain(
      '<w:pPr><w:pStyle w:val="Normal"/><w:spacing w:line="360" w:lineRule="exact"/><w:ind w:firstLine="420"/><w:jc w:val="center"/></w:pPr>',
    );
    // the table cell paragraph is unchanged
    expect(xml).toMatch(/<w:tc><w:tcPr>[\s\S]*?<\/w:tcPr><w:p><w:r>/);
  });

  it('under the template baseline uses the dominant value and rule, and never writes nulls', async () => {
    const { report } = await render(
      {
        body:
          p('x', `${spacing(400, 'atLeast')}${ind(480)}`) +
          p('y', `${spacing(400, 'atLeast')}${ind(480)}`) +
          p('【MEETING_TITLE】', `${spacing(300, 'exact')}<w:ind w:hanging="200"/>`),
      },
      STRICT_TEMPLATE,
      { MEETING_TITLE: 'a' },
    );
    expect(report.summary?.fix_changes.map((c) => [c.field, c.before, c.after])).toEqual([
      ['first_line_indent_twips', -200, 480],
      ['line_spacing_twips', 300, 400],
    ]);
    expect(report.passed).toBe(true);
  });

  it('does nothing with format_fix_mode none, and nothing with null effective values', async () => {
    const none = await render({ body: p('【MEETING_TITLE】', ind(480)) }, NO_FIX_POLICY, {
      MEETING_TITLE: 'a',
    });
    expect(none.report.summary?.fix_changes).toEqual([]);
    expect(none.report.summary?.fix_applied).toBe(false);
    const { scan } = await open({ body: p('【A】') });
    const { policy } = effectivePolicy(defaultPolicy(), 'template', templateFacts(scan));
    expect(applySafeFix(scan, policy, new Set(['p0:r0']), () => undefined)).toEqual([]);
  });
});

describe('report, diagnostics and summary', () => {
  it('off mode skips everything', async () => {
    const { report } = await render(
      { body: p('【MEETING_TITLE】', ind(480)) + tableXml([['x']]) },
      { format_mode: 'off', format_baseline: 'policy', format_fix_mode: 'safe' },
      { MEETING_TITLE: 'a' },
    );
    expect(report).toMatchObject({ passed: true, error_count: 0, fixed_count: 0, issues: [] });
    expect(report.summary).toMatchObject({
      skipped: true,
      diagnostics: null,
      fix_applied: false,
      fix_changes: [],
    });
  });

  it('the exit-3 report is passing with summary null', () => {
    expect(emptyPassingReport()).toEqual({
      passed: true,
      error_count: 0,
      fixed_count: 0,
      issues: [],
      summary: null,
    });
  });

  it('summary carries mode, baseline, observations, diff and overrides (case 30)', async () => {
    const { report } = await render({ body: p('【MEETING_TITLE】') + tableXml([['x']]) }, STRICT_TEMPLATE, {
      MEETING_TITLE: 'a',
    });
    expect(report.passed).toBe(true);
    expect(report.issues.some((i) => i.code === 'TABLE_FORBIDDEN')).toBe(false);
    expect(report.summary).toMatchObject({
      mode: 'strict',
      baseline: 'template',
      skipped: false,
      effective_policy_overrides: { forbid_tables: false },
      diff: { has_tables_changed: false, has_numpr_changed: false },
    });
    expect(report.summary?.template_observed.has_tables).toBe(true);
  });

  it('diagnostics group by code with at most 5 examples and suggestions', async () => {
    const body = Array.from({ length: 7 }, () => p('x', ind(600))).join('') + tableXml([['t']]);
    const { report, outcome } = await render({ body }, NO_FIX_POLICY, {});
    const diagnostics = report.summary?.diagnostics;
    expect(diagnostics?.issue_count).toBe(8);
    expect(diagnostics?.codes).toEqual(['FIRST_LINE_INDENT_MISMATCH', 'TABLE_FORBIDDEN']);
    const indent = diagnostics?.by_code.FIRST_LINE_INDENT_MISMATCH;
    expect(indent?.count).toBe(7);
    expect(indent?.examples).toHaveLength(5);
    expect(indent?.examples[0]).toEqual({
      paragraph_path: 'p0',
      run_id: null,
      expected: 420,
      actual: 600,
      tolerance: 20,
    });
    expect(indent?.suggestions.join(' ')).toMatch(/first_line_indent_twips.*600.*420/);
    expect(indent?.suggestions.join(' ')).toContain('twips_tolerance (current value: 20)');
    expect(diagnostics?.by_code.TABLE_FORBIDDEN?.suggestions.join(' ')).toMatch(
      /--format-baseline template.*forbid_tables: false/,
    );
    expect(outcome.templateDominantIndent).toBe(600);
  });

  it('suggestions for NUMPR_PRESENT and other codes', () => {
    const context = {
      baseline: 'policy' as const,
      policy: { ...defaultPolicy(), line_spacing_rule: 'exact' as const },
      templateDominantIndent: null,
    };
    const base = {
      message: '',
      paragraph_path: 'p0',
      run_id: null,
      fixable: true,
      fixed: false,
      expected: null,
      actual: null,
      tolerance: null,
      template_value: null,
      rendered_value: null,
      context: {},
      severity: 'error' as const,
      observability: 'observed' as const,
    };
    const diagnostics = buildDiagnostics(
      [
        { ...base, code: 'NUMPR_PRESENT' },
        { ...base, code: 'LEADING_WHITESPACE' },
      ],
      context,
    );
    expect(diagnostics.by_code.NUMPR_PRESENT?.suggestions[0]).toContain('remove direct numbering');
    expect(diagnostics.by_code.LEADING_WHITESPACE?.suggestions[0]).toContain('review');
    expect(diagnostics.by_code.NUMPR_PRESENT?.examples[0]).toEqual({ paragraph_path: 'p0', run_id: null });
  });
});

describe('suggested policy (case 40)', () => {
  it('is block YAML from the template, loadable back as a policy', async () => {
    const { scan } = await open({ body: p('a', ind(480)) + p('b', ind(480)) + tableXml([['x']]) });
    const yaml = suggestedPolicyYaml(suggestedPolicy(defaultPolicy(), templateFacts(scan)));
    expect(yaml).toBe('forbid_tables: false\nfirst_line_indent_twips: 480\ntwips_tolerance: 20\n');
    expect(parsePolicy(yaml)).toMatchObject({
      forbid_tables: false,
      first_line_indent_twips: 480,
      twips_tolerance: 20,
    });
  });

  it('adds line_spacing_twips when the template has a dominant spacing; null indent otherwise', async () => {
    const { scan } = await open({ body: p('a', spacing(300, 'exact')) });
    const yaml = suggestedPolicyYaml(suggestedPolicy(parsePolicy('twips_tolerance: 5'), templateFacts(scan)));
    expect(yaml).toBe(
      'forbid_tables: true\nfirst_line_indent_twips: null\ntwips_tolerance: 5\nline_spacing_twips: 300\n',
    );
    expect(parsePolicy(yaml).line_spacing_twips).toBe(300);
  });
});
