import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { type CsvOptions, parseReadingsFile, parseReadingsText } from '../../src/domain/csv.js';
import { parsePermit } from '../../src/domain/permit.js';
import { computeStatistics, LocalCalendar, StatisticsError } from '../../src/domain/statistics.js';

const options: CsvOptions = { maxBytes: 10_485_760, maxRows: 1_000_000, nondetect: 'zero' };
const fixture = (name: string) => fileURLToPath(new URL(`../fixtures/${name}`, import.meta.url));
const twoMonthPermit = () => parsePermit(JSON.parse(readFileSync(fixture('two-months-permit.json'), 'utf8')));

describe('computeStatistics on the two-month fixture with flow rows (case 19)', () => {
  it('gives the hand-computed daily values, monthly averages, loads and alerts', async () => {
    const parsed = await parseReadingsFile(fixture('two-months.csv'), options);
    const statistics = computeStatistics(parsed, twoMonthPermit());
    expect(statistics.timezone).toBe('UTC');
    expect(Object.keys(statistics.species)).toEqual(['Ni', 'SO4']);
    expect(statistics.species.SO4?.daily).toEqual([
      // (180 + 220) / 2 = 200 mg/L; flow (1000 + 3000) / 2 = 2000 m³/d; load 200 × 2000 / 1000 = 400 kg/d
      { date: '2024-01-10', n: 2, mean: 200, max: 220, min: 180, flow_m3d: 2000, load_kg_d: 400 },
      { date: '2024-01-20', n: 1, mean: 310, max: 310, min: 310, flow_m3d: null, load_kg_d: null },
      // 150 × 500 / 1000 = 75
      { date: '2024-02-05', n: 1, mean: 150, max: 150, min: 150, flow_m3d: 500, load_kg_d: 75 },
      // 170 × 1500 / 1000 = 255
      { date: '2024-02-06', n: 1, mean: 170, max: 170, min: 170, flow_m3d: 1500, load_kg_d: 255 },
    ]);
    expect(statistics.species.SO4?.monthly).toEqual([
      {
        month: '2024-01',
        days: 2,
        n: 3,
        average: 255, // mean of the daily values (200 + 310) / 2, not of the samples
        max_daily: 310,
        max_sample: 310,
        load_average_kg_d: 400,
        average_limit: 200,
        daily_limit: 300,
        compliant: false,
      },
      {
        month: '2024-02',
        days: 2,
        n: 2,
        average: 160,
        max_daily: 170,
        max_sample: 170,
        load_average_kg_d: 165,
        average_limit: 200,
        daily_limit: 300,
        compliant: true,
      },
    ]);
    expect(statistics.species.Ni?.daily).toEqual([
      { date: '2024-01-20', n: 1, mean: 0.0625, max: 0.0625, min: 0.0625, flow_m3d: null, load_kg_d: null },
      { date: '2024-02-06', n: 1, mean: 0.125, max: 0.125, min: 0.125, flow_m3d: 1500, load_kg_d: 0.1875 },
    ]);
    expect(
      statistics.species.Ni?.monthly.map((m) => [
        m.month,
        m.average,
        m.load_average_kg_d,
        m.average_limit,
        m.daily_limit,
        m.compliant,
      ]),
    ).toEqual([
      ['2024-01', 0.0625, null, null, null, true],
      ['2024-02', 0.125, 0.1875, null, null, true],
    ]);
    expect(statistics.alerts).toEqual([
      {
        time: '2024-01-20',
        species: 'SO4',
        type: 'daily_maximum',
        level: 'info',
        value: 310,
        limit: 300,
        action: 'Review SO4 treatment process',
        message: 'SO4 daily value 310.000 mg/L on 2024-01-20 exceeds daily maximum 300.000 mg/L',
        ratio: 310 / 300,
      },
      {
        time: '2024-01',
        species: 'SO4',
        type: 'monthly_average',
        level: 'watch',
        value: 255,
        limit: 200,
        action: 'Review SO4 treatment process',
        message: 'SO4 monthly average 255.000 mg/L for 2024-01 exceeds limit 200.000 mg/L',
        ratio: 1.275,
      },
    ]);
  });

  it('refuses numeric times', () => {
    const parsed = parseReadingsText('time,species,concentration\n1,SO4,2\n', options);
    expect(() => computeStatistics(parsed, twoMonthPermit())).toThrow(
      new StatisticsError('calendar statistics need ISO 8601 times'),
    );
  });
});

