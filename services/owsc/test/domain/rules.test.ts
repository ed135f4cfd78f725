import { describe, expect, it } from 'vitest';
import { DEFAULT_PERMIT, parsePermit } from '../../src/domain/permit.js';
import { buildAlert, evaluateReadings, levelRank, severity } from '../../src/domain/rules.js';
import type { Permit, Reading } from '../../src/domain/types.js';

/** Numeric-time readings of one species: [time, concentration] pairs, or `<DL` strings for non-detects. */
function series(species: string, points: [number, number | string][], half = false): Reading[] {
  return points.map(([time, written], index) => {
    const nondetect = typeof written === 'string';
    const concentration = nondetect ? Number(written.slice(1)) : written;
    const value = nondetect ? (half ? concentration / 2 : 0) : concentration;
    return { time, t: time, species, concentration, value, nondetect, line: index + 2 };
  });
}

const so4 = (limit: number, window = 3): Permit =>
  parsePermit({ limits_mgL: { SO4: limit }, rolling_window: window });

describe('severity and levels', () => {
  it('applies the ratio thresholds 1.25, 1.5 and 2', () => {
    expect(severity(1.0001)).toBe('info');
    expect(severity(1.2499)).toBe('info');
    expect(severity(1.25)).toBe('watch');
    expect(severity(1.5)).toBe('warning');
    expect(severity(1.9999)).toBe('warning');
    expect(severity(2)).toBe('critical');
    expect(['info', 'watch', 'warning', 'critical'].map((level) => levelRank(level as never))).toEqual([
      0, 1, 2, 3,
    ]);
  });

  it('raises an alert only above the limit, with the level of value/limit (case 2)', () => {
    const cases: [number, string | null][] = [
      [250, null],
      [250.025, 'info'],
      [312.5, 'watch'],
      [375, 'warning'],
      [500, 'critical'],
    ];
    for (const [value, level] of cases) {
      const alerts = evaluateReadings(series('SO4', [[0, value]]), DEFAULT_PERMIT, 'latest');
      if (level === null) {
        expect(alerts).toEqual([]);
      } else {
        expect(alerts).toHaveLength(1);
        expect(alerts[0]).toMatchObject({ type: 'exceedance', level, value, limit: 250, ratio: value / 250 });
      }
    }
  });
});

describe('buildAlert', () => {
  it('writes the four message texts with three decimals and keeps full values', () => {
    const exceed = buildAlert(DEFAULT_PERMIT, {
      type: 'exceedance',
      species: 'As',
      time: 3,
      value: 0.0123456,
      limit: 0.01,
    });
    expect(exceed).toEqual({
      time: 3,
      species: 'As',
      type: 'exceedance',
      level: 'info',
      value: 0.0123456,
      limit: 0.01,
      action: 'Adjust pH to 7-8; add ferric coagulant; check filter performance.',
      message: 'As concentration 0.012 mg/L exceeds limit 0.010 mg/L',
      ratio: 0.0123456 / 0.01,
    });
    expect(exceed).not.toHaveProperty('window');
    const trend = buildAlert(DEFAULT_PERMIT, {
      type: 'trend',
      species: 'Zn',
      time: 't',
      value: 2.5,
      limit: 1,
      window: 4,
    });
    expect(trend.message).toBe('Zn rolling mean 2.500 mg/L over 4 readings exceeds limit 1.000 mg/L');
    expect(trend.action).toBe('Review Zn treatment process');
    expect(trend.window).toBe(4);
    expect(trend.level).toBe('critical');
    const daily = buildAlert(DEFAULT_PERMIT, {
      type: 'daily_maximum',
      species: 'SO4',
      time: '2024-01-20',
      value: 310,
      limit: 300,
    });
    expect(daily.message).toBe(
      'SO4 daily value 310.000 mg/L on 2024-01-20 exceeds daily maximum 300.000 mg/L',
    );
    const monthly = buildAlert(DEFAULT_PERMIT, {
      type: 'monthly_average',
      species: 'SO4',
      time: '2024-01',
      value: 255,
      limit: 200,
    });
    expect(monthly.message).toBe('SO4 monthly average 255.000 mg/L for 2024-01 exceeds limit 200.000 mg/L');
    expect(Object.keys(monthly)).toEqual([
      'time',
      'species',
      'type',
      'level',
      'value',
      'limit',
      'action',
      'message',
      'ratio',
    ]);
  });
});

