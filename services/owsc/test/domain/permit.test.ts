import { describe, expect, it } from 'vitest';
import { actionFor, DEFAULT_PERMIT, PermitError, parsePermit } from '../../src/domain/permit.js';

function permitError(value: unknown): PermitError {
  try {
    parsePermit(value);
  } catch (error) {
    if (error instanceof PermitError) return error;
    throw error;
  }
  throw new Error('permit was accepted');
}

describe('parsePermit', () => {
  it('holds the default permit of the spec', () => {
    expect(DEFAULT_PERMIT).toEqual({
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
    expect(Object.isFrozen(DEFAULT_PERMIT.limits_mgL)).toBe(true);
  });

  it('fills defaults and keeps the species order of the limits', () => {
    const permit = parsePermit({ limits_mgL: { Ni: 0.2, SO4: 300 } });
    expect(permit).toEqual({
      limits_mgL: { Ni: 0.2, SO4: 300 },
      rolling_window: 3,
      actions: {},
      daily_max_limits_mgL: {},
      monthly_average_limits_mgL: {},
      timezone: 'UTC',
    });
    expect(Object.keys(permit.limits_mgL)).toEqual(['Ni', 'SO4']);
  });

  it('accepts `limits` and lets `limits_mgL` win when both exist (case 4)', () => {
    expect(parsePermit({ limits: { SO4: 100 } }).limits_mgL).toEqual({ SO4: 100 });
    expect(parsePermit({ limits: { SO4: 100 }, limits_mgL: { As: 0.5 } }).limits_mgL).toEqual({ As: 0.5 });
    // the losing key is not validated
    expect(parsePermit({ limits: { SO4: -1 }, limits_mgL: { As: 0.5 } }).limits_mgL).toEqual({ As: 0.5 });
  });

  it('accepts numeric strings for limits and the window, and ignores unknown keys', () => {
    const permit = parsePermit({
      limits_mgL: { SO4: ' 250.5 ' },
      rolling_window: '5',
      daily_max_limits_mgL: { SO4: '300' },
      site: 'North',
    });
    expect(permit.limits_mgL).toEqual({ SO4: 250.5 });
    expect(permit.rolling_window).toBe(5);
    expect(permit.daily_max_limits_mgL).toEqual({ SO4: 300 });
    expect(permit).not.toHaveProperty('site');
  });

  it('checks the time zone with Intl and returns its canonical name', () => {
    expect(parsePermit({ limits_mgL: { SO4: 1 }, timezone: 'Europe/Berlin' }).timezone).toBe('Europe/Berlin');
    expect(parsePermit({ limits_mgL: { SO4: 1 }, timezone: 'europe/berlin' }).timezone).toBe('Europe/Berlin');
  });

  it.each([
    [null, 'permit', 'permit: must be a JSON object'],
    [[1], 'permit', 'permit: must be a JSON object'],
    ['{"limits_mgL":{}}', 'permit', 'permit: must be a JSON object'],
    [{}, 'limits_mgL', 'limits_mgL: required: an object of species → limit in mg/L'],
    [{ limits_mgL: {} }, 'limits_mgL', 'limits_mgL: must name at least one species'],
    [{ limits_mgL: [250] }, 'limits_mgL', 'limits_mgL: must be an object of species → limit in mg/L'],
    [{ limits_mgL: { SO4: 0 } }, 'limits_mgL.SO4', 'limits_mgL.SO4: must be a number > 0'],
    [{ limits_mgL: { SO4: -5 } }, 'limits_mgL.SO4', 'limits_mgL.SO4: must be a number > 0'],
    [{ limits_mgL: { SO4: 'high' } }, 'limits_mgL.SO4', 'limits_mgL.SO4: must be a number > 0'],
    [{ limits_mgL: { SO4: null } }, 'limits_mgL.SO4', 'limits_mgL.SO4: must be a number > 0'],
    [{ limits: { As: 'NaN' } }, 'limits.As', 'limits.As: must be a number > 0'],
    [
      { limits_mgL: { SO4: 1 }, rolling_window: 0 },
      'rolling_window',
      'rolling_window: must be an integer >= 1',
    ],
    [
      { limits_mgL: { SO4: 1 }, rolling_window: 2.5 },
      'rolling_window',
      'rolling_window: must be an integer >= 1',
    ],
    [
      { limits_mgL: { SO4: 1 }, rolling_window: 'three' },
      'rolling_window',
      'rolling_window: must be an integer >= 1',
    ],
    [
      { limits_mgL: { SO4: 1 }, rolling_window: true },
      'rolling_window',
      'rolling_window: must be an integer >= 1',
    ],
    [
      { limits_mgL: { SO4: 1 }, timezone: 'Mars/Olympus' },
      'timezone',
      'timezone: unknown IANA time zone "Mars/Olympus"',
    ],
    [
      { limits_mgL: { SO4: 1 }, timezone: 5 },
      'timezone',
      'timezone: must be an IANA time zone name such as "Europe/Berlin"',
    ],
    [{ limits_mgL: { SO4: 1 }, actions: { SO4: 3 } }, 'actions.SO4', 'actions.SO4: must be a string'],
    [
      { limits_mgL: { SO4: 1 }, daily_max_limits_mgL: { SO4: 0 } },
      'daily_max_limits_mgL.SO4',
      'daily_max_limits_mgL.SO4: must be a number > 0',
    ],
    [
      { limits_mgL: { SO4: 1 }, monthly_average_limits_mgL: 7 },
      'monthly_average_limits_mgL',
      'monthly_average_limits_mgL: must be an object of species → limit in mg/L',
    ],
  ])('rejects %j naming %s', (value, key, message) => {
    const error = permitError(value);
    expect(error.key).toBe(key);
    expect(error.message).toBe(message);
  });

  it('keeps species names that look like Object.prototype keys as plain data', () => {
    const permit = parsePermit(JSON.parse('{"limits_mgL":{"__proto__":5,"constructor":2}}'));
    expect(Object.keys(permit.limits_mgL)).toEqual(['__proto__', 'constructor']);
    expect(actionFor(permit, 'constructor')).toBe('Review constructor treatment process');
  });
});

describe('actionFor', () => {
  it('uses the permit action, else the review text', () => {
    expect(actionFor(DEFAULT_PERMIT, 'As')).toBe(
      'Adjust pH to 7-8; add ferric coagulant; check filter performance.',
    );
    expect(actionFor(DEFAULT_PERMIT, 'Co')).toBe('Review Co treatment process');
  });
});
