// The rule engine (spec §3.1 alerts and severity, §3.2 evaluation): one engine for the CLI, HTTP and the stream.
import { ReadingTable } from './csv.js';
import { actionFor } from './permit.js';
import type { Alert, AlertLevel, AlertType, EvaluationMode, Permit, Reading, ReadingTime } from './types.js';

/** Severity from r = value / limit: ≥ 2 critical, ≥ 1.5 warning, ≥ 1.25 watch, otherwise info. */
export function severity(ratio: number): AlertLevel {
  if (ratio >= 2) return 'critical';
  if (ratio >= 1.5) return 'warning';
  if (ratio >= 1.25) return 'watch';
  return 'info';
}

const LEVEL_RANK: Record<AlertLevel, number> = { info: 0, watch: 1, warning: 2, critical: 3 };

/** info 0, watch 1, warning 2, critical 3. */
export function levelRank(level: AlertLevel): number {
  return LEVEL_RANK[level];
}

export interface AlertInput {
  type: AlertType;
  species: string;
  time: ReadingTime;
  value: number;
  limit: number;
  /** trend alerts: readings in the rolling mean */
  window?: number;
  /** statistic alerts: the date or month named by the message (defaults to `time`) */
  period?: string;
}

function alertMessage(input: AlertInput): string {
  const value = input.value.toFixed(3);
  const limit = input.limit.toFixed(3);
  const sp = input.species;
  switch (input.type) {
    case 'exceedance':
      return `${sp} concentration ${value} mg/L exceeds limit ${limit} mg/L`;
    case 'trend':
      return `${sp} rolling mean ${value} mg/L over ${input.window} readings exceeds limit ${limit} mg/L`;
    case 'daily_maximum':
      return `${sp} daily value ${value} mg/L on ${input.period ?? input.time} exceeds daily maximum ${limit} mg/L`;
    case 'monthly_average':
      return `${sp} monthly average ${value} mg/L for ${input.period ?? input.time} exceeds limit ${limit} mg/L`;
  }
}

/** An alert with the spec's message text (3 decimals), the permit's action and ratio = value / limit. */
export function buildAlert(permit: Permit, input: AlertInput): Alert {
  const ratio = input.value / input.limit;
  const alert: Alert = {
    time: input.time,
    species: input.species,
    type: input.type,
    level: severity(ratio),
    value: input.value,
    limit: input.limit,
    action: actionFor(permit, input.species),
    message: alertMessage(input),
    ratio,
  };
  if (input.type === 'trend') alert.window = input.window;
  return alert;
}

/**
 * Row indices of each species of the table, in time order; ties keep table (file) order. Indices are
 * collected in table order, so an already sorted series (the usual case) needs no sort at all.
 */
export function seriesBySpecies(table: ReadingTable): Map<string, Int32Array> {
  const counts = new Int32Array(table.species.length);
  const ids = table.speciesIndex;
  for (let i = 0; i < table.length; i++) {
    const id = ids[i] as number;
    counts[id] = (counts[id] as number) + 1;
  }
  const series = table.species.map((_, id) => new Int32Array(counts[id] as number));
  const filled = new Int32Array(table.species.length);
  for (let i = 0; i < table.length; i++) {
    const id = ids[i] as number;
    const at = filled[id] as number;
    (series[id] as Int32Array)[at] = i;
    filled[id] = at + 1;
  }
  const t = table.t;
  const out = new Map<string, Int32Array>();
  table.species.forEach((name, id) => {
    const rows = series[id] as Int32Array;
    for (let k = 1; k < rows.length; k++) {
      if ((t[rows[k] as number] as number) < (t[rows[k - 1] as number] as number)) {
        rows.sort((a, b) => (t[a] as number) - (t[b] as number) || a - b);
        break;
      }
    }
    out.set(name, rows);
  });
  return out;
}

/** Mean of the substituted values of rows[from..to] (inclusive), summed oldest first. */
function windowMean(values: Float64Array, rows: Int32Array, from: number, to: number): number {
  let sum = 0;
  for (let k = from; k <= to; k++) sum += values[rows[k] as number] as number;
  return sum / (to - from + 1);
}

function latestAlerts(
  permit: Permit,
  species: string,
  limit: number,
  table: ReadingTable,
  rows: Int32Array,
): Alert[] {
  const alerts: Alert[] = [];
  const n = rows.length;
  if (n === 0) return alerts;
  const last = rows[n - 1] as number;
  const time = table.time(last);
  const concentration = table.concentration[last] as number;
  if (table.nondetect[last] === 0 && concentration > limit) {
    alerts.push(buildAlert(permit, { type: 'exceedance', species, time, value: concentration, limit }));
  }
  const w = permit.rolling_window;
  if (n >= w) {
    const mean = windowMean(table.value, rows, n - w, n - 1);
    if (mean > limit)
      alerts.push(buildAlert(permit, { type: 'trend', species, time, value: mean, limit, window: w }));
  }
  return alerts;
}

