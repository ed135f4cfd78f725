import { describe, expect, it } from 'vitest';
import { loadSkillRegistry } from '../../src/domain/skills.js';
import {
  fieldValues,
  missingFields,
  parseTaskJson,
  TaskJsonError,
  TaskSchemaError,
  validateTask,
} from '../../src/domain/task.js';

const registry = loadSkillRegistry();
const meeting = registry.get('meeting_notice');
if (!meeting) throw new Error('meeting_notice missing');

function schemaError(value: unknown): TaskSchemaError {
  try {
    validateTask(value, registry);
  } catch (error) {
    if (error instanceof TaskSchemaError) return error;
    throw error;
  }
  throw new Error('expected a schema error');
}

describe('parseTaskJson', () => {
  it('parses a UTF-8 JSON object (BOM tolerated)', () => {
    const bytes = new TextEncoder().encode(
      '\ufeff{"task_type":"meeting_notice","payload":{"meeting_title":"会议"}}',
    );
    expect(parseTaskJson(bytes)).toEqual({ task_type: 'meeting_notice', payload: { meeting_title: '会议' } });
    expect(parseTaskJson('{"a":1}')).toEqual({ a: 1 });
  });

  it.each([
    [new Uint8Array([0x7b, 0xff, 0x7d]), 'not valid UTF-8'],
    ['not-json', 'invalid JSON'],
    ['[1,2]', 'must be an object'],
    ['null', 'must be an object'],
    ['"text"', 'must be an object'],
    [`${'{"a":'.repeat(33)}1${'}'.repeat(33)}`, 'deeper than 32'],
    [`{"a":${'['.repeat(100000)}`, 'deeper than 32'],
  ])('refuses %#', (input, message) => {
    expect(() => parseTaskJson(input)).toThrow(TaskJsonError);
    expect(() => parseTaskJson(input)).toThrow(message);
  });

  it('accepts exactly 32 levels and ignores brackets inside strings', () => {
    expect(() => parseTaskJson(`${'{"a":'.repeat(31)}[1]${'}'.repeat(31)}`)).not.toThrow();
    expect(() => parseTaskJson(`{"a":"${'['.repeat(100)}\\"{"}`)).not.toThrow();
  });

  it('does not echo the task content in its message', () => {
    expect(() => parseTaskJson('{"secret": oops}')).toThrow(/^invalid JSON( at .*)?$/);
    try {
      parseTaskJson('{"secret": oops}');
    } catch (error) {
      expect((error as Error).message).not.toContain('secret');
    }
  });
});

describe('validateTask', () => {
  it('accepts strings, lists and null; payload defaults to {}', () => {
    expect(validateTask({ task_type: 'meeting_notice' }, registry)).toEqual({
      task_type: 'meeting_notice',
      payload: {},
    });
    const task = validateTask(
      { task_type: 'meeting_notice', payload: { meeting_title: '', attendees: ['a', 'b'], organizer: null } },
      registry,
    );
    expect(task.payload).toEqual({ meeting_title: '', attendees: ['a', 'b'], organizer: null });
  });

  it('refuses an unknown task_type', () => {
    const error = schemaError({ task_type: 'nope', payload: {} });
    expect(error.errors[0]).toMatchObject({ path: 'task_type' });
    expect(error.error).toContain("unknown task_type 'nope'");
  });

  it('lists every problem with its path', () => {
    const error = schemaError({
      task_type: 'meeting_notice',
      extra: 1,
      payload: { meeting_title: 5, attendees: 'a', organizer: ['x'], bogus: 'x', meeting_date: true },
    });
    const paths = error.errors.map((e) => e.path).sort();
    expect(paths).toEqual([
      'extra',
      'payload.attendees',
      'payload.bogus',
      'payload.meeting_date',
      'payload.meeting_title',
      'payload.organizer',
    ]);
  });

  it('refuses non-string list items, a non-object payload and a missing task_type', () => {
    expect(schemaError({ task_type: 'meeting_notice', payload: { attendees: ['a', 1] } }).errors).toEqual([
      { path: 'payload.attendees.1', message: 'expected a string, got a number' },
    ]);
    expect(schemaError({ task_type: 'meeting_notice', payload: [] }).errors[0]?.path).toBe('payload');
    expect(schemaError({ task_type: 'meeting_notice', payload: null }).errors[0]?.path).toBe('payload');
    expect(schemaError({ payload: {} }).errors[0]).toEqual({ path: 'task_type', message: 'field required' });
    expect(schemaError({ task_type: 3 }).errors[0]?.path).toBe('task_type');
  });

  it('refuses payload strings over 1 MiB', () => {
    const big = 'x'.repeat(1024 * 1024 + 1);
    expect(
      schemaError({ task_type: 'meeting_notice', payload: { meeting_title: big } }).errors[0]?.message,
    ).toContain('1 MiB');
    expect(schemaError({ task_type: 'meeting_notice', payload: { attendees: [big] } }).errors[0]?.path).toBe(
      'payload.attendees.0',
    );
    // 1 MiB exactly is fine
    expect(() =>
      validateTask(
        { task_type: 'meeting_notice', payload: { meeting_title: 'x'.repeat(1024 * 1024) } },
        registry,
      ),
    ).not.toThrow();
  });
});

describe('fieldValues and missingFields', () => {
  it('joins lists with the separator; null is absent, empty string is a value', () => {
    const task = validateTask(
      { task_type: 'meeting_notice', payload: { meeting_title: '', attendees: ['A', 'B'], organizer: null } },
      registry,
    );
    const values = fieldValues(task, meeting);
    expect([...values]).toEqual([
      ['MEETING_TITLE', ''],
      ['ATTENDEES', 'A, B'],
    ]);
  });

  it('classifies template placeholders without value; sorted; only template ones count', () => {
    const values = new Map([['MEETING_TITLE', 'x']]);
    const missing = missingFields(
      ['MEETING_TITLE', 'ORGANIZER', 'MEETING_DATE', 'ATTENDEES', 'ZZ_EXTRA', 'AA_EXTRA', 'MEETING_DATE'],
      meeting,
      values,
    );
    expect(missing).toEqual({
      missing_required: ['MEETING_DATE', 'ORGANIZER'],
      missing_optional: ['AA_EXTRA', 'ATTENDEES', 'ZZ_EXTRA'],
      unknown: ['AA_EXTRA', 'ZZ_EXTRA'],
    });
  });
});
