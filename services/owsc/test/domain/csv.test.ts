import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import {
  CsvError,
  CsvLimitError,
  type CsvOptions,
  parseDecimal,
  parseIsoTime,
  parseReadingsFile,
  parseReadingsStream,
  parseReadingsText,
} from '../../src/domain/csv.js';
import type { CsvIssue, ParsedReadings } from '../../src/domain/types.js';

const options: CsvOptions = { maxBytes: 10_485_760, maxRows: 1_000_000, nondetect: 'zero' };
const fixture = (name: string) => fileURLToPath(new URL(`../fixtures/${name}`, import.meta.url));

function csvError(text: string, opts: CsvOptions = options): CsvError {
  try {
    parseReadingsText(text, opts);
  } catch (error) {
    if (error instanceof CsvError) return error;
    throw error;
  }
  throw new Error('CSV was accepted');
}

const issue = (line: number, column: string, reason: string): CsvIssue => ({ line, column, reason });

/** Readings as [time, species, concentration, value, nondetect, line]. */
function rows(parsed: ParsedReadings) {
  return parsed.readings.map((r) => [r.time, r.species, r.concentration, r.value, r.nondetect, r.line]);
}

async function* chunksOf(data: Buffer, size: number): AsyncGenerator<Buffer> {
  for (let at = 0; at < data.length; at += size) yield data.subarray(at, at + size);
}

describe('tidy CSV', () => {
  it('parses the example file of acceptance case 1', async () => {
    const parsed = await parseReadingsFile(fixture('example.csv'), options);
    expect(parsed).toMatchObject({ format: 'tidy', time_kind: 'numeric', rows: 9, flows: [] });
    expect(parsed.readings).toHaveLength(9);
    expect(parsed.readings[8]).toEqual({
      time: 8,
      t: 8,
      species: 'SO4',
      concentration: 240,
      value: 240,
      nondetect: false,
      line: 10,
    });
  });

  it('ignores a BOM, accepts CRLF, trims names and values, matches names case-insensitively, skips blank lines', () => {
    const text =
      '\uFEFF Time ,Concentration, SPECIES ,note\r\n\r\n1, 2.5 , SO4 ,x\r\n   \r\n2,3,Ni,y\r\n\r\n';
    const parsed = parseReadingsText(text, options);
    expect(parsed.rows).toBe(2);
    expect(rows(parsed)).toEqual([
      [1, 'SO4', 2.5, 2.5, false, 3],
      [2, 'Ni', 3, 3, false, 5],
    ]);
  });

  it('reads RFC 4180 quoting: commas, doubled quotes and newlines inside quotes', () => {
    const text =
      'time,species,concentration\n"1","Ni, total","0.5"\n2,"say ""hi""",1\n3,"multi\nline",2\n4,SO4,5\n';
    const parsed = parseReadingsText(text, options);
    expect(rows(parsed)).toEqual([
      [1, 'Ni, total', 0.5, 0.5, false, 2],
      [2, 'say "hi"', 1, 1, false, 3],
      [3, 'multi\nline', 2, 2, false, 4],
      [4, 'SO4', 5, 5, false, 6],
    ]);
  });

  it('reports a quoted multi-line record at its first line and counts the lines inside it', () => {
    const error = csvError('time,species,concentration\n1,"S\nO\n4",abc\n2,SO4,-1\n');
    expect(error.issues).toEqual([
      issue(2, 'concentration', 'not a number: "abc"'),
      issue(5, 'concentration', 'negative concentration -1'),
    ]);
    expect(error.message).toBe(
      'line 2, column concentration: not a number: "abc"; line 5, column concentration: negative concentration -1',
    );
  });

  it('reports an unterminated quote', () => {
    expect(csvError('time,species,concentration\n1,SO4,2\n2,"SO4,3\n').issues).toEqual([
      issue(3, 'species', 'unterminated quoted field'),
    ]);
  });

  it('sends species flow_m3d to flows, never to readings', () => {
    const parsed = parseReadingsText('time,species,concentration\n1,SO4,2\n1,flow_m3d,1500\n', options);
    expect(parsed.readings.map((r) => r.species)).toEqual(['SO4']);
    expect(parsed.flows.map((r) => [r.species, r.concentration])).toEqual([['flow_m3d', 1500]]);
    expect(parsed.rows).toBe(2);
  });

  it('parses ISO dates and date-times (no zone → UTC, offsets applied)', () => {
    const text =
      'time,species,concentration\n2024-03-01,SO4,1\n2024-03-01T10:00:00,SO4,1\n2024-03-01T10:00:00+02:00,SO4,1\n' +
      '2024-03-01 10:00Z,SO4,1\n2024-03-01T10:00:00.250-0130,SO4,1\n';
    const parsed = parseReadingsText(text, options);
    expect(parsed.time_kind).toBe('iso');
    expect(parsed.readings.map((r) => [r.time, r.t])).toEqual([
      ['2024-03-01', Date.UTC(2024, 2, 1)],
      ['2024-03-01T10:00:00', Date.UTC(2024, 2, 1, 10)],
      ['2024-03-01T10:00:00+02:00', Date.UTC(2024, 2, 1, 8)],
      ['2024-03-01 10:00Z', Date.UTC(2024, 2, 1, 10)],
      ['2024-03-01T10:00:00.250-0130', Date.UTC(2024, 2, 1, 11, 30, 0, 250)],
    ]);
  });

  it('accepts negative and fractional numeric times', () => {
    const parsed = parseReadingsText('time,species,concentration\n-1.5,SO4,1\n1e3,SO4,2\n', options);
    expect(parsed.readings.map((r) => r.time)).toEqual([-1.5, 1000]);
  });
});

