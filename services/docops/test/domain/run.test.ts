import { chmodSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
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
import { scanDocument } from '../../src/domain/docx/scan.js';
import { resolveEffectiveOptions } from '../../src/domain/options.js';
import { defaultPolicy, parsePolicy } from '../../src/domain/policy.js';
import { fallbackReports, stableJson } from '../../src/domain/reports.js';
import { exitCodeFor, type RenderJobInput, renderFailureStage, renderJob } from '../../src/domain/run.js';
import { loadSkillRegistry } from '../../src/domain/skills.js';
import type { Task } from '../../src/domain/task.js';
import { DocopsInputError } from '../../src/domain/types.js';

const registry = loadSkillRegistry();
const dirs: string[] = [];
afterAll(() => {
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
});

function tempDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'docops-run-'));
  dirs.push(dir);
  return dir;
}

interface Job {
  template: BuildDocxOptions | Uint8Array;
  task: Task;
  preset?: string;
  raw?: Parameters<typeof resolveEffectiveOptions>[0];
  overrides?: Partial<RenderJobInput>;
}

async function run(job: Job) {
  const dir = tempDir();
  const templatePath = join(dir, 'template.docx');
  const bytes = job.template instanceof Uint8Array ? job.template : buildDocx(job.template);
  writeFileSync(templatePath, bytes);
  const outDir = join(dir, 'out');
  mkdirSync(outDir);
  const skill = registry.get(job.task.task_type);
  if (!skill) throw new Error('unknown skill in test');
  const result = await renderJob({
    templatePath,
    task: job.task,
    skill,
    policy: defaultPolicy(),
    options: resolveEffectiveOptions({ preset: job.preset, ...job.raw }, { format_report: 'json' }),
    exitPrecedence: 'api',
    outDir,
    exportSuggestedPolicy: false,
    debugDump: false,
    pdf: null,
    maxUncompressedBytes: 50 * 1024 * 1024,
    ...job.overrides,
  });
  const json = (name: string) => JSON.parse(readFileSync(join(outDir, name), 'utf8'));
  const texts = async () => {
    const pkg = await openDocxPackage(join(outDir, 'out.docx'), { maxUncompressedBytes: 50 * 1024 * 1024 });
    return scanDocument(pkg).paragraphs.map((p) => p.text);
  };
  return { result, outDir, templatePath, bytes, json, texts, listing: () => readdirSync(outDir).sort() };
}

const meeting = (payload: Task['payload']): Task => ({ task_type: 'meeting_notice', payload });
const TITLE = { paragraphs: ['Title: 【MEETING_TITLE】'] };

