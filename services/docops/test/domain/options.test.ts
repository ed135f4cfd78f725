import { describe, expect, it } from 'vitest';
import {
  ALLOWED_OPTION_VALUES,
  conflictingFields,
  OptionConflictError,
  OptionValueError,
  PRESET_NAMES,
  parseBooleanOption,
  resolveEffectiveOptions,
} from '../../src/domain/options.js';

const cli = { format_report: 'human' as const };
const api = { format_report: 'json' as const };

describe('presets', () => {
  it('default and quick are report/template/safe', () => {
    expect(resolveEffectiveOptions({}, cli)).toEqual({
      preset: 'quick',
      format_mode: 'report',
      format_baseline: 'template',
      format_fix_mode: 'safe',
      format_report: 'human',
      unsupported_mode: 'error',
    });
    expect(resolveEffectiveOptions({ preset: 'quick' }, api)).toMatchObject({
      preset: 'quick',
      format_mode: 'report',
      format_baseline: 'template',
      format_fix_mode: 'safe',
      format_report: 'json',
    });
  });

  it('template is report/template/none and strict is strict/policy/safe', () => {
    expect(resolveEffectiveOptions({ preset: 'template' }, cli)).toMatchObject({
      format_mode: 'report',
      format_baseline: 'template',
      format_fix_mode: 'none',
    });
    expect(resolveEffectiveOptions({ preset: ' STRICT ' }, cli)).toMatchObject({
      preset: 'strict',
      format_mode: 'strict',
      format_baseline: 'policy',
      format_fix_mode: 'safe',
    });
  });

  it('strict=true forces format_mode only (case 10)', () => {
    expect(resolveEffectiveOptions({ preset: 'template', strict: true }, api)).toMatchObject({
      preset: 'template',
      format_mode: 'strict',
      format_baseline: 'template',
      format_fix_mode: 'none',
    });
    expect(resolveEffectiveOptions({ strict: false, format_mode: 'off' }, api).format_mode).toBe('off');
  });

  it('explicit values without a preset override the quick defaults; enums are trimmed and lower-cased', () => {
    expect(
      resolveEffectiveOptions(
        {
          format_mode: ' Strict',
          format_baseline: 'POLICY',
          format_fix_mode: 'none',
          format_report: 'Both',
          unsupported_mode: 'WARN ',
        },
        cli,
      ),
    ).toEqual({
      preset: 'quick',
      format_mode: 'strict',
      format_baseline: 'policy',
      format_fix_mode: 'none',
      format_report: 'both',
      unsupported_mode: 'warn',
    });
  });
});

describe('conflicts', () => {
  it('names the explicit format_* fields in order when a preset is given', () => {
    expect(conflictingFields({ preset: 'strict', format_mode: 'report' })).toEqual(['format_mode']);
    expect(
      conflictingFields({
        preset: 'quick',
        format_report: 'json',
        format_mode: 'x',
        format_fix_mode: 'safe',
        format_baseline: 'policy',
      }),
    ).toEqual(['format_mode', 'format_baseline', 'format_fix_mode', 'format_report']);
    expect(conflictingFields({ preset: 'quick', unsupported_mode: 'warn' })).toEqual([]);
    expect(conflictingFields({ format_mode: 'report' })).toEqual([]);
  });

  it.each(['format_mode', 'format_baseline', 'format_fix_mode', 'format_report'] as const)(
    'strict=true conflicts with %s',
    (field) => {
      expect(conflictingFields({ strict: true, [field]: 'x' })).toEqual([field]);
      expect(conflictingFields({ strict: false, [field]: 'x' })).toEqual([]);
    },
  );

  it('resolveEffectiveOptions throws the conflict before checking values', () => {
    expect(() => resolveEffectiveOptions({ preset: 'bogus', format_mode: 'bogus' }, cli)).toThrow(
      OptionConflictError,
    );
    try {
      resolveEffectiveOptions({ preset: 'strict', format_mode: 'report' }, cli);
    } catch (error) {
      expect((error as OptionConflictError).conflictingFields).toEqual(['format_mode']);
    }
  });
});

describe('values', () => {
  it('invalid enum values name the field and the sorted allowed values', () => {
    try {
      resolveEffectiveOptions({ format_mode: 'loud' }, cli);
      throw new Error('expected failure');
    } catch (error) {
      expect(error).toBeInstanceOf(OptionValueError);
      expect(error).toMatchObject({
        field: 'format_mode',
        value: 'loud',
        allowed: ['off', 'report', 'strict'],
      });
    }
    expect(() => resolveEffectiveOptions({ preset: 'fast' }, cli)).toThrow(/preset/);
    expect(() => resolveEffectiveOptions({ unsupported_mode: '' }, cli)).toThrow(OptionValueError);
  });

  it('exports sorted allowed lists and the meta preset order', () => {
    for (const values of Object.values(ALLOWED_OPTION_VALUES))
      expect([...values]).toEqual([...values].sort());
    expect(PRESET_NAMES).toEqual(['quick', 'template', 'strict']);
  });

  it('parses booleans in any case', () => {
    for (const value of ['true', 'TRUE', '1', 'yes', 'On'])
      expect(parseBooleanOption('pdf', value)).toBe(true);
    for (const value of ['false', '0', 'No', 'off ']) expect(parseBooleanOption('pdf', value)).toBe(false);
    expect(() => parseBooleanOption('pdf', 'maybe')).toThrow(OptionValueError);
  });
});
