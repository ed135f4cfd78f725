// Request parameters of the /api routes (spec §3.5): query and form fields checked into typed values, every
// problem reported at once as a 422 list in the shape FastAPI clients parse; and the store's failures as the
// statuses of spec §7.2.
import { StoreUnavailableError } from '../domain/store.js';
import { detailError, type ValidationIssue, validationError } from './conventions.js';

export type ParamLocation = 'query' | 'body';

/** Raw parameter values by name (a query object, or multipart fields). */
export type RawParams = Readonly<Record<string, unknown>> | ReadonlyMap<string, string>;

function rawValue(params: RawParams, name: string): unknown {
  const value = params instanceof Map ? params.get(name) : (params as Record<string, unknown>)[name];
  // A repeated query parameter counts once: the first value.
  return Array.isArray(value) ? value[0] : value;
}

/** Collects the problems of one request's parameters; `done()` throws the 422 when there are any. */
export class ParamReader {
  readonly issues: ValidationIssue[] = [];

  constructor(
    private readonly params: RawParams,
    private readonly location: ParamLocation,
  ) {}

  private text(name: string): string | undefined {
    const value = rawValue(this.params, name);
    if (value === undefined || value === null) return undefined;
    return typeof value === 'string' ? value : String(value);
  }

  private problem(name: string, msg: string, type: string, extra: Record<string, unknown> = {}): undefined {
    this.issues.push({ loc: [this.location, name], msg, type, ...extra });
    return undefined;
  }

  /** An optional string of at most `maxLength` characters (empty means absent). */
  string(name: string, maxLength = 200): string | undefined {
    const value = this.text(name);
    if (value === undefined || value === '') return undefined;
    if (value.length > maxLength) {
      return this.problem(
        name,
        `ensure this value has at most ${maxLength} characters`,
        'value_error.any_str.max_length',
        { ctx: { limit_value: maxLength } },
      );
    }
    return value;
  }

  /** A required string (1…maxLength characters). */
  requiredString(name: string, maxLength = 200): string | undefined {
    const value = this.text(name);
    if (value === undefined || value === '')
      return this.problem(name, 'field required', 'value_error.missing');
    return this.string(name, maxLength);
  }

  /** An integer within [min, max], or the default when absent. */
  integer(name: string, options: { fallback: number; min: number; max?: number }): number {
    const value = this.text(name);
    if (value === undefined) return options.fallback;
    if (!/^\s*[+-]?\d+\s*$/.test(value)) {
      this.problem(name, 'value is not a valid integer', 'type_error.integer');
      return options.fallback;
    }
    const number = Number(value);
    if (number < options.min) {
      this.problem(
        name,
        `ensure this value is greater than or equal to ${options.min}`,
        'value_error.number.not_ge',
        {
          ctx: { limit_value: options.min },
        },
      );
    } else if (options.max !== undefined && number > options.max) {
      this.problem(
        name,
        `ensure this value is less than or equal to ${options.max}`,
        'value_error.number.not_le',
        {
          ctx: { limit_value: options.max },
        },
      );
    }
    return number;
  }

  /** A positive finite number, or undefined when absent. */
  positiveNumber(name: string): number | undefined {
    const value = this.text(name);
    if (value === undefined || value.trim() === '') return undefined;
    const number = Number(value);
    if (!Number.isFinite(number))
      return this.problem(name, 'value is not a valid number', 'type_error.float');
    if (number <= 0) {
      return this.problem(name, 'ensure this value is greater than 0', 'value_error.number.not_gt', {
        ctx: { limit_value: 0 },
      });
    }
    return number;
  }

  /** One of `allowed`, or the default (undefined when none) when absent. */
  choice<T extends string>(name: string, allowed: readonly T[], fallback?: T): T | undefined {
    const value = this.text(name);
    if (value === undefined || value === '') return fallback;
    if ((allowed as readonly string[]).includes(value)) return value as T;
    const permitted = allowed.map((option) => `'${option}'`).join(', ');
    return this.problem(
      name,
      `value is not a valid enumeration member; permitted: ${permitted}`,
      'type_error.enum',
      { ctx: { enum_values: [...allowed] } },
    );
  }

  /** Throws the 422 when any parameter was invalid. */
  done(): void {
    if (this.issues.length > 0) throw validationError(this.issues);
  }
}

/** `limit` (1…500, default 50) and `offset` (≥ 0, default 0) of the list routes. */
export function pageParams(reader: ParamReader): { limit: number; offset: number } {
  return {
    limit: reader.integer('limit', { fallback: 50, min: 1, max: 500 }),
    offset: reader.integer('offset', { fallback: 0, min: 0 }),
  };
}

function isDiskFull(error: unknown): boolean {
  const { code, cause } = (error ?? {}) as { code?: unknown; cause?: unknown };
  // ENOSPC from a file write; SQLSTATE 53100 (disk_full) from the database.
  if (code === 'ENOSPC' || code === 'EDQUOT' || code === '53100') return true;
  return cause !== undefined && cause !== error && isDiskFull(cause);
}

/** The HTTP error of a failure: store unreachable → 503, disk full → 507; anything else unchanged. */
export function storageFailure(error: unknown): unknown {
  if (error instanceof StoreUnavailableError) return detailError(503, 'store unavailable');
  if (isDiskFull(error)) return detailError(507, 'insufficient storage');
  return error;
}

/** Awaits a store call, mapping its failures with `storageFailure`. */
export async function fromStore<T>(operation: Promise<T>): Promise<T> {
  try {
    return await operation;
  } catch (error) {
    throw storageFailure(error);
  }
}