describe('numbers and non-detects', () => {
  it('accepts the decimal grammar and gives the same doubles as Number()', () => {
    for (const text of [
      '0',
      '5.',
      '.5',
      '+1e2',
      '1E-3',
      '0.1',
      '123456789.123456789',
      '2.5e-7',
      '7e22',
      '1e23',
      '-0.0',
    ]) {
      expect(parseDecimal(text)).toBe(Number(text));
    }
    for (const text of [
      '',
      '.',
      'e5',
      '1e',
      '1e+',
      '0x10',
      '0b1',
      '0o7',
      'Infinity',
      'NaN',
      '1,5',
      '1 2',
      '--1',
      '1e999',
    ]) {
      expect(parseDecimal(text)).toBeUndefined();
    }
  });

  it.each([
    ['', 'empty concentration'],
    ['NaN', 'not a number: "NaN"'],
    ['inf', 'not a number: "inf"'],
    ['Infinity', 'not a number: "Infinity"'],
    ['1e999', 'not a finite number: "1e999"'],
    ['high', 'not a number: "high"'],
    ['-0.5', 'negative concentration -0.5'],
    ['<', 'non-detect needs a detection limit >= 0: "<"'],
    ['<-1', 'non-detect needs a detection limit >= 0: "<-1"'],
    ['<abc', 'non-detect needs a detection limit >= 0: "<abc"'],
  ])('rejects concentration %j', (value, reason) => {
    expect(csvError(`time,species,concentration\n1,SO4,${value}\n`).issues).toEqual([
      issue(2, 'concentration', reason),
    ]);
  });

  it.each([
    ['zero', 0],
    ['half', 0.0025],
    ['dl', 0.005],
  ] as const)('substitutes non-detects under policy %s (case 42)', (nondetect, value) => {
    const parsed = parseReadingsText('time,species,concentration\n1,As,<0.005\n2,As, < 0.005 \n', {
      ...options,
      nondetect,
    });
    expect(rows(parsed)).toEqual([
      [1, 'As', 0.005, value, true, 2],
      [2, 'As', 0.005, value, true, 3],
    ]);
  });
});

describe('wide CSV', () => {
  it('skips an empty cell and keeps the time column value (case 5)', async () => {
    const parsed = await parseReadingsFile(fixture('wide.csv'), options);
    expect(parsed.format).toBe('wide');
    expect(parsed.rows).toBe(3);
    expect(rows(parsed)).toEqual([
      [0, 'SO4', 200, 200, false, 2],
      [0, 'As', 0.005, 0.005, false, 2],
      [1, 'SO4', 240, 240, false, 3],
      [2, 'SO4', 320, 320, false, 4],
      [2, 'As', 0.02, 0.02, false, 4],
    ]);
  });

  it('uses the first column as time when none is named time, and sends flow_m3d to flows', () => {
    const parsed = parseReadingsText(
      'stamp,Ni_mgL,flow_m3d,comment\n2024-01-01,0.5,1200,ok\n2024-01-02,,,\n',
      options,
    );
    expect(parsed.time_kind).toBe('iso');
    expect(rows(parsed)).toEqual([['2024-01-01', 'Ni', 0.5, 0.5, false, 2]]);
    expect(parsed.flows.map((r) => [r.time, r.concentration])).toEqual([['2024-01-01', 1200]]);
    expect(parsed.rows).toBe(2);
  });

  it('names the column of a bad wide cell', () => {
    expect(csvError('time,SO4_mgL,As_mgL\n1,2,x\n').issues).toEqual([
      issue(2, 'As_mgL', 'not a number: "x"'),
    ]);
  });
});

