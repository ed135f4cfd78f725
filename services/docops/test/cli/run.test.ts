// `docops run` through the compiled bin (build first: `tsc -b`).
import { spawnSync } from 'node:child_process';
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  type BuildDocxOptions,
  buildDocx,
  paragraphXml,
  runXml,
  tableXml,
} from '../../src/domain/docx/build.js';

const BIN = fileURLToPath(new URL('../../bin/docops.js', import.meta.url));
const FOUR = ['out.docx', 'out.format_report.json', 'out.missing_fields.json', 'out.replace_log.json'];

let root: string;

beforeAll(() => {
  if (!existsSync(fileURLToPath(new URL('../../dist/cli.js', import.meta.url)))) {
    throw new Error('build first: tsc -b (the CLI tests run the compiled bin)');
  }
  root = mkdtempSync(join(tmpdir(), 'docops-cli-run-'));
});

afterAll(() => {
  rmSync(root, { recursive: true, force: true });
});

let counter = 0;

/** A fresh working directory holding template.docx and task.json. */
function workspace(template: BuildDocxOptions, task: unknown): string {
  counter += 1;
  const dir = join(root, `w${counter}`);
  mkdirSync(dir);
  writeFileSync(join(dir, 'template.docx'), buildDocx(template));
  writeFileSync(join(dir, 'task.json'), typeof task === 'string' ? task : JSON.stringify(task));
  return dir;
}

function docops(cwd: string, args: string[], env: Record<string, string> = {}) {
  const result = spawnSync(process.execPath, [BIN, ...args], {
    cwd,
    encoding: 'utf8',
    env: { PATH: '/usr/bin:/bin', HOME: cwd, ...env },
  });
  return {
    code: result.status,
    stdout: result.stdout,
    stderr: result.stderr,
    lines: result.stdout.split('\n').filter((line) => line !== ''),
  };
}

const BASE = ['run', '--template', 'template.docx', '--task', 'task.json', '--out-dir', 'out'];
const TITLE_TEMPLATE = { paragraphs: ['Title: 【MEETING_TITLE】'] };
const TITLE_TASK = { task_type: 'meeting_notice', payload: { meeting_title: 'Kickoff' } };
const TABLE_TEMPLATE = { body: paragraphXml('Title: 【MEETING_TITLE】') + tableXml([['a', 'b']]) };
const CROSS_RUN_TEMPLATE = { body: `<w:p>${runXml('【MEETING_')}${runXml('TITLE】', '<w:b/>')}</w:p>` };

const json = (dir: string, name: string) => JSON.parse(readFileSync(join(dir, 'out', name), 'utf8'));
const outputs = (dir: string) => (existsSync(join(dir, 'out')) ? readdirSync(join(dir, 'out')).sort() : []);

describe('docops run (case 22)', () => {
  it('writes the four outputs and exits 0', () => {
    const dir = workspace(TITLE_TEMPLATE, TITLE_TASK);
    const run = docops(dir, BASE);
    expect(run.code).toBe(0);
    expect(run.lines[0]).toBe('INFO(format): baseline=template');
    expect(run.lines.at(-1)).toBe('INFO: success');
    expect(outputs(dir)).toEqual(FOUR);
    expect(json(dir, 'out.replace_log.json').entries[0]).toMatchObject({
      status: 'replaced',
      new_text: 'Kickoff',
    });
  });

  it('cross-run template → 3 with unsupported_count ≥ 1', () => {
    const dir = workspace(CROSS_RUN_TEMPLATE, TITLE_TASK);
    const run = docops(dir, BASE);
    expect(run.code).toBe(3);
    expect(run.stdout).toContain('ERROR: template unsupported placeholders');
    expect(json(dir, 'out.replace_log.json').summary.unsupported_count).toBeGreaterThanOrEqual(1);
    expect(outputs(dir)).toEqual(FOUR);
  });

  it('empty payload → 2 with missing_required [MEETING_TITLE]', () => {
    const dir = workspace(TITLE_TEMPLATE, { task_type: 'meeting_notice', payload: {} });
    const run = docops(dir, BASE);
    expect(run.code).toBe(2);
    expect(run.stdout).toContain('ERROR: missing required fields');
    expect(json(dir, 'out.missing_fields.json').missing_required).toEqual(['MEETING_TITLE']);
  });

  it('table template with --format-mode strict --format-baseline policy → 4', () => {
    const dir = workspace(TABLE_TEMPLATE, TITLE_TASK);
    const run = docops(dir, [...BASE, '--format-mode', 'strict', '--format-baseline', 'policy']);
    expect(run.code).toBe(4);
    expect(run.lines[0]).toBe('INFO(format): baseline=policy');
    expect(run.stdout).toContain('WARNING(format): format issues detected (TABLE_FORBIDDEN=1).');
    expect(run.stdout).toContain('result=FAILED');
    expect(run.lines.at(-1)).toBe('ERROR: format validation failed');
  });

  it('the CLI reports 2 over 4 with --preset strict (case 8)', () => {
    const dir = workspace(TABLE_TEMPLATE, { task_type: 'meeting_notice', payload: {} });
    const run = docops(dir, [...BASE, '--preset', 'strict']);
    expect(run.code).toBe(2);
    expect(json(dir, 'out.format_report.json').passed).toBe(false);
  });
});

