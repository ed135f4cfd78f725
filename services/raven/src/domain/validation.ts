/**
 * Request validation entries in the FastAPI/pydantic shape of the original implementation (spec §3.8):
 * `{"detail":[{"type","loc","msg","input"[,"ctx"]}, ...]}`, one entry per problem.
 */

/** Where a field was read from: multipart body, query string (PUT) or a header (PUT's `X-Password`). */
export type ValidationLoc = 'body' | 'query' | 'header';

/** One 422 problem, exactly as the original served it. */
export interface ValidationEntry {
  type: string;
  loc: [ValidationLoc, string];
  msg: string;
  input: unknown;
  ctx?: Record<string, unknown>;
}

/** Longest accepted password, in characters. */
export const MAX_PASSWORD_LENGTH = 1024;

const FIELD_ORDER = ['file', 'expiry', 'uses', 'password', 'x-password'];
const INTEGER_SPELLING = /^\s*[+-]?\d+(\.0+)?\s*$/;

export interface IntFieldOptions {
  min: number;
  max: number;
  loc: 'body' | 'query';
}

/**
 * Parses an integer form/query field. Absent or empty → `{}` (the default applies); accepted spellings
 * follow `^\s*[+-]?\d+(\.0+)?\s*$` (` 7 `, `+5`, `05`, `1.0`); otherwise one entry: `int_parsing`,
 * `greater_than_equal` (below `min`) or `less_than_equal` (above `max`, the configured bound).
 */
export function parseIntField(
  name: string,
  raw: string | undefined,
  options: IntFieldOptions,
): { value?: number; error?: ValidationEntry } {
  if (raw === undefined || raw === '') return {};
  const loc: [ValidationLoc, string] = [options.loc, name];
  if (!INTEGER_SPELLING.test(raw)) {
    return {
      error: {
        type: 'int_parsing',
        loc,
        msg: 'Input should be a valid integer, unable to parse string as an integer',
        input: raw,
      },
    };
  }
  const value = Number.parseInt(raw.trim(), 10);
  if (value < options.min) {
    return {
      error: {
        type: 'greater_than_equal',
        loc,
        msg: `Input should be greater than or equal to ${options.min}`,
        input: raw,
        ctx: { ge: options.min },
      },
    };
  }
  if (value > options.max) {
    return {
      error: {
        type: 'less_than_equal',
        loc,
        msg: `Input should be less than or equal to ${options.max}`,
        input: raw,
        ctx: { le: options.max },
      },
    };
  }
  return { value };
}

/** No `file` part (also used when the request is not multipart/form-data). */
export function missingFileEntry(): ValidationEntry {
  return { type: 'missing', loc: ['body', 'file'], msg: 'Field required', input: null };
}

/** `file` arrived as a plain form field instead of a file part. */
export function fileAsFieldEntry(value: string): ValidationEntry {
  return {
    type: 'value_error',
    loc: ['body', 'file'],
    msg: "Value error, Expected UploadFile, received: <class 'str'>",
    input: value,
    ctx: { error: {} },
  };
}

/**
 * The password's entry, if any: `string_too_long` above 1,024 characters. Absent or empty means no
 * password and is never an error. A header password (PUT) is reported at `["header","x-password"]`.
 */
export function passwordEntry(
  raw: string | undefined,
  loc: ValidationLoc = 'body',
): ValidationEntry | undefined {
  if (raw === undefined || raw === '') return undefined;
  if (Array.from(raw).length <= MAX_PASSWORD_LENGTH) return undefined;
  return {
    type: 'string_too_long',
    loc: [loc, loc === 'header' ? 'x-password' : 'password'],
    msg: `String should have at most ${MAX_PASSWORD_LENGTH} characters`,
    input: raw,
    ctx: { max_length: MAX_PASSWORD_LENGTH },
  };
}

function fieldRank(entry: ValidationEntry): number {
  const index = FIELD_ORDER.indexOf(entry.loc[1]);
  return index < 0 ? FIELD_ORDER.length : index;
}

/** Entries ordered `file`, `expiry`, `uses`, `password` (stable within a field; unknown fields last). */
export function orderEntries(entries: readonly ValidationEntry[]): ValidationEntry[] {
  return entries
    .map((entry, position) => ({ entry, position }))
    .sort((a, b) => fieldRank(a.entry) - fieldRank(b.entry) || a.position - b.position)
    .map(({ entry }) => entry);
}

/** The 422 body for a list of entries, ordered. */
export function validationErrorBody(entries: readonly ValidationEntry[]): { detail: ValidationEntry[] } {
  return { detail: orderEntries(entries) };
}

/** An integer with thousands separators: 10485761 → `10,485,761`. */
export function formatBytes(n: number): string {
  const sign = n < 0 ? '-' : '';
  const digits = String(Math.trunc(Math.abs(n)));
  return sign + digits.replace(/\B(?=(\d{3})+(?!\d))/g, ',');
}

/** `File too large: 10,485,761 bytes (Max Size: 10,485,760 bytes)`. */
export function fileTooLargeMessage(received: number, max: number): string {
  return `File too large: ${formatBytes(received)} bytes (Max Size: ${formatBytes(max)} bytes)`;
}
