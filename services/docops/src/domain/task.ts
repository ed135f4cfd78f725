// Task JSON (§3.2): `{"task_type": string, "payload": object}`, checked against the skill's fields.

import type { Skill, SkillRegistry } from './skills.js';
import type { MissingFields } from './types.js';

export type PayloadValue = string | string[] | null;

export interface Task {
  task_type: string;
  payload: Record<string, PayloadValue>;
}

export const MAX_TASK_DEPTH = 32;
export const MAX_PAYLOAD_STRING_BYTES = 1024 * 1024;

/** The task is not UTF-8, not JSON, not an object or nested too deeply; the message is short. */
export class TaskJsonError extends Error {
  override readonly name = 'TaskJsonError';
}

export interface TaskSchemaIssue {
  /** dotted path, e.g. `payload.attendees.1`; `task_type`; `` for the document */
  path: string;
  message: string;
}

/** The task does not match the schema of its skill. */
export class TaskSchemaError extends Error {
  override readonly name = 'TaskSchemaError';
  readonly error: string;
  constructor(readonly errors: TaskSchemaIssue[]) {
    const summary = errors
      .slice(0, 5)
      .map((issue) => (issue.path ? `${issue.path}: ${issue.message}` : issue.message))
      .join('; ');
    const more = errors.length > 5 ? ` (and ${errors.length - 5} more)` : '';
    super(`task does not match the schema: ${summary}${more}`);
    this.error = this.message;
  }
}

/** Deepest bracket nesting outside strings, stopping early past `limit`. */
function nestingDepthExceeds(text: string, limit: number): boolean {
  let depth = 0;
  let inString = false;
  for (let i = 0; i < text.length; i++) {
    const code = text.charCodeAt(i);
    if (inString) {
      if (code === 0x5c) i++;
      else if (code === 0x22) inString = false;
    } else if (code === 0x22) {
      inString = true;
    } else if (code === 0x7b || code === 0x5b) {
      depth++;
      if (depth > limit) return true;
    } else if (code === 0x7d || code === 0x5d) {
      depth--;
    }
  }
  return false;
}

function jsonSyntaxMessage(error: unknown): string {
  // V8's messages quote the input; only the position is kept so that no task content is echoed.
  const text = error instanceof Error ? error.message : '';
  const lineColumn = /\(line (\d+) column (\d+)\)/.exec(text);
  if (lineColumn) return `invalid JSON at line ${lineColumn[1]} column ${lineColumn[2]}`;
  const position = /at position (\d+)/.exec(text);
  if (position) return `invalid JSON at position ${position[1]}`;
  if (/end of JSON input/i.test(text)) return 'invalid JSON: unexpected end of input';
  return 'invalid JSON';
}