describe('failures', () => {
  it('invalid task JSON → 1 and fallback reports with error.error_type (case 23)', () => {
    const dir = workspace(TITLE_TEMPLATE, 'not-json');
    const run = docops(dir, BASE);
    expect(run.code).toBe(1);
    expect(run.stderr).toMatch(/^ERROR: invalid task/m);
    expect(outputs(dir)).toEqual([
      'out.format_report.json',
      'out.missing_fields.json',
      'out.replace_log.json',
    ]);
    for (const name of ['out.format_report.json', 'out.missing_fields.json', 'out.replace_log.json']) {
      const report = json(dir, name);
      expect(report.error).toMatchObject({
        error_type: 'TaskJsonError',
        stage: 'load_task',
        docx_write_error: false,
      });
      expect(typeof report.error.error_message).toBe('string');
    }
    expect(json(dir, 'out.format_report.json')).toMatchObject({ passed: false, error_count: 1 });
    expect(json(dir, 'out.replace_log.json')).toMatchObject({ entries: [], touched_runs: [] });
    expect(json(dir, 'out.missing_fields.json').missing_required).toEqual([]);
  });

  it('a schema error, an unknown --skill and a skill ≠ task_type → 1 with fallback reports', () => {
    const bad = workspace(TITLE_TEMPLATE, { task_type: 'meeting_notice', payload: { nope: 1 } });
    const schema = docops(bad, BASE);
    expect(schema.code).toBe(1);
    expect(json(bad, 'out.format_report.json').error.error_type).toBe('TaskSchemaError');

    const dir = workspace(TITLE_TEMPLATE, TITLE_TASK);
    const unknown = docops(dir, [...BASE, '--skill', 'unknown_skill']);
    expect(unknown.code).toBe(1);
    expect(unknown.stderr).toContain("unknown skill 'unknown_skill'");
    const mismatch = docops(dir, [...BASE, '--skill', 'training_notice']);
    expect(mismatch.code).toBe(1);
    expect(mismatch.stderr).toContain('skill and task_type must match');
    expect(json(dir, 'out.format_report.json').error.stage).toBe('resolve_skill');
    expect(outputs(dir)).not.toContain('out.docx');
  });

  it('a missing --template or --task is a usage error naming the option; nothing is written', () => {
    const dir = workspace(TITLE_TEMPLATE, TITLE_TASK);
    const template = docops(dir, [
      'run',
      '--template',
      'nope.docx',
      '--task',
      'task.json',
      '--out-dir',
      'out',
    ]);
    expect(template.code).toBe(1);
    expect(template.stderr).toMatch(/^ERROR: --template: .*nope\.docx/m);
    const task = docops(dir, [
      'run',
      '--template',
      'template.docx',
      '--task',
      'missing.json',
      '--out-dir',
      'out',
    ]);
    expect(task.code).toBe(1);
    expect(task.stderr).toMatch(/^ERROR: --task: .*missing\.json/m);
    expect(existsSync(join(dir, 'out'))).toBe(false);
    const noArgs = docops(dir, ['run']);
    expect(noArgs.code).toBe(1);
    expect(noArgs.stderr).toMatch(/^ERROR: /m);
    const unknownOption = docops(dir, [...BASE, '--colour']);
    expect(unknownOption.code).toBe(1);
    expect(unknownOption.stderr).toMatch(/^ERROR: .*--colour/m);
  });

  it('an invalid enum value → 1 naming the option, fallback written', () => {
    const dir = workspace(TITLE_TEMPLATE, TITLE_TASK);
    const run = docops(dir, [...BASE, '--format-mode', 'loud']);
    expect(run.code).toBe(1);
    expect(run.stderr).toContain("--format-mode: invalid value 'loud'");
    expect(outputs(dir)).toEqual([
      'out.format_report.json',
      'out.missing_fields.json',
      'out.replace_log.json',
    ]);
    expect(json(dir, 'out.missing_fields.json').error.error_type).toBe('UsageError');
  });

  it('a bad template → 1 with fallback reports naming the stage', () => {
    const dir = workspace(TITLE_TEMPLATE, TITLE_TASK);
    writeFileSync(join(dir, 'template.docx'), 'not-a-docx');
    const run = docops(dir, BASE);
    expect(run.code).toBe(1);
    expect(run.stderr).toContain('template is not a .docx');
    expect(json(dir, 'out.format_report.json').error).toMatchObject({
      stage: 'open_template',
      error_type: 'DocopsInputError',
    });
    expect(outputs(dir)).not.toContain('out.docx');
  });

  it('--pdf without LibreOffice → 1 with a clear message', () => {
    const dir = workspace(TITLE_TEMPLATE, TITLE_TASK);
    const run = docops(dir, [...BASE, '--pdf'], { PATH: dir, DOCOPS_SOFFICE_PATH: '' });
    expect(run.code).toBe(1);
    expect(run.stderr).toContain('PDF export is unavailable');
    expect(outputs(dir)).not.toContain('out.docx');
  });
});

