/**
 * Upload filenames (spec §3.11): sanitized once at upload and reused by the response, preview, download
 * header and UI.
 */

/** Longest sanitized name, in characters (code points). */
export const MAX_FILENAME_LENGTH = 255;

/** Name used when nothing usable is left after sanitizing. */
export const FALLBACK_FILENAME = 'file';

const SHELL_METACHARACTERS = /[;|&$`<>"]/g;
// Cc (which includes NUL), Cf, Zl, Zp are the spec's non-printables; lone surrogates (Cs) cannot be
// encoded as UTF-8 at all.
const NON_PRINTABLE = /[\p{Cc}\p{Cf}\p{Zl}\p{Zp}\p{Cs}]/gu;

/**
 * Sanitizes a client-supplied filename: keeps the part after the last `/` or `\`, removes shell
 * metacharacters, NUL and non-printable characters, trims, cuts names over 255 characters while keeping
 * the extension, and turns an empty or dots-only result into `file`.
 */
export function sanitizeFilename(raw: string): string {
  const base = raw.slice(Math.max(raw.lastIndexOf('/'), raw.lastIndexOf('\\')) + 1);
  let name = base.replace(SHELL_METACHARACTERS, '').replace(NON_PRINTABLE, '').trim();
  const chars = Array.from(name);
  if (chars.length > MAX_FILENAME_LENGTH) {
    const dot = chars.lastIndexOf('.');
    const extension = dot > 0 ? chars.slice(dot) : [];
    if (extension.length > 0 && extension.length < MAX_FILENAME_LENGTH) {
      const stem = chars.slice(0, MAX_FILENAME_LENGTH - extension.length).join('');
      name = stem.trimEnd() + extension.join('');
    } else {
      name = chars.slice(0, MAX_FILENAME_LENGTH).join('').trimEnd();
    }
  }
  if (name === '' || /^\.+$/.test(name)) return FALLBACK_FILENAME;
  return name;
}

/** RFC 5987 `value-chars`: every byte outside `attr-char` is percent-encoded from UTF-8. */
export function encodeRfc5987(value: string): string {
  return encodeURIComponent(value.replace(/\p{Cs}/gu, '\uFFFD')).replace(
    /['()*]/g,
    (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`,
  );
}

/**
 * The download `Content-Disposition` value. Printable-ASCII names → `attachment; filename="<name>"`;
 * anything else (non-ASCII, controls, quotes, backslashes) → an ASCII fallback with each such character
 * replaced by `_`, plus `filename*=UTF-8''<percent-encoded UTF-8>`. The result never holds CR/LF, a raw
 * non-ASCII byte or an unescaped quote, whatever the input.
 */
export function contentDisposition(name: string): string {
  const value = name === '' ? FALLBACK_FILENAME : name;
  if (/^[\x20-\x7e]*$/.test(value) && !/["\\]/.test(value)) return `attachment; filename="${value}"`;
  const fallback = Array.from(value, (c) =>
    /^[\x20-\x7e]$/.test(c) && c !== '"' && c !== '\\' ? c : '_',
  ).join('');
  return `attachment; filename="${fallback}"; filename*=UTF-8''${encodeRfc5987(value)}`;
}

/**
 * Decodes an RFC 5987 extended value (`UTF-8''r%C3%A9sum%C3%A9.pdf`, as in `filename*=`). Returns
 * undefined when it is malformed or not UTF-8/ISO-8859-1.
 */
export function decodeRfc5987(value: string): string | undefined {
  const match = /^([A-Za-z0-9!#$%&+^_`{}~-]+)'[A-Za-z0-9-]*'(.*)$/.exec(value.trim());
  if (match === null) return undefined;
  const charset = (match[1] ?? '').toLowerCase();
  const encoded = match[2] ?? '';
  if (!/^(?:%[0-9A-Fa-f]{2}|[A-Za-z0-9!#$&+.^_`|~-])*$/.test(encoded)) return undefined;
  const bytes = Buffer.from(
    encoded.replace(/%([0-9A-Fa-f]{2})|./g, (whole, hex?: string) =>
      hex === undefined ? whole : String.fromCharCode(Number.parseInt(hex, 16)),
    ),
    'latin1',
  );
  if (charset === 'utf-8') {
    try {
      return new TextDecoder('utf-8', { fatal: true }).decode(bytes);
    } catch {
      return undefined;
    }
  }
  if (charset === 'iso-8859-1') return bytes.toString('latin1');
  return undefined;
}

/**
 * The multipart `filename` as the user meant it. Browsers send raw UTF-8 bytes in the part header, which
 * busboy hands over as latin1 text unless it is created with `defParamCharset: 'utf8'` (set that in the
 * route). For names that still arrive as latin1-decoded UTF-8 this re-reads the bytes as UTF-8; a name that
 * is not valid UTF-8 that way (a genuine latin1 name) is returned unchanged. A value in RFC 5987 form
 * (`UTF-8''...`, from `filename*=`) is decoded as such; busboy already decodes `filename*=` itself.
 */
export function decodeMultipartFilename(raw: string): string {
  if (/^utf-8''/i.test(raw)) {
    const decoded = decodeRfc5987(raw);
    if (decoded !== undefined) return decoded;
  }
  const codes = Array.from(raw, (c) => c.charCodeAt(0));
  if (!codes.some((code) => code >= 0x80) || codes.some((code) => code > 0xff)) return raw;
  try {
    return new TextDecoder('utf-8', { fatal: true }).decode(Buffer.from(raw, 'latin1'));
  } catch {
    return raw;
  }
}
