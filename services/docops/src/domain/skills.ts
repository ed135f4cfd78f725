// Skills (task types, §3.2): the built-ins shipped in services/docops/skills/ and an operator's registry
// directory (DOCOPS_SKILLS_DIR), all in the same file format.
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { basename, extname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseSafeYaml, YamlInputError } from './policy.js';

export type SkillFieldType = 'str' | 'list[str]';

export interface SkillField {
  /** payload key */
  key: string;
  /** placeholder name, `【PLACEHOLDER】` in templates */
  placeholder: string;
  required: boolean;
  type: SkillFieldType;
}

export interface Skill {
  name: string;
  description: string;
  listSeparator: string;
  source: 'builtin' | 'registry';
  /** in definition order */
  fields: SkillField[];
}

export interface SkillRegistry {
  /** sorted */
  names(): string[];
  get(name: string): Skill | undefined;
  /** sorted by name */
  all(): Skill[];
}

/** A skill file that cannot be used; the message names the file (basename) and the problem. */
export class SkillRegistryError extends Error {
  override readonly name = 'SkillRegistryError';
  constructor(
    readonly file: string,
    readonly problem: string,
    message = `skill file ${file}: ${problem}`,
  ) {
    super(message);
  }
}

export const SKILL_NAME_PATTERN = /^[a-z][a-z0-9_]{0,63}$/;
export const PAYLOAD_KEY_PATTERN = /^[a-z][a-z0-9_]{0,63}$/;
export const PLACEHOLDER_NAME_PATTERN = /^[A-Z0-9_]+$/;
export const DEFAULT_LIST_SEPARATOR = ', ';

const SKILL_FILE_EXTENSIONS = new Set(['.yaml', '.yml', '.json']);
const SKILL_KEYS = new Set(['name', 'description', 'list_separator', 'fields']);
const FIELD_KEYS = new Set(['placeholder', 'required', 'type']);
const MAX_SKILL_FILE_BYTES = 1024 * 1024;

/** services/docops/skills, from src/domain/ (tests) and dist/domain/ (bins) alike. */
export function builtinSkillsDir(): string {
  return fileURLToPath(new URL('../../skills', import.meta.url));
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function parseSkillText(file: string, text: string): unknown {
  if (extname(file).toLowerCase() === '.json') {
    try {
      return JSON.parse(text);
    } catch {
      throw new SkillRegistryError(file, 'invalid JSON');
    }
  }
  try {
    return parseSafeYaml(text);
  } catch (error) {
    if (error instanceof YamlInputError) throw new SkillRegistryError(file, error.message);
    throw error;
  }
}

/** Validates one parsed skill document. */
export function skillFromDocument(file: string, doc: unknown, source: Skill['source']): Skill {
  const fail = (problem: string): never => {
    throw new SkillRegistryError(file, problem);
  };
  if (!isPlainObject(doc)) return fail('must be a mapping with name and fields');
  for (const key of Object.keys(doc)) {
    if (!SKILL_KEYS.has(key))
      fail(`unknown key '${key}' (allowed: description, fields, list_separator, name)`);
  }
  const name = doc.name;
  if (typeof name !== 'string') return fail('name is required and must be a string');
  if (!SKILL_NAME_PATTERN.test(name)) return fail(`bad name '${name}' (must match ^[a-z][a-z0-9_]{0,63}$)`);
  let description = '';
  if (doc.description !== undefined && doc.description !== null) {
    if (typeof doc.description !== 'string') fail('description must be a string');
    description = doc.description as string;
  }
  let listSeparator = DEFAULT_LIST_SEPARATOR;
  if (doc.list_separator !== undefined && doc.list_separator !== null) {
    if (typeof doc.list_separator !== 'string') fail('list_separator must be a string');
    listSeparator = doc.list_separator as string;
  }
  const rawFields = doc.fields;
  if (!isPlainObject(rawFields)) return fail('fields is required and must be a mapping of payload keys');
  const entries = Object.entries(rawFields);
  if (entries.length === 0) fail('fields must define at least one field');
  const fields: SkillField[] = entries.map(([key, spec]) => {
    if (!PAYLOAD_KEY_PATTERN.test(key)) fail(`bad field key '${key}' (must match ^[a-z][a-z0-9_]{0,63}$)`);
    if (!isPlainObject(spec)) return fail(`field '${key}' must be a mapping with a placeholder`);
    for (const specKey of Object.keys(spec)) {
      if (!FIELD_KEYS.has(specKey))
        fail(`field '${key}': unknown key '${specKey}' (allowed: placeholder, required, type)`);
    }
    const placeholder = spec.placeholder;
    if (typeof placeholder !== 'string' || !PLACEHOLDER_NAME_PATTERN.test(placeholder)) {
      return fail(`field '${key}': placeholder must match [A-Z0-9_]+`);
    }
    let required = false;
    if (spec.required !== undefined && spec.required !== null) {
      if (typeof spec.required !== 'boolean') fail(`field '${key}': required must be true or false`);
      required = spec.required as boolean;
    }
    let type: SkillFieldType = 'str';
    if (spec.type !== undefined && spec.type !== null) {
      if (spec.type !== 'str' && spec.type !== 'list[str]')
        fail(`field '${key}': type must be "str" or "list[str]"`);
      type = spec.type as SkillFieldType;
    }
    return { key, placeholder, required, type };
  });
  return { name, description, listSeparator, source, fields };
}

function readSkillFile(path: string, source: Skill['source']): Skill {
  const file = basename(path);
  let bytes: Buffer;
  try {
    if (statSync(path).size > MAX_SKILL_FILE_BYTES)
      throw new SkillRegistryError(file, 'file is larger than 1 MiB');
    bytes = readFileSync(path);
  } catch (error) {
    if (error instanceof SkillRegistryError) throw error;
    throw new SkillRegistryError(
      file,
      `cannot be read (${(error as NodeJS.ErrnoException).code ?? 'error'})`,
    );
  }
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(bytes);
  } catch {
    throw new SkillRegistryError(file, 'not valid UTF-8');
  }
  return skillFromDocument(file, parseSkillText(file, text), source);
}