describe('overwrite rules', () => {
  it('--no-overwrite with existing outputs → 1, existing files unchanged, missing ones not created (case 24)', () => {
    const dir = workspace(TITLE_TEMPLATE, TITLE_TASK);
    mkdirSync(join(dir, 'out'));
    writeFileSync(join(dir, 'out', 'out.docx'), 'old');
    writeFileSync(join(dir, 'out', 'out.format_report.json'), '{"old":true}');
    const run = docops(dir, [...BASE, '--no-overwrite']);
    expect(run.code).toBe(1);
    expect(run.stderr).toContain('--no-overwrite');
    expect(readFileSync(join(dir, 'out', 'out.docx'), 'utf8')).toBe('old');
    expect(readFileSync(join(dir, 'out', 'out.format_report.json'), 'utf8')).toBe('{"old":true}');
    expect(outputs(dir)).toEqual(['out.docx', 'out.format_report.json']);
  });

  it('--no-overwrite without existing outputs renders normally', () => {
    const dir = workspace(TITLE_TEMPLATE, TITLE_TASK);
    expect(docops(dir, [...BASE, '--no-overwrite']).code).toBe(0);
    expect(outputs(dir)).toEqual(FOUR);
  });

  it('overwrites by default and says so (case 25); --force too; --force with --no-overwrite → 1', () => {
    const dir = workspace(TITLE_TEMPLATE, TITLE_TASK);
    expect(docops(dir, BASE).code).toBe(0);
    const again = docops(dir, BASE);
    expect(again.code).toBe(0);
    expect(again.stdout).toContain(
      'INFO: overwriting existing outputs: out.docx, out.replace_log.json, out.missing_fields.json, out.format_report.json',
    );
    expect(docops(dir, [...BASE, '--force']).stdout).toContain('INFO: overwriting existing outputs');
    const both = docops(dir, [...BASE, '--force', '--no-overwrite']);
    expect(both.code).toBe(1);
    expect(both.stderr).toMatch(/^ERROR: --force cannot be combined with --no-overwrite/m);
  });
});

