import { describe, expect, it } from 'vitest';
import type { ModelPrice } from '../../../src/config-types.js';
import { indexCostUsd, priceFor, queryCostUsd, roundUsd } from '../../../src/domain/text/costs.js';

const FLASH: ModelPrice = { input_price: '0.30', output_price: '2.50', index_price: '0.0015' };

describe('roundUsd (q)', () => {
  it('rounds to 6 decimals half-up', () => {
    expect(roundUsd('0.0000963')).toBe('0.000096');
    expect(roundUsd('0.0000425')).toBe('0.000043');
    expect(roundUsd('1.2345675')).toBe('1.234568');
    expect(roundUsd('2')).toBe('2');
  });

  it('turns a positive amount that would round to zero into 0.000001, but keeps zero', () => {
    expect(roundUsd('0.0000000001')).toBe('0.000001');
    expect(roundUsd('0.0000004')).toBe('0.000001');
    expect(roundUsd(0)).toBe('0');
  });

  it('is exact where binary floating point is not', () => {
    expect(roundUsd('0.1').toString()).toBe('0.1');
    expect(roundUsd('0.0000005')).toBe('0.000001');
    expect(roundUsd(0.1 + 0.2)).toBe('0.3');
  });
});

describe('query and index costs', () => {
  it('321 prompt + 17 completion tokens at 0.30/2.50 cost 0.000096 + 0.000043 = 0.000139', () => {
    expect(queryCostUsd(321, 17, FLASH)).toBe('0.000139');
  });

  it('1000 prompt + 500 completion tokens cost 0.00155', () => {
    expect(queryCostUsd(1000, 500, FLASH)).toBe('0.00155');
    expect(Number(queryCostUsd(1000, 500, FLASH))).toBe(0.00155);
  });

  it('rounds each part separately, so one token still costs something', () => {
    expect(queryCostUsd(1, 0, FLASH)).toBe('0.000001');
    expect(queryCostUsd(0, 0, FLASH)).toBe('0');
  });

  it('index cost is q(tokens × index price / 1e6)', () => {
    expect(indexCostUsd(2_500_000, FLASH)).toBe('0.00375');
    expect(indexCostUsd(10, FLASH)).toBe('0.000001');
    expect(indexCostUsd(0, FLASH)).toBe('0');
  });
});

describe('priceFor', () => {
  const pricing: Record<string, Partial<ModelPrice>> = {
    default: { input_price: '0.30', output_price: '2.50', index_price: '0.0015' },
    'gemini-2.5': { input_price: '1', output_price: '2', index_price: '0.002' },
    'gemini-2.5-flash': { input_price: '0.30', output_price: '2.50' },
    'gemini-2.5-flash-lite': { input_price: '0.10', output_price: '0.40', index_price: '0.0015' },
  };

  it('uses the exact entry', () => {
    expect(priceFor('gemini-2.5-flash-lite', pricing)).toEqual({
      input_price: '0.10',
      output_price: '0.40',
      index_price: '0.0015',
    });
  });

  it('uses the longest key that prefixes the model, field by field', () => {
    expect(priceFor('gemini-2.5-flash-001', pricing)).toEqual({
      input_price: '0.30',
      output_price: '2.50',
      index_price: '0.002',
    });
    expect(priceFor('gemini-2.5-pro', pricing)).toEqual({
      input_price: '1',
      output_price: '2',
      index_price: '0.002',
    });
  });

  it('falls back to default for unknown models', () => {
    expect(priceFor('llama3', pricing)).toEqual(FLASH);
    expect(priceFor('llama3', {})).toEqual(FLASH);
  });
});
