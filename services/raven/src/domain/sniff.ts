/**
 * Content-based MIME detection over the first bytes of an upload. The declared part Content-Type is never
 * trusted: only what the bytes say decides the stored type and the ALLOWED_MIME_TYPES check.
 */

/** How many leading bytes the sniffer looks at. */
export const SNIFF_WINDOW_BYTES = 4096;

const OOXML_TYPES: readonly (readonly [string, string])[] = [
  ['word/', 'application/vnd.openxmlformats-officedocument.wordprocessingml.document'],
  ['xl/', 'application/vnd.openxmlformats-officedocument.spreadsheetml.sheet'],
  ['ppt/', 'application/vnd.openxmlformats-officedocument.presentationml.presentation'],
];

// DIB header sizes of the BMP variants in use (CORE, OS/2 short, INFO, V2, V3, OS/2 long, V4, V5).
const BMP_DIB_HEADER_SIZES = new Set([12, 16, 40, 52, 56, 64, 108, 124]);

function startsWith(window: Uint8Array, bytes: readonly number[], offset = 0): boolean {
  if (window.length < offset + bytes.length) return false;
  for (let i = 0; i < bytes.length; i++) {
    if (window[offset + i] !== bytes[i]) return false;
  }
  return true;
}

function ascii(text: string): number[] {
  return Array.from(text, (c) => c.charCodeAt(0));
}

function isBmp(window: Uint8Array): boolean {
  if (!startsWith(window, ascii('BM')) || window.length < 18) return false;
  const view = new DataView(window.buffer, window.byteOffset, window.byteLength);
  return BMP_DIB_HEADER_SIZES.has(view.getUint32(14, true));
}

function zipType(window: Uint8Array): string {
  // Local file header: name length at 26, extra length at 28, name from 30.
  if (window.length >= 30) {
    const view = new DataView(window.buffer, window.byteOffset, window.byteLength);
    const nameLength = view.getUint16(26, true);
    const firstName = Buffer.from(
      window.buffer,
      window.byteOffset + 30,
      Math.min(nameLength, window.length - 30),
    ).toString('latin1');
    if (nameLength === '[Content_Types].xml'.length && firstName === '[Content_Types].xml') {
      const text = Buffer.from(window.buffer, window.byteOffset, window.byteLength).toString('latin1');
      for (const [prefix, mime] of OOXML_TYPES) {
        if (text.includes(prefix)) return mime;
      }
    }
  }
  return 'application/zip';
}

function binaryType(window: Uint8Array): string | undefined {
  if (startsWith(window, [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a])) return 'image/png';
  if (startsWith(window, [0xff, 0xd8, 0xff])) return 'image/jpeg';
  if (startsWith(window, ascii('GIF87a')) || startsWith(window, ascii('GIF89a'))) return 'image/gif';
  if (startsWith(window, ascii('RIFF')) && startsWith(window, ascii('WEBP'), 8)) return 'image/webp';
  if (isBmp(window)) return 'image/bmp';
  if (startsWith(window, [0x49, 0x49, 0x2a, 0x00]) || startsWith(window, [0x4d, 0x4d, 0x00, 0x2a])) {
    return 'image/tiff';
  }
  if (startsWith(window, [0x00, 0x00, 0x01, 0x00])) return 'image/vnd.microsoft.icon';
  if (startsWith(window, ascii('%PDF-'))) return 'application/pdf';
  if (startsWith(window, [0x50, 0x4b, 0x03, 0x04])) return zipType(window);
  if (startsWith(window, [0x1f, 0x8b])) return 'application/gzip';
  if (startsWith(window, ascii('BZh'))) return 'application/x-bzip2';
  if (startsWith(window, [0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00])) return 'application/x-xz';
  if (startsWith(window, [0x37, 0x7a, 0xbc, 0xaf, 0x27, 0x1c])) return 'application/x-7z-compressed';
  if (startsWith(window, [0x52, 0x61, 0x72, 0x21, 0x1a, 0x07])) return 'application/vnd.rar';
  if (startsWith(window, ascii('ustar'), 257)) return 'application/x-tar';
  if (startsWith(window, ascii('ID3'))) return 'audio/mpeg';
  if (window.length >= 2 && window[0] === 0xff && ((window[1] ?? 0) & 0xe0) === 0xe0) return 'audio/mpeg';
  if (startsWith(window, ascii('fLaC'))) return 'audio/flac';
  if (startsWith(window, ascii('OggS'))) return 'audio/ogg';
  if (startsWith(window, ascii('RIFF')) && startsWith(window, ascii('WAVE'), 8)) return 'audio/wav';
  if (startsWith(window, ascii('ftyp'), 4)) {
    return startsWith(window, ascii('qt  '), 8) ? 'video/quicktime' : 'video/mp4';
  }
  if (startsWith(window, [0x1a, 0x45, 0xdf, 0xa3])) return 'video/webm';
  if (startsWith(window, [0x7f, 0x45, 0x4c, 0x46])) return 'application/octet-stream';
  return undefined;
}