// The running window sum drifts by rounding; `moved` bounds that error (values are >= 0, so the error is at most
// a few ulps of everything added and removed since the last exact re-sum). Only windows whose running sum
// comes within that bound of the limit are re-summed exactly, so decisions and values equal the plain mean.
const RESYNC = 1024;
const ULP_FACTOR = 8 * Number.EPSILON;

interface TimedAlert {
  alert: Alert;
  t: number;
}

/** Every exceedance and every trend window of one species, in time order. */
function allAlerts(
  permit: Permit,
  species: string,
  limit: number,
  table: ReadingTable,
  rows: Int32Array,
): TimedAlert[] {
  const out: TimedAlert[] = [];
  const w = permit.rolling_window;
  const values = table.value;
  const concentrations = table.concentration;
  let running = 0;
  let moved = 0;
  for (let k = 0; k < rows.length; k++) {
    const i = rows[k] as number;
    const concentration = concentrations[i] as number;
    if (concentration > limit && table.nondetect[i] === 0) {
      const alert = buildAlert(permit, {
        type: 'exceedance',
        species,
        time: table.time(i),
        value: concentration,
        limit,
      });
      out.push({ alert, t: table.t[i] as number });
    }
    const value = values[i] as number;
    running += value;
    moved += value;
    if (k >= w) {
      const leaving = values[rows[k - w] as number] as number;
      running -= leaving;
      moved += leaving;
    }
    if (k < w - 1) continue;
    if (k % RESYNC === 0) {
      running = windowMean(values, rows, k - w + 1, k) * w;
      moved = running;
    }
    if (running + ULP_FACTOR * (moved + limit * w) <= limit * w) continue;
    const mean = windowMean(values, rows, k - w + 1, k);
    if (mean > limit) {
      const alert = buildAlert(permit, {
        type: 'trend',
        species,
        time: table.time(i),
        value: mean,
        limit,
        window: w,
      });
      out.push({ alert, t: table.t[i] as number });
    }
  }
  return out;
}

/** Merges per-species alert lists (each in time order): time, then list (permit) order, exceedance first. */
function mergeByTime(lists: TimedAlert[][]): Alert[] {
  const heads = lists.map(() => 0);
  const merged: Alert[] = [];
  for (;;) {
    let best = -1;
    let bestT = 0;
    for (let s = 0; s < lists.length; s++) {
      const entry = (lists[s] as TimedAlert[])[heads[s] as number];
      if (entry !== undefined && (best === -1 || entry.t < bestT)) {
        best = s;
        bestT = entry.t;
      }
    }
    if (best === -1) return merged;
    const list = lists[best] as TimedAlert[];
    const start = heads[best] as number;
    let end = start;
    while (end < list.length && (list[end] as TimedAlert).t === bestT) end++;
    for (const type of ['exceedance', 'trend'] as const) {
      for (let k = start; k < end; k++) {
        const { alert } = list[k] as TimedAlert;
        if (alert.type === type) merged.push(alert);
      }
    }
    heads[best] = end;
  }
}

/** `evaluateReadings` over a column table (the batch path: no Reading objects are built). */
export function evaluateTable(table: ReadingTable, permit: Permit, mode: EvaluationMode): Alert[] {
  const series = seriesBySpecies(table);
  const groups: { species: string; limit: number; rows: Int32Array }[] = [];
  for (const [species, limit] of Object.entries(permit.limits_mgL)) {
    groups.push({ species, limit, rows: series.get(species) ?? new Int32Array(0) });
  }
  if (mode === 'latest') {
    return groups.flatMap(({ species, limit, rows }) => latestAlerts(permit, species, limit, table, rows));
  }
  return mergeByTime(
    groups.map(({ species, limit, rows }) => allAlerts(permit, species, limit, table, rows)),
  );
}

/**
 * Evaluates tidy readings against the permit (spec §3.2). Species without a limit are skipped; readings of a
 * species are taken in time order (stable). `latest`: per species in permit order, the last reading's
 * exceedance, then the last window's trend. `all`: every exceedance and window, ordered by time, then permit
 * species order, then exceedance before trend.
 */
export function evaluateReadings(
  readings: readonly Reading[],
  permit: Permit,
  mode: EvaluationMode,
): Alert[] {
  return evaluateTable(ReadingTable.fromReadings(readings), permit, mode);
}