function skillFilesIn(dir: string): string[] {
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch (error) {
    const problem = `cannot be read (${(error as NodeJS.ErrnoException).code ?? 'error'})`;
    throw new SkillRegistryError(basename(dir), problem, `skills directory ${basename(dir)}: ${problem}`);
  }
  return names
    .filter((name) => SKILL_FILE_EXTENSIONS.has(extname(name).toLowerCase()) && !name.startsWith('.'))
    .sort()
    .map((name) => join(dir, name))
    .filter((path) => {
      try {
        return statSync(path).isFile();
      } catch {
        return false;
      }
    });
}

class MapSkillRegistry implements SkillRegistry {
  private readonly sortedNames: string[];
  constructor(private readonly skills: ReadonlyMap<string, Skill>) {
    this.sortedNames = [...skills.keys()].sort();
  }
  names(): string[] {
    return [...this.sortedNames];
  }
  get(name: string): Skill | undefined {
    return this.skills.get(name);
  }
  all(): Skill[] {
    return this.sortedNames.map((name) => this.skills.get(name) as Skill);
  }
}

/**
 * Loads the built-in skills and, when `dir` is given, every *.yaml/*.yml/*.json file directly in it.
 * Throws SkillRegistryError naming the file for a bad file or a duplicate name.
 */
export function loadSkillRegistry(dir?: string): SkillRegistry {
  const skills = new Map<string, Skill>();
  const origin = new Map<string, string>();
  const add = (path: string, source: Skill['source']) => {
    const skill = readSkillFile(path, source);
    const previous = origin.get(skill.name);
    if (previous !== undefined) {
      throw new SkillRegistryError(
        basename(path),
        `duplicate skill name '${skill.name}' (already defined by ${previous})`,
      );
    }
    skills.set(skill.name, skill);
    origin.set(skill.name, source === 'builtin' ? `built-in ${basename(path)}` : basename(path));
  };
  for (const path of skillFilesIn(builtinSkillsDir())) add(path, 'builtin');
  if (dir !== undefined && dir !== '') {
    for (const path of skillFilesIn(dir)) add(path, 'registry');
  }
  return new MapSkillRegistry(skills);
}

/** A registry over the given skills (tests, render processes that received skills as data). */
export function skillRegistryFrom(skills: Iterable<Skill>): SkillRegistry {
  const map = new Map<string, Skill>();
  for (const skill of skills) map.set(skill.name, skill);
  return new MapSkillRegistry(map);
}

function sortedRecord<T>(entries: Iterable<[string, T]>): Record<string, T> {
  return Object.fromEntries([...entries].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
}

export interface MetaSkill {
  source: Skill['source'];
  description: string;
  list_separator: string;
  fields: Record<string, { placeholder: string; type: SkillFieldType; required: boolean }>;
}

/** `/v1/meta` `skills`: name → definition, keys sorted (§3.8.5). */
export function metaSkills(registry: SkillRegistry): Record<string, MetaSkill> {
  return sortedRecord(
    registry.all().map((skill): [string, MetaSkill] => [
      skill.name,
      {
        description: skill.description,
        fields: sortedRecord(
          skill.fields.map((field) => [
            field.key,
            { placeholder: field.placeholder, required: field.required, type: field.type },
          ]),
        ),
        list_separator: skill.listSeparator,
        source: skill.source,
      },
    ]),
  );
}

export interface TaskPayloadSchema {
  fields: Record<string, { type: SkillFieldType; required: false; nullable: true }>;
  extra_policy: 'forbid';
}

/** `/v1/meta` `task_payload_schemas`: every payload key optional and nullable at schema level (§3.8.5). */
export function taskPayloadSchemas(registry: SkillRegistry): Record<string, TaskPayloadSchema> {
  return sortedRecord(
    registry.all().map((skill): [string, TaskPayloadSchema] => [
      skill.name,
      {
        extra_policy: 'forbid',
        fields: sortedRecord(
          skill.fields.map((field) => [field.key, { nullable: true, required: false, type: field.type }]),
        ),
      },
    ]),
  );
}
