// Process-chemistry fits (spec §3.6 `process-chemistry`): first-order decay by log-linear least squares and
// pseudo-first-order sorption, C(t) = Ce + (C0 − Ce)·e^(−k·(t − t0)), by least squares over k and Ce.
import type { ChemistryFit, DecayFit, ParsedReadings, Reading, SorptionFit } from './types.js';

/** A fit that cannot be computed from the given input (CLI exit 4, HTTP 422). */
export class FitError extends Error {
  override name = 'FitError';
}

export type FitModel = 'decay' | 'sorption';

export interface FitRequest {
  species: string;
  model: FitModel;
  volumeL?: number;
  solidsKg?: number;
}

/** Concentrations are clipped below at this value before taking logarithms. */
const CLIP = 1e-12;
const MS_PER_HOUR = 3_600_000;

/**
 * The usage problem of a fit request's options, or null when they are consistent: `volumeL`/`solidsKg` go
 * together, are positive and finite, and only with the sorption model (CLI exit 2, HTTP 422).
 */
export function fitOptionsProblem(request: FitRequest): string | null {
  const hasVolume = request.volumeL !== undefined;
  const hasSolids = request.solidsKg !== undefined;
  if (!hasVolume && !hasSolids) return null;
  if (request.model !== 'sorption') return 'volume_l and solids_kg apply only to the sorption model';
  if (hasVolume !== hasSolids) return 'volume_l and solids_kg must be given together';
  for (const [name, value] of [
    ['volume_l', request.volumeL],
    ['solids_kg', request.solidsKg],
  ] as const) {
    if (value === undefined || !Number.isFinite(value) || value <= 0)
      return `${name} must be a positive number`;
  }
  return null;
}

/**
 * Fits the species' readings: sorted by time (stable), ISO times as hours since the first reading
 * (`time_unit: "h"`), numeric times as given (`time_unit: "input"`). Non-detects enter with their substituted
 * value, as in means.
 */
export function fitChemistry(parsed: ParsedReadings, request: FitRequest): ChemistryFit {
  const problem = fitOptionsProblem(request);
  if (problem) throw new FitError(problem);
  const readings = parsed.readings.filter((reading) => reading.species === request.species);
  if (readings.length === 0) throw new FitError(`species ${request.species} not found in the input`);
  // Array#sort is stable, so readings at equal times keep their file order; sorted input skips the sort.
  if (!isSortedByTime(readings)) readings.sort((a, b) => a.t - b.t);
  const timeUnit = parsed.time_kind === 'iso' ? 'h' : 'input';
  const first = readings[0]?.t ?? 0;
  const times = new Array<number>(readings.length);
  const values = new Array<number>(readings.length);
  readings.forEach((reading, index) => {
    times[index] = timeUnit === 'h' ? (reading.t - first) / MS_PER_HOUR : reading.t;
    values[index] = reading.value;
  });
  return request.model === 'sorption'
    ? fitSorption(request.species, times, values, timeUnit, request.volumeL, request.solidsKg)
    : fitDecay(request.species, times, values, timeUnit);
}

function isSortedByTime(readings: readonly Reading[]): boolean {
  for (let i = 1; i < readings.length; i++) {
    if ((readings[i] as Reading).t < (readings[i - 1] as Reading).t) return false;
  }
  return true;
}

function checkSeries(
  times: readonly number[],
  values: readonly number[],
  needed: number,
  model: FitModel,
): void {
  if (times.length !== values.length) throw new FitError('times and values differ in length');
  for (let i = 0; i < times.length; i++) {
    if (!Number.isFinite(times[i]) || !Number.isFinite(values[i]) || (values[i] as number) < 0) {
      throw new FitError(`reading ${i + 1} is not a finite time with a finite concentration ≥ 0`);
    }
  }
  if (distinctCount(times) < needed) {
    throw new FitError(`need at least ${needed} readings at distinct times for the ${model} model`);
  }
}

function distinctCount(times: readonly number[]): number {
  return new Set(times).size;
}