describe('modes and presets', () => {
  it('--unsupported-mode warn on a cross-run template → 0 and a WARNING(unsupported) line (case 26)', () => {
    const dir = workspace(CROSS_RUN_TEMPLATE, TITLE_TASK);
    const run = docops(dir, [...BASE, '--unsupported-mode', 'WARN']);
    expect(run.code).toBe(0);
    expect(run.stdout).toContain(
      'WARNING(unsupported): unsupported placeholders detected (count=1, mode=warn).',
    );
  });

  it('--debug-dump with a Symbol-font run → out.debug.json with suspicious pre_pipeline runs (case 27)', () => {
    const dir = workspace(
      {
        body:
          paragraphXml('【MEETING_TITLE】') +
          paragraphXml('\uf0b7 bullet', { rPr: '<w:rFonts w:ascii="Symbol" w:hAnsi="Symbol"/>' }),
      },
      TITLE_TASK,
    );
    const run = docops(dir, [...BASE, '--debug-dump']);
    expect(run.code).toBe(0);
    expect(outputs(dir)).toEqual([...FOUR, 'out.debug.json'].sort());
    const debug = json(dir, 'out.debug.json');
    expect(debug.pre_pipeline.suspicious_runs.length).toBeGreaterThan(0);
    expect(debug.pre_pipeline.suspicious_runs[0].reasons).toContain('symbol_font');
    expect(debug.post_pipeline.stage).toBe('post_pipeline');
  });

  it('--preset with a format option → 1, "--preset cannot be combined", no outputs (case 28)', () => {
    const dir = workspace(TITLE_TEMPLATE, TITLE_TASK);
    const run = docops(dir, [...BASE, '--preset', 'strict', '--format-mode', 'report']);
    expect(run.code).toBe(1);
    expect(run.stderr).toContain('--preset cannot be combined');
    expect(run.stderr).toContain('--format-mode');
    expect(existsSync(join(dir, 'out'))).toBe(false);
  });

  it('--preset with --policy is allowed', () => {
    const dir = workspace(TITLE_TEMPLATE, TITLE_TASK);
    writeFileSync(join(dir, 'policy.yaml'), 'forbid_tables: false\n');
    expect(docops(dir, [...BASE, '--preset', 'strict', '--policy', 'policy.yaml']).code).toBe(0);
  });

  it('--preset template prints format_fix_mode=none; default and quick print report/template/safe (case 29)', () => {
    const dir = workspace(TITLE_TEMPLATE, TITLE_TASK);
    expect(docops(dir, [...BASE, '--preset', 'template']).stdout).toContain(
      'format_mode=report format_fix_mode=none format_baseline=template',
    );
    for (const extra of [[], ['--preset', 'quick']]) {
      const run = docops(dir, [...BASE, ...extra]);
      expect(run.stdout).toContain('format_summary:');
      expect(run.stdout).toContain('format_mode=report format_fix_mode=safe format_baseline=template');
      expect(run.stdout).toContain('result=PASSED');
    }
  });

  it('--format-report json prints neither the summary nor WARNING lines', () => {
    const dir = workspace(TABLE_TEMPLATE, TITLE_TASK);
    const run = docops(dir, [
      ...BASE,
      '--format-mode',
      'strict',
      '--format-baseline',
      'policy',
      '--format-report',
      'json',
    ]);
    expect(run.code).toBe(4);
    expect(run.stdout).not.toContain('format_summary:');
    expect(run.stdout).not.toContain('WARNING');
    expect(run.lines).toEqual(['INFO(format): baseline=policy', 'ERROR: format validation failed']);
  });

  it('template baseline on a table template in strict mode → 0, override forbid_tables false (case 30)', () => {
    const dir = workspace(TABLE_TEMPLATE, TITLE_TASK);
    const run = docops(dir, [...BASE, '--format-mode', 'strict', '--format-baseline', 'template']);
    expect(run.code).toBe(0);
    const report = json(dir, 'out.format_report.json');
    expect(report.issues.some((i: { code: string }) => i.code === 'TABLE_FORBIDDEN')).toBe(false);
    expect(report.summary.effective_policy_overrides.forbid_tables).toBe(false);
  });

  it('480-twip indent: policy baseline strict → 4, template baseline → 0 with override 480 (case 31)', () => {
    const template = {
      body:
        paragraphXml('【MEETING_TITLE】') +
        paragraphXml('Indented body', { pPr: '<w:ind w:firstLine="480"/>' }),
    };
    const dir = workspace(template, TITLE_TASK);
    const policy = docops(dir, [...BASE, '--format-mode', 'strict', '--format-baseline', 'policy']);
    expect(policy.code).toBe(4);
    expect(policy.stdout).toContain('FIRST_LINE_INDENT_MISMATCH=1');
    const tpl = docops(dir, [...BASE, '--format-mode', 'strict', '--format-baseline', 'template']);
    expect(tpl.code).toBe(0);
    expect(tpl.stdout).toContain('dominant_indent: 480->480');
    expect(
      json(dir, 'out.format_report.json').summary.effective_policy_overrides.first_line_indent_twips,
    ).toBe(480);
  });
});

