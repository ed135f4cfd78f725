import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import {
  loadSkillRegistry,
  metaSkills,
  SkillRegistryError,
  taskPayloadSchemas,
} from '../../src/domain/skills.js';

let dir: string;

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'docops-skills-'));
});

afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

const VISITOR_PASS = `name: visitor_pass
description: Site visitor pass
list_separator: " / "
fields:
  visitor_name: {placeholder: VISITOR_NAME, required: true}
  visit_date:   {placeholder: VISIT_DATE, required: true}
  escorts:      {placeholder: ESCORTS, type: "list[str]"}
`;

function loadError(): SkillRegistryError {
  try {
    loadSkillRegistry(dir);
  } catch (error) {
    if (error instanceof SkillRegistryError) return error;
    throw error;
  }
  throw new Error('expected the registry to fail');
}

describe('built-in skills', () => {
  it('has the three built-ins with the fields of §3.2 in definition order', () => {
    const registry = loadSkillRegistry();
    expect(registry.names()).toEqual(['inspection_record', 'meeting_notice', 'training_notice']);
    const meeting = registry.get('meeting_notice');
    expect(meeting?.source).toBe('builtin');
    expect(meeting?.listSeparator).toBe(', ');
    expect(meeting?.description).not.toBe('');
    expect(meeting?.fields).toEqual([
      { key: 'meeting_title', placeholder: 'MEETING_TITLE', required: true, type: 'str' },
      { key: 'meeting_date', placeholder: 'MEETING_DATE', required: true, type: 'str' },
      { key: 'meeting_time', placeholder: 'MEETING_TIME', required: true, type: 'str' },
      { key: 'meeting_location', placeholder: 'MEETING_LOCATION', required: true, type: 'str' },
      { key: 'organizer', placeholder: 'ORGANIZER', required: true, type: 'str' },
      { key: 'attendees', placeholder: 'ATTENDEES', required: false, type: 'list[str]' },
    ]);
    const training = registry.get('training_notice');
    expect(training?.fields.filter((f) => f.required).map((f) => f.key)).toEqual([
      'training_title',
      'training_date',
      'training_time',
      'training_location',
      'trainer',
    ]);
    expect(training?.fields.map((f) => f.key)).toContain('organizer');
    const inspection = registry.get('inspection_record');
    expect(inspection?.fields.filter((f) => f.required).map((f) => f.placeholder)).toEqual([
      'INSPECTION_SUBJECT',
      'INSPECTION_DATE',
      'INSPECTOR',
      'ISSUE_SUMMARY',
    ]);
    expect(inspection?.fields.map((f) => f.placeholder)).toEqual([
      'INSPECTION_SUBJECT',
      'INSPECTION_DATE',
      'INSPECTOR',
      'DEPARTMENT',
      'ISSUE_SUMMARY',
      'ACTION_REQUIRED',
      'DEADLINE',
    ]);
  });
});

