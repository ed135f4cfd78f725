// `Range` header handling for content downloads (spec §3.10, RFC 9110 §14): one byte range is served as 206;
// anything this service does not serve partially (other units, several ranges, syntax errors) is ignored and
// the whole representation is sent, as the RFC allows.

const SINGLE_BYTE_RANGE = /^\s*bytes\s*=\s*(\d*)\s*-\s*(\d*)\s*$/i;

/** Parses a single `Range: bytes=a-b` / `a-` / `-n` header against a size: 'none' (no/ignored header), 'unsatisfiable', or {start,end}. Multi-range → treat as 'none' (full response). */
export function parseByteRange(
  header: string | undefined,
  size: number,
): 'none' | 'unsatisfiable' | { start: number; end: number } {
  if (header === undefined) return 'none';
  const match = SINGLE_BYTE_RANGE.exec(header);
  if (!match) return 'none';
  const [, first = '', last = ''] = match;
  if (first === '' && last === '') return 'none';

  if (first === '') {
    // Suffix range: the last n bytes; a zero-length suffix selects nothing.
    const suffixLength = Number(last);
    if (suffixLength === 0 || size === 0) return 'unsatisfiable';
    return { start: Math.max(0, size - suffixLength), end: size - 1 };
  }

  const start = Number(first);
  const end = last === '' ? size - 1 : Number(last);
  // last-pos before first-pos makes the header invalid, and an invalid Range is ignored.
  if (last !== '' && end < start) return 'none';
  if (start >= size) return 'unsatisfiable';
  return { start, end: Math.min(end, size - 1) };
}