describe('renderJob', () => {
  it('renders, writes the four artifacts in zip order, compact JSON with sorted keys (case 2)', async () => {
    const { result, outDir, json, texts, listing } = await run({
      template: TITLE,
      task: meeting({ meeting_title: 'Kickoff' }),
    });
    expect(result.exitCode).toBe(0);
    expect(result.message).toBe('success');
    expect(result.files).toEqual([
      'out.docx',
      'out.replace_log.json',
      'out.missing_fields.json',
      'out.format_report.json',
    ]);
    expect(listing()).toEqual([...result.files].sort());
    expect(await texts()).toEqual(['Title: Kickoff']);
    const raw = readFileSync(join(outDir, 'out.replace_log.json'), 'utf8');
    expect(raw).toBe(stableJson(JSON.parse(raw)));
    expect(raw).not.toContain('\n');
    const log = json('out.replace_log.json');
    expect(Object.keys(log)).toEqual(['entries', 'summary', 'template_run_styles', 'touched_runs']);
    expect(log.entries).toEqual([
      {
        end: 22,
        field_name: 'MEETING_TITLE',
        merged_runs: null,
        new_text: 'Kickoff',
        original_text: '【MEETING_TITLE】',
        paragraph_path: 'p0',
        reason: null,
        run_id: 'p0:r0',
        start: 7,
        status: 'replaced',
      },
    ]);
    expect(log.summary).toEqual({
      total_placeholders: 1,
      replaced_count: 1,
      missing_count: 0,
      had_unsupported: false,
      unsupported_count: 0,
      unsupported_mode: 'error',
    });
    expect(log.touched_runs).toEqual(['p0:r0']);
    expect(log.template_run_styles).toEqual({
      'p0:r0': { east_asia_font: null, latin_font: null, size_pt: null },
    });
    expect(json('out.missing_fields.json')).toEqual({
      missing_optional: [],
      missing_required: [],
      unknown: [],
    });
    const report = json('out.format_report.json');
    expect(Object.keys(report)).toEqual(['error_count', 'fixed_count', 'issues', 'passed', 'summary']);
    expect(report.passed).toBe(true);
  });

  it('missing required → exit 2, placeholder left in place (case 5)', async () => {
    const { result, json, texts } = await run({ template: TITLE, task: meeting({}) });
    expect(result.exitCode).toBe(2);
    expect(result.message).toBe('missing required fields');
    expect(json('out.missing_fields.json').missing_required).toEqual(['MEETING_TITLE']);
    expect(await texts()).toEqual(['Title: 【MEETING_TITLE】']);
    expect(json('out.replace_log.json').entries[0]).toMatchObject({
      status: 'missing',
      reason: 'missing_field',
    });
  });

  it.each([
    ['training_notice', 'TRAINING_TITLE', 'training_title'],
    ['inspection_record', 'INSPECTION_SUBJECT', 'inspection_subject'],
  ])('%s happy path → 0, empty payload → 2 (case 6)', async (taskType, placeholder, key) => {
    const template = { paragraphs: [`【${placeholder}】`] };
    const ok = await run({ template, task: { task_type: taskType, payload: { [key]: 'Value' } } });
    expect(ok.result.exitCode).toBe(0);
    expect(await ok.texts()).toEqual(['Value']);
    const empty = await run({ template, task: { task_type: taskType, payload: {} } });
    expect(empty.result.exitCode).toBe(2);
    expect(empty.result.missing.missing_required).toEqual([placeholder]);
  });

  it('table + strict → 4 with TABLE_FORBIDDEN at t0 (case 7)', async () => {
    const template = { body: paragraphXml('【MEETING_TITLE】') + tableXml([['cell']]) };
    const { result, json } = await run({ template, task: meeting({ meeting_title: 'x' }), preset: 'strict' });
    expect(result.exitCode).toBe(4);
    expect(result.message).toBe('format validation failed');
    const report = json('out.format_report.json');
    expect(report.passed).toBe(false);
    expect(report.issues[0]).toMatchObject({ code: 'TABLE_FORBIDDEN', paragraph_path: 't0' });
  });

  it('exit precedence: API 4 over 2, CLI 2 over 4 (case 8)', async () => {
    const template = { body: paragraphXml('【MEETING_TITLE】') + tableXml([['cell']]) };
    const api = await run({ template, task: meeting({}), preset: 'strict' });
    expect(api.result.exitCode).toBe(4);
    const cli = await run({
      template,
      task: meeting({}),
      preset: 'strict',
      overrides: { exitPrecedence: 'cli' },
    });
    expect(cli.result.exitCode).toBe(2);
    expect(exitCodeFor(true, true, 'api')).toBe(4);
    expect(exitCodeFor(true, true, 'cli')).toBe(2);
    expect(exitCodeFor(false, false, 'api')).toBe(0);
  });

  it('template baseline in strict mode accepts the tables (case 30)', async () => {
    const template = { body: paragraphXml('【MEETING_TITLE】') + tableXml([['cell']]) };
    const { result, json } = await run({
      template,
      task: meeting({ meeting_title: 'x' }),
      raw: { format_mode: 'strict', format_baseline: 'template' },
    });
    expect(result.exitCode).toBe(0);
    expect(json('out.format_report.json').summary.effective_policy_overrides.forbid_tables).toBe(false);
  });

  it('480 indent: policy baseline strict → 4, template baseline → 0 with override 480 (case 31)', async () => {
    const template = {
      body:
        paragraphXml('【MEETING_TITLE】') + paragraphXml('Body text', { pPr: '<w:ind w:firstLine="480"/>' }),
    };
    const task = meeting({ meeting_title: 'x' });
    const policy = await run({ template, task, raw: { format_mode: 'strict', format_baseline: 'policy' } });
    expect(policy.result.exitCode).toBe(4);
    expect(policy.json('out.format_report.json').issues.map((i: { code: string }) => i.code)).toContain(
      'FIRST_LINE_INDENT_MISMATCH',
    );
    const tpl = await run({ template, task, raw: { format_mode: 'strict', format_baseline: 'template' } });
    expect(tpl.result.exitCode).toBe(0);
    expect(
      tpl.json('out.format_report.json').summary.effective_policy_overrides.first_line_indent_twips,
    ).toBe(480);
  });

  it('unsupported tokens in error mode → 3: template copied unchanged, empty passing report, missing computed', async () => {
    const template = {
      body:
        `<w:p>${runXml('【MEETING_')}${runXml('TITLE】', '<w:b/>')}</w:p>` +
        paragraphXml('【ORGANIZER】 and 【bad-name】'),
    };
    const { result, outDir, bytes, json } = await run({ template, task: meeting({ organizer: 'Org' }) });
    expect(result.exitCode).toBe(3);
    expect(result.message).toBe('template unsupported placeholders');
    expect(result.unsupportedCount).toBe(2);
    expect(Buffer.compare(readFileSync(join(outDir, 'out.docx')), Buffer.from(bytes))).toBe(0);
    expect(json('out.format_report.json')).toEqual({
      error_count: 0,
      fixed_count: 0,
      issues: [],
      passed: true,
      summary: null,
    });
    const log = json('out.replace_log.json');
    expect(log.entries.map((e: { status: string; reason: string }) => [e.status, e.reason])).toEqual([
      ['unsupported', 'cross_run'],
      ['unsupported', 'invalid_format'],
    ]);
    expect(log.summary).toMatchObject({
      replaced_count: 0,
      had_unsupported: true,
      unsupported_count: 2,
      total_placeholders: 3,
    });
    expect(log.touched_runs).toEqual([]);
    // the cross-run MEETING_TITLE is a field of the template
    expect(json('out.missing_fields.json').missing_required).toEqual(['MEETING_TITLE']);
  });

  it('warn mode replaces the valid tokens and keeps the unsupported ones (exit 0)', async () => {
    const template = { paragraphs: ['【MEETING_TITLE】 【oops】'] };
    const { result, texts, json } = await run({
      template,
      task: meeting({ meeting_title: 'T' }),
      raw: { unsupported_mode: 'warn' },
    });
    expect(result.exitCode).toBe(0);
    expect(await texts()).toEqual(['T 【oops】']);
    expect(json('out.replace_log.json').entries.map((e: { status: string }) => e.status)).toEqual([
      'unsupported',
      'replaced',
    ]);
    expect(result.replaceSummary.unsupported_mode).toBe('warn');
  });

  it('merges split placeholders and replaces headers (cases 36, 37)', async () => {
    const template = {
      body: `<w:p>${runXml('【MEETING_')}${runXml('TITLE】')}</w:p>${paragraphXml('Date: 【MEETING_DATE】')}`,
      headers: { header1: paragraphXml('Header 【MEETING_DATE】') },
    };
    const { result, texts, json } = await run({
      template,
      task: meeting({ meeting_title: 'Kick', meeting_date: 'Mon' }),
    });
    // required fields absent from the template do not count
    expect(result.exitCode).toBe(0);
    expect(await texts()).toEqual(['Kick', 'Date: Mon', 'Header Mon']);
    const merged = json('out.replace_log.json').entries.find(
      (e: { field_name: string }) => e.field_name === 'MEETING_TITLE',
    );
    expect(merged.merged_runs).toEqual(['p0:r0', 'p0:r1']);
  });

  it('writes the suggested policy, the debug dump and a PDF in zip order when asked', async () => {
    const dir = tempDir();
    const soffice = join(dir, 'soffice');
    // a stand-in for LibreOffice: writes <outdir>/out.pdf
    writeFileSync(
      soffice,
      '#!/bin/sh\nwhile [ $# -gt 1 ]; do if [ "$1" = "--outdir" ]; then out="$2"; fi; shift; done\nprintf "%%PDF-1.4 test" > "$out/out.pdf"\n',
    );
    chmodSync(soffice, 0o755);
    const template = {
      body: paragraphXml('【MEETING_TITLE】', { pPr: '<w:ind w:firstLine="480"/>' }) + tableXml([['x']]),
    };
    const { result, outDir, listing } = await run({
      template,
      task: meeting({ meeting_title: 'x' }),
      overrides: {
        exportSuggestedPolicy: true,
        debugDump: true,
        pdf: { sofficePath: soffice, profileDir: join(dir, 'profile') },
      },
    });
    expect(result.files).toEqual([
      'out.docx',
      'out.replace_log.json',
      'out.missing_fields.json',
      'out.format_report.json',
      'out.suggested_policy.yaml',
      'out.pdf',
      'out.debug.json',
    ]);
    expect(listing()).toEqual([...result.files].sort());
    expect(result.pdf).toEqual({ requested: true, status: 'ok' });
    const yaml = readFileSync(join(outDir, 'out.suggested_policy.yaml'), 'utf8');
    expect(yaml).toBe('forbid_tables: false\nfirst_line_indent_twips: 480\ntwips_tolerance: 20\n');
    expect(parsePolicy(yaml).first_line_indent_twips).toBe(480);
    const debug = JSON.parse(readFileSync(join(outDir, 'out.debug.json'), 'utf8'));
    expect(debug.pre_pipeline.stage).toBe('pre_pipeline');
    expect(debug.post_pipeline.stage).toBe('post_pipeline');
    expect(readFileSync(join(outDir, 'out.pdf'), 'latin1').startsWith('%PDF')).toBe(true);
  });

  it('a failed PDF conversion keeps the other outputs and reports the failure', async () => {
    const dir = tempDir();
    const soffice = join(dir, 'soffice');
    writeFileSync(soffice, '#!/bin/sh\nexit 7\n');
    chmodSync(soffice, 0o755);
    const { result, listing } = await run({
      template: TITLE,
      task: meeting({ meeting_title: 'x' }),
      overrides: { pdf: { sofficePath: soffice, profileDir: join(dir, 'profile') } },
    });
    expect(result.exitCode).toBe(0);
    expect(result.pdf).toMatchObject({ requested: true, status: 'failed' });
    expect(result.files).not.toContain('out.pdf');
    expect(listing()).toEqual([...result.files].sort());
  });

  it('bad templates throw DocopsInputError with the stage and write nothing', async () => {
    const dir = tempDir();
    const path = join(dir, 'bad.docx');
    writeFileSync(path, 'not-a-docx');
    const outDir = join(dir, 'out');
    mkdirSync(outDir);
    const skill = registry.get('meeting_notice');
    if (!skill) throw new Error('missing skill');
    const attempt = renderJob({
      templatePath: path,
      task: meeting({}),
      skill,
      policy: defaultPolicy(),
      options: resolveEffectiveOptions({}, { format_report: 'json' }),
      exitPrecedence: 'api',
      outDir,
      exportSuggestedPolicy: false,
      debugDump: false,
      pdf: null,
      maxUncompressedBytes: 1024 * 1024,
    });
    const error = await attempt.catch((e: unknown) => e);
    expect(error).toBeInstanceOf(DocopsInputError);
    expect((error as DocopsInputError).errorCode).toBe('INVALID_MEDIA_TYPE');
    expect(renderFailureStage(error)).toBe('open_template');
    expect(readdirSync(outDir)).toEqual([]);
  });

  it('refuses a skill that is not the task_type', async () => {
    const training = registry.get('training_notice');
    if (!training) throw new Error('missing skill');
    const error = await run({ template: TITLE, task: meeting({}), overrides: { skill: training } }).catch(
      (e: unknown) => e,
    );
    expect(error).toBeInstanceOf(DocopsInputError);
    expect((error as Error).message).toBe('skill and task_type must match');
  });

  it('fallback reports carry the error in all three files', () => {
    const error = {
      error_type: 'TaskJsonError',
      error_message: 'invalid JSON',
      stage: 'load_task',
      docx_write_error: false,
    };
    const reports = fallbackReports(error);
    expect(reports.formatReport).toEqual({
      passed: false,
      error_count: 1,
      fixed_count: 0,
      issues: [],
      summary: null,
      error,
    });
    expect(reports.missingFields).toEqual({ missing_required: [], missing_optional: [], unknown: [], error });
    expect(reports.replaceLog).toMatchObject({ entries: [], touched_runs: [], error });
  });
});