describe('bad CSV content (spec §7.1)', () => {
  it.each([
    ['time,value\n1,2\n', 'missing required columns: concentration, species'],
    ['a,b\n1,2\n', 'missing required columns: concentration, species, time'],
    ['species,concentration\nSO4,2\n', 'missing required columns: time'],
    ['Time,Species\n1,SO4\n', 'missing required columns: concentration'],
  ])('rejects the header of %j', (text, message) => {
    const error = csvError(text);
    expect(error.message).toBe(message);
    expect(error.issues).toEqual([issue(1, '', message)]);
  });

  it.each([
    [''],
    ['\uFEFF'],
    ['time,species,concentration\n'],
    ['time,species,concentration\r\n\r\n\n'],
    ['\n\n'],
  ])('rejects %j with "no data rows"', (text) => {
    const error = csvError(text);
    expect(error.message).toBe('no data rows');
    expect(error.issues).toEqual([issue(1, '', 'no data rows')]);
  });

  it('rejects ragged rows naming the first missing column or the first extra field', () => {
    expect(csvError('time,species,concentration\n1,SO4\n2,SO4,3,4\n').issues).toEqual([
      issue(2, 'concentration', 'expected 3 fields, found 2'),
      issue(3, 'field 4', 'expected 3 fields, found 4'),
    ]);
  });

  it('rejects empty and over-long species', () => {
    const long = 'X'.repeat(65);
    expect(csvError(`time,species,concentration\n1,,2\n2,${long},3\n3,${'Y'.repeat(64)},4\n`).issues).toEqual(
      [issue(2, 'species', 'empty species'), issue(3, 'species', 'species longer than 64 characters')],
    );
  });

  it('rejects bad times, impossible dates and mixed time kinds at the first line that disagrees', () => {
    expect(
      csvError('time,species,concentration\n,SO4,1\nsoon,SO4,1\n2024-02-30,SO4,1\n2024-01-01T24:00,SO4,1\n')
        .issues,
    ).toEqual([
      issue(2, 'time', 'empty time'),
      issue(3, 'time', 'not a number or ISO 8601 date/time: "soon"'),
      issue(4, 'time', 'invalid date/time: "2024-02-30"'),
      issue(5, 'time', 'invalid date/time: "2024-01-01T24:00"'),
    ]);
    expect(
      csvError('time,species,concentration\n1,SO4,1\n2,SO4,1\n2024-01-01,SO4,1\n3,SO4,1\n').issues,
    ).toEqual([issue(4, 'time', 'mixed time kinds: an ISO 8601 time where line 2 set numeric times')]);
    expect(parseIsoTime('2024-02-29')).toBe(Date.UTC(2024, 1, 29));
    expect(parseIsoTime('2023-02-29')).toBeNaN();
  });

  it('reports several problems of one row in column order, and only the first 20 in line order', () => {
    expect(csvError('concentration,species,time\n-1,,x\n').issues).toEqual([
      issue(2, 'concentration', 'negative concentration -1'),
      issue(2, 'species', 'empty species'),
      issue(2, 'time', 'not a number or ISO 8601 date/time: "x"'),
    ]);
    const lines = Array.from({ length: 30 }, (_, i) => `${i},SO4,bad${i}`);
    const error = csvError(`time,species,concentration\n${lines.join('\n')}\n`);
    expect(error.issues).toHaveLength(20);
    expect(error.issues.map((i) => i.line)).toEqual(Array.from({ length: 20 }, (_, i) => i + 2));
    expect(error.message.split('; ')).toHaveLength(20);
  });
});

