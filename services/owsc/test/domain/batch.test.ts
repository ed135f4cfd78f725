import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { evaluateBatch } from '../../src/domain/batch.js';
import { type CsvOptions, parseReadingsFile, parseReadingsText } from '../../src/domain/csv.js';
import { DEFAULT_PERMIT, parsePermit } from '../../src/domain/permit.js';
import type { ParsedReadings } from '../../src/domain/types.js';

const options: CsvOptions = { maxBytes: 10_485_760, maxRows: 1_000_000, nondetect: 'zero' };
const fixture = (name: string) => fileURLToPath(new URL(`../fixtures/${name}`, import.meta.url));

describe('evaluateBatch', () => {
  it('builds the batch result of acceptance case 1', async () => {
    const parsed = await parseReadingsFile(fixture('example.csv'), options);
    const result = evaluateBatch(parsed, DEFAULT_PERMIT, 'latest');
    const mean = (300 + 250 + 240) / 3;
    expect(result).toEqual({
      count: 1,
      alerts: [
        {
          time: 8,
          species: 'SO4',
          type: 'trend',
          level: 'info',
          value: mean,
          limit: 250,
          action: 'Increase lime dosing; verify gypsum precipitation; reduce discharge rate.',
          message: 'SO4 rolling mean 263.333 mg/L over 3 readings exceeds limit 250.000 mg/L',
          ratio: mean / 250,
          window: 3,
        },
      ],
      compliant: false,
      mode: 'latest',
      format: 'tidy',
      rows: 9,
      readings: 9,
      species: ['SO4'],
      time_kind: 'numeric',
      permit: DEFAULT_PERMIT,
      summary: {
        SO4: {
          n: 9,
          min: 200,
          max: 300,
          mean: 2120 / 9,
          last: 240,
          last_time: 8,
          limit: 250,
          exceedances: 2,
          nondetects: 0,
        },
      },
      statistics: null,
    });
    expect(Object.keys(result)).toEqual([
      'count',
      'alerts',
      'compliant',
      'mode',
      'format',
      'rows',
      'readings',
      'species',
      'time_kind',
      'permit',
      'summary',
      'statistics',
    ]);
  });

  it('summarises every species (sorted), with substituted non-detects and no limit for unlimited ones', () => {
    const text =
      'time,species,concentration\n3,SO4,300\n1,SO4,<40\n2,Co,5\n2,SO4,260\n3,Co,7\n3,flow_m3d,900\n';
    const parsed = parseReadingsText(text, { ...options, nondetect: 'half' });
    const result = evaluateBatch(parsed, DEFAULT_PERMIT, 'all');
    expect(result.species).toEqual(['Co', 'SO4']);
    expect(result.readings).toBe(5);
    expect(result.rows).toBe(6);
    expect(result.summary).toEqual({
      Co: {
        n: 2,
        min: 5,
        max: 7,
        mean: 6,
        last: 7,
        last_time: 3,
        limit: null,
        exceedances: 0,
        nondetects: 0,
      },
      SO4: {
        n: 3,
        min: 20,
        max: 300,
        mean: 580 / 3,
        last: 300,
        last_time: 3,
        limit: 250,
        exceedances: 2,
        nondetects: 1,
      },
    });
    // all mode, time order: 2 → 260 (exceedance), 3 → 300 (exceedance, and the window 20, 260, 300 = 193.3 is fine)
    expect(result.alerts.map((a) => [a.time, a.species, a.type, a.value])).toEqual([
      [2, 'SO4', 'exceedance', 260],
      [3, 'SO4', 'exceedance', 300],
    ]);
    expect(result.compliant).toBe(false);
    expect(result.mode).toBe('all');
  });

  it('appends the statistic alerts after the instantaneous ones for ISO times', async () => {
    const parsed = await parseReadingsFile(fixture('two-months.csv'), options);
    const permit = parsePermit(JSON.parse(readFileSync(fixture('two-months-permit.json'), 'utf8')));
    const result = evaluateBatch(parsed, permit, 'latest');
    expect(result.time_kind).toBe('iso');
    expect(result.readings).toBe(7);
    expect(result.species).toEqual(['Ni', 'SO4']);
    expect(result.alerts.map((a) => [a.time, a.species, a.type, a.level])).toEqual([
      ['2024-02-06T10:00:00Z', 'Ni', 'exceedance', 'watch'], // 0.125 / 0.1 = 1.25
      ['2024-01-20', 'SO4', 'daily_maximum', 'info'],
      ['2024-01', 'SO4', 'monthly_average', 'watch'],
    ]);
    expect(result.count).toBe(3);
    expect(result.statistics?.alerts).toHaveLength(2);
    expect(result.summary.SO4?.last_time).toBe('2024-02-06T10:00:00Z');
  });

  it('is compliant with no alerts, and evaluates readings given as plain arrays the same way', () => {
    const parsed: ParsedReadings = {
      format: 'wide',
      time_kind: 'numeric',
      rows: 2,
      readings: [
        { time: 0, t: 0, species: 'As', concentration: 0.004, value: 0.004, nondetect: false, line: 2 },
        { time: 1, t: 1, species: 'As', concentration: 0.006, value: 0.006, nondetect: false, line: 3 },
      ],
      flows: [],
    };
    const result = evaluateBatch(parsed, DEFAULT_PERMIT, 'latest');
    expect(result).toMatchObject({
      count: 0,
      alerts: [],
      compliant: true,
      format: 'wide',
      readings: 2,
      species: ['As'],
    });
    expect(result.summary.As).toEqual({
      n: 2,
      min: 0.004,
      max: 0.006,
      mean: (0.004 + 0.006) / 2,
      last: 0.006,
      last_time: 1,
      limit: 0.01,
      exceedances: 0,
      nondetects: 0,
    });
  });
});

describe('evaluateBatch and the parsed arrays', () => {
  it('evaluates what the readings array holds once it has been read or replaced', () => {
    const parsed = parseReadingsText('time,species,concentration\n1,SO4,100\n2,SO4,100\n', options);
    expect(evaluateBatch(parsed, DEFAULT_PERMIT, 'latest').count).toBe(0);
    parsed.readings.push({
      time: 3,
      t: 3,
      species: 'SO4',
      concentration: 900,
      value: 900,
      nondetect: false,
      line: 0,
    });
    expect(evaluateBatch(parsed, DEFAULT_PERMIT, 'latest').alerts.map((a) => a.type)).toEqual([
      'exceedance',
      'trend',
    ]);
    parsed.readings = [];
    expect(evaluateBatch(parsed, DEFAULT_PERMIT, 'latest')).toMatchObject({
      count: 0,
      readings: 0,
      species: [],
    });
  });
});
