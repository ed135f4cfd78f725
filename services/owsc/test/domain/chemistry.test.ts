import { describe, expect, it } from 'vitest';
import {
  FitError,
  fitChemistry,
  fitDecay,
  fitOptionsProblem,
  fitSorption,
} from '../../src/domain/chemistry.js';
import type { ParsedReadings, Reading } from '../../src/domain/types.js';

const range = (n: number): number[] => Array.from({ length: n }, (_, i) => i);

function reading(time: number | string, species: string, value: number, line = 0): Reading {
  const t = typeof time === 'number' ? time : Date.parse(time);
  return { time, t, species, concentration: value, value, nondetect: false, line };
}

function parsed(readings: Reading[], timeKind: 'numeric' | 'iso' = 'numeric'): ParsedReadings {
  return { format: 'tidy', time_kind: timeKind, rows: readings.length, readings, flows: [] };
}

/** Seeded PRNG (mulberry32) so the noisy fixtures are the same on every run. */
function seededRandom(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let x = state;
    x = Math.imul(x ^ (x >>> 15), x | 1);
    x ^= x + Math.imul(x ^ (x >>> 7), x | 61);
    return ((x ^ (x >>> 14)) >>> 0) / 4294967296;
  };
}

function gaussian(random: () => number): number {
  return Math.sqrt(-2 * Math.log(1 - random())) * Math.cos(2 * Math.PI * random());
}

describe('first-order decay', () => {
  it('recovers k = 0.3 from c = 50·e^(−0.3t), t = 0..9 (acceptance case 9)', () => {
    const times = range(10);
    const fit = fitDecay(
      'SO4',
      times,
      times.map((t) => 50 * Math.exp(-0.3 * t)),
      'input',
    );
    expect(fit.model).toBe('first_order_decay');
    expect(Math.abs(fit.k - 0.3)).toBeLessThan(1e-9);
    expect(fit.r2).toBeCloseTo(1, 12);
    expect(fit.half_life).toBeCloseTo(Math.LN2 / 0.3, 9);
    expect(fit).toMatchObject({ species: 'SO4', Kd: null, n: 10, c0: 50, time_unit: 'input' });
  });

  it('clips zero concentrations at 1e-12 instead of producing infinities', () => {
    const fit = fitDecay('Ni', [0, 1, 2], [1, 0, 0], 'input');
    expect(Number.isFinite(fit.k)).toBe(true);
    expect(fit.k).toBeGreaterThan(0);
    // slope of y = [0, 27.63, 27.63] against t = [0, 1, 2]
    expect(fit.k).toBeCloseTo(-Math.log(1e-12) / 2, 9);
  });

  it('reports k = 0 and no half-life for rising concentrations, r2 null for a flat series', () => {
    const rising = fitDecay('As', [0, 1, 2, 3], [1, 2, 4, 8], 'input');
    expect(rising.k).toBe(0);
    expect(rising.half_life).toBeNull();
    const flat = fitDecay('As', [0, 1, 2], [5, 5, 5], 'input');
    expect(flat.k).toBe(0);
    expect(flat.r2).toBeNull();
  });

  it('needs two readings at distinct times', () => {
    expect(() => fitDecay('As', [3], [1], 'input')).toThrow(
      new FitError('need at least 2 readings at distinct times for the decay model'),
    );
    expect(() => fitDecay('As', [3, 3, 3], [1, 0.5, 0.2], 'input')).toThrow(FitError);
  });
});

describe('pseudo-first-order sorption', () => {
  it.each([
    { k: 0.7, c0: 50, ce: 8 },
    { k: 0.02, c0: 120, ce: 45.5 },
    { k: 3.5, c0: 2.4, ce: 0.3 },
  ])('recovers k=$k Ce=$ce exactly (1e-6) from a synthetic curve', ({ k, c0, ce }) => {
    const times = range(25).map((i) => (i * 3) / (k * 24) + (i > 0 ? 0.001 : 0));
    const values = times.map((t) => ce + (c0 - ce) * Math.exp(-k * t));
    const fit = fitSorption('Cu', times, values, 'input', 2, 0.5);
    expect(Math.abs(fit.k - k) / k).toBeLessThan(1e-6);
    expect(Math.abs(fit.Ce - ce) / ce).toBeLessThan(1e-6);
    expect(fit.C0).toBe(c0);
    expect(fit.sorbed_fraction).toBeCloseTo((c0 - ce) / c0, 6);
    expect((fit.Kd as number) / (((c0 - ce) / ce) * (2 / 0.5))).toBeCloseTo(1, 6);
    expect(fit.r2).toBeCloseTo(1, 9);
    expect(fit.rmse).toBeLessThan(1e-6 * c0);
    expect(fit.half_life as number).toBeCloseTo(Math.LN2 / fit.k, 12);
    expect(fit).toMatchObject({ model: 'pseudo_first_order_sorption', volume_l: 2, solids_kg: 0.5, n: 25 });
  });

  it('stays within 2 % of the true parameters on noisy data', () => {
    const random = seededRandom(20240601);
    const k = 0.45;
    const c0 = 80;
    const ce = 22;
    const times = range(60).map((i) => i * 0.25);
    const values = times.map((t, i) => {
      const exact = ce + (c0 - ce) * Math.exp(-k * t);
      return i === 0 ? c0 : exact * (1 + 0.005 * gaussian(random));
    });
    const fit = fitSorption('Zn', times, values, 'input');
    expect(Math.abs(fit.k - k) / k).toBeLessThan(0.02);
    expect(Math.abs(fit.Ce - ce) / ce).toBeLessThan(0.02);
    expect(fit.r2 as number).toBeGreaterThan(0.99);
    expect(fit.rmse).toBeGreaterThan(0);
    expect(fit.Kd).toBeNull();
    expect(fit.volume_l).toBeNull();
  });

  it('gives Kd null when everything is sorbed (Ce = 0)', () => {
    const times = range(12);
    const fit = fitSorption(
      'Pb',
      times,
      times.map((t) => 40 * Math.exp(-0.5 * t)),
      'input',
      1,
      1,
    );
    expect(fit.Ce).toBe(0);
    expect(fit.Kd).toBeNull();
    expect(fit.k).toBeCloseTo(0.5, 6);
  });

  it('reports k = 0 for a constant series', () => {
    const fit = fitSorption('Fe', [0, 1, 2, 3], [7, 7, 7, 7], 'input');
    expect(fit.k).toBe(0);
    expect(fit.half_life).toBeNull();
    expect(fit.r2).toBeNull();
    expect(fit.rmse).toBe(0);
  });

  it('needs three readings at distinct times and a positive first reading', () => {
    expect(() => fitSorption('Fe', [0, 1, 1], [5, 3, 2], 'input')).toThrow(
      'need at least 3 readings at distinct times for the sorption model',
    );
    expect(() => fitSorption('Fe', [0, 1, 2], [0, 0, 0], 'input')).toThrow(FitError);
  });
});

