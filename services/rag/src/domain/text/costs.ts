// Exact decimal money (spec §3.8): prices are USD per million tokens, every amount is rounded by q() to six
// decimals half-up, and a positive amount never rounds down to zero.
import { Decimal } from 'decimal.js';
import type { ModelPrice } from '../../config-types.js';

/** Decimal arithmetic with enough precision that token × price products are exact. */
export const Usd = Decimal.clone({
  precision: 50,
  rounding: Decimal.ROUND_HALF_UP,
  toExpNeg: -30,
  toExpPos: 40,
});

/** The built-in rates (USD per million tokens) behind `MODEL_PRICING.default`. */
export const DEFAULT_PRICE: Readonly<ModelPrice> = {
  input_price: '0.30',
  output_price: '2.50',
  index_price: '0.0015',
};

const PRICE_FIELDS = ['input_price', 'output_price', 'index_price'] as const;
const MILLION = new Usd(1_000_000);
const SMALLEST = new Usd('0.000001');

/**
 * The rates of `model`, field by field: the exact `pricing` entry, else the longest key that prefixes the model
 * name, else `pricing.default`, else the built-in default.
 */
export function priceFor(model: string, pricing: Readonly<Record<string, Partial<ModelPrice>>>): ModelPrice {
  const candidates: Partial<ModelPrice>[] = [];
  const exact = Object.hasOwn(pricing, model) ? pricing[model] : undefined;
  if (exact !== undefined) candidates.push(exact);
  const prefixes = Object.keys(pricing)
    .filter((key) => key !== model && key !== 'default' && key !== '' && model.startsWith(key))
    .sort((a, b) => b.length - a.length);
  for (const key of prefixes) candidates.push(pricing[key] as Partial<ModelPrice>);
  const fallback = Object.hasOwn(pricing, 'default') ? pricing.default : undefined;
  if (fallback !== undefined) candidates.push(fallback);
  candidates.push(DEFAULT_PRICE);
  const price = { ...DEFAULT_PRICE };
  for (const field of PRICE_FIELDS) {
    const found = candidates.find((candidate) => candidate[field] !== undefined && candidate[field] !== null);
    price[field] = String(found?.[field] ?? DEFAULT_PRICE[field]);
  }
  return price;
}

/** q(x) as a Decimal: six decimals half-up; a positive amount that would round to zero is 0.000001. */
export function q(value: Decimal.Value): Decimal {
  const amount = new Usd(value);
  const rounded = amount.toDecimalPlaces(6, Decimal.ROUND_HALF_UP);
  return amount.greaterThan(0) && rounded.isZero() ? SMALLEST : rounded;
}

/** q(x) as a plain decimal string without trailing zeros (`0.000139`, `0.00155`, `0`). */
export function roundUsd(value: Decimal.Value): string {
  return q(value).toFixed();
}

function tokenCost(tokens: number, pricePerMillion: string): Decimal {
  return q(new Usd(tokens).times(pricePerMillion).dividedBy(MILLION));
}

/** `q(prompt × input / 1e6) + q(completion × output / 1e6)` as a decimal string. */
export function queryCostUsd(promptTokens: number, completionTokens: number, price: ModelPrice): string {
  return tokenCost(promptTokens, price.input_price)
    .plus(tokenCost(completionTokens, price.output_price))
    .toFixed();
}

/** `q(tokens × index / 1e6)` as a decimal string. */
export function indexCostUsd(tokens: number, price: ModelPrice): string {
  return tokenCost(tokens, price.index_price).toFixed();
}
