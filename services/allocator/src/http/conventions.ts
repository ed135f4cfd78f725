// Conventions of every allocator response (spec §3.1): request ids, CORS, API-key auth on /api/v1/*, one
// `Request completed` log line per request, JSON content type; plus the small parsers routes share.

import { randomUUID } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import { constantTimeEqual } from '@quintet/kernel/security';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { AllocatorConfig } from '../config.js';
import { apiError, type ValidationIssue, validationError } from './errors.js';

const REQUEST_ID = /^[A-Za-z0-9._:-]{1,128}$/;
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[1-8][0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/i;

/** An inbound X-Request-ID matching the spec's pattern is kept; otherwise a new UUID. */
export function requestIdFor(request?: IncomingMessage): string {
  const incoming = request?.headers['x-request-id'];
  return typeof incoming === 'string' && REQUEST_ID.test(incoming) ? incoming : randomUUID();
}

const EXPOSED_HEADERS = 'X-Request-ID, Location, Idempotent-Replayed';
const PREFLIGHT_HEADERS = {
  'access-control-allow-methods': 'GET,POST,PATCH,DELETE,OPTIONS',
  'access-control-allow-headers': 'Content-Type, X-API-Key, Authorization, X-Request-ID, Idempotency-Key',
  'access-control-max-age': '600',
};

/** Paths open without an API key (spec §3.1.5): everything outside /api/v1/. */
function requiresApiKey(path: string): boolean {
  return path === '/api/v1' || path.startsWith('/api/v1/');
}

function presentedKey(request: FastifyRequest): string | undefined {
  const header = request.headers['x-api-key'];
  if (typeof header === 'string' && header !== '') return header;
  const authorization = request.headers.authorization;
  if (typeof authorization === 'string') {
    const match = /^Bearer\s+(.+)$/i.exec(authorization.trim());
    if (match?.[1] !== undefined) return match[1];
  }
  return undefined;
}

function keyAccepted(keys: readonly string[], presented: string | undefined): boolean {
  if (presented === undefined) return false;
  // Compare against every key (no early exit), so timing does not tell which key nearly matched.
  let accepted = false;
  for (const key of keys) if (constantTimeEqual(key, presented)) accepted = true;
  return accepted;
}

/** Registers CORS, preflights and API-key auth (in that order: preflights are never refused for a key), and the access log. */
export function registerConventions(app: FastifyInstance, config: AllocatorConfig): void {
  const anyOrigin = config.allowedOrigins.includes('*');
  const originAllowed = (origin: string) => anyOrigin || config.allowedOrigins.includes(origin);

  app.addHook('onRequest', async (request, reply) => {
    const origin = request.headers.origin;
    const allowed = origin !== undefined && originAllowed(origin);
    if (origin !== undefined) reply.header('vary', 'Origin');
    if (allowed) {
      reply.header('access-control-allow-origin', origin);
      reply.header('access-control-allow-credentials', 'true');
      reply.header('access-control-expose-headers', EXPOSED_HEADERS);
    }
    if (request.method === 'OPTIONS' && request.headers['access-control-request-method'] !== undefined) {
      if (!allowed) {
        reply.removeHeader('access-control-allow-origin');
        throw apiError(403, 'forbidden', 'Origin not allowed');
      }
      return reply.code(204).headers(PREFLIGHT_HEADERS).send();
    }
    const path = request.url.split('?')[0] ?? '/';
    if (
      config.apiKeys.length > 0 &&
      requiresApiKey(path) &&
      !keyAccepted(config.apiKeys, presentedKey(request))
    )
      throw apiError(401, 'unauthorized', 'Missing or invalid API key', undefined, {
        'www-authenticate': 'ApiKey',
      });
  });

  app.addHook('onResponse', async (request, reply) => {
    request.log.info(
      {
        method: request.method,
        path: request.url.split('?')[0],
        status_code: reply.statusCode,
        duration_ms: Math.round(reply.elapsedTime * 100) / 100,
        client: request.ip,
      },
      'Request completed',
    );
  });
}

/** A path id: 400 `invalid_id` unless a UUID (returned lower-cased). */
export function parseId(value: string | undefined, what = 'id'): string {
  if (value === undefined || !UUID.test(value))
    throw apiError(400, 'invalid_id', `Invalid ${what}: expected a UUID`);
  return value.toLowerCase();
}

export function isUuid(value: string): boolean {
  return UUID.test(value);
}

type Query = Record<string, unknown>;

function single(query: Query, name: string): string | undefined {
  const value = query[name];
  if (Array.isArray(value)) return value.length === 0 ? undefined : String(value[value.length - 1]);
  return value === undefined ? undefined : String(value);
}

/** Collects 422 issues while reading query parameters; `finish()` throws when any were found. */
export class QueryReader {
  private readonly issues: ValidationIssue[] = [];
  constructor(private readonly query: Query) {}

  string(name: string): string | undefined {
    return single(this.query, name);
  }

  int(name: string, fallback: number, min: number, max: number): number {
    const raw = single(this.query, name);
    if (raw === undefined || raw === '') return fallback;
    if (!/^[+-]?\d+$/.test(raw.trim())) {
      this.issues.push({ loc: ['query', name], msg: 'Input should be a valid integer', type: 'int_parsing' });
      return fallback;
    }
    const value = Number(raw);
    if (value < min || value > max) {
      this.issues.push({
        loc: ['query', name],
        msg: `Input should be between ${min} and ${max}`,
        type: value < min ? 'greater_than_equal' : 'less_than_equal',
      });
      return fallback;
    }
    return value;
  }

  number(name: string, fallback: number, min: number, max: number): number {
    const raw = single(this.query, name);
    if (raw === undefined || raw === '') return fallback;
    const value = Number(raw);
    if (raw.trim() === '' || !Number.isFinite(value)) {
      this.issues.push({
        loc: ['query', name],
        msg: 'Input should be a valid number',
        type: 'float_parsing',
      });
      return fallback;
    }
    if (value < min || value > max) {
      this.issues.push({
        loc: ['query', name],
        msg: `Input should be between ${min} and ${max}`,
        type: value < min ? 'greater_than_equal' : 'less_than_equal',
      });
      return fallback;
    }
    return value;
  }

  bool(name: string, fallback: boolean): boolean {
    const raw = single(this.query, name)?.toLowerCase();
    if (raw === undefined || raw === '') return fallback;
    if (['true', '1', 'yes', 'on'].includes(raw)) return true;
    if (['false', '0', 'no', 'off'].includes(raw)) return false;
    this.issues.push({ loc: ['query', name], msg: 'Input should be a valid boolean', type: 'bool_parsing' });
    return fallback;
  }

  required(name: string): string | undefined {
    const raw = single(this.query, name);
    if (raw === undefined) this.issues.push({ loc: ['query', name], msg: 'Field required', type: 'missing' });
    return raw;
  }

  finish(): void {
    if (this.issues.length > 0) throw validationError(this.issues);
  }
}

/** Reads a JSON (or form) body's fields with 422 issues, like QueryReader. */
export class BodyReader {
  private readonly issues: ValidationIssue[] = [];
  constructor(private readonly body: Record<string, unknown>) {}

  static from(request: FastifyRequest): BodyReader {
    const body = request.body;
    if (body === undefined || body === null || typeof body !== 'object' || Array.isArray(body))
      throw validationError([{ loc: ['body'], msg: 'A JSON object body is required', type: 'missing' }]);
    return new BodyReader(body as Record<string, unknown>);
  }

  raw(name: string): unknown {
    return this.body[name];
  }

  string(name: string, options: { required?: boolean; max?: number; min?: number } = {}): string | undefined {
    const value = this.body[name];
    if (value === undefined || value === null) {
      if (options.required) this.issues.push({ loc: ['body', name], msg: 'Field required', type: 'missing' });
      return undefined;
    }
    if (typeof value !== 'string') {
      this.issues.push({ loc: ['body', name], msg: 'Input should be a valid string', type: 'string_type' });
      return undefined;
    }
    if (options.min !== undefined && value.length < options.min) {
      this.issues.push({
        loc: ['body', name],
        msg: `String should have at least ${options.min} character(s)`,
        type: 'string_too_short',
      });
      return undefined;
    }
    if (options.max !== undefined && value.length > options.max) {
      this.issues.push({
        loc: ['body', name],
        msg: `String should have at most ${options.max} characters`,
        type: 'string_too_long',
      });
      return undefined;
    }
    return value;
  }

  number(name: string, options: { required?: boolean } = {}): number | undefined {
    const value = this.body[name];
    if (value === undefined || value === null) {
      if (options.required) this.issues.push({ loc: ['body', name], msg: 'Field required', type: 'missing' });
      return undefined;
    }
    const number = typeof value === 'string' && value.trim() !== '' ? Number(value) : value;
    if (typeof number !== 'number' || !Number.isFinite(number)) {
      this.issues.push({ loc: ['body', name], msg: 'Input should be a valid number', type: 'float_parsing' });
      return undefined;
    }
    return number;
  }

  int(name: string, options: { min: number; max: number }): number | undefined {
    const value = this.number(name);
    if (value === undefined) return undefined;
    if (!Number.isInteger(value) || value < options.min || value > options.max) {
      this.issues.push({
        loc: ['body', name],
        msg: `Input should be an integer between ${options.min} and ${options.max}`,
        type: 'int_range',
      });
      return undefined;
    }
    return value;
  }

  bool(name: string, fallback: boolean): boolean {
    const value = this.body[name];
    if (value === undefined || value === null) return fallback;
    if (typeof value === 'boolean') return value;
    if (typeof value === 'string' && ['true', 'false'].includes(value.toLowerCase()))
      return value.toLowerCase() === 'true';
    this.issues.push({ loc: ['body', name], msg: 'Input should be a valid boolean', type: 'bool_parsing' });
    return fallback;
  }

  stringArray(name: string, options: { required?: boolean } = {}): string[] | undefined {
    const value = this.body[name];
    if (value === undefined || value === null) {
      if (options.required) this.issues.push({ loc: ['body', name], msg: 'Field required', type: 'missing' });
      return undefined;
    }
    if (!Array.isArray(value) || value.some((item) => typeof item !== 'string')) {
      this.issues.push({ loc: ['body', name], msg: 'Input should be a list of strings', type: 'list_type' });
      return undefined;
    }
    return value as string[];
  }

  issue(name: string, msg: string, type = 'value_error'): void {
    this.issues.push({ loc: ['body', name], msg, type });
  }

  finish(): void {
    if (this.issues.length > 0) throw validationError(this.issues);
  }
}

/** ISO 8601 UTC with milliseconds and Z (spec §3.1.2). */
export function isoTime(value: Date | string | null | undefined): string | null {
  if (value === null || value === undefined) return null;
  return (value instanceof Date ? value : new Date(value)).toISOString();
}

/** Sends a JSON body with the spec's content type. */
export function sendJson(reply: FastifyReply, status: number, body: unknown): FastifyReply {
  return reply.code(status).type('application/json; charset=utf-8').send(JSON.stringify(body));
}