describe('fitChemistry', () => {
  it('sorts the species readings by time (stable) and ignores other species', () => {
    const readings = [
      reading(2, 'SO4', 50 * Math.exp(-0.6)),
      reading(0, 'As', 9),
      reading(0, 'SO4', 50),
      reading(1, 'SO4', 50 * Math.exp(-0.3)),
    ];
    const fit = fitChemistry(parsed(readings), { species: 'SO4', model: 'decay' });
    expect(fit).toMatchObject({ n: 3, c0: 50, time_unit: 'input' });
    expect(fit.k).toBeCloseTo(0.3, 12);
  });

  it('keeps file order for readings at the same time', () => {
    const readings = [reading(1, 'Ni', 5), reading(0, 'Ni', 10), reading(0, 'Ni', 20)];
    expect(fitChemistry(parsed(readings), { species: 'Ni', model: 'decay' })).toMatchObject({ c0: 10 });
    const swapped = [reading(1, 'Ni', 5), reading(0, 'Ni', 20), reading(0, 'Ni', 10)];
    expect(fitChemistry(parsed(swapped), { species: 'Ni', model: 'decay' })).toMatchObject({ c0: 20 });
  });

  it('turns ISO times into hours since the first reading', () => {
    const readings = [0, 1, 2, 3].map((hour) =>
      reading(new Date(Date.UTC(2024, 0, 1, hour * 6)).toISOString(), 'Ni', 10 * Math.exp(-0.1 * hour * 6)),
    );
    const fit = fitChemistry(parsed(readings.reverse(), 'iso'), { species: 'Ni', model: 'decay' });
    expect(fit.time_unit).toBe('h');
    expect(fit.k).toBeCloseTo(0.1, 12);
  });

  it('fits sorption with the batch mass balance', () => {
    const readings = range(10).map((t) => reading(t, 'Cd', 5 + 15 * Math.exp(-0.8 * t)));
    const fit = fitChemistry(parsed(readings), {
      species: 'Cd',
      model: 'sorption',
      volumeL: 4,
      solidsKg: 0.2,
    });
    expect(fit.model).toBe('pseudo_first_order_sorption');
    expect(fit.Kd as number).toBeCloseTo((15 / 5) * (4 / 0.2), 5);
  });

  it('rejects an absent species and inconsistent options', () => {
    const readings = [reading(0, 'SO4', 1), reading(1, 'SO4', 0.5)];
    expect(() => fitChemistry(parsed(readings), { species: 'Ni', model: 'decay' })).toThrow(
      new FitError('species Ni not found in the input'),
    );
    expect(() => fitChemistry(parsed([reading(0, 'SO4', 1)]), { species: 'SO4', model: 'decay' })).toThrow(
      'need at least 2 readings at distinct times for the decay model',
    );
    expect(() =>
      fitChemistry(parsed(readings), { species: 'SO4', model: 'decay', volumeL: 1, solidsKg: 1 }),
    ).toThrow('volume_l and solids_kg apply only to the sorption model');
  });

  it('names the usage problem of the mass-balance options', () => {
    expect(fitOptionsProblem({ species: 'X', model: 'sorption' })).toBeNull();
    expect(fitOptionsProblem({ species: 'X', model: 'sorption', volumeL: 1, solidsKg: 2 })).toBeNull();
    expect(fitOptionsProblem({ species: 'X', model: 'sorption', volumeL: 1 })).toBe(
      'volume_l and solids_kg must be given together',
    );
    expect(fitOptionsProblem({ species: 'X', model: 'sorption', volumeL: 0, solidsKg: 2 })).toBe(
      'volume_l must be a positive number',
    );
    expect(fitOptionsProblem({ species: 'X', model: 'decay', solidsKg: 2 })).toBe(
      'volume_l and solids_kg apply only to the sorption model',
    );
  });
});