/**
 * Decodes the window as UTF-8, or returns undefined when it is not text: invalid UTF-8, a NUL, or 1 % or
 * more control characters other than tab, LF, FF and CR. A multi-byte sequence cut by the window end is
 * accepted only when the window is not the whole file (a whole file ending mid-sequence is invalid).
 */
function decodeText(window: Uint8Array, isWholeFile: boolean): string | undefined {
  let text: string;
  try {
    // `stream: true` keeps an incomplete trailing sequence pending instead of failing on it; every
    // complete byte, including the start of that sequence, is still validated.
    text = new TextDecoder('utf-8', { fatal: true }).decode(window, { stream: !isWholeFile });
  } catch {
    return undefined;
  }
  let characters = 0;
  let controls = 0;
  for (const char of text) {
    characters++;
    const code = char.codePointAt(0) ?? 0;
    if (code === 0) return undefined;
    const isControl = code < 0x20 || (code >= 0x7f && code <= 0x9f);
    if (isControl && code !== 0x09 && code !== 0x0a && code !== 0x0c && code !== 0x0d) controls++;
  }
  if (controls * 100 >= characters && controls > 0) return undefined;
  return text;
}

function isJsonContainer(text: string): boolean {
  const trimmed = text.trim();
  if (!(trimmed.startsWith('{') || trimmed.startsWith('['))) return false;
  try {
    const value: unknown = JSON.parse(trimmed);
    return typeof value === 'object' && value !== null;
  } catch {
    return false;
  }
}

function startsWithTag(text: string, tag: string): boolean {
  if (!text.toLowerCase().startsWith(tag)) return false;
  const next = text.charAt(tag.length);
  return next === '' || next === '>' || next === '/' || /\s/.test(next);
}

/** After an XML declaration: skips processing instructions, comments and the doctype to the root element. */
function xmlRootIsSvg(text: string): boolean {
  let rest = text;
  for (;;) {
    rest = rest.trimStart();
    if (rest.startsWith('<?')) {
      const end = rest.indexOf('?>');
      if (end < 0) return false;
      rest = rest.slice(end + 2);
    } else if (rest.startsWith('<!--')) {
      const end = rest.indexOf('-->');
      if (end < 0) return false;
      rest = rest.slice(end + 3);
    } else if (rest.slice(0, 9).toUpperCase() === '<!DOCTYPE') {
      const subset = rest.indexOf('[');
      const close = rest.indexOf('>');
      if (close < 0) return false;
      if (subset >= 0 && subset < close) {
        const subsetEnd = rest.indexOf(']', subset);
        const afterSubset = subsetEnd < 0 ? -1 : rest.indexOf('>', subsetEnd);
        if (afterSubset < 0) return false;
        rest = rest.slice(afterSubset + 1);
      } else {
        rest = rest.slice(close + 1);
      }
    } else {
      return startsWithTag(rest, '<svg');
    }
  }
}

