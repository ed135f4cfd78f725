// The shapes of the OWSC contract (spec §3.1–3.3, §3.6): readings, permits, alerts, batch results, statistics
// and fits. Every module of the service speaks these types; the JSON field names are the wire contract.

/** A reading's time: a finite number (the rate's time unit) or an ISO 8601 date/date-time string. */
export type ReadingTime = number | string;

export type TimeKind = 'numeric' | 'iso';

/** One tidy reading. `value` is the substituted value used in means (spec §3.1 non-detects). */
export interface Reading {
  time: ReadingTime;
  /** epoch milliseconds for ISO times (no zone → UTC), the number itself for numeric times: the sort key */
  t: number;
  species: string;
  /** the concentration as written (for a non-detect `<DL`: DL) */
  concentration: number;
  /** the value entering means: the concentration, or the non-detect substitution */
  value: number;
  nondetect: boolean;
  /** physical 1-based line number of the record in the CSV (0 when not from a CSV) */
  line: number;
}

/** Non-detect substitution policy (`OW_SC_NONDETECT`). */
export type NondetectPolicy = 'zero' | 'half' | 'dl';

/** A validated, normalised permit (spec §3.1). Species order = key order of `limits_mgL`. */
export interface Permit {
  limits_mgL: Record<string, number>;
  rolling_window: number;
  actions: Record<string, string>;
  daily_max_limits_mgL: Record<string, number>;
  monthly_average_limits_mgL: Record<string, number>;
  timezone: string;
}

export type AlertType = 'exceedance' | 'trend' | 'daily_maximum' | 'monthly_average';
export type AlertLevel = 'info' | 'watch' | 'warning' | 'critical';
export const ALERT_LEVELS: readonly AlertLevel[] = ['info', 'watch', 'warning', 'critical'];

export interface Alert {
  time: ReadingTime;
  species: string;
  type: AlertType;
  level: AlertLevel;
  value: number;
  limit: number;
  action: string;
  message: string;
  ratio: number;
  /** trend alerts only */
  window?: number;
}

export type AlertSource = 'batch' | 'stream';

/** An alert as stored and served (spec §3.1). */
export interface StoredAlert extends Alert {
  id: string;
  source: AlertSource;
  batch_id: string | null;
  incident_id: string | null;
  created_at: string;
}

export type EvaluationMode = 'latest' | 'all';
export type CsvFormat = 'tidy' | 'wide';

export interface SpeciesSummary {
  n: number;
  min: number;
  max: number;
  mean: number;
  last: number;
  last_time: ReadingTime;
  limit: number | null;
  exceedances: number;
  nondetects: number;
}

export interface DailyStatistic {
  date: string;
  n: number;
  mean: number;
  max: number;
  min: number;
  flow_m3d: number | null;
  load_kg_d: number | null;
}

export interface MonthlyStatistic {
  month: string;
  days: number;
  n: number;
  average: number;
  max_daily: number;
  max_sample: number;
  load_average_kg_d: number | null;
  average_limit: number | null;
  daily_limit: number | null;
  compliant: boolean;
}

export interface Statistics {
  timezone: string;
  species: Record<string, { daily: DailyStatistic[]; monthly: MonthlyStatistic[] }>;
  alerts: Alert[];
}

/** The batch result of spec §3.2 (`monitor-batch` output; the HTTP one adds id, created_at, filename, sha256, site). */
export interface BatchResult {
  count: number;
  alerts: Alert[];
  compliant: boolean;
  mode: EvaluationMode;
  format: CsvFormat;
  rows: number;
  readings: number;
  species: string[];
  time_kind: TimeKind;
  permit: Permit;
  summary: Record<string, SpeciesSummary>;
  statistics: Statistics | null;
}

/** A CSV problem with its physical line and trimmed header name (spec §3.4). */
export interface CsvIssue {
  line: number;
  column: string;
  reason: string;
}

/** Parsed CSV: tidy readings in file order plus flow samples (species `flow_m3d`), never evaluated. */
export interface ParsedReadings {
  format: CsvFormat;
  time_kind: TimeKind;
  /** data rows (non-blank records after the header) */
  rows: number;
  readings: Reading[];
  flows: Reading[];
}

export interface DecayFit {
  species: string;
  model: 'first_order_decay';
  k: number;
  Kd: null;
  n: number;
  c0: number;
  r2: number | null;
  half_life: number | null;
  time_unit: 'h' | 'input';
}

export interface SorptionFit {
  species: string;
  model: 'pseudo_first_order_sorption';
  k: number;
  Ce: number;
  C0: number;
  sorbed_fraction: number;
  Kd: number | null;
  volume_l: number | null;
  solids_kg: number | null;
  n: number;
  r2: number | null;
  rmse: number;
  half_life: number | null;
  time_unit: 'h' | 'input';
}

export type ChemistryFit = DecayFit | SorptionFit;