describe('registry directory', () => {
  it('adds yaml, yml and json skills (not recursive, other files ignored)', async () => {
    await writeFile(join(dir, 'visitor.yaml'), VISITOR_PASS);
    await writeFile(
      join(dir, 'b.json'),
      JSON.stringify({ name: 'badge', fields: { holder: { placeholder: 'HOLDER' } } }),
    );
    await writeFile(join(dir, 'c.yml'), 'name: c_skill\nfields:\n  x: {placeholder: X}\n');
    await writeFile(join(dir, 'notes.txt'), 'not a skill');
    const registry = loadSkillRegistry(dir);
    expect(registry.names()).toEqual([
      'badge',
      'c_skill',
      'inspection_record',
      'meeting_notice',
      'training_notice',
      'visitor_pass',
    ]);
    const visitor = registry.get('visitor_pass');
    expect(visitor).toMatchObject({
      source: 'registry',
      description: 'Site visitor pass',
      listSeparator: ' / ',
    });
    expect(visitor?.fields.map((f) => [f.key, f.type, f.required])).toEqual([
      ['visitor_name', 'str', true],
      ['visit_date', 'str', true],
      ['escorts', 'list[str]', false],
    ]);
    expect(registry.get('badge')?.listSeparator).toBe(', ');
    expect(registry.all().map((s) => s.name)).toEqual(registry.names());
  });

  it.each([
    ['bad.yaml', 'name: x\nfields: [1', 'YAML syntax error'],
    ['bad.json', '{"name": ', 'invalid JSON'],
    ['unknown.yaml', 'name: ok_name\ncolour: red\nfields:\n  a: {placeholder: A}\n', "unknown key 'colour'"],
    ['badname.yaml', 'name: Bad-Name\nfields:\n  a: {placeholder: A}\n', "bad name 'Bad-Name'"],
    ['badph.yaml', 'name: ok_name\nfields:\n  a: {placeholder: lower}\n', 'placeholder must match'],
    ['badkey.yaml', 'name: ok_name\nfields:\n  A: {placeholder: A}\n', "bad field key 'A'"],
    ['nofields.yaml', 'name: ok_name\nfields: {}\n', 'at least one field'],
    ['badtype.yaml', 'name: ok_name\nfields:\n  a: {placeholder: A, type: int}\n', 'type must be'],
    ['fieldkey.yaml', 'name: ok_name\nfields:\n  a: {placeholder: A, default: x}\n', "unknown key 'default'"],
    [
      'dup.yaml',
      'name: meeting_notice\nfields:\n  a: {placeholder: A}\n',
      "duplicate skill name 'meeting_notice'",
    ],
    ['tag.yaml', 'name: !custom ok_name\nfields:\n  a: {placeholder: A}\n', 'not allowed'],
  ])('refuses %s naming the file and the problem', async (file, content, problem) => {
    await writeFile(join(dir, file), content);
    const error = loadError();
    expect(error.message).toContain(file);
    expect(error.message).toContain(problem);
    expect(error.message).not.toContain(dir);
  });

  it('refuses a name defined twice in the registry', async () => {
    await writeFile(join(dir, 'a.yaml'), VISITOR_PASS);
    await writeFile(join(dir, 'b.yaml'), VISITOR_PASS);
    expect(loadError().message).toMatch(/b\.yaml.*duplicate skill name 'visitor_pass'.*a\.yaml/);
  });

  it('fails for a missing directory', () => {
    expect(() => loadSkillRegistry(join(dir, 'missing'))).toThrow(SkillRegistryError);
  });
});

describe('/v1/meta shapes', () => {
  it('lists skills with sorted fields and payload schemas with optional nullable fields', async () => {
    await writeFile(join(dir, 'visitor.yaml'), VISITOR_PASS);
    const registry = loadSkillRegistry(dir);
    const skills = metaSkills(registry);
    expect(Object.keys(skills)).toEqual(registry.names());
    expect(skills.meeting_notice?.fields.meeting_title).toEqual({
      placeholder: 'MEETING_TITLE',
      type: 'str',
      required: true,
    });
    expect(Object.keys(skills.meeting_notice?.fields ?? {})).toEqual([
      'attendees',
      'meeting_date',
      'meeting_location',
      'meeting_time',
      'meeting_title',
      'organizer',
    ]);
    expect(skills.visitor_pass).toMatchObject({ source: 'registry', list_separator: ' / ' });
    expect(skills.meeting_notice?.source).toBe('builtin');

    const schemas = taskPayloadSchemas(registry);
    expect(Object.keys(schemas)).toEqual(registry.names());
    expect(schemas.meeting_notice?.extra_policy).toBe('forbid');
    expect(schemas.meeting_notice?.fields.attendees).toEqual({
      type: 'list[str]',
      required: false,
      nullable: true,
    });
    expect(schemas.meeting_notice?.fields.meeting_title).toEqual({
      type: 'str',
      required: false,
      nullable: true,
    });
    expect(Object.keys(schemas.visitor_pass?.fields ?? {})).toEqual([
      'escorts',
      'visit_date',
      'visitor_name',
    ]);
  });
});