/** Decodes (strict UTF-8) and parses a task; the result is a JSON object nested at most 32 deep. */
export function parseTaskJson(bytes: Uint8Array | string): unknown {
  let text: string;
  if (typeof bytes === 'string') {
    text = bytes.charCodeAt(0) === 0xfeff ? bytes.slice(1) : bytes;
  } else {
    try {
      text = new TextDecoder('utf-8', { fatal: true }).decode(bytes);
    } catch {
      throw new TaskJsonError('task is not valid UTF-8');
    }
  }
  if (nestingDepthExceeds(text, MAX_TASK_DEPTH)) {
    throw new TaskJsonError(`task JSON is nested deeper than ${MAX_TASK_DEPTH} levels`);
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (error) {
    throw new TaskJsonError(jsonSyntaxMessage(error));
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new TaskJsonError('task JSON must be an object');
  }
  return value;
}

function describe(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'an array';
  if (typeof value === 'object') return 'an object';
  return `a ${typeof value}`;
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function tooLong(value: string): boolean {
  // Cheap bound first: a UTF-8 encoding takes at least one byte and at most three per UTF-16 unit.
  if (value.length * 3 <= MAX_PAYLOAD_STRING_BYTES) return false;
  return Buffer.byteLength(value, 'utf8') > MAX_PAYLOAD_STRING_BYTES;
}

/**
 * Checks a parsed task against the registry: known `task_type`, no extra keys at either level, `str`
 * fields take a string or null, `list[str]` fields an array of strings or null, strings ≤ 1 MiB.
 * Throws TaskSchemaError listing every problem.
 */
export function validateTask(value: unknown, registry: SkillRegistry): Task {
  const errors: TaskSchemaIssue[] = [];
  if (!isPlainObject(value)) throw new TaskSchemaError([{ path: '', message: 'task must be a JSON object' }]);
  for (const key of Object.keys(value)) {
    if (key !== 'task_type' && key !== 'payload')
      errors.push({ path: key, message: 'extra field not permitted' });
  }
  let skill: Skill | undefined;
  const taskType = value.task_type;
  if (taskType === undefined) {
    errors.push({ path: 'task_type', message: 'field required' });
  } else if (typeof taskType !== 'string') {
    errors.push({ path: 'task_type', message: `expected a string, got ${describe(taskType)}` });
  } else {
    skill = registry.get(taskType);
    if (skill === undefined) {
      errors.push({
        path: 'task_type',
        message: `unknown task_type '${taskType.slice(0, 64)}' (supported: ${registry.names().join(', ')})`,
      });
    }
  }
  const payload: Record<string, PayloadValue> = {};
  const rawPayload = value.payload === undefined ? {} : value.payload;
  if (!isPlainObject(rawPayload)) {
    errors.push({ path: 'payload', message: `expected an object, got ${describe(rawPayload)}` });
  } else {
    const fields = new Map(skill?.fields.map((field) => [field.key, field]));
    for (const [key, item] of Object.entries(rawPayload)) {
      const path = `payload.${key}`;
      const field = fields.get(key);
      if (skill !== undefined && field === undefined) {
        errors.push({ path, message: 'extra field not permitted' });
        continue;
      }
      if (item === null) {
        payload[key] = null;
      } else if (field?.type === 'list[str]') {
        if (!Array.isArray(item)) {
          errors.push({ path, message: `expected an array of strings or null, got ${describe(item)}` });
          continue;
        }
        const list: string[] = [];
        item.forEach((element: unknown, index: number) => {
          if (typeof element !== 'string') {
            errors.push({ path: `${path}.${index}`, message: `expected a string, got ${describe(element)}` });
          } else if (tooLong(element)) {
            errors.push({ path: `${path}.${index}`, message: 'string longer than 1 MiB' });
          } else {
            list.push(element);
          }
        });
        payload[key] = list;
      } else if (typeof item !== 'string') {
        // Unknown skill: the payload cannot be checked field by field, but its shape still is.
        if (field !== undefined)
          errors.push({ path, message: `expected a string or null, got ${describe(item)}` });
      } else if (tooLong(item)) {
        errors.push({ path, message: 'string longer than 1 MiB' });
      } else {
        payload[key] = item;
      }
    }
  }
  if (errors.length > 0 || skill === undefined) throw new TaskSchemaError(errors);
  return { task_type: skill.name, payload };
}

/**
 * Placeholder → replacement text for the payload: lists joined with the skill's separator; null and absent
 * keys have no value; an empty string is a value.
 */
export function fieldValues(task: Task, skill: Skill): Map<string, string> {
  const values = new Map<string, string>();
  for (const field of skill.fields) {
    const value = task.payload[field.key];
    if (value === null || value === undefined || values.has(field.placeholder)) continue;
    values.set(field.placeholder, Array.isArray(value) ? value.join(skill.listSeparator) : value);
  }
  return values;
}

/**
 * §3.2 missing fields over the placeholders present in the template: required for the skill →
 * missing_required; optional or unknown → missing_optional; unknown ones also in `unknown`. Sorted.
 */
export function missingFields(
  templatePlaceholders: Iterable<string>,
  skill: Skill,
  values: ReadonlyMap<string, string>,
): MissingFields {
  const required = new Set<string>();
  const known = new Set<string>();
  for (const field of skill.fields) {
    known.add(field.placeholder);
    if (field.required) required.add(field.placeholder);
  }
  const missingRequired: string[] = [];
  const missingOptional: string[] = [];
  const unknown: string[] = [];
  for (const name of new Set(templatePlaceholders)) {
    if (values.has(name)) continue;
    if (required.has(name)) {
      missingRequired.push(name);
    } else {
      missingOptional.push(name);
      if (!known.has(name)) unknown.push(name);
    }
  }
  const byCodeUnit = (a: string, b: string) => (a < b ? -1 : a > b ? 1 : 0);
  return {
    missing_required: missingRequired.sort(byCodeUnit),
    missing_optional: missingOptional.sort(byCodeUnit),
    unknown: unknown.sort(byCodeUnit),
  };
}
