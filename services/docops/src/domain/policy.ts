// The format policy (§3.4): a YAML mapping merged onto the built-in default. Errors name the key or the
// line, never a file path, because API clients see them.
import { existsSync, readFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { isAlias, isNode, LineCounter, parseDocument, visit } from 'yaml';

export interface Policy {
  forbid_tables: boolean;
  forbid_numpr: boolean;
  numpr_direct_only: boolean;
  run_font_latin: string;
  run_font_east_asia: string;
  run_size_pt: number;
  line_spacing_twips: number;
  first_line_indent_twips: number | null;
  twips_tolerance: number;
  treat_inherited_as_error: boolean;
  trim_leading_spaces: boolean;
  trim_chars: string[];
}

export type PolicyKey = keyof Policy;

/** Every policy key, in the order of the default file. */
export const POLICY_KEYS: readonly PolicyKey[] = [
  'forbid_tables',
  'forbid_numpr',
  'numpr_direct_only',
  'run_font_latin',
  'run_font_east_asia',
  'run_size_pt',
  'line_spacing_twips',
  'first_line_indent_twips',
  'twips_tolerance',
  'treat_inherited_as_error',
  'trim_leading_spaces',
  'trim_chars',
];

export const MAX_POLICY_BYTES = 64 * 1024;
export const MAX_YAML_ALIASES = 100;

/** Font tokens a policy may use instead of a font name. */
export const BUSINESS_DEFAULT_FONTS: Readonly<Record<string, string>> = {
  BUSINESS_DEFAULT_LATIN: 'Calibri',
  BUSINESS_DEFAULT_EAST_ASIA: '宋体',
};

/** A policy that cannot be used: the message names the key or the line. */
export class PolicyError extends Error {
  override readonly name = 'PolicyError';
  constructor(
    message: string,
    readonly key: string | null = null,
  ) {
    super(message);
  }
}

/** A YAML document that is not safe or not well formed; `line` is 1-based when known. */
export class YamlInputError extends Error {
  override readonly name = 'YamlInputError';
  constructor(
    message: string,
    readonly line: number | null = null,
  ) {
    super(message);
  }
}

// Only the YAML 1.2 core tags may be written explicitly; anything else (custom tags, !!binary, !!set...) is
// refused instead of being silently turned into a string or an object.
const ALLOWED_EXPLICIT_TAGS = new Set(
  ['str', 'int', 'float', 'bool', 'null', 'map', 'seq'].map((name) => `tag:yaml.org,2002:${name}`),
);

/**
 * Parses YAML text with the hostile-input limits of §7: at most 100 aliases, no custom tags, no duplicate
 * keys. Throws YamlInputError with a message naming the line.
 */
export function parseSafeYaml(text: string): unknown {
  const lineCounter = new LineCounter();
  const doc = parseDocument(text, {
    lineCounter,
    prettyErrors: false,
    uniqueKeys: true,
  });
  const firstError = doc.errors[0];
  if (firstError) {
    const offset = firstError.pos[0];
    const line = lineCounter.linePos(offset).line;
    const reason = firstError.code === 'DUPLICATE_KEY' ? 'duplicate key' : firstError.message.split('\n')[0];
    throw new YamlInputError(`YAML syntax error at line ${line}: ${reason}`, line);
  }
  let aliases = 0;
  let refused: { tag: string; offset: number } | null = null;
  visit(doc, (_key, node) => {
    if (isAlias(node)) {
      aliases += 1;
      return undefined;
    }
    if (isNode(node) && node.tag && !ALLOWED_EXPLICIT_TAGS.has(node.tag)) {
      refused = { tag: node.tag, offset: node.range?.[0] ?? 0 };
      return visit.BREAK;
    }
    return undefined;
  });
  if (refused !== null) {
    const { tag, offset } = refused as { tag: string; offset: number };
    const line = lineCounter.linePos(offset).line;
    throw new YamlInputError(`YAML tag ${tag} is not allowed (line ${line})`, line);
  }
  if (aliases > MAX_YAML_ALIASES) {
    throw new YamlInputError(`too many YAML aliases (${aliases} > ${MAX_YAML_ALIASES})`);
  }
  try {
    return doc.toJS({ maxAliasCount: MAX_YAML_ALIASES });
  } catch (error) {
    // toJS refuses alias expansions that grow beyond the limit (a "billion laughs" document).
    const reason = error instanceof Error ? error.message.split('\n')[0] : 'invalid document';
    throw new YamlInputError(`YAML document refused: ${reason}`);
  }
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function describe(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'a list';
  if (typeof value === 'object') return 'a mapping';
  return `a ${typeof value}`;
}

function expectBool(key: string, value: unknown): boolean {
  if (typeof value !== 'boolean')
    throw new PolicyError(`${key}: expected true or false, got ${describe(value)}`, key);
  return value;
}

function expectInt(
  key: string,
  value: unknown,
  opts: { min?: number; nullable?: boolean } = {},
): number | null {
  if (value === null && opts.nullable) return null;
  if (typeof value !== 'number' || !Number.isInteger(value)) {
    const expected = opts.nullable ? 'an integer or null' : 'an integer';
    throw new PolicyError(`${key}: expected ${expected}, got ${describe(value)}`, key);
  }
  if (opts.min !== undefined && value < opts.min) {
    throw new PolicyError(`${key}: must be >= ${opts.min}, got ${value}`, key);
  }
  return value;
}

function expectFont(key: string, value: unknown): string {
  if (typeof value !== 'string' || value.trim() === '') {
    throw new PolicyError(`${key}: expected a font name, got ${describe(value)}`, key);
  }
  const font = value.trim();
  if (font.startsWith('BUSINESS_DEFAULT_')) {
    const resolved = BUSINESS_DEFAULT_FONTS[font];
    if (resolved === undefined) {
      const known = Object.keys(BUSINESS_DEFAULT_FONTS).sort().join(', ');
      throw new PolicyError(`${key}: unknown font token ${font} (known: ${known})`, key);
    }
    return resolved;
  }
  return font;
}

function expectTrimChars(key: string, value: unknown): string[] {
  if (!Array.isArray(value)) throw new PolicyError(`${key}: expected a list of 1-character strings`, key);
  return value.map((item, index) => {
    if (typeof item !== 'string' || [...item].length !== 1) {
      throw new PolicyError(`${key}[${index}]: expected a 1-character string, got ${describe(item)}`, key);
    }
    return item;
  });
}

/** Validates one key's value and returns it normalised (font tokens resolved). */
function policyValue(key: PolicyKey, value: unknown): Policy[PolicyKey] {
  switch (key) {
    case 'forbid_tables':
    case 'forbid_numpr':
    case 'numpr_direct_only':
    case 'treat_inherited_as_error':
    case 'trim_leading_spaces':
      return expectBool(key, value);
    case 'run_font_latin':
    case 'run_font_east_asia':
      return expectFont(key, value);
    case 'run_size_pt':
      return expectInt(key, value, { min: 1 }) as number;
    case 'line_spacing_twips':
      return expectInt(key, value, { min: 1 }) as number;
    case 'first_line_indent_twips':
      return expectInt(key, value, { nullable: true });
    case 'twips_tolerance':
      return expectInt(key, value, { min: 0 }) as number;
    case 'trim_chars':
      return expectTrimChars(key, value);
  }
}

function isPolicyKey(key: string): key is PolicyKey {
  return (POLICY_KEYS as readonly string[]).includes(key);
}

/** Validates a (partial) policy mapping and merges it onto `base`. */
function mergePolicy(base: Policy, raw: unknown): Policy {
  if (raw === null || raw === undefined) return { ...base, trim_chars: [...base.trim_chars] };
  if (!isPlainObject(raw)) throw new PolicyError(`policy must be a YAML mapping, got ${describe(raw)}`);
  const merged: Record<string, unknown> = { ...base, trim_chars: [...base.trim_chars] };
  for (const [key, value] of Object.entries(raw)) {
    if (!isPolicyKey(key)) {
      throw new PolicyError(
        `unknown policy key '${key}' (allowed: ${[...POLICY_KEYS].sort().join(', ')})`,
        key,
      );
    }
    merged[key] = policyValue(key, value);
  }
  return merged as unknown as Policy;
}

function parseYamlForPolicy(text: string): unknown {
  if (Buffer.byteLength(text, 'utf8') > MAX_POLICY_BYTES) {
    throw new PolicyError(`policy is larger than ${MAX_POLICY_BYTES} bytes`);
  }
  try {
    return parseSafeYaml(text);
  } catch (error) {
    if (error instanceof YamlInputError) throw new PolicyError(`invalid policy: ${error.message}`);
    throw error;
  }
}

// The default file lives next to the source. Compiled code runs from dist/domain/, so it is looked up
// there first (when a build copies it) and then in src/domain/.
const DEFAULT_POLICY_CANDIDATES = ['./policy.default.yaml', '../../src/domain/policy.default.yaml'];

let cachedDefault: Policy | null = null;

function readDefaultPolicyText(): string {
  for (const candidate of DEFAULT_POLICY_CANDIDATES) {
    const path = fileURLToPath(new URL(candidate, import.meta.url));
    if (existsSync(path)) return readFileSync(path, 'utf8');
  }
  throw new Error('built-in policy.default.yaml not found');
}

/** The built-in policy of services/docops/src/domain/policy.default.yaml (a fresh copy per call). */
export function defaultPolicy(): Policy {
  if (cachedDefault === null) {
    const raw = parseYamlForPolicy(readDefaultPolicyText());
    if (!isPlainObject(raw)) throw new Error('built-in policy.default.yaml is not a mapping');
    const missing = POLICY_KEYS.filter((key) => !(key in raw));
    if (missing.length > 0) throw new Error(`built-in policy.default.yaml lacks ${missing.join(', ')}`);
    const seed = Object.fromEntries(POLICY_KEYS.map((key) => [key, raw[key]])) as unknown as Policy;
    cachedDefault = mergePolicy(seed, raw);
  }
  return { ...cachedDefault, trim_chars: [...cachedDefault.trim_chars] };
}

/**
 * Parses a (partial) policy YAML text and merges it onto the default. Throws PolicyError for syntax errors
 * (naming the line), unknown keys and wrong types (naming the key), non-mapping documents, custom tags,
 * more than 100 aliases and texts over 64 KiB.
 */
export function parsePolicy(text: string): Policy {
  return mergePolicy(defaultPolicy(), parseYamlForPolicy(text));
}

/** Reads and parses a policy file (the CLI's `--policy`). I/O errors become PolicyError without the path. */
export async function loadPolicyFile(path: string): Promise<Policy> {
  let bytes: Buffer;
  try {
    bytes = await readFile(path);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code ?? 'read error';
    throw new PolicyError(`policy file cannot be read (${code})`);
  }
  if (bytes.byteLength > MAX_POLICY_BYTES)
    throw new PolicyError(`policy is larger than ${MAX_POLICY_BYTES} bytes`);
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(bytes);
  } catch {
    throw new PolicyError('policy is not valid UTF-8');
  }
  return parsePolicy(text);
}
