// Regulatory statistics (spec §3.3): daily values, monthly averages of daily values, maxima, mass loads from
// flow and the daily-maximum / monthly-average limits, on calendar days of the permit's time zone.
import { FLOW_SPECIES, isDateOnly, type ReadingTable, readingTables } from './csv.js';
import { ownValue } from './permit.js';
import { buildAlert } from './rules.js';
import type {
  Alert,
  DailyStatistic,
  MonthlyStatistic,
  ParsedReadings,
  Permit,
  ReadingTime,
  Statistics,
} from './types.js';

/** Statistics asked of readings with numeric times (CLI `stats` exit 4). */
export class StatisticsError extends Error {
  override readonly name = 'StatisticsError';
  constructor(message = 'calendar statistics need ISO 8601 times') {
    super(message);
  }
}

const HOUR_MS = 3_600_000;
const DAY_MS = 86_400_000;

function pad(value: number, width: number): string {
  return String(value).padStart(width, '0');
}

/** `YYYY-MM-DD` of a day count since 1970-01-01 (proleptic Gregorian). */
export function civilDate(days: number): string {
  const z = days + 719_468;
  const era = Math.floor(z / 146_097);
  const doe = z - era * 146_097;
  const yoe = Math.floor(
    (doe - Math.floor(doe / 1460) + Math.floor(doe / 36_524) - Math.floor(doe / 146_096)) / 365,
  );
  const doy = doe - (365 * yoe + Math.floor(yoe / 4) - Math.floor(yoe / 100));
  const mp = Math.floor((5 * doy + 2) / 153);
  const day = doy - Math.floor((153 * mp + 2) / 5) + 1;
  const month = mp < 10 ? mp + 3 : mp - 9;
  const year = yoe + era * 400 + (month <= 2 ? 1 : 0);
  return `${pad(year, 4)}-${pad(month, 2)}-${pad(day, 2)}`;
}

/**
 * The local calendar date of instants in one IANA zone. Intl formatting is slow, so the date is looked up once
 * per UTC hour: when the hour's first and last millisecond fall on the same local date, every instant of that
 * hour does too (zones whose midnight falls inside a UTC hour are formatted per instant).
 */
export class LocalCalendar {
  private readonly formatter: Intl.DateTimeFormat | undefined;
  private readonly hours = new Map<number, string | null>();
  private lastHour = Number.NaN;
  private lastDate = '';

  constructor(readonly timeZone: string) {
    this.formatter =
      timeZone === 'UTC'
        ? undefined
        : new Intl.DateTimeFormat('en-US', { timeZone, year: 'numeric', month: '2-digit', day: '2-digit' });
  }

  /** The local date of a reading time: a date-only ISO string is its own date; other times go by instant. */
  dateOf(time: ReadingTime, t: number): string {
    if (isDateOnly(time)) return time;
    const hour = Math.floor(t / HOUR_MS);
    if (hour === this.lastHour) return this.lastDate;
    let date = this.hours.get(hour);
    if (date === undefined) {
      const first = this.format(hour * HOUR_MS);
      date = first === this.format((hour + 1) * HOUR_MS - 1) ? first : null;
      this.hours.set(hour, date);
    }
    if (date === null) return this.format(t);
    this.lastHour = hour;
    this.lastDate = date;
    return date;
  }

  private format(ms: number): string {
    if (this.formatter === undefined) return civilDate(Math.floor(ms / DAY_MS));
    let year = '';
    let month = '';
    let day = '';
    for (const part of this.formatter.formatToParts(ms)) {
      if (part.type === 'year') year = part.value.padStart(4, '0');
      else if (part.type === 'month') month = part.value;
      else if (part.type === 'day') day = part.value;
    }
    return `${year}-${month}-${day}`;
  }
}

interface DayAccumulator {
  n: number;
  sum: number;
  max: number;
  min: number;
}

function accumulate(days: Map<string, DayAccumulator>, date: string, value: number): void {
  const day = days.get(date);
  if (day === undefined) {
    days.set(date, { n: 1, sum: value, max: value, min: value });
    return;
  }
  day.n++;
  day.sum += value;
  if (value > day.max) day.max = value;
  if (value < day.min) day.min = value;
}

function groupByDay(table: ReadingTable, calendar: LocalCalendar): Map<string, Map<string, DayAccumulator>> {
  const bySpecies = table.species.map(() => new Map<string, DayAccumulator>());
  for (let i = 0; i < table.length; i++) {
    const days = bySpecies[table.speciesIndex[i] as number] as Map<string, DayAccumulator>;
    accumulate(days, calendar.dateOf(table.time(i), table.t[i] as number), table.value[i] as number);
  }
  return new Map(table.species.map((name, id) => [name, bySpecies[id] as Map<string, DayAccumulator>]));
}