describe('limits (cases 7 and 8)', () => {
  const header = 'time,species,concentration\n';
  const body = (n: number) => header + Array.from({ length: n }, (_, i) => `${i},SO4,1\n`).join('');

  it('accepts a CSV of exactly the byte limit and rejects one byte more, as text and as a stream', async () => {
    const text = `${body(3)}`;
    const size = Buffer.byteLength(text);
    const atLimit = { ...options, maxBytes: size };
    const below = { ...options, maxBytes: size - 1 };
    expect(parseReadingsText(text, atLimit).rows).toBe(3);
    expect(parseReadingsText(Buffer.from(text), atLimit).rows).toBe(3);
    expect((await parseReadingsStream(chunksOf(Buffer.from(text), 5), atLimit)).rows).toBe(3);
    for (const attempt of [
      () => parseReadingsText(text, below),
      () => parseReadingsText(Buffer.from(text), below),
    ]) {
      expect(attempt).toThrow(new CsvLimitError('bytes', size - 1));
    }
    await expect(parseReadingsStream(chunksOf(Buffer.from(text), 5), below)).rejects.toThrow(
      `CSV too large: more than ${size - 1} bytes (OW_SC_MAX_CSV_BYTES)`,
    );
    // a BOM counts: 3 more bytes
    expect(() => parseReadingsText(`\uFEFF${text}`, { ...options, maxBytes: size + 2 })).toThrow(
      CsvLimitError,
    );
  });

  it('accepts exactly the row limit and rejects one more row, as text and as a stream', async () => {
    const limited = { ...options, maxRows: 4 };
    expect(parseReadingsText(`${body(4)}\n\n`, limited).rows).toBe(4);
    expect((await parseReadingsStream(chunksOf(Buffer.from(body(4)), 7), limited)).rows).toBe(4);
    const error = (() => {
      try {
        parseReadingsText(body(5), limited);
      } catch (caught) {
        return caught as CsvLimitError;
      }
      throw new Error('accepted');
    })();
    expect(error).toBeInstanceOf(CsvLimitError);
    expect(error.kind).toBe('rows');
    expect(error.limit).toBe(4);
    expect(error.message).toBe('CSV has more than 4 data rows (OW_SC_MAX_CSV_ROWS)');
    await expect(parseReadingsStream(chunksOf(Buffer.from(body(5)), 7), limited)).rejects.toThrow(
      'CSV has more than 4 data rows (OW_SC_MAX_CSV_ROWS)',
    );
  });

  it('stops consuming a stream as soon as a limit is passed', async () => {
    let pulled = 0;
    let finished = false;
    async function* endless(): AsyncGenerator<string> {
      try {
        yield header;
        for (;;) {
          pulled++;
          yield '1,SO4,2\n';
        }
      } finally {
        finished = true;
      }
    }
    await expect(parseReadingsStream(endless(), { ...options, maxRows: 10 })).rejects.toThrow(CsvLimitError);
    expect(pulled).toBe(11);
    expect(finished).toBe(true);
    pulled = 0;
    await expect(parseReadingsStream(endless(), { ...options, maxBytes: 100 })).rejects.toThrow(
      CsvLimitError,
    );
    expect(pulled).toBe(Math.ceil((100 - header.length + 1) / 8));
  });

  it('rejects a bad header from the stream without reading further', async () => {
    let pulled = 0;
    async function* source(): AsyncGenerator<string> {
      yield 'a,b\n';
      for (;;) {
        pulled++;
        yield '1,2\n';
      }
    }
    await expect(parseReadingsStream(source(), options)).rejects.toThrow('missing required columns');
    expect(pulled).toBeLessThanOrEqual(1);
  });

  describe('files', () => {
    const dir = mkdtempSync(join(tmpdir(), 'owsc-csv-'));
    afterAll(() => rmSync(dir, { recursive: true, force: true }));

    it('refuses a file larger than the byte limit from its size, and accepts one at the limit', async () => {
      const path = join(dir, 'limit.csv');
      const text = body(2);
      writeFileSync(path, text);
      const size = Buffer.byteLength(text);
      expect((await parseReadingsFile(path, { ...options, maxBytes: size })).rows).toBe(2);
      await expect(parseReadingsFile(path, { ...options, maxBytes: size - 1 })).rejects.toThrow(
        new CsvLimitError('bytes', size - 1),
      );
    });
  });
});

describe('streaming', () => {
  it('gives the same result for every chunk size, including split UTF-8 characters and quotes', async () => {
    const text =
      '\uFEFFtime,species,concentration,note\r\n1,"Ni, total",0.5,"a ""q"" and\r\na newline"\r\n\r\n' +
      '2,Ωmega,<0.1,ünïcödé\r\n3,"SO4",7,"x"\n4,SO4,8,end';
    const data = Buffer.from(text);
    const expected = parseReadingsText(text, { ...options, nondetect: 'dl' });
    expect(expected.rows).toBe(4);
    expect(expected.readings.map((r) => r.species)).toEqual(['Ni, total', 'Ωmega', 'SO4', 'SO4']);
    expect(expected.readings.map((r) => r.line)).toEqual([2, 5, 6, 7]);
    for (let size = 1; size <= 12; size++) {
      const parsed = await parseReadingsStream(chunksOf(data, size), { ...options, nondetect: 'dl' });
      expect(rows(parsed)).toEqual(rows(expected));
    }
  });

  it('serialises lazily built readings like plain arrays', () => {
    const parsed = parseReadingsText('time,species,concentration\n1,SO4,2\n', options);
    expect(JSON.parse(JSON.stringify(parsed))).toEqual({
      format: 'tidy',
      time_kind: 'numeric',
      rows: 1,
      readings: [{ time: 1, t: 1, species: 'SO4', concentration: 2, value: 2, nondetect: false, line: 2 }],
      flows: [],
    });
    expect(structuredClone(parsed).readings).toHaveLength(1);
  });
});
