// Canonical JSON (spec §3.4): the one text form used for fingerprints, document hashes and structure hashes,
// so equal values always hash alike whatever their key order or whitespace.
import { createHash } from 'node:crypto';

/** Keys sorted by UTF-16 code units at every level, no whitespace, non-ASCII unescaped, numbers as JS prints them. */
export function canonicalJson(value: unknown): string {
  const text = canonicalPart(value);
  // Like JSON.stringify, a bare undefined/function has no JSON form.
  if (text === undefined) throw new TypeError('value has no JSON representation');
  return text;
}

function canonicalPart(value: unknown): string | undefined {
  if (value === null) return 'null';
  if (typeof value === 'object' && typeof (value as { toJSON?: unknown }).toJSON === 'function') {
    return canonicalPart((value as { toJSON: () => unknown }).toJSON());
  }
  switch (typeof value) {
    case 'string':
    case 'number':
    case 'boolean':
      // JSON.stringify leaves non-ASCII as is and prints numbers the way JavaScript does (non-finite → null).
      return JSON.stringify(value);
    case 'bigint':
      throw new TypeError('BigInt value has no JSON representation');
    case 'object':
      break;
    default:
      return undefined;
  }
  if (Array.isArray(value)) {
    return `[${value.map((item) => canonicalPart(item) ?? 'null').join(',')}]`;
  }
  const record = value as Record<string, unknown>;
  // The default sort compares strings by UTF-16 code units, which is exactly the required order.
  const keys = Object.keys(record).sort();
  const members: string[] = [];
  for (const key of keys) {
    const member = canonicalPart(record[key]);
    if (member !== undefined) members.push(`${JSON.stringify(key)}:${member}`);
  }
  return `{${members.join(',')}}`;
}

/** Lowercase hex SHA-256 of the UTF-8 bytes of `text`. */
export function sha256Hex(text: string): string {
  return createHash('sha256').update(text, 'utf8').digest('hex');
}
