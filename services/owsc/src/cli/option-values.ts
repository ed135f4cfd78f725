// Parsers of option values: a bad value is a usage error (commander reports it, exit 2).
import { InvalidArgumentError } from 'commander';

const DECIMAL = /^[+]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?$/;

/** A finite number > 0. */
export function positiveNumber(value: string): number {
  const trimmed = value.trim();
  const parsed = Number(trimmed);
  if (!DECIMAL.test(trimmed) || !Number.isFinite(parsed) || parsed <= 0) {
    throw new InvalidArgumentError('expected a positive number');
  }
  return parsed;
}

/** A finite number ≥ 0. */
export function nonNegativeNumber(value: string): number {
  const trimmed = value.trim();
  const parsed = Number(trimmed);
  if (!DECIMAL.test(trimmed) || !Number.isFinite(parsed) || parsed < 0) {
    throw new InvalidArgumentError('expected a number >= 0');
  }
  return parsed;
}

/** An integer within [min, max]. */
export function integerIn(min: number, max: number): (value: string) => number {
  return (value: string) => {
    const trimmed = value.trim();
    if (!/^[+]?\d+$/.test(trimmed))
      throw new InvalidArgumentError(`expected an integer from ${min} to ${max}`);
    const parsed = Number(trimmed);
    if (parsed < min || parsed > max)
      throw new InvalidArgumentError(`expected an integer from ${min} to ${max}`);
    return parsed;
  };
}