function mean(values: readonly number[]): number {
  let sum = 0;
  for (const value of values) sum += value;
  return sum / values.length;
}

/** Daily and monthly statistics of one species, plus its statistic alerts (per month: days, then the month). */
function speciesStatistics(
  species: string,
  days: Map<string, DayAccumulator>,
  dailyFlow: Map<string, number>,
  permit: Permit,
  alerts: Alert[],
): { daily: DailyStatistic[]; monthly: MonthlyStatistic[] } {
  const dailyLimit = ownValue(permit.daily_max_limits_mgL, species) ?? null;
  const averageLimit = ownValue(permit.monthly_average_limits_mgL, species) ?? null;
  const daily: DailyStatistic[] = [];
  for (const date of [...days.keys()].sort()) {
    const day = days.get(date) as DayAccumulator;
    const dayMean = day.sum / day.n;
    const flow = dailyFlow.get(date) ?? null;
    daily.push({
      date,
      n: day.n,
      mean: dayMean,
      max: day.max,
      min: day.min,
      flow_m3d: flow,
      load_kg_d: flow === null ? null : (dayMean * flow) / 1000,
    });
  }
  const monthly: MonthlyStatistic[] = [];
  for (let start = 0; start < daily.length; ) {
    const month = (daily[start] as DailyStatistic).date.slice(0, 7);
    let end = start;
    while (end < daily.length && (daily[end] as DailyStatistic).date.startsWith(month)) end++;
    const monthDays = daily.slice(start, end);
    const loads = monthDays.flatMap((day) => (day.load_kg_d === null ? [] : [day.load_kg_d]));
    const average = mean(monthDays.map((day) => day.mean));
    const maxDaily = Math.max(...monthDays.map((day) => day.mean));
    let dailyBreach = false;
    for (const day of monthDays) {
      if (dailyLimit !== null && day.mean > dailyLimit) {
        dailyBreach = true;
        alerts.push(
          buildAlert(permit, {
            type: 'daily_maximum',
            species,
            time: day.date,
            value: day.mean,
            limit: dailyLimit,
            period: day.date,
          }),
        );
      }
    }
    const averageBreach = averageLimit !== null && average > averageLimit;
    if (averageBreach) {
      alerts.push(
        buildAlert(permit, {
          type: 'monthly_average',
          species,
          time: month,
          value: average,
          limit: averageLimit,
          period: month,
        }),
      );
    }
    monthly.push({
      month,
      days: monthDays.length,
      n: monthDays.reduce((sum, day) => sum + day.n, 0),
      average,
      max_daily: maxDaily,
      max_sample: Math.max(...monthDays.map((day) => day.max)),
      load_average_kg_d: loads.length === 0 ? null : mean(loads),
      average_limit: averageLimit,
      daily_limit: dailyLimit,
      compliant: !dailyBreach && !averageBreach,
    });
    start = end;
  }
  return { daily, monthly };
}

/**
 * The statistics object of spec §3.3 for ISO-timed readings: species sorted, days and months ascending,
 * alerts per species (sorted) and month: that month's daily_maximum alerts, then its monthly_average alert.
 * Throws StatisticsError for numeric times.
 */
export function computeStatistics(parsed: ParsedReadings, permit: Permit): Statistics {
  if (parsed.time_kind !== 'iso') throw new StatisticsError();
  const calendar = new LocalCalendar(permit.timezone);
  const tables = readingTables(parsed);
  const bySpecies = groupByDay(tables.readings, calendar);
  bySpecies.delete(FLOW_SPECIES);
  const flowDays = groupByDay(tables.flows, calendar).get(FLOW_SPECIES) ?? new Map<string, DayAccumulator>();
  const dailyFlow = new Map<string, number>();
  for (const [date, day] of flowDays) dailyFlow.set(date, day.sum / day.n);

  const alerts: Alert[] = [];
  const species: Statistics['species'] = {};
  for (const name of [...bySpecies.keys()].sort()) {
    const statistics = speciesStatistics(
      name,
      bySpecies.get(name) as Map<string, DayAccumulator>,
      dailyFlow,
      permit,
      alerts,
    );
    Object.defineProperty(species, name, {
      value: statistics,
      enumerable: true,
      writable: true,
      configurable: true,
    });
  }
  return { timezone: permit.timezone, species, alerts };
}