function textType(text: string, isWholeFile: boolean): string {
  if (isWholeFile && isJsonContainer(text)) return 'application/json';
  // TextDecoder already dropped a leading UTF-8 BOM; strip one more in case of a doubled mark.
  const start = text.replace(/^\uFEFF/, '').trimStart();
  if (startsWithTag(start, '<svg')) return 'image/svg+xml';
  if (start.startsWith('<?xml')) return xmlRootIsSvg(start) ? 'image/svg+xml' : 'text/xml';
  const lower = start.slice(0, 16).toLowerCase();
  if (lower.startsWith('<!doctype html') || startsWithTag(start, '<html')) return 'text/html';
  if (start.startsWith('#!')) return 'text/x-shellscript';
  return 'text/plain';
}

/**
 * The MIME type of a file from its first ≤ 4,096 bytes (spec §3.10, rules in order). `isWholeFile` says
 * that the window holds the entire file (only then can JSON be recognised).
 */
export function sniffMime(window: Uint8Array, isWholeFile: boolean): string {
  const head = window.length > SNIFF_WINDOW_BYTES ? window.subarray(0, SNIFF_WINDOW_BYTES) : window;
  const whole = isWholeFile && head.length === window.length;
  const binary = binaryType(head);
  if (binary !== undefined) return binary;
  const text = decodeText(head, whole);
  if (text === undefined) return 'application/octet-stream';
  return textType(text, whole);
}

/** The bare `type/subtype` of a media type, lower-cased, without parameters. */
function essence(mime: string): string {
  return (mime.split(';')[0] ?? '').trim().toLowerCase();
}

/**
 * Whether a sniffed type passes ALLOWED_MIME_TYPES: an empty list allows everything; an entry matches
 * exactly or as `major/*`, case-insensitively; a bare `*` or `*` + `/*` allows all.
 */
export function mimeAllowed(mime: string, allowed: readonly string[]): boolean {
  if (allowed.length === 0) return true;
  const type = essence(mime);
  const major = type.split('/')[0] ?? '';
  return allowed.some((entry) => {
    const pattern = essence(entry);
    if (pattern === '*' || pattern === '*/*') return true;
    if (pattern.endsWith('/*')) return pattern.slice(0, -2) === major;
    return pattern === type;
  });
}

const MIME_PATTERN = /^(\*|[a-z0-9!#$&^_.+-]+)\/(\*|[a-z0-9!#$&^_.+-]+)$/i;

/**
 * Parses ALLOWED_MIME_TYPES: a JSON array (`["image/*","application/pdf"]`) or a comma list. Unset or
 * blank → `[]` (all allowed). Throws an Error naming the variable on malformed input.
 */
export function parseAllowedMimeTypes(raw: string | undefined): string[] {
  const trimmed = (raw ?? '').trim();
  if (trimmed === '') return [];
  let entries: string[];
  if (trimmed.startsWith('[')) {
    let parsed: unknown;
    try {
      parsed = JSON.parse(trimmed);
    } catch (error) {
      const reason = error instanceof Error ? error.message : String(error);
      throw new Error(`ALLOWED_MIME_TYPES is not a valid JSON array: ${reason}`);
    }
    if (!Array.isArray(parsed) || !parsed.every((entry) => typeof entry === 'string')) {
      throw new Error('ALLOWED_MIME_TYPES must be a JSON array of strings or a comma-separated list');
    }
    entries = parsed;
  } else {
    entries = trimmed.split(',');
  }
  const result: string[] = [];
  for (const entry of entries) {
    const value = entry.trim().toLowerCase();
    if (value === '') continue;
    if (!MIME_PATTERN.test(value)) {
      throw new Error(`ALLOWED_MIME_TYPES contains an invalid MIME type: ${JSON.stringify(entry.trim())}`);
    }
    result.push(value);
  }
  return result;
}

/** The download Content-Type of a stored type: `; charset=utf-8` is appended for `text/*`. */
export function downloadContentType(mime: string): string {
  if (essence(mime).startsWith('text/') && !/;\s*charset=/i.test(mime)) return `${mime}; charset=utf-8`;
  return mime;
}