/** First-order decay: OLS of y = −ln(c/c0) on t with intercept; k = max(0, slope). */
export function fitDecay(
  species: string,
  times: readonly number[],
  values: readonly number[],
  timeUnit: 'h' | 'input',
): DecayFit {
  checkSeries(times, values, 2, 'decay');
  const n = times.length;
  const c0 = values[0] as number;
  const logC0 = Math.log(Math.max(c0, CLIP));
  const y = new Float64Array(n);
  let meanT = 0;
  let meanY = 0;
  for (let i = 0; i < n; i++) {
    const yi = logC0 - Math.log(Math.max(values[i] as number, CLIP));
    y[i] = yi;
    meanT += times[i] as number;
    meanY += yi;
  }
  meanT /= n;
  meanY /= n;
  // Centred sums keep the regression accurate when times are large (epoch hours) or nearly equal.
  let sxx = 0;
  let sxy = 0;
  let syy = 0;
  for (let i = 0; i < n; i++) {
    const dt = (times[i] as number) - meanT;
    const dy = (y[i] as number) - meanY;
    sxx += dt * dt;
    sxy += dt * dy;
    syy += dy * dy;
  }
  const slope = sxy / sxx;
  const intercept = meanY - slope * meanT;
  let ssRes = 0;
  for (let i = 0; i < n; i++) {
    const residual = (y[i] as number) - intercept - slope * (times[i] as number);
    ssRes += residual * residual;
  }
  const k = Math.max(0, slope);
  return {
    species,
    model: 'first_order_decay',
    k,
    Kd: null,
    n,
    c0,
    r2: syy === 0 ? null : 1 - ssRes / syy,
    half_life: k > 0 ? Math.LN2 / k : null,
    time_unit: timeUnit,
  };
}

/** Least-squares state of the sorption model at a fixed rate constant. */
interface SorptionProfile {
  k: number;
  ce: number;
  sse: number;
}

/**
 * Pseudo-first-order sorption. For a fixed k the model is linear in Ce (C = C0·e + Ce·(1 − e), e = e^(−kτ)),
 * so Ce has a closed form (clamped to [0, C0]) and the fit reduces to a 1-D search over k: a logarithmic scan
 * brackets the minimum, then Brent's method refines it to relative precision 1e-9.
 */
export function fitSorption(
  species: string,
  times: readonly number[],
  values: readonly number[],
  timeUnit: 'h' | 'input',
  volumeL?: number,
  solidsKg?: number,
): SorptionFit {
  checkSeries(times, values, 3, 'sorption');
  const c0 = values[0] as number;
  if (!(c0 > 0)) throw new FitError('the sorption model needs a positive first reading (C0)');
  const n = times.length;
  const t0 = times[0] as number;
  const tau = new Float64Array(n);
  const c = new Float64Array(n);
  let minStep = Number.POSITIVE_INFINITY;
  let span = 0;
  for (let i = 0; i < n; i++) {
    tau[i] = (times[i] as number) - t0;
    c[i] = values[i] as number;
    const delay = Math.abs(tau[i] as number);
    if (delay > 0) minStep = Math.min(minStep, delay);
    span = Math.max(span, delay);
  }
  const decay = new Float64Array(n);
  const profile = (k: number): SorptionProfile => sorptionProfile(tau, c, c0, k, decay);

  const best = minimiseOverRate(profile, minStep, span);
  const { k, ce, sse } = best;
  let mean = 0;
  for (let i = 0; i < n; i++) mean += c[i] as number;
  mean /= n;
  let ssTot = 0;
  for (let i = 0; i < n; i++) ssTot += ((c[i] as number) - mean) ** 2;
  const withMassBalance = volumeL !== undefined && solidsKg !== undefined;
  return {
    species,
    model: 'pseudo_first_order_sorption',
    k,
    Ce: ce,
    C0: c0,
    sorbed_fraction: (c0 - ce) / c0,
    Kd: withMassBalance && ce > 0 ? ((c0 - ce) / ce) * (volumeL / solidsKg) : null,
    volume_l: volumeL ?? null,
    solids_kg: solidsKg ?? null,
    n,
    r2: ssTot === 0 ? null : 1 - sse / ssTot,
    rmse: Math.sqrt(sse / n),
    half_life: k > 0 ? Math.LN2 / k : null,
    time_unit: timeUnit,
  };
}

