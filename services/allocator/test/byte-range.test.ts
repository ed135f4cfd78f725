import { describe, expect, it } from 'vitest';
import { parseByteRange } from '../src/domain/byte-range.js';

describe('parseByteRange', () => {
  it('serves the whole body without a Range header', () => {
    expect(parseByteRange(undefined, 10)).toBe('none');
    expect(parseByteRange('', 10)).toBe('none');
  });

  it('parses a closed range (bytes=0-3 is the first four bytes)', () => {
    expect(parseByteRange('bytes=0-3', 10)).toEqual({ start: 0, end: 3 });
    expect(parseByteRange('bytes=4-4', 10)).toEqual({ start: 4, end: 4 });
    expect(parseByteRange('Bytes = 2 - 5', 10)).toEqual({ start: 2, end: 5 });
  });

  it('clamps a last position beyond the end to the last byte', () => {
    expect(parseByteRange('bytes=8-100', 10)).toEqual({ start: 8, end: 9 });
    expect(parseByteRange('bytes=0-99999999999999999999', 10)).toEqual({ start: 0, end: 9 });
  });

  it('parses an open range (bytes=5-) up to the last byte', () => {
    expect(parseByteRange('bytes=5-', 10)).toEqual({ start: 5, end: 9 });
    expect(parseByteRange('bytes=0-', 1)).toEqual({ start: 0, end: 0 });
  });

  it('parses a suffix range (bytes=-2) as the last n bytes', () => {
    expect(parseByteRange('bytes=-2', 10)).toEqual({ start: 8, end: 9 });
    expect(parseByteRange('bytes=-25', 10)).toEqual({ start: 0, end: 9 });
  });

  it('reports ranges starting at or beyond the size as unsatisfiable', () => {
    expect(parseByteRange('bytes=10-', 10)).toBe('unsatisfiable');
    expect(parseByteRange('bytes=10-20', 10)).toBe('unsatisfiable');
    expect(parseByteRange('bytes=99999999999999999999-', 10)).toBe('unsatisfiable');
  });

  it('reports an empty suffix and any range of an empty body as unsatisfiable', () => {
    expect(parseByteRange('bytes=-0', 10)).toBe('unsatisfiable');
    expect(parseByteRange('bytes=0-0', 0)).toBe('unsatisfiable');
    expect(parseByteRange('bytes=-5', 0)).toBe('unsatisfiable');
  });

  it.each([
    'bytes=',
    'bytes=-',
    'bytes=a-b',
    'bytes=3-1',
    'bytes=1.5-2',
    'bytes=+1-2',
    'bytes 0-3',
    'items=0-3',
    '0-3',
  ])('ignores the malformed or foreign header %j', (header) => {
    expect(parseByteRange(header, 10)).toBe('none');
  });

  it('serves multi-range requests whole', () => {
    expect(parseByteRange('bytes=0-1,4-5', 10)).toBe('none');
    expect(parseByteRange('bytes=0-1, -2', 10)).toBe('none');
  });
});
