import { describe, expect, it } from 'vitest';
import {
  fileAsFieldEntry,
  fileTooLargeMessage,
  formatBytes,
  missingFileEntry,
  orderEntries,
  parseIntField,
  passwordEntry,
  type ValidationEntry,
  validationErrorBody,
} from '../../src/domain/validation.js';

const expiry = { min: 1, max: 60, loc: 'body' as const };
const uses = { min: 1, max: 5, loc: 'body' as const };

describe('parseIntField', () => {
  it.each([
    [' 7 ', 7],
    ['+5', 5],
    ['05', 5],
    ['1.0', 1],
    ['60', 60],
    ['\t12.000\n', 12],
  ])('accepts %j → %d', (raw, value) => {
    expect(parseIntField('expiry', raw, expiry)).toEqual({ value });
  });

  it('absent or empty → no value and no error (default applies)', () => {
    expect(parseIntField('expiry', undefined, expiry)).toEqual({});
    expect(parseIntField('expiry', '', expiry)).toEqual({});
  });

  it('non-integer → int_parsing exactly as §3.8', () => {
    expect(parseIntField('expiry', 'abc', expiry)).toEqual({
      error: {
        type: 'int_parsing',
        loc: ['body', 'expiry'],
        msg: 'Input should be a valid integer, unable to parse string as an integer',
        input: 'abc',
      },
    });
  });

  it.each(['1.5', '1.', '.0', '1e2', '0x10', '5 5', '   ', '--5', '1,000', '٣'])(
    '%j → int_parsing echoing the raw input',
    (raw) => {
      const { value, error } = parseIntField('expiry', raw, expiry);
      expect(value).toBeUndefined();
      expect(error?.type).toBe('int_parsing');
      expect(error?.input).toBe(raw);
    },
  );

  it('below minimum → greater_than_equal exactly as §3.8', () => {
    expect(parseIntField('expiry', '0', expiry)).toEqual({
      error: {
        type: 'greater_than_equal',
        loc: ['body', 'expiry'],
        msg: 'Input should be greater than or equal to 1',
        input: '0',
        ctx: { ge: 1 },
      },
    });
    expect(parseIntField('uses', '-3', uses).error?.type).toBe('greater_than_equal');
  });

  it('above maximum → less_than_equal with the configured bound', () => {
    expect(parseIntField('uses', '6', uses)).toEqual({
      error: {
        type: 'less_than_equal',
        loc: ['body', 'uses'],
        msg: 'Input should be less than or equal to 5',
        input: '6',
        ctx: { le: 5 },
      },
    });
    expect(parseIntField('expiry', '61', expiry).error).toEqual({
      type: 'less_than_equal',
      loc: ['body', 'expiry'],
      msg: 'Input should be less than or equal to 60',
      input: '61',
      ctx: { le: 60 },
    });
    const configured = parseIntField('expiry', '121', { min: 1, max: 120, loc: 'body' });
    expect(configured.error?.msg).toBe('Input should be less than or equal to 120');
    expect(configured.error?.ctx).toEqual({ le: 120 });
  });

  it('input echoes the raw string, whitespace included', () => {
    expect(parseIntField('uses', ' 9 ', uses).error?.input).toBe(' 9 ');
  });

  it('PUT query parameters use loc ["query", name]', () => {
    expect(parseIntField('expiry', 'x', { ...expiry, loc: 'query' }).error?.loc).toEqual(['query', 'expiry']);
    expect(parseIntField('uses', '9', { ...uses, loc: 'query' }).error?.loc).toEqual(['query', 'uses']);
  });
});

describe('file entries', () => {
  it('missing file exactly as §3.8', () => {
    expect(missingFileEntry()).toEqual({
      type: 'missing',
      loc: ['body', 'file'],
      msg: 'Field required',
      input: null,
    });
  });

  it('file sent as a plain field exactly as §3.8', () => {
    expect(fileAsFieldEntry('hello')).toEqual({
      type: 'value_error',
      loc: ['body', 'file'],
      msg: "Value error, Expected UploadFile, received: <class 'str'>",
      input: 'hello',
      ctx: { error: {} },
    });
  });

  it('serialises to the exact JSON of the original', () => {
    expect(JSON.stringify(missingFileEntry())).toBe(
      '{"type":"missing","loc":["body","file"],"msg":"Field required","input":null}',
    );
  });
});

describe('passwordEntry', () => {
  it('absent, empty and up to 1,024 characters → no entry', () => {
    expect(passwordEntry(undefined)).toBeUndefined();
    expect(passwordEntry('')).toBeUndefined();
    expect(passwordEntry('p'.repeat(1024))).toBeUndefined();
    expect(passwordEntry('é'.repeat(1024))).toBeUndefined();
  });

  it('over 1,024 characters → string_too_long exactly as §3.8', () => {
    const raw = 'p'.repeat(1025);
    expect(passwordEntry(raw)).toEqual({
      type: 'string_too_long',
      loc: ['body', 'password'],
      msg: 'String should have at most 1024 characters',
      input: raw,
      ctx: { max_length: 1024 },
    });
  });

  it('an X-Password header is reported at ["header","x-password"]', () => {
    expect(passwordEntry('p'.repeat(1025), 'header')?.loc).toEqual(['header', 'x-password']);
  });
});

describe('orderEntries', () => {
  it('orders file, expiry, uses, password whatever the order of discovery', () => {
    const password = passwordEntry('p'.repeat(1025)) as ValidationEntry;
    const usesError = parseIntField('uses', '0', uses).error as ValidationEntry;
    const expiryError = parseIntField('expiry', 'abc', expiry).error as ValidationEntry;
    const file = missingFileEntry();
    const ordered = orderEntries([password, usesError, file, expiryError]);
    expect(ordered.map((entry) => entry.loc[1])).toEqual(['file', 'expiry', 'uses', 'password']);
    expect(validationErrorBody([usesError, file])).toEqual({ detail: [file, usesError] });
  });
});

describe('file size messages', () => {
  it.each([
    [0, '0'],
    [100, '100'],
    [1000, '1,000'],
    [10_485_760, '10,485,760'],
    [10_485_761, '10,485,761'],
    [1_234_567_890_123, '1,234,567,890,123'],
  ])('formatBytes(%d) → %s', (n, text) => {
    expect(formatBytes(n)).toBe(text);
  });

  it('fileTooLargeMessage matches §3.9', () => {
    expect(fileTooLargeMessage(10_485_761, 10_485_760)).toBe(
      'File too large: 10,485,761 bytes (Max Size: 10,485,760 bytes)',
    );
    expect(fileTooLargeMessage(101, 100)).toBe('File too large: 101 bytes (Max Size: 100 bytes)');
  });
});