describe('policies', () => {
  it('--policy: BUSINESS_DEFAULT_LATIN works, unknown BUSINESS_DEFAULT_X and unknown keys fail naming them (case 39)', () => {
    const dir = workspace(TITLE_TEMPLATE, TITLE_TASK);
    writeFileSync(join(dir, 'good.yaml'), 'run_font_latin: BUSINESS_DEFAULT_LATIN\n');
    expect(docops(dir, [...BASE, '--policy', 'good.yaml']).code).toBe(0);
    writeFileSync(join(dir, 'bad.yaml'), 'run_font_latin: BUSINESS_DEFAULT_X\n');
    const bad = docops(dir, [...BASE, '--policy', 'bad.yaml']);
    expect(bad.code).toBe(1);
    expect(bad.stderr).toContain('BUSINESS_DEFAULT_X');
    expect(json(dir, 'out.format_report.json').error.stage).toBe('load_policy');
    writeFileSync(join(dir, 'unknown.yaml'), 'colour: red\n');
    const unknown = docops(dir, [...BASE, '--policy', 'unknown.yaml']);
    expect(unknown.code).toBe(1);
    expect(unknown.stderr).toContain("unknown policy key 'colour'");
  });

  it('exports the suggested policy and loads it back with --policy (case 40)', () => {
    const template = {
      body: paragraphXml('【MEETING_TITLE】', { pPr: '<w:ind w:firstLine="480"/>' }) + tableXml([['x']]),
    };
    const dir = workspace(template, TITLE_TASK);
    const exported = docops(dir, [...BASE, '--export-suggested-policy', 'suggested.yaml']);
    expect(exported.code).toBe(0);
    expect(readFileSync(join(dir, 'suggested.yaml'), 'utf8')).toBe(
      'forbid_tables: false\nfirst_line_indent_twips: 480\ntwips_tolerance: 20\n',
    );
    expect(outputs(dir)).toEqual(FOUR);
    const strict = docops(dir, [...BASE, '--preset', 'strict', '--policy', 'suggested.yaml']);
    expect(strict.code).toBe(0);
    const report = json(dir, 'out.format_report.json');
    expect(report.issues.filter((i: { severity: string }) => i.severity === 'error')).toEqual([]);
  });
});

describe('registry skills (case 45)', () => {
  it('renders a skill from DOCOPS_SKILLS_DIR', () => {
    const dir = workspace(
      { paragraphs: ['Visitor: 【VISITOR_NAME】', 'Escorts: 【ESCORTS】'] },
      {
        task_type: 'visitor_pass',
        payload: { visitor_name: 'Ada', visit_date: 'Mon', escorts: ['Bob', 'Cy'] },
      },
    );
    const skills = join(dir, 'skills');
    mkdirSync(skills);
    writeFileSync(
      join(skills, 'visitor.yaml'),
      'name: visitor_pass\nlist_separator: " / "\nfields:\n  visitor_name: {placeholder: VISITOR_NAME, required: true}\n' +
        '  visit_date: {placeholder: VISIT_DATE, required: true}\n  escorts: {placeholder: ESCORTS, type: "list[str]"}\n',
    );
    const run = docops(dir, BASE, { DOCOPS_SKILLS_DIR: skills });
    expect(run.code).toBe(0);
    const entries = json(dir, 'out.replace_log.json').entries.map((e: { new_text: string }) => e.new_text);
    expect(entries).toEqual(['Ada', 'Bob / Cy']);
    // without the registry the task type is unknown
    expect(docops(dir, BASE).code).toBe(1);
  });

  it('an invalid registry file fails naming the file', () => {
    const dir = workspace(TITLE_TEMPLATE, TITLE_TASK);
    const skills = join(dir, 'skills');
    mkdirSync(skills);
    writeFileSync(join(skills, 'broken_skill.yaml'), 'name: Bad Name\nfields: {}\n');
    const run = docops(dir, BASE, { DOCOPS_SKILLS_DIR: skills });
    expect(run.code).toBe(1);
    expect(run.stderr).toContain('broken_skill.yaml');
    const missing = docops(dir, BASE, { DOCOPS_SKILLS_DIR: join(dir, 'nope') });
    expect(missing.code).toBe(1);
    expect(missing.stderr).toContain('DOCOPS_SKILLS_DIR');
  });
});

describe('help', () => {
  it('prints --help and exits 0', () => {
    const run = docops(root, ['run', '--help']);
    expect(run.code).toBe(0);
    expect(run.stdout).toContain('--format-baseline');
    expect(run.stdout).toContain('--no-overwrite');
  });
});
