// CSV readings input (spec §3.4): a hand-made RFC 4180 scanner fed chunk by chunk (partial records are carried
// to the next chunk), with byte and row limits checked while the data arrives. Unquoted lines — nearly all of a
// real file — take a fast path of `indexOf` and `slice`; quoted records go through a small state machine.
import { createReadStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import type {
  CsvFormat,
  CsvIssue,
  NondetectPolicy,
  ParsedReadings,
  Reading,
  ReadingTime,
  TimeKind,
} from './types.js';

export interface CsvOptions {
  /** `OW_SC_MAX_CSV_BYTES`: the largest accepted source, in bytes (BOM included) */
  maxBytes: number;
  /** `OW_SC_MAX_CSV_ROWS`: the most data rows (non-blank records after the header) */
  maxRows: number;
  nondetect: NondetectPolicy;
}

/** Errors reported per file (spec §3.4): the first ones in line order. */
export const MAX_REPORTED_ISSUES = 20;
export const MAX_SPECIES_LENGTH = 64;
/** Flow rows (tidy species) or column (wide) in m³/day: statistics input, never evaluated as a concentration. */
export const FLOW_SPECIES = 'flow_m3d';
const WIDE_SUFFIX = '_mgL';

/** `line <n>, column <name>: <reason>`; a whole-file issue (empty column) is its reason alone. */
export function formatCsvIssue(issue: CsvIssue): string {
  return issue.column === '' ? issue.reason : `line ${issue.line}, column ${issue.column}: ${issue.reason}`;
}

/**
 * Invalid CSV content. `issues` holds at most 20 entries in line order. Whole-file problems use line 1 (or the
 * header's line) and an empty column: `missing required columns: …` and `no data rows`; their message is the
 * reason alone.
 */
export class CsvError extends Error {
  override readonly name = 'CsvError';
  constructor(
    readonly issues: CsvIssue[],
    message = issues.slice(0, MAX_REPORTED_ISSUES).map(formatCsvIssue).join('; '),
  ) {
    super(message);
  }
}

/** The source passed `OW_SC_MAX_CSV_BYTES` or `OW_SC_MAX_CSV_ROWS` (CLI exit 4, HTTP 413). */
export class CsvLimitError extends Error {
  override readonly name = 'CsvLimitError';
  constructor(
    readonly kind: 'bytes' | 'rows',
    readonly limit: number,
  ) {
    super(
      kind === 'bytes'
        ? `CSV too large: more than ${limit} bytes (OW_SC_MAX_CSV_BYTES)`
        : `CSV has more than ${limit} data rows (OW_SC_MAX_CSV_ROWS)`,
    );
  }
}

/** The value a non-detect `<DL` enters means with (spec §3.1, `OW_SC_NONDETECT`). */
export function substitutedValue(detectionLimit: number, policy: NondetectPolicy): number {
  if (policy === 'zero') return 0;
  return policy === 'half' ? detectionLimit / 2 : detectionLimit;
}

const DECIMAL = /^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$/;
const POWERS_OF_TEN = Array.from({ length: 23 }, (_, k) => 10 ** k);
const MAX_EXACT_DIGITS = 15;

/**
 * The decimal number written in text[start, end) (`[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?`), or NaN when it
 * is not one or is not finite. Up to 15 significant digits and a power of ten up to 22 the value is computed
 * from the digits (an exact integer times or divided by an exact power of ten: one rounding, the same double as
 * `Number()`); anything longer goes to `Number()`. No substring is made on the fast path.
 */
export function scanDecimal(text: string, start: number, end: number): number {
  let i = start;
  let code = text.charCodeAt(i);
  const negative = code === 45;
  if (negative || code === 43) i++;
  let mantissa = 0;
  let digits = 0;
  let scale = 0;
  while (i < end) {
    code = text.charCodeAt(i);
    if (code < 48 || code > 57) break;
    mantissa = mantissa * 10 + (code - 48);
    digits++;
    i++;
  }
  if (i < end && text.charCodeAt(i) === 46) {
    i++;
    while (i < end) {
      code = text.charCodeAt(i);
      if (code < 48 || code > 57) break;
      mantissa = mantissa * 10 + (code - 48);
      digits++;
      scale++;
      i++;
    }
  }
  if (digits === 0) return Number.NaN;
  let exponent = 0;
  if (i < end && (text.charCodeAt(i) | 0x20) === 101) {
    i++;
    const sign = text.charCodeAt(i);
    if (sign === 43 || sign === 45) i++;
    const first = i;
    while (i < end) {
      code = text.charCodeAt(i);
      if (code < 48 || code > 57) break;
      if (exponent < 100_000) exponent = exponent * 10 + (code - 48);
      i++;
    }
    if (i === first) return Number.NaN;
    if (sign === 45) exponent = -exponent;
  }
  if (i !== end) return Number.NaN;
  const power = exponent - scale;
  let value: number;
  if (digits <= MAX_EXACT_DIGITS && power >= -22 && power <= 22) {
    value =
      power >= 0 ? mantissa * (POWERS_OF_TEN[power] as number) : mantissa / (POWERS_OF_TEN[-power] as number);
    if (negative) value = -value;
  } else {
    value = Number(text.slice(start, end));
  }
  return Number.isFinite(value) ? value : Number.NaN;
}

/** A decimal number (the grammar of `scanDecimal`, finite), else undefined. */
export function parseDecimal(text: string): number | undefined {
  const value = scanDecimal(text, 0, text.length);
  return Number.isNaN(value) ? undefined : value;
}

const ISO_TIME =
  /^(\d{4})-(\d{2})-(\d{2})(?:[Tt ](\d{2}):(\d{2})(?::(\d{2})(?:[.,](\d+))?)?(?:([Zz])|([+-])(\d{2})(?::?(\d{2}))?)?)?$/;
const DAY_MS = 86_400_000;

/** Days since 1970-01-01 of a proleptic Gregorian date (valid for any year). */
export function daysFromCivil(year: number, month: number, day: number): number {
  const y = month <= 2 ? year - 1 : year;
  const era = Math.floor(y / 400);
  const yoe = y - era * 400;
  const doy = Math.floor((153 * (month + (month > 2 ? -3 : 9)) + 2) / 5) + day - 1;
  const doe = yoe * 365 + Math.floor(yoe / 4) - Math.floor(yoe / 100) + doy;
  return era * 146_097 + doe - 719_468;
}

function daysInMonth(year: number, month: number): number {
  if (month === 2) return year % 4 === 0 && (year % 100 !== 0 || year % 400 === 0) ? 29 : 28;
  return month === 4 || month === 6 || month === 9 || month === 11 ? 30 : 31;
}

/**
 * Epoch milliseconds of an ISO 8601 date (`YYYY-MM-DD`, UTC midnight) or date-time (`T` or space, optional
 * seconds and fraction, `Z` or `±HH[:MM]`; no zone → UTC). NaN when the text has the shape but is not a real
 * date/time (2024-02-30, 25:00); undefined when it is not ISO-shaped at all.
 */
export function parseIsoTime(text: string): number | undefined {
  const m = ISO_TIME.exec(text);
  if (m === null) return undefined;
  const year = Number(m[1]);
  const month = Number(m[2]);
  const day = Number(m[3]);
  if (month < 1 || month > 12 || day < 1 || day > daysInMonth(year, month)) return Number.NaN;
  const hour = m[4] === undefined ? 0 : Number(m[4]);
  const minute = m[5] === undefined ? 0 : Number(m[5]);
  const second = m[6] === undefined ? 0 : Number(m[6]);
  if (hour > 23 || minute > 59 || second > 59) return Number.NaN;
  let offsetMinutes = 0;
  if (m[9] !== undefined) {
    const offsetHours = Number(m[10]);
    const offsetRest = m[11] === undefined ? 0 : Number(m[11]);
    if (offsetHours > 23 || offsetRest > 59) return Number.NaN;
    offsetMinutes = (m[9] === '-' ? -1 : 1) * (offsetHours * 60 + offsetRest);
  }
  const fraction = m[7] === undefined ? 0 : Number(`0.${m[7]}`) * 1000;
  return (
    daysFromCivil(year, month, day) * DAY_MS +
    ((hour * 60 + minute - offsetMinutes) * 60 + second) * 1000 +
    fraction
  );
}

/** True for an ISO date without a time of day (`YYYY-MM-DD`): its calendar date is the text itself. */
export function isDateOnly(time: ReadingTime): time is string {
  return typeof time === 'string' && time.length === 10;
}

/** A time field: numeric, ISO, or the reason it is neither. */
export type ParsedTime =
  | { kind: TimeKind; time: ReadingTime; t: number }
  | { kind: 'invalid'; reason: string };

function quoted(text: string): string {
  return JSON.stringify(text.length > 40 ? `${text.slice(0, 40)}…` : text);
}

/** Parses one (trimmed) time value as a CSV reading time. */
export function parseReadingTime(text: string): ParsedTime {
  if (text === '') return { kind: 'invalid', reason: 'empty time' };
  // ISO times have a '-' at index 4; checking it first spares a failing Number() per row.
  if (text.charCodeAt(4) !== 45) {
    const number = parseDecimal(text);
    if (number !== undefined) return { kind: 'numeric', time: number, t: number };
  }
  const t = parseIsoTime(text);
  if (t === undefined)
    return { kind: 'invalid', reason: `not a number or ISO 8601 date/time: ${quoted(text)}` };
  if (Number.isNaN(t)) return { kind: 'invalid', reason: `invalid date/time: ${quoted(text)}` };
  return { kind: 'iso', time: text, t };
}

function numberProblem(text: string, what: string): string {
  if (text === '') return `empty ${what}`;
  if (DECIMAL.test(text)) return `not a finite number: ${quoted(text)}`;
  return `not a number: ${quoted(text)}`;
}

/**
 * Readings stored by column (typed arrays): about 40 bytes a reading instead of a ~150-byte object, so a
 * 1,000,000-row batch parses and evaluates in bounded memory. `reading(i)` gives the `Reading` object.
 */
export class ReadingTable {
  length = 0;
  /** species names; `speciesIndex[i]` points into it */
  readonly species: string[] = [];
  speciesIndex: Uint32Array;
  t: Float64Array;
  concentration: Float64Array;
  value: Float64Array;
  nondetect: Uint8Array;
  line: Float64Array;
  /** the written ISO time strings; null while every time is numeric (the time is then `t`) */
  times: ReadingTime[] | null = null;
  private readonly speciesIds = new Map<string, number>();

  constructor(capacity = 1024) {
    this.speciesIndex = new Uint32Array(capacity);
    this.t = new Float64Array(capacity);
    this.concentration = new Float64Array(capacity);
    this.value = new Float64Array(capacity);
    this.nondetect = new Uint8Array(capacity);
    this.line = new Float64Array(capacity);
  }

  /** Appends a reading; `time` is kept only when it is not the number `t`. */
  add(
    time: ReadingTime,
    t: number,
    species: string,
    concentration: number,
    value: number,
    nondetect: boolean,
    line: number,
  ): void {
    const i = this.length;
    if (i === this.t.length) this.grow();
    let id = this.speciesIds.get(species);
    if (id === undefined) {
      id = this.species.length;
      this.species.push(species);
      this.speciesIds.set(species, id);
    }
    if (typeof time === 'string' || this.times !== null) {
      if (this.times === null) this.times = Array.from(this.t.subarray(0, i));
      this.times.push(time);
    }
    this.speciesIndex[i] = id;
    this.t[i] = t;
    this.concentration[i] = concentration;
    this.value[i] = value;
    this.nondetect[i] = nondetect ? 1 : 0;
    this.line[i] = line;
    this.length = i + 1;
  }

  time(i: number): ReadingTime {
    return this.times === null ? (this.t[i] as number) : (this.times[i] as ReadingTime);
  }

  speciesOf(i: number): string {
    return this.species[this.speciesIndex[i] as number] as string;
  }

  reading(i: number): Reading {
    return {
      time: this.time(i),
      t: this.t[i] as number,
      species: this.speciesOf(i),
      concentration: this.concentration[i] as number,
      value: this.value[i] as number,
      nondetect: this.nondetect[i] === 1,
      line: this.line[i] as number,
    };
  }

  toReadings(): Reading[] {
    const out = new Array<Reading>(this.length);
    for (let i = 0; i < this.length; i++) out[i] = this.reading(i);
    return out;
  }

  static fromReadings(readings: readonly Reading[]): ReadingTable {
    const table = new ReadingTable(Math.max(readings.length, 1));
    for (const r of readings)
      table.add(r.time, r.t, r.species, r.concentration, r.value, r.nondetect, r.line);
    return table;
  }

  private grow(): void {
    const capacity = this.t.length * 2;
    const speciesIndex = new Uint32Array(capacity);
    speciesIndex.set(this.speciesIndex);
    this.speciesIndex = speciesIndex;
    this.t = enlarge(this.t, capacity);
    this.concentration = enlarge(this.concentration, capacity);
    this.value = enlarge(this.value, capacity);
    this.line = enlarge(this.line, capacity);
    const nondetect = new Uint8Array(capacity);
    nondetect.set(this.nondetect);
    this.nondetect = nondetect;
  }
}

function enlarge(array: Float64Array, capacity: number): Float64Array {
  const larger = new Float64Array(capacity);
  larger.set(array);
  return larger;
}

type TableKey = 'readings' | 'flows';
const tables = new WeakMap<ParsedReadings, Partial<Record<TableKey, ReadingTable>>>();

/**
 * A ParsedReadings whose `readings` and `flows` arrays are built on first access from the tables (the batch
 * engine reads the tables directly and never builds them). Both are enumerable, so JSON and structured clones
 * see ordinary arrays. Once an array is built or replaced, it is the source of truth and its table is dropped.
 */
function parsedFromTables(
  format: CsvFormat,
  timeKind: TimeKind,
  rows: number,
  readings: ReadingTable,
  flows: ReadingTable,
): ParsedReadings {
  const parsed = { format, time_kind: timeKind, rows } as ParsedReadings;
  const entry: Partial<Record<TableKey, ReadingTable>> = { readings, flows };
  const settle = (key: TableKey, value: Reading[]): void => {
    Object.defineProperty(parsed, key, { value, enumerable: true, configurable: true, writable: true });
    delete entry[key];
  };
  for (const [key, table] of [
    ['readings', readings],
    ['flows', flows],
  ] as const) {
    Object.defineProperty(parsed, key, {
      enumerable: true,
      configurable: true,
      get(): Reading[] {
        const value = table.toReadings();
        settle(key, value);
        return value;
      },
      set(value: Reading[]): void {
        settle(key, value);
      },
    });
  }
  tables.set(parsed, entry);
  return parsed;
}

/** The column tables of parsed readings (built from the arrays when the parser's tables are not available). */
export function readingTables(parsed: ParsedReadings): { readings: ReadingTable; flows: ReadingTable } {
  const entry = tables.get(parsed);
  return {
    readings: entry?.readings ?? ReadingTable.fromReadings(parsed.readings),
    flows: entry?.flows ?? ReadingTable.fromReadings(parsed.flows),
  };
}

function isSpace(code: number): boolean {
  return (
    code <= 32 || code === 0xa0 || code === 0xfeff || (code >= 0x1680 && /\s/.test(String.fromCharCode(code)))
  );
}

interface WideColumn {
  index: number;
  species: string;
  flow: boolean;
}

// Recently seen species are matched in place (no substring) before falling back to the map.
const SPECIES_CACHE = 16;

/**
 * Turns header and data records into readings; collects issues; enforces the row limit. A record arrives as
 * `text` with field i at [starts[i], ends[i]): the hot path reads numbers and species straight from the text.
 */
class ReadingsBuilder {
  private names: string[] | undefined;
  private headerLine = 1;
  private format: CsvFormat = 'tidy';
  private timeIndex = 0;
  private speciesIndex = 0;
  private concentrationIndex = 0;
  private wideColumns: WideColumn[] = [];
  private timeKind: TimeKind | undefined;
  private timeKindLine = 0;
  private rows = 0;
  private readonly readings = new ReadingTable();
  private readonly flows = new ReadingTable(16);
  private readonly issues: CsvIssue[] = [];
  private rowIssues: { index: number; issue: CsvIssue }[] = [];
  private readonly speciesNames = new Map<string, string>();
  private readonly recentSpecies: string[] = [];
  // The previous row's time text and value: rows of one instant (tidy files) repeat it.
  private lastTimeText = '';
  private lastTime: ReadingTime = 0;
  private lastT = 0;
  // Field bounds after trimming, and the outputs of the readers: fields, so the hot path allocates nothing.
  private fieldStart = 0;
  private fieldEnd = 0;
  private time: ReadingTime = 0;
  private t = 0;
  private concentration = 0;
  private value = 0;
  private nondetect = false;

  constructor(private readonly options: CsvOptions) {}

  record(text: string, starts: number[], ends: number[], count: number, line: number): void {
    if (this.names === undefined) {
      const names: string[] = [];
      for (let i = 0; i < count; i++) names.push(text.slice(starts[i], ends[i]).trim());
      this.header(names, line);
      return;
    }
    this.rows++;
    if (this.rows > this.options.maxRows) throw new CsvLimitError('rows', this.options.maxRows);
    if (count !== this.names.length) {
      const expected = this.names.length;
      const column = count < expected ? (this.names[count] as string) : `field ${expected + 1}`;
      this.addIssue(count, line, column, `expected ${expected} fields, found ${count}`);
    } else if (this.format === 'tidy') {
      this.tidyRow(text, starts, ends, line);
    } else {
      this.wideRow(text, starts, ends, line);
    }
    if (this.rowIssues.length > 0) this.flushRowIssues();
  }

  /** A quoting problem the scanner found in field `index` of the record at `line`. */
  malformed(index: number, line: number, reason: string): void {
    const column = this.names?.[index] ?? `field ${index + 1}`;
    if (this.names === undefined) throw new CsvError([{ line, column, reason }]);
    this.rows++;
    if (this.rows > this.options.maxRows) throw new CsvLimitError('rows', this.options.maxRows);
    this.addIssue(index, line, column, reason);
    this.flushRowIssues();
  }

  finish(): ParsedReadings {
    if (this.names === undefined || this.rows === 0) {
      throw new CsvError([{ line: this.headerLine, column: '', reason: 'no data rows' }], 'no data rows');
    }
    if (this.issues.length > 0) throw new CsvError(this.issues);
    return parsedFromTables(this.format, this.timeKind ?? 'numeric', this.rows, this.readings, this.flows);
  }

  private header(names: string[], line: number): void {
    const lower = names.map((name) => name.toLowerCase());
    this.headerLine = line;
    const time = lower.indexOf('time');
    const species = lower.indexOf('species');
    const concentration = lower.indexOf('concentration');
    if (species >= 0 && concentration >= 0 && time >= 0) {
      this.format = 'tidy';
      this.timeIndex = time;
      this.speciesIndex = species;
      this.concentrationIndex = concentration;
    } else if (!(species >= 0 && concentration >= 0) && names.some((name) => name.endsWith(WIDE_SUFFIX))) {
      this.format = 'wide';
      this.timeIndex = Math.max(time, 0);
      names.forEach((name, index) => {
        if (index === this.timeIndex) return;
        if (name === FLOW_SPECIES) {
          this.wideColumns.push({ index, species: FLOW_SPECIES, flow: true });
        } else if (name.endsWith(WIDE_SUFFIX)) {
          const sp = name.slice(0, -WIDE_SUFFIX.length).trim();
          if (sp === '' || sp.length > MAX_SPECIES_LENGTH) {
            const reason = `species name must be 1 to ${MAX_SPECIES_LENGTH} characters`;
            throw new CsvError([{ line, column: name, reason }]);
          }
          this.wideColumns.push({ index, species: sp, flow: false });
        }
      });
    } else {
      const missing = (['concentration', 'species', 'time'] as const).filter((name) => !lower.includes(name));
      const reason = `missing required columns: ${missing.join(', ')}`;
      throw new CsvError([{ line, column: '', reason }], reason);
    }
    this.names = names;
  }

  /** Sets fieldStart/fieldEnd to the field's bounds without surrounding whitespace. */
  private bounds(text: string, start: number, end: number): void {
    while (start < end && isSpace(text.charCodeAt(start))) start++;
    while (end > start && isSpace(text.charCodeAt(end - 1))) end--;
    this.fieldStart = start;
    this.fieldEnd = end;
  }

  private tidyRow(text: string, starts: number[], ends: number[], line: number): void {
    const timeOk = this.readTime(
      text,
      starts[this.timeIndex] as number,
      ends[this.timeIndex] as number,
      line,
    );
    const species = this.readSpecies(
      text,
      starts[this.speciesIndex] as number,
      ends[this.speciesIndex] as number,
      line,
    );
    const flow = species === FLOW_SPECIES;
    const index = this.concentrationIndex;
    const valueOk = this.readConcentration(
      text,
      starts[index] as number,
      ends[index] as number,
      line,
      index,
      flow,
    );
    if (!timeOk || !valueOk || species === undefined || this.issues.length > 0) return;
    this.push(flow ? this.flows : this.readings, species, line);
  }

  private wideRow(text: string, starts: number[], ends: number[], line: number): void {
    const timeOk = this.readTime(
      text,
      starts[this.timeIndex] as number,
      ends[this.timeIndex] as number,
      line,
    );
    for (const column of this.wideColumns) {
      this.bounds(text, starts[column.index] as number, ends[column.index] as number);
      if (this.fieldStart === this.fieldEnd) continue; // an empty wide cell: not measured
      const valueOk = this.readConcentration(
        text,
        this.fieldStart,
        this.fieldEnd,
        line,
        column.index,
        column.flow,
      );
      if (timeOk && valueOk && this.issues.length === 0 && this.rowIssues.length === 0) {
        this.push(column.flow ? this.flows : this.readings, column.species, line);
      }
    }
  }

  private push(target: ReadingTable, species: string, line: number): void {
    target.add(this.time, this.t, species, this.concentration, this.value, this.nondetect, line);
  }

  private column(index: number): string {
    return this.names?.[index] ?? `field ${index + 1}`;
  }

  private readSpecies(text: string, start: number, end: number, line: number): string | undefined {
    this.bounds(text, start, end);
    start = this.fieldStart;
    end = this.fieldEnd;
    const length = end - start;
    const recent = this.recentSpecies;
    for (let i = 0; i < recent.length; i++) {
      const known = recent[i] as string;
      if (known.length === length && text.startsWith(known, start)) return known;
    }
    const name = text.slice(start, end);
    const interned = this.speciesNames.get(name);
    if (interned !== undefined) return interned;
    if (name === '' || name.length > MAX_SPECIES_LENGTH) {
      const reason = name === '' ? 'empty species' : `species longer than ${MAX_SPECIES_LENGTH} characters`;
      this.addIssue(this.speciesIndex, line, this.column(this.speciesIndex), reason);
      return undefined;
    }
    this.speciesNames.set(name, name);
    if (recent.length < SPECIES_CACHE) recent.push(name);
    return name;
  }

  private readTime(text: string, start: number, end: number, line: number): boolean {
    this.bounds(text, start, end);
    start = this.fieldStart;
    end = this.fieldEnd;
    const previous = this.lastTimeText;
    if (previous.length === end - start && previous.length > 0 && text.startsWith(previous, start)) {
      this.time = this.lastTime;
      this.t = this.lastT;
      return true;
    }
    const timeText = text.slice(start, end);
    const parsed = parseReadingTime(timeText);
    if (parsed.kind === 'invalid') {
      this.addIssue(this.timeIndex, line, this.column(this.timeIndex), parsed.reason);
      return false;
    }
    if (parsed.kind !== this.timeKind) {
      if (this.timeKind !== undefined) {
        const expected = this.timeKind === 'iso' ? 'ISO 8601' : 'numeric';
        const found = parsed.kind === 'iso' ? 'an ISO 8601' : 'a numeric';
        const reason = `mixed time kinds: ${found} time where line ${this.timeKindLine} set ${expected} times`;
        this.addIssue(this.timeIndex, line, this.column(this.timeIndex), reason);
        return false;
      }
      this.timeKind = parsed.kind;
      this.timeKindLine = line;
    }
    this.time = parsed.time;
    this.t = parsed.t;
    this.lastTimeText = timeText;
    this.lastTime = parsed.time;
    this.lastT = parsed.t;
    return true;
  }

  private readConcentration(
    text: string,
    start: number,
    end: number,
    line: number,
    index: number,
    flow: boolean,
  ): boolean {
    this.bounds(text, start, end);
    start = this.fieldStart;
    end = this.fieldEnd;
    const number = scanDecimal(text, start, end);
    if (number >= 0) {
      this.concentration = number;
      this.value = number;
      this.nondetect = false;
      return true;
    }
    const written = text.slice(start, end);
    const what = flow ? 'flow' : 'concentration';
    if (number < 0) {
      this.addIssue(index, line, this.column(index), `negative ${what} ${written}`);
      return false;
    }
    if (written.charCodeAt(0) === 60 && !flow) {
      const detectionLimit = parseDecimal(written.slice(1).trim());
      if (detectionLimit === undefined || detectionLimit < 0) {
        const reason = `non-detect needs a detection limit >= 0: ${quoted(written)}`;
        this.addIssue(index, line, this.column(index), reason);
        return false;
      }
      this.concentration = detectionLimit;
      this.value = substitutedValue(detectionLimit, this.options.nondetect);
      this.nondetect = true;
      return true;
    }
    this.addIssue(index, line, this.column(index), numberProblem(written, what));
    return false;
  }

  private addIssue(index: number, line: number, column: string, reason: string): void {
    this.rowIssues.push({ index, issue: { line, column, reason } });
  }

  private flushRowIssues(): void {
    const room = MAX_REPORTED_ISSUES - this.issues.length;
    if (room > 0) {
      this.rowIssues.sort((a, b) => a.index - b.index);
      for (const { issue } of this.rowIssues.slice(0, room)) this.issues.push(issue);
    }
    this.rowIssues = [];
  }
}

const QUOTE = 34;
const COMMA = 44;
const LF = 10;
const CR = 13;

/** RFC 4180 record scanner over decoded text chunks. */
class CsvScanner {
  private carry = '';
  /** physical 1-based line of the next record's first line */
  private line = 1;
  private readonly starts: number[] = [];
  private readonly ends: number[] = [];
  private nextComma = -1;

  constructor(private readonly builder: ReadingsBuilder) {}

  feed(text: string): void {
    if (text.length > 0) this.scan(this.carry.length === 0 ? text : this.carry + text, false);
  }

  end(): void {
    if (this.carry.length > 0) this.scan(this.carry, true);
  }

  private scan(buffer: string, final: boolean): void {
    const length = buffer.length;
    let pos = 0;
    let nextQuote = buffer.indexOf('"');
    this.nextComma = buffer.indexOf(',');
    while (pos < length) {
      let newline = buffer.indexOf('\n', pos);
      if (nextQuote !== -1 && nextQuote < pos) nextQuote = buffer.indexOf('"', pos);
      if (nextQuote === -1 || (newline !== -1 && nextQuote > newline)) {
        if (newline === -1) {
          if (!final) break;
          newline = length;
        }
        const end = newline > pos && buffer.charCodeAt(newline - 1) === CR ? newline - 1 : newline;
        this.unquotedRecord(buffer, pos, end);
        this.line++;
        pos = newline + 1;
      } else {
        const next = this.quotedRecord(buffer, pos, final);
        if (next === -1) break;
        pos = next;
      }
    }
    this.carry = pos < length ? buffer.slice(pos) : '';
  }

  private unquotedRecord(buffer: string, start: number, end: number): void {
    const starts = this.starts;
    const ends = this.ends;
    let count = 0;
    let from = start;
    for (;;) {
      if (this.nextComma !== -1 && this.nextComma < from) this.nextComma = buffer.indexOf(',', from);
      const comma = this.nextComma;
      starts[count] = from;
      if (comma === -1 || comma >= end) {
        ends[count++] = end;
        break;
      }
      ends[count++] = comma;
      from = comma + 1;
    }
    if (count === 1 && buffer.slice(start, end).trim() === '') return; // a blank line
    this.builder.record(buffer, starts, ends, count, this.line);
  }

  /** Parses a record holding quotes from `start`; the position after it, or -1 when it needs more text. */
  private quotedRecord(buffer: string, start: number, final: boolean): number {
    const length = buffer.length;
    const values: string[] = [];
    let newlines = 0;
    let i = start;
    for (;;) {
      let value = '';
      if (buffer.charCodeAt(i) === QUOTE) {
        let from = i + 1;
        for (;;) {
          const quote = buffer.indexOf('"', from);
          if (quote === -1) {
            if (!final) return -1;
            this.builder.malformed(values.length, this.line, 'unterminated quoted field');
            this.line += 1 + newlines + countNewlines(buffer, from, length);
            return length;
          }
          newlines += countNewlines(buffer, from, quote);
          value += buffer.slice(from, quote);
          if (buffer.charCodeAt(quote + 1) === QUOTE) {
            value += '"';
            from = quote + 2;
          } else {
            i = quote + 1;
            break;
          }
        }
      }
      // Unquoted text, or text after a closing quote (kept literally, as Python's csv module does).
      let j = i;
      while (j < length) {
        const code = buffer.charCodeAt(j);
        if (code === COMMA || code === LF) break;
        j++;
      }
      if (j === length && !final) return -1;
      let stop = j;
      if ((j === length || buffer.charCodeAt(j) === LF) && stop > i && buffer.charCodeAt(stop - 1) === CR)
        stop--;
      values.push(value + buffer.slice(i, stop));
      if (j < length && buffer.charCodeAt(j) === COMMA) {
        i = j + 1;
        continue;
      }
      // Hand the builder one string with known field bounds (field texts may hold commas and quotes).
      let offset = 0;
      for (let k = 0; k < values.length; k++) {
        this.starts[k] = offset;
        offset += (values[k] as string).length;
        this.ends[k] = offset;
      }
      this.builder.record(values.join(''), this.starts, this.ends, values.length, this.line);
      this.line += 1 + newlines;
      return j + 1;
    }
  }
}

function countNewlines(buffer: string, from: number, to: number): number {
  let count = 0;
  for (let at = buffer.indexOf('\n', from); at !== -1 && at < to; at = buffer.indexOf('\n', at + 1)) count++;
  return count;
}

/**
 * Incremental parser: push decoded or raw chunks as they arrive, then `finish()`. Throws CsvLimitError as
 * soon as the byte or row limit is passed, CsvError for a bad header at once and for bad rows at the end.
 */
export class CsvReadingsParser {
  private bytes = 0;
  private started = false;
  private readonly decoder = new TextDecoder('utf-8');
  private readonly builder: ReadingsBuilder;
  private readonly scanner: CsvScanner;

  constructor(private readonly options: CsvOptions) {
    this.builder = new ReadingsBuilder(options);
    this.scanner = new CsvScanner(this.builder);
  }

  push(chunk: Uint8Array | string): void {
    if (typeof chunk === 'string') {
      this.count(Buffer.byteLength(chunk));
      const text = !this.started && chunk.charCodeAt(0) === 0xfeff ? chunk.slice(1) : chunk;
      this.started = true;
      this.scanner.feed(text);
      return;
    }
    this.count(chunk.byteLength);
    this.started = true;
    this.scanner.feed(this.decoder.decode(chunk, { stream: true }));
  }

  finish(): ParsedReadings {
    this.scanner.feed(this.decoder.decode());
    this.scanner.end();
    return this.builder.finish();
  }

  private count(bytes: number): void {
    this.bytes += bytes;
    if (this.bytes > this.options.maxBytes) throw new CsvLimitError('bytes', this.options.maxBytes);
  }
}

/** Parses a whole CSV held in memory (spec §3.4). */
export function parseReadingsText(text: string | Buffer, options: CsvOptions): ParsedReadings {
  const parser = new CsvReadingsParser(options);
  parser.push(text);
  return parser.finish();
}

/** Parses a CSV as it arrives; stops consuming (and throws) as soon as a limit is passed or the header is bad. */
export async function parseReadingsStream(
  source: AsyncIterable<Buffer | string>,
  options: CsvOptions,
): Promise<ParsedReadings> {
  const parser = new CsvReadingsParser(options);
  for await (const chunk of source) parser.push(chunk);
  return parser.finish();
}

/** Parses a CSV file; a file larger than the byte limit is refused from its size, before reading. */
export async function parseReadingsFile(path: string, options: CsvOptions): Promise<ParsedReadings> {
  const info = await stat(path);
  if (info.size > options.maxBytes) throw new CsvLimitError('bytes', options.maxBytes);
  return parseReadingsStream(createReadStream(path, { highWaterMark: 1 << 20 }), options);
}
