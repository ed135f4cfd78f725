// `docops inspect` through the compiled bin (build first: `tsc -b`).
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildDocx, paragraphXml, runXml } from '../../src/domain/docx/build.js';

const BIN = fileURLToPath(new URL('../../bin/docops.js', import.meta.url));
let dir: string;

beforeAll(() => {
  if (!existsSync(fileURLToPath(new URL('../../dist/cli.js', import.meta.url)))) {
    throw new Error('build first: tsc -b (the CLI tests run the compiled bin)');
  }
  dir = mkdtempSync(join(tmpdir(), 'docops-cli-inspect-'));
  writeFileSync(
    join(dir, 'clean.docx'),
    buildDocx({
      body:
        paragraphXml('Title: 【MEETING_TITLE】') +
        `<w:p>${runXml('【MEETING_')}${runXml('TITLE】')}</w:p>` +
        paragraphXml('【EXTRA_FIELD】'),
    }),
  );
  writeFileSync(
    join(dir, 'unsupported.docx'),
    buildDocx({
      body: `${paragraphXml('Hello【FIELD')}<w:p>${runXml('【MEETING_')}${runXml('DATE】', '<w:b/>')}</w:p>`,
    }),
  );
  writeFileSync(join(dir, 'broken.docx'), 'not-a-docx');
});

afterAll(() => {
  rmSync(dir, { recursive: true, force: true });
});

function docops(args: string[], env: Record<string, string> = {}) {
  const result = spawnSync(process.execPath, [BIN, 'inspect', ...args], {
    cwd: dir,
    encoding: 'utf8',
    env: { PATH: '/usr/bin:/bin', ...env },
  });
  return { code: result.status, stdout: result.stdout, stderr: result.stderr };
}

describe('docops inspect', () => {
  it('prints JSON with placeholders, occurrences and the skill comparison; exit 0', () => {
    const run = docops(['--template', 'clean.docx', '--skill', 'meeting_notice', '--json']);
    expect(run.code).toBe(0);
    const result = JSON.parse(run.stdout);
    expect(result.fingerprint).toMatch(/^[0-9a-f]{64}$/);
    expect(result.placeholders).toEqual([
      {
        field_name: 'MEETING_TITLE',
        occurrences: [
          { paragraph_path: 'p0', run_id: 'p0:r0', merged_runs: null },
          { paragraph_path: 'p1', run_id: 'p1:r0', merged_runs: ['p1:r0', 'p1:r1'] },
        ],
      },
      {
        field_name: 'EXTRA_FIELD',
        occurrences: [{ paragraph_path: 'p2', run_id: 'p2:r0', merged_runs: null }],
      },
    ]);
    expect(result.unsupported).toEqual([]);
    expect(result.skill).toEqual({
      name: 'meeting_notice',
      known_fields: ['MEETING_TITLE'],
      unknown_placeholders: ['EXTRA_FIELD'],
      required_fields_absent_from_template: ['MEETING_DATE', 'MEETING_LOCATION', 'MEETING_TIME', 'ORGANIZER'],
    });
  });

  it('without --skill the skill section is null; the readable form lists the same', () => {
    expect(JSON.parse(docops(['--template', 'clean.docx', '--json']).stdout).skill).toBeNull();
    const run = docops(['--template', 'clean.docx', '--skill', 'meeting_notice']);
    expect(run.code).toBe(0);
    expect(run.stdout).toContain('placeholders: 2');
    expect(run.stdout).toContain('MEETING_TITLE x2: p0:r0, p1:r0 (merged p1:r0+p1:r1)');
    expect(run.stdout).toContain('unknown_placeholders: EXTRA_FIELD');
    expect(run.stdout).toContain('unsupported: 0');
  });

  it('exits 3 when the template has unsupported tokens', () => {
    const run = docops(['--template', 'unsupported.docx', '--json']);
    expect(run.code).toBe(3);
    const kinds = JSON.parse(run.stdout).unsupported.map((u: { kind: string }) => u.kind);
    expect(kinds).toEqual(['unclosed_bracket', 'cross_run']);
    const readable = docops(['--template', 'unsupported.docx']);
    expect(readable.code).toBe(3);
    expect(readable.stdout).toContain('unclosed_bracket');
  });

  it('exits 1 on errors', () => {
    const missing = docops(['--template', 'nope.docx']);
    expect(missing.code).toBe(1);
    expect(missing.stderr).toMatch(/^ERROR: --template: .*nope\.docx/m);
    const broken = docops(['--template', 'broken.docx']);
    expect(broken.code).toBe(1);
    expect(broken.stderr).toMatch(/^ERROR: template is not a \.docx/m);
    const skill = docops(['--template', 'clean.docx', '--skill', 'unknown_skill']);
    expect(skill.code).toBe(1);
    expect(skill.stderr).toContain("unknown skill 'unknown_skill'");
    expect(docops([]).code).toBe(1);
  });

  it('knows registry skills', () => {
    const skills = join(dir, 'skills');
    mkdirSync(skills, { recursive: true });
    writeFileSync(
      join(skills, 'x.yaml'),
      'name: extra_skill\nfields:\n  extra: {placeholder: EXTRA_FIELD, required: true}\n',
    );
    const run = docops(['--template', 'clean.docx', '--skill', 'extra_skill', '--json'], {
      DOCOPS_SKILLS_DIR: skills,
    });
    expect(run.code).toBe(0);
    expect(JSON.parse(run.stdout).skill.known_fields).toEqual(['EXTRA_FIELD']);
  });
});
