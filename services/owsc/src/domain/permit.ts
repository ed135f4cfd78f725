// Discharge permits (spec §3.1): validation, normalisation and the default permit.
import type { Permit } from './types.js';

/** An invalid permit; `key` is the offending key path (e.g. `limits_mgL.SO4`), also named by the message. */
export class PermitError extends Error {
  override readonly name = 'PermitError';
  constructor(
    readonly key: string,
    reason: string,
  ) {
    super(`${key}: ${reason}`);
  }
}

/** The permit used when none is given (spec §3.1). */
export const DEFAULT_PERMIT: Permit = deepFreeze({
  limits_mgL: { SO4: 250, As: 0.01, Ni: 0.1 },
  rolling_window: 3,
  actions: {
    SO4: 'Increase lime dosing; verify gypsum precipitation; reduce discharge rate.',
    As: 'Adjust pH to 7-8; add ferric coagulant; check filter performance.',
    Ni: 'Increase ion exchange cycle; ensure resin regeneration; check chelation dosing.',
  },
  daily_max_limits_mgL: {},
  monthly_average_limits_mgL: {},
  timezone: 'UTC',
});

function deepFreeze<T extends object>(value: T): T {
  for (const inner of Object.values(value)) {
    if (inner !== null && typeof inner === 'object') deepFreeze(inner);
  }
  return Object.freeze(value);
}

const DECIMAL = /^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$/;

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return value !== null && typeof value === 'object' && !Array.isArray(value);
}

/** A finite number, or a string holding a decimal number (trimmed); undefined otherwise. */
function numericValue(value: unknown): number | undefined {
  if (typeof value === 'number') return Number.isFinite(value) ? value : undefined;
  if (typeof value === 'string') {
    const text = value.trim();
    if (!DECIMAL.test(text)) return undefined;
    const number = Number(text);
    return Number.isFinite(number) ? number : undefined;
  }
  return undefined;
}

/** species → limit > 0; `Object.fromEntries` keeps odd species names such as `__proto__` as own keys. */
function limitTable(value: unknown, key: string, required: boolean): Record<string, number> {
  if (value === undefined || (value === null && !required)) {
    if (required) throw new PermitError(key, 'required: an object of species → limit in mg/L');
    return {};
  }
  if (!isPlainObject(value)) throw new PermitError(key, 'must be an object of species → limit in mg/L');
  const entries: [string, number][] = [];
  for (const [species, raw] of Object.entries(value)) {
    const limit = numericValue(raw);
    if (limit === undefined || limit <= 0) throw new PermitError(`${key}.${species}`, 'must be a number > 0');
    entries.push([species, limit]);
  }
  if (required && entries.length === 0) throw new PermitError(key, 'must name at least one species');
  return Object.fromEntries(entries);
}

function rollingWindow(value: unknown): number {
  if (value === undefined) return 3;
  const window = numericValue(value);
  if (window === undefined || !Number.isSafeInteger(window) || window < 1) {
    throw new PermitError('rolling_window', 'must be an integer >= 1');
  }
  return window;
}

function actionTable(value: unknown): Record<string, string> {
  if (value === undefined || value === null) return {};
  if (!isPlainObject(value)) throw new PermitError('actions', 'must be an object of species → action text');
  const entries: [string, string][] = [];
  for (const [species, text] of Object.entries(value)) {
    if (typeof text !== 'string') throw new PermitError(`actions.${species}`, 'must be a string');
    entries.push([species, text]);
  }
  return Object.fromEntries(entries);
}

const zoneNames = new Map<string, string>();

/** The canonical IANA name of a time zone, or undefined when Intl does not know it. */
export function canonicalTimeZone(zone: string): string | undefined {
  const cached = zoneNames.get(zone);
  if (cached !== undefined) return cached;
  try {
    const canonical = new Intl.DateTimeFormat('en-US', { timeZone: zone }).resolvedOptions().timeZone;
    zoneNames.set(zone, canonical);
    return canonical;
  } catch {
    return undefined;
  }
}

function timeZone(value: unknown): string {
  if (value === undefined || value === null) return 'UTC';
  if (typeof value !== 'string' || value.trim() === '') {
    throw new PermitError('timezone', 'must be an IANA time zone name such as "Europe/Berlin"');
  }
  const zone = canonicalTimeZone(value.trim());
  if (zone === undefined) throw new PermitError('timezone', `unknown IANA time zone "${value}"`);
  return zone;
}

/**
 * Validates a permit (parsed JSON) and returns its normalised form. `limits_mgL` wins over `limits`; numeric
 * strings are accepted for limits and the window; unknown keys are accepted and ignored (not copied).
 */
export function parsePermit(value: unknown): Permit {
  if (!isPlainObject(value)) throw new PermitError('permit', 'must be a JSON object');
  const limitsKey = value.limits_mgL !== undefined ? 'limits_mgL' : 'limits';
  if (value.limits_mgL === undefined && value.limits === undefined) {
    throw new PermitError('limits_mgL', 'required: an object of species → limit in mg/L');
  }
  return {
    limits_mgL: limitTable(value[limitsKey], limitsKey, true),
    rolling_window: rollingWindow(value.rolling_window),
    actions: actionTable(value.actions),
    daily_max_limits_mgL: limitTable(value.daily_max_limits_mgL, 'daily_max_limits_mgL', false),
    monthly_average_limits_mgL: limitTable(
      value.monthly_average_limits_mgL,
      'monthly_average_limits_mgL',
      false,
    ),
    timezone: timeZone(value.timezone),
  };
}

/** `record[key]` when it is an own key (species names such as `constructor` must not hit the prototype). */
export function ownValue<V>(record: Record<string, V>, key: string): V | undefined {
  return Object.hasOwn(record, key) ? record[key] : undefined;
}

/** The instantaneous limit of a species, or undefined when the permit does not limit it. */
export function limitFor(permit: Permit, species: string): number | undefined {
  return ownValue(permit.limits_mgL, species);
}

/** The permit's action text for a species, else `Review <species> treatment process`. */
export function actionFor(permit: Permit, species: string): string {
  return ownValue(permit.actions, species) ?? `Review ${species} treatment process`;
}