describe('evaluateReadings, latest mode', () => {
  const example = series(
    'SO4',
    [200, 205, 210, 215, 220, 280, 300, 250, 240].map((c, i): [number, number] => [i, c]),
  );

  it('reproduces acceptance case 1 exactly', () => {
    const alerts = evaluateReadings(example, DEFAULT_PERMIT, 'latest');
    const mean = (300 + 250 + 240) / 3;
    expect(alerts).toEqual([
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
    ]);
    expect(alerts[0]?.ratio.toFixed(3)).toBe('1.053');
  });

  it('honours rolling_window 1 and 5 and needs a full window (case 3)', () => {
    // window 1: the last reading alone (240) is the mean
    expect(evaluateReadings(example, so4(245, 1), 'latest')).toEqual([]);
    const high = evaluateReadings(
      series('SO4', [
        [0, 100],
        [1, 260],
      ]),
      so4(250, 1),
      'latest',
    );
    expect(high.map((a) => [a.type, a.value, a.window])).toEqual([
      ['exceedance', 260, undefined],
      ['trend', 260, 1],
    ]);
    // window 5: mean(220, 280, 300, 250, 240) = 258
    const five = evaluateReadings(example, so4(255, 5), 'latest');
    expect(five.map((a) => [a.type, a.value, a.window])).toEqual([['trend', 258, 5]]);
    // four readings, window 5: no trend even though every reading is above the limit
    const short = evaluateReadings(
      series('SO4', [
        [0, 300],
        [1, 300],
        [2, 300],
        [3, 300],
      ]),
      so4(250, 5),
      'latest',
    );
    expect(short.map((a) => a.type)).toEqual(['exceedance']);
  });

  it('orders by permit species, exceedance before trend, and skips species without a limit', () => {
    const permit = parsePermit({ limits_mgL: { Ni: 0.1, SO4: 250 }, rolling_window: 2 });
    const readings = [
      ...series('SO4', [
        [0, 300],
        [1, 400],
      ]),
      ...series('Co', [
        [0, 99],
        [1, 99],
      ]),
      ...series('Ni', [
        [0, 0.5],
        [1, 0.2],
      ]),
    ];
    const alerts = evaluateReadings(readings, permit, 'latest');
    expect(alerts.map((a) => `${a.species} ${a.type}`)).toEqual([
      'Ni exceedance',
      'Ni trend',
      'SO4 exceedance',
      'SO4 trend',
    ]);
  });

  it('sorts readings by time, stable for equal times', () => {
    const readings = series('SO4', [
      [5, 100],
      [1, 400],
      [5, 260],
      [3, 100],
    ]);
    // time order: 1→400, 3→100, 5→100, 5→260 (file order kept for the tie) → last is 260
    const alerts = evaluateReadings(readings, so4(250), 'latest');
    expect(alerts.map((a) => [a.type, a.time, a.value])).toEqual([['exceedance', 5, 260]]);
  });

  it('never raises an exceedance for a non-detect but uses its substituted value in means', () => {
    const permit = so4(10, 2);
    // zero policy: mean(12, 0) = 6 ≤ 10, and the non-detect <50 is no exceedance
    expect(
      evaluateReadings(
        series('SO4', [
          [0, 12],
          [1, '<50'],
        ]),
        permit,
        'latest',
      ),
    ).toEqual([]);
    const half = evaluateReadings(
      series(
        'SO4',
        [
          [0, 12],
          [1, '<50'],
        ],
        true,
      ),
      permit,
      'latest',
    );
    expect(half.map((a) => [a.type, a.value])).toEqual([['trend', (12 + 25) / 2]]);
  });
});

describe('evaluateReadings, all mode', () => {
  it('lists every exceeding reading and window of a series crossing the limit twice (case 6)', () => {
    const readings = series('SO4', [
      [0, 100],
      [1, 300],
      [2, 100],
      [3, 100],
      [4, 400],
      [5, 350],
      [6, 100],
    ]);
    const alerts = evaluateReadings(readings, so4(250, 2), 'all');
    // windows of 2: 200, 200, 100, 250 (not above 250), 375, 225
    expect(alerts.map((a) => [a.time, a.type, a.value])).toEqual([
      [1, 'exceedance', 300],
      [4, 'exceedance', 400],
      [5, 'exceedance', 350],
      [5, 'trend', 375],
    ]);
  });

  it('orders by time, then permit species order, then exceedance before trend', () => {
    const permit = parsePermit({ limits_mgL: { Ni: 1, SO4: 1 }, rolling_window: 1 });
    const readings = [
      ...series('SO4', [
        [0, 2],
        [2, 3],
      ]),
      ...series('Ni', [
        [1, 5],
        [2, 4],
      ]),
    ];
    const alerts = evaluateReadings(readings, permit, 'all');
    expect(alerts.map((a) => `${a.time} ${a.species} ${a.type}`)).toEqual([
      '0 SO4 exceedance',
      '0 SO4 trend',
      '1 Ni exceedance',
      '1 Ni trend',
      '2 Ni exceedance',
      '2 Ni trend',
      '2 SO4 exceedance',
      '2 SO4 trend',
    ]);
  });

  it('gives exact window means on long series (running sums are re-checked)', () => {
    const points: [number, number][] = [];
    for (let i = 0; i < 5000; i++) points.push([i, i % 7 === 0 ? 0.3 : 0.1]);
    const permit = parsePermit({ limits_mgL: { SO4: 0.15 }, rolling_window: 3 });
    const alerts = evaluateReadings(series('SO4', points), permit, 'all');
    const expected: number[] = [];
    for (let i = 2; i < 5000; i++) {
      const mean =
        ((points[i - 2]?.[1] as number) + (points[i - 1]?.[1] as number) + (points[i]?.[1] as number)) / 3;
      if (mean > 0.15) expected.push(mean);
    }
    expect(alerts.filter((a) => a.type === 'trend').map((a) => a.value)).toEqual(expected);
    expect(alerts.filter((a) => a.type === 'exceedance')).toHaveLength(Math.ceil(5000 / 7));
  });
});
