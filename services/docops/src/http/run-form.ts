// The text parts of POST /v1/run and their rules (spec §3.8.6 rows 10-13): trimmed, empty = absent,
// preset/strict conflicts, lower-cased enums and boolean words, then the effective options.
import { parseBool } from '@quintet/kernel/config';
import {
  conflictingFields,
  OptionConflictError,
  OptionValueError,
  parseBooleanOption,
  type RawOptions,
  resolveEffectiveOptions,
} from '../domain/options.js';
import type { EffectiveOptions } from '../domain/types.js';
import { badRequest, conflict } from './errors.js';

const TEXT_PARTS = [
  'skill',
  'preset',
  'strict',
  'format_mode',
  'format_baseline',
  'format_fix_mode',
  'format_report',
  'policy_yaml',
  'export_suggested_policy',
  'unsupported_mode',
  'pdf',
] as const;

export interface RunForm {
  /** trimmed, non-empty text parts as sent */
  raw: Partial<Record<(typeof TEXT_PARTS)[number], string>>;
  skill: string;
  options: EffectiveOptions;
  policyYaml: string | null;
  exportSuggestedPolicy: boolean;
  pdf: boolean;
}

/** The non-empty, trimmed value of a text part. */
export function textPart(fields: ReadonlyMap<string, string>, name: string): string | undefined {
  const value = fields.get(name)?.trim();
  return value === undefined || value === '' ? undefined : value;
}

/** Reads the option parts in the spec's check order; throws the first 400 that applies. */
export function readRunForm(fields: ReadonlyMap<string, string>): RunForm {
  const raw: RunForm['raw'] = {};
  for (const name of TEXT_PARTS) {
    const value = textPart(fields, name);
    if (value !== undefined) raw[name] = value;
  }
  // Conflicts are decided on presence alone (an invalid strict value is "not true" here and fails below).
  const rawOptions: RawOptions = {
    ...raw,
    strict: raw.strict === undefined ? null : parseBool(raw.strict) === true,
  };
  const conflicting = conflictingFields(rawOptions);
  try {
    const options = resolveEffectiveOptions(rawOptions, { format_report: 'json' });
    const flag = (name: 'strict' | 'export_suggested_policy' | 'pdf') =>
      raw[name] === undefined ? false : parseBooleanOption(name, raw[name]);
    flag('strict');
    return {
      raw,
      skill: raw.skill ?? 'meeting_notice',
      options,
      policyYaml: raw.policy_yaml ?? null,
      exportSuggestedPolicy: flag('export_suggested_policy'),
      pdf: flag('pdf'),
    };
  } catch (error) {
    if (error instanceof OptionConflictError) {
      throw conflict(error.message, { conflicting_fields: conflicting });
    }
    if (error instanceof OptionValueError) {
      throw badRequest(error.message, {
        field: error.field,
        value: error.value,
        allowed: [...error.allowed].sort(),
      });
    }
    throw error;
  }
}