/** `decay` is scratch space for e^(−kτ), so each evaluation takes one exponential per reading. */
function sorptionProfile(
  tau: Float64Array,
  c: Float64Array,
  c0: number,
  k: number,
  decay: Float64Array,
): SorptionProfile {
  const n = tau.length;
  // Pass 1: the closed-form Ce minimising Σ (z − Ce·u)², with u = 1 − e and z = C − C0·e.
  let zu = 0;
  let uu = 0;
  for (let i = 0; i < n; i++) {
    const e = Math.exp(-k * (tau[i] as number));
    decay[i] = e;
    const u = 1 - e;
    zu += ((c[i] as number) - c0 * e) * u;
    uu += u * u;
  }
  // With k = 0 every prediction is C0 and Ce does not matter: report the equilibrium as C0 (nothing sorbed).
  const ce = uu > 0 ? Math.min(c0, Math.max(0, zu / uu)) : c0;
  let sse = 0;
  for (let i = 0; i < n; i++) {
    const e = decay[i] as number;
    const residual = (c[i] as number) - ce - (c0 - ce) * e;
    sse += residual * residual;
  }
  return { k, ce, sse };
}

const SCAN_POINTS_PER_DECADE = 4;
const RELATIVE_TOLERANCE = 1e-9;

/**
 * Finds k ≥ 0 minimising the profiled SSE. Rates far below 1/span are indistinguishable from 0 and rates far
 * above 1/minStep from instant equilibrium, so the scan covers [1e-6/span, 1e6/minStep] and k = 0 itself.
 */
function minimiseOverRate(
  profile: (k: number) => SorptionProfile,
  minStep: number,
  span: number,
): SorptionProfile {
  const low = 1e-6 / span;
  const high = 1e6 / minStep;
  const steps = Math.max(8, Math.ceil(Math.log10(high / low) * SCAN_POINTS_PER_DECADE));
  const ratio = (high / low) ** (1 / steps);
  const scan: SorptionProfile[] = [];
  for (let i = 0; i <= steps; i++) scan.push(profile(low * ratio ** i));
  let bestIndex = 0;
  for (let i = 1; i < scan.length; i++) {
    if ((scan[i] as SorptionProfile).sse < (scan[bestIndex] as SorptionProfile).sse) bestIndex = i;
  }
  const left = bestIndex === 0 ? 0 : (scan[bestIndex - 1] as SorptionProfile).k;
  const right = (scan[Math.min(bestIndex + 1, scan.length - 1)] as SorptionProfile).k;
  const refined = brentMinimise(profile, left, (scan[bestIndex] as SorptionProfile).k, right);
  const atZero = profile(0);
  return atZero.sse <= refined.sse ? atZero : refined;
}

/** Brent's method (golden section with parabolic steps) on the bracket a ≤ x ≤ b. */
function brentMinimise(
  profile: (k: number) => SorptionProfile,
  lower: number,
  start: number,
  upper: number,
): SorptionProfile {
  const golden = 0.381966011250105;
  let a = lower;
  let b = upper;
  let best = profile(start);
  let x = best.k;
  let w = x;
  let v = x;
  let fx = best.sse;
  let fw = fx;
  let fv = fx;
  let d = 0;
  let e = 0;
  for (let iteration = 0; iteration < 200; iteration++) {
    const middle = (a + b) / 2;
    const tol1 = RELATIVE_TOLERANCE * Math.abs(x) + Number.MIN_VALUE * 1e10;
    const tol2 = 2 * tol1;
    if (Math.abs(x - middle) <= tol2 - (b - a) / 2) break;
    let useGolden = true;
    if (Math.abs(e) > tol1) {
      const r = (x - w) * (fx - fv);
      let q = (x - v) * (fx - fw);
      let p = (x - v) * q - (x - w) * r;
      q = 2 * (q - r);
      if (q > 0) p = -p;
      q = Math.abs(q);
      const previousStep = e;
      e = d;
      if (Math.abs(p) < Math.abs(0.5 * q * previousStep) && p > q * (a - x) && p < q * (b - x)) {
        d = p / q;
        const u = x + d;
        if (u - a < tol2 || b - u < tol2) d = middle >= x ? tol1 : -tol1;
        useGolden = false;
      }
    }
    if (useGolden) {
      e = x >= middle ? a - x : b - x;
      d = golden * e;
    }
    const u = Math.abs(d) >= tol1 ? x + d : x + (d > 0 ? tol1 : -tol1);
    const trial = profile(u);
    if (trial.sse <= fx) {
      if (u >= x) a = x;
      else b = x;
      v = w;
      fv = fw;
      w = x;
      fw = fx;
      x = u;
      fx = trial.sse;
      best = trial;
    } else {
      if (u < x) a = u;
      else b = u;
      if (trial.sse <= fw || w === x) {
        v = w;
        fv = fw;
        w = u;
        fw = trial.sse;
      } else if (trial.sse <= fv || v === x || v === w) {
        v = u;
        fv = trial.sse;
      }
    }
  }
  return best;
}
