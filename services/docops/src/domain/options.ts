// Render options shared by the CLI and the HTTP layer: presets (§3.7.2), enum parsing, conflicts
// (§3.8.6 rows 10-12) and the resulting EffectiveOptions.
import type {
  EffectiveOptions,
  FormatBaseline,
  FormatFixMode,
  FormatMode,
  FormatReportStyle,
  PresetName,
  UnsupportedMode,
} from './types.js';

/** Preset names in the order `/v1/meta` lists them. */
export const PRESET_NAMES: readonly PresetName[] = ['quick', 'template', 'strict'];

export interface PresetDefinition {
  format_mode: FormatMode;
  format_baseline: FormatBaseline;
  format_fix_mode: FormatFixMode;
}

/** What each preset sets; `format_report` comes from the caller's default (CLI human, API json). */
export const PRESETS: Readonly<Record<PresetName, PresetDefinition>> = {
  quick: { format_mode: 'report', format_baseline: 'template', format_fix_mode: 'safe' },
  template: { format_mode: 'report', format_baseline: 'template', format_fix_mode: 'none' },
  strict: { format_mode: 'strict', format_baseline: 'policy', format_fix_mode: 'safe' },
};

export const DEFAULT_PRESET: PresetName = 'quick';
export const DEFAULT_UNSUPPORTED_MODE: UnsupportedMode = 'error';

/** The format_* option names in the order conflicts are reported. */
export const FORMAT_OPTION_FIELDS = [
  'format_mode',
  'format_baseline',
  'format_fix_mode',
  'format_report',
] as const;
export type FormatOptionField = (typeof FORMAT_OPTION_FIELDS)[number];

export type EnumOptionField = 'preset' | FormatOptionField | 'unsupported_mode';

/** Allowed values per option, sorted (for error details). */
export const ALLOWED_OPTION_VALUES: Readonly<Record<EnumOptionField, readonly string[]>> = {
  preset: ['quick', 'strict', 'template'],
  format_mode: ['off', 'report', 'strict'],
  format_baseline: ['policy', 'template'],
  format_fix_mode: ['none', 'safe'],
  format_report: ['both', 'human', 'json'],
  unsupported_mode: ['error', 'warn'],
};

/** Boolean spellings accepted by the API (any case). */
export const ALLOWED_BOOLEAN_VALUES: readonly string[] = [
  '0',
  '1',
  'false',
  'no',
  'off',
  'on',
  'true',
  'yes',
];

/** An enum value that is not allowed; `field` is the API name (`format_mode`), `value` the raw input. */
export class OptionValueError extends Error {
  override readonly name = 'OptionValueError';
  constructor(
    readonly field: string,
    readonly value: string,
    readonly allowed: readonly string[],
  ) {
    super(`invalid ${field} '${value}' (allowed: ${allowed.join(', ')})`);
  }
}

/** `preset` or `strict=true` given together with explicit format_* options. */
export class OptionConflictError extends Error {
  override readonly name = 'OptionConflictError';
  constructor(
    readonly source: 'preset' | 'strict',
    readonly conflictingFields: FormatOptionField[],
  ) {
    super(
      source === 'preset'
        ? `preset cannot be combined with ${conflictingFields.join(', ')}`
        : `strict cannot be combined with ${conflictingFields.join(', ')}`,
    );
  }
}

/** Raw option values as given (CLI flags or trimmed multipart text parts); absent = undefined or null. */
export interface RawOptions {
  preset?: string | null;
  format_mode?: string | null;
  format_baseline?: string | null;
  format_fix_mode?: string | null;
  format_report?: string | null;
  unsupported_mode?: string | null;
  /** already parsed: `true` forces format_mode=strict; false/absent = not set */
  strict?: boolean | null;
}

function given(value: string | null | undefined): value is string {
  return value !== undefined && value !== null;
}

/** Trims and lower-cases an enum value and checks it; throws OptionValueError. */
export function parseEnumOption<T extends string>(field: EnumOptionField, raw: string): T {
  const value = raw.trim().toLowerCase();
  const allowed = ALLOWED_OPTION_VALUES[field];
  if (!allowed.includes(value)) throw new OptionValueError(field, raw, allowed);
  return value as T;
}

/** Parses `true/false/1/0/yes/no/on/off` (any case, trimmed); anything else → OptionValueError. */
export function parseBooleanOption(field: string, raw: string): boolean {
  const value = raw.trim().toLowerCase();
  if (['1', 'true', 'yes', 'on'].includes(value)) return true;
  if (['0', 'false', 'no', 'off'].includes(value)) return false;
  throw new OptionValueError(field, raw, ALLOWED_BOOLEAN_VALUES);
}

/** The explicit format_* names in report order (format_mode, format_baseline, format_fix_mode, format_report). */
export function explicitFormatFields(raw: RawOptions): FormatOptionField[] {
  return FORMAT_OPTION_FIELDS.filter((field) => given(raw[field]));
}

/**
 * The conflicting explicit format_* names (§3.8.6 rows 10-11): non-empty when a preset or `strict=true` is
 * given together with any explicit format_* option. Presence counts, not validity.
 */
export function conflictingFields(raw: RawOptions): FormatOptionField[] {
  if (!given(raw.preset) && raw.strict !== true) return [];
  return explicitFormatFields(raw);
}

/** Throws OptionConflictError when conflictingFields() is non-empty. */
export function assertNoConflicts(raw: RawOptions): void {
  const fields = conflictingFields(raw);
  if (fields.length > 0) throw new OptionConflictError(given(raw.preset) ? 'preset' : 'strict', fields);
}

/**
 * Combines a preset (default quick), explicit values and `strict` into EffectiveOptions. Checks
 * conflicts first (OptionConflictError), then each value (OptionValueError, in the order preset,
 * format_mode, format_baseline, format_fix_mode, format_report, unsupported_mode).
 */
export function resolveEffectiveOptions(
  raw: RawOptions,
  defaults: { format_report: FormatReportStyle },
): EffectiveOptions {
  assertNoConflicts(raw);
  const preset = given(raw.preset) ? parseEnumOption<PresetName>('preset', raw.preset) : DEFAULT_PRESET;
  const base = PRESETS[preset];
  const options: EffectiveOptions = {
    preset,
    format_mode: given(raw.format_mode)
      ? parseEnumOption<FormatMode>('format_mode', raw.format_mode)
      : base.format_mode,
    format_baseline: given(raw.format_baseline)
      ? parseEnumOption<FormatBaseline>('format_baseline', raw.format_baseline)
      : base.format_baseline,
    format_fix_mode: given(raw.format_fix_mode)
      ? parseEnumOption<FormatFixMode>('format_fix_mode', raw.format_fix_mode)
      : base.format_fix_mode,
    format_report: given(raw.format_report)
      ? parseEnumOption<FormatReportStyle>('format_report', raw.format_report)
      : defaults.format_report,
    unsupported_mode: given(raw.unsupported_mode)
      ? parseEnumOption<UnsupportedMode>('unsupported_mode', raw.unsupported_mode)
      : DEFAULT_UNSUPPORTED_MODE,
  };
  if (raw.strict === true) options.format_mode = 'strict';
  return options;
}
