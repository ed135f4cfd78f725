// The render pipeline (§3.3): open the template, find placeholders, replace, check and fix the format, and
// write the artifacts of §3.6 into the output directory. Shared by `docops run` (in-process) and the render
// processes of the HTTP service.
import { mkdtemp, rename, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { debugStage } from './docx/debug-dump.js';
import { type DocxPackage, openDocxPackage } from './docx/package.js';
import { replacePlaceholders, unsupportedLogEntries } from './docx/replace.js';
import { scanDocument } from './docx/scan.js';
import { emptyPassingReport, type FormatReport, runFormatEngine } from './format/engine.js';
import { templateFacts } from './format/observe.js';
import { captureTemplateRunStyles } from './format/run-style.js';
import { suggestedPolicy, suggestedPolicyYaml } from './format/suggested.js';
import { numberedParagraphStyles, type RunStyle } from './format/xml.js';
import { convertDocxToPdf } from './pdf.js';
import type { Policy } from './policy.js';
import {
  copyFileAtomic,
  fileReportSink,
  OUTPUT_FILES,
  type ReplaceSummary,
  type ReportSink,
  stableJson,
  writeViaTemp,
} from './reports.js';
import type { Skill } from './skills.js';
import { fieldValues, missingFields, type Task } from './task.js';
import type { EffectiveOptions, ExitCode, MissingFields, ReplaceLogEntry, ScanResult } from './types.js';
import { DocopsInputError } from './types.js';

export type RunMessage =
  | 'success'
  | 'missing required fields'
  | 'template unsupported placeholders'
  | 'format validation failed';

export const EXIT_MESSAGES: Readonly<Record<ExitCode, RunMessage>> = {
  0: 'success',
  2: 'missing required fields',
  3: 'template unsupported placeholders',
  4: 'format validation failed',
};

export interface PdfOutcome {
  requested: boolean;
  status: 'ok' | 'failed' | 'not_requested';
  error?: string;
}

export interface RenderJobInput {
  templatePath: string;
  task: Task;
  skill: Skill;
  policy: Policy;
  options: EffectiveOptions;
  /** which code wins when both 2 and 4 apply: the API reports 4, the CLI 2 (§3.3 step 6) */
  exitPrecedence: 'api' | 'cli';
  outDir: string;
  /** where the JSON/YAML reports go (default: atomic files in outDir); out.docx and out.pdf are always files */
  reports?: ReportSink;
  /** write out.suggested_policy.yaml into outDir */
  exportSuggestedPolicy: boolean;
  /** write out.debug.json (CLI --debug-dump) */
  debugDump: boolean;
  pdf: null | { sofficePath: string; profileDir: string };
  maxUncompressedBytes: number;
}

export interface RenderJobResult {
  exitCode: ExitCode;
  message: RunMessage;
  /** names written into outDir, in zip order (out.debug.json last when written) */
  files: string[];
  missing: MissingFields;
  formatReport: FormatReport;
  replaceSummary: ReplaceSummary;
  unsupportedCount: number;
  pdf: PdfOutcome;
  /** the suggested policy of the template (written only when requested; the CLI writes it to its own path) */
  suggestedPolicyYaml: string;
  /** dominant first-line indents for the human summary (null when none / format off) */
  dominantIndent: { template: number | null; rendered: number | null };
}

/** Where a render failed: `open_template`, `scan`, `replace`, `format`, `write_docx`, `write_reports`, `pdf`. */
export type RenderStage =
  | 'open_template'
  | 'scan'
  | 'replace'
  | 'format'
  | 'write_docx'
  | 'write_reports'
  | 'pdf';

const failureStages = new WeakMap<object, RenderStage>();

/** The stage a renderJob error was thrown from (null for errors that did not come from renderJob). */
export function renderFailureStage(error: unknown): RenderStage | null {
  return typeof error === 'object' && error !== null ? (failureStages.get(error) ?? null) : null;
}

async function stage<T>(name: RenderStage, body: () => T | Promise<T>): Promise<T> {
  try {
    return await body();
  } catch (error) {
    if (typeof error === 'object' && error !== null && !failureStages.has(error))
      failureStages.set(error, name);
    throw error;
  }
}

/** Exit code of §3.3 step 6 (3 is decided before, and is final). */
export function exitCodeFor(
  missingRequired: boolean,
  strictFailed: boolean,
  precedence: 'api' | 'cli',
): ExitCode {
  if (missingRequired && strictFailed) return precedence === 'api' ? 4 : 2;
  if (missingRequired) return 2;
  if (strictFailed) return 4;
  return 0;
}

/**
 * Placeholder names present in the template: valid tokens, and well-formed names split across differently
 * formatted runs (`cross_run`): the template has those fields even though they cannot be replaced.
 */
export function templatePlaceholderNames(scan: ScanResult): string[] {
  const names = scan.tokens.map((token) => token.fieldName);
  for (const token of scan.unsupported) {
    if (token.kind === 'cross_run') names.push(token.text.slice(1, -1));
  }
  return names;
}

function compareStrings(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

function numberedStylesOf(pkg: DocxPackage): Set<string> {
  try {
    if (!pkg.hasPart('word/styles.xml')) return new Set();
    return numberedParagraphStyles(pkg.xml('word/styles.xml'));
  } catch {
    return new Set();
  }
}

/** Renders one job into `outDir` (§3.3). Input errors are thrown as DocopsInputError. */
export async function renderJob(input: RenderJobInput): Promise<RenderJobResult> {
  const { task, skill, options, outDir } = input;
  if (skill.name !== task.task_type) {
    throw new DocopsInputError(400, 'INVALID_ARGUMENT_CONFLICT', 'skill and task_type must match', {
      field: 'skill',
      skill: skill.name,
      task_type: task.task_type,
    });
  }

  const pkg = await stage('open_template', () =>
    openDocxPackage(input.templatePath, { maxUncompressedBytes: input.maxUncompressedBytes }),
  );
  const scan = await stage('scan', () => scanDocument(pkg));

  // Everything about the template is taken before the first replacement.
  const template = templateFacts(scan);
  const capturedStyles = captureTemplateRunStyles(scan);
  const suggestedYaml = suggestedPolicyYaml(suggestedPolicy(input.policy, template));
  const preDebug = input.debugDump ? debugStage(scan, 'pre_pipeline', new Set()) : null;

  const values = fieldValues(task, skill);
  const missing = missingFields(templatePlaceholderNames(scan), skill, values);
  const unsupportedCount = scan.unsupported.length;
  const stoppedByUnsupported = unsupportedCount > 0 && options.unsupported_mode === 'error';

  let entries: ReplaceLogEntry[];
  let touched: string[] = [];
  let replacedCount = 0;
  let missingCount: number;
  let formatReport: FormatReport;
  let dominantIndent: RenderJobResult['dominantIndent'] = {
    template: template.dominantIndent,
    rendered: null,
  };

  if (stoppedByUnsupported) {
    // Nothing is replaced: the log holds the unsupported tokens only.
    entries = unsupportedLogEntries(scan);
    missingCount = 0;
    formatReport = emptyPassingReport();
    dominantIndent = { template: template.dominantIndent, rendered: template.dominantIndent };
  } else {
    const replaced = await stage('replace', () => replacePlaceholders(pkg, scan, values));
    entries = [
      ...unsupportedLogEntries(scan),
      ...replaced.entries.filter((entry) => entry.status !== 'unsupported'),
    ];
    touched = [...new Set(replaced.touchedRunIds)];
    replacedCount = replaced.replacedCount;
    missingCount = replaced.missingCount;
    const touchedSet = new Set(touched);
    const outcome = await stage('format', () =>
      runFormatEngine({
        scan,
        policy: input.policy,
        options,
        template,
        touchedRunIds: touchedSet,
        templateRunStyles: capturedStyles,
        markChanged: (part) => pkg.markChanged(part),
        ...(input.policy.forbid_numpr && !input.policy.numpr_direct_only
          ? { numberedStyleIds: numberedStylesOf(pkg) }
          : {}),
      }),
    );
    formatReport = outcome.report;
    dominantIndent = { template: outcome.templateDominantIndent, rendered: outcome.renderedDominantIndent };
  }

  const touchedSorted = [...touched].sort(compareStrings);
  const templateRunStyles: Record<string, RunStyle> = {};
  for (const runId of touchedSorted) {
    const style = capturedStyles.get(runId);
    if (style) templateRunStyles[runId] = style;
  }
  const replaceSummary: ReplaceSummary = {
    total_placeholders: scan.tokens.length + unsupportedCount,
    replaced_count: replacedCount,
    missing_count: missingCount,
    had_unsupported: unsupportedCount > 0,
    unsupported_count: unsupportedCount,
    unsupported_mode: options.unsupported_mode,
  };

  const files: string[] = [];
  const docxPath = join(outDir, OUTPUT_FILES.docx);
  await stage('write_docx', async () => {
    if (stoppedByUnsupported) await copyFileAtomic(input.templatePath, docxPath);
    else await writeViaTemp(docxPath, (temp) => pkg.writeTo(temp));
  });
  files.push(OUTPUT_FILES.docx);

  const reports = input.reports ?? fileReportSink(outDir);
  await stage('write_reports', async () => {
    await reports.write(
      OUTPUT_FILES.replaceLog,
      stableJson({
        entries,
        summary: replaceSummary,
        touched_runs: touchedSorted,
        template_run_styles: templateRunStyles,
      }),
    );
    files.push(OUTPUT_FILES.replaceLog);
    await reports.write(OUTPUT_FILES.missingFields, stableJson(missing));
    files.push(OUTPUT_FILES.missingFields);
    await reports.write(OUTPUT_FILES.formatReport, stableJson(formatReport));
    files.push(OUTPUT_FILES.formatReport);
    if (input.exportSuggestedPolicy) {
      await reports.write(OUTPUT_FILES.suggestedPolicy, suggestedYaml);
      files.push(OUTPUT_FILES.suggestedPolicy);
    }
  });

  let pdf: PdfOutcome = { requested: false, status: 'not_requested' };
  if (input.pdf !== null) {
    const pdfOptions = input.pdf;
    pdf = await stage('pdf', () => exportPdf(docxPath, outDir, pdfOptions));
    if (pdf.status === 'ok') files.push(OUTPUT_FILES.pdf);
  }

  if (input.debugDump) {
    const post = debugStage(scan, 'post_pipeline', new Set(touched));
    await stage('write_reports', () =>
      reports.write(
        OUTPUT_FILES.debug,
        stableJson({ ...(preDebug === null ? {} : { pre_pipeline: preDebug }), post_pipeline: post }),
      ),
    );
    files.push(OUTPUT_FILES.debug);
  }

  const exitCode: ExitCode = stoppedByUnsupported
    ? 3
    : exitCodeFor(
        missing.missing_required.length > 0,
        options.format_mode === 'strict' && !formatReport.passed,
        input.exitPrecedence,
      );
  return {
    exitCode,
    message: EXIT_MESSAGES[exitCode],
    files,
    missing,
    formatReport,
    replaceSummary,
    unsupportedCount,
    pdf,
    suggestedPolicyYaml: suggestedYaml,
    dominantIndent,
  };
}

/**
 * Converts out.docx into a private directory inside outDir and moves the PDF into place, so that out.pdf
 * appears atomically or not at all.
 */
async function exportPdf(
  docxPath: string,
  outDir: string,
  options: { sofficePath: string; profileDir: string },
): Promise<PdfOutcome> {
  const workDir = await mkdtemp(join(outDir, '.pdf-'));
  try {
    const result = await convertDocxToPdf({
      docxPath,
      outDir: workDir,
      sofficePath: options.sofficePath,
      profileDir: options.profileDir,
    });
    if (result.status === 'failed') return { requested: true, status: 'failed', error: result.error };
    await rename(join(workDir, OUTPUT_FILES.pdf), join(outDir, OUTPUT_FILES.pdf));
    return { requested: true, status: 'ok' };
  } finally {
    await rm(workDir, { recursive: true, force: true });
  }
}