describe('calendar days in the permit time zone', () => {
  const csv = (lines: string[]) => `time,species,concentration\n${lines.join('\n')}\n`;

  it('follows the spring DST change in Europe/Berlin', () => {
    const parsed = parseReadingsText(
      csv([
        '2024-03-30T22:59:00Z,SO4,1', // 23:59 CET, 30 March
        '2024-03-30T23:30:00Z,SO4,2', // 00:30 CET, 31 March
        '2024-03-31T21:59:00Z,SO4,3', // 23:59 CEST, 31 March
        '2024-03-31T22:30:00Z,SO4,4', // 00:30 CEST, 1 April
        '2024-03-31,SO4,5', // a date is its own calendar day
      ]),
      options,
    );
    const permit = parsePermit({ limits_mgL: { SO4: 100 }, timezone: 'Europe/Berlin' });
    const statistics = computeStatistics(parsed, permit);
    expect(statistics.timezone).toBe('Europe/Berlin');
    expect(statistics.species.SO4?.daily.map((d) => [d.date, d.n, d.mean])).toEqual([
      ['2024-03-30', 1, 1],
      ['2024-03-31', 3, (2 + 3 + 5) / 3],
      ['2024-04-01', 1, 4],
    ]);
    expect(statistics.species.SO4?.monthly.map((m) => [m.month, m.days, m.n, m.average])).toEqual([
      ['2024-03', 2, 4, (1 + 10 / 3) / 2],
      ['2024-04', 1, 1, 4],
    ]);
    // the same instants in UTC
    const utc = computeStatistics(parsed, parsePermit({ limits_mgL: { SO4: 100 } }));
    expect(utc.species.SO4?.daily.map((d) => [d.date, d.n])).toEqual([
      ['2024-03-30', 2],
      ['2024-03-31', 3],
    ]);
  });

  it('follows the autumn DST change and zones with half-hour offsets', () => {
    const berlin = new LocalCalendar('Europe/Berlin');
    expect(berlin.dateOf('x', Date.UTC(2024, 9, 26, 21, 59))).toBe('2024-10-26'); // 23:59 CEST
    expect(berlin.dateOf('x', Date.UTC(2024, 9, 26, 22, 0))).toBe('2024-10-27'); // 00:00 CEST
    expect(berlin.dateOf('x', Date.UTC(2024, 9, 27, 22, 59))).toBe('2024-10-27'); // 23:59 CET
    expect(berlin.dateOf('x', Date.UTC(2024, 9, 27, 23, 0))).toBe('2024-10-28'); // 00:00 CET
    const kolkata = new LocalCalendar('Asia/Kolkata'); // UTC+05:30: local midnight is inside a UTC hour
    expect(kolkata.dateOf('x', Date.UTC(2024, 0, 1, 18, 29))).toBe('2024-01-01');
    expect(kolkata.dateOf('x', Date.UTC(2024, 0, 1, 18, 30))).toBe('2024-01-02');
    expect(kolkata.dateOf('x', Date.UTC(2024, 0, 1, 18, 0))).toBe('2024-01-01');
    expect(kolkata.dateOf('x', Date.UTC(2024, 0, 1, 18, 59))).toBe('2024-01-02');
    const utc = new LocalCalendar('UTC');
    expect(utc.dateOf('x', Date.UTC(1969, 11, 31, 23, 59))).toBe('1969-12-31');
    expect(utc.dateOf('x', Date.UTC(2000, 1, 29, 12))).toBe('2000-02-29');
  });

  it('computes a year of 15-minute readings for 10 species quickly (target 8)', () => {
    const lines: string[] = [];
    const start = Date.UTC(2023, 0, 1);
    for (let step = 0; step < 35_040; step++) {
      const time = new Date(start + step * 900_000).toISOString();
      for (let s = 0; s < 10; s++) lines.push(`${time},S${s},${(step % 50) + s}`);
    }
    const parsed = parseReadingsText(csv(lines), { ...options, maxBytes: 50_000_000 });
    expect(parsed.readings).toHaveLength(350_400);
    const began = performance.now();
    const statistics = computeStatistics(
      parsed,
      parsePermit({ limits_mgL: { S0: 100 }, timezone: 'Europe/Berlin' }),
    );
    const elapsed = performance.now() - began;
    // 2023-01-01T00:00Z is 01:00 on 1 January in Berlin; the last hour of UTC 2023 is already 1 January 2024 there
    expect(statistics.species.S0?.daily).toHaveLength(366);
    expect(statistics.species.S0?.monthly).toHaveLength(13);
    expect(elapsed).toBeLessThan(1500);
  });
});
