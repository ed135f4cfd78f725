// HTTP conventions of every RAG response (spec §3.1): request ids, security headers, CORS, CSRF, the global
// and feature rate limits (fixed 60 s buckets, memory or Redis), client IPs behind trusted proxies, JSON body
// caps, `{"detail": …}` error bodies, bearer-token authentication, the access log line and HTTP metrics.
// Route authors use requireUser/requireAdmin, detail(), validationError(), featureRateLimit() and InputReader.
import { randomUUID } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import { type BlockList, isIP } from 'node:net';
import { parseBearerToken } from '@quintet/kernel/auth';
import { isDatabaseUnavailable } from '@quintet/kernel/db';
import { HttpError, toHttpError } from '@quintet/kernel/errors';
import { numericSubject, type TokenClaims, TokenError, verifyToken } from '@quintet/kernel/jwt';
import type { Logger } from '@quintet/kernel/log';
import type { RateDecision } from '@quintet/kernel/rate-limit';
import { isRedisUnavailable, type Redis, RedisScript } from '@quintet/kernel/redis';
import { trustedProxyList } from '@quintet/kernel/security';
import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { RagConfig } from '../config-types.js';
import { BudgetExceededError } from '../domain/budgets.js';
import { DatabaseUnavailableError, watchedCache } from '../domain/database.js';
import { DatabaseRevocationStore } from '../domain/revocation.js';
import { findUserById, findUserWithRevocation, type UserRow } from '../domain/users.js';
import type { RagContext } from './context.js';

export { HttpError };

// ---- request id ----

const REQUEST_ID = /^[A-Za-z0-9-]{8,64}$/;

/** A client `X-Request-ID` matching `^[A-Za-z0-9-]{8,64}$` is kept; anything else gets a UUID v4. */
export function requestIdFor(request?: IncomingMessage): string {
  const incoming = request?.headers['x-request-id'];
  return typeof incoming === 'string' && REQUEST_ID.test(incoming) ? incoming : randomUUID();
}

// ---- security headers ----

/** The Content-Security-Policy: inline script and style only in development and test. */
export function contentSecurityPolicy(config: Pick<RagConfig, 'environment'>): string {
  const inline =
    config.environment === 'development' || config.environment === 'test' ? " 'unsafe-inline'" : '';
  return [
    "default-src 'self'",
    `script-src 'self'${inline}`,
    `style-src 'self'${inline}`,
    "img-src 'self' data:",
    "connect-src 'self'",
    "object-src 'none'",
    "frame-ancestors 'none'",
    "base-uri 'self'",
    "form-action 'self'",
  ].join('; ');
}

/** The headers every response carries (spec §3.1), whatever its status or route. */
export function securityHeaders(config: Pick<RagConfig, 'environment'>): Record<string, string> {
  return {
    'x-content-type-options': 'nosniff',
    'x-frame-options': 'DENY',
    'referrer-policy': 'strict-origin-when-cross-origin',
    'x-download-options': 'noopen',
    'x-permitted-cross-domain-policies': 'none',
    'permissions-policy':
      'geolocation=(),microphone=(),camera=(),payment=(),usb=(),magnetometer=(),gyroscope=(),accelerometer=()',
    'content-security-policy': contentSecurityPolicy(config),
  };
}

const HSTS = 'max-age=31536000; includeSubDomains';

// ---- client IP ----

function normaliseAddress(address: string): string {
  return address.startsWith('::ffff:') && isIP(address.slice(7)) === 4 ? address.slice(7) : address;
}

function listed(list: BlockList, address: string): boolean {
  const family = isIP(address);
  return family !== 0 && list.check(address, family === 6 ? 'ipv6' : 'ipv4');
}

/**
 * The client IP of spec §3.1: the socket peer; only when the peer is a trusted proxy, the first valid address
 * of `X-Forwarded-For` (none valid → the peer).
 */
export function resolveClientIp(
  peerAddress: string | undefined,
  forwardedFor: string | undefined,
  trusted: BlockList | null,
): string {
  const peer = normaliseAddress(peerAddress ?? '');
  if (trusted === null || forwardedFor === undefined || !listed(trusted, peer)) return peer;
  for (const hop of forwardedFor.split(',')) {
    const address = normaliseAddress(hop.trim());
    if (isIP(address) !== 0) return address;
  }
  return peer;
}

/** True for loopback addresses (127.0.0.0/8, ::1). */
export function isLoopback(address: string): boolean {
  return address === '::1' || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(address);
}

// ---- error bodies ----

/** An error whose body is exactly `{"detail": detail}` (a message, or the 422 list). */
export function detail(status: number, message: unknown, headers: Record<string, string> = {}): HttpError {
  return new HttpError(
    status,
    'RAG',
    typeof message === 'string' ? message : 'error',
    { detail: message },
    headers,
  );
}

/** One entry of a 422 body, the FastAPI shape: `loc` starts with `body`, `query` or `path`. */
export interface ValidationIssue {
  loc: (string | number)[];
  msg: string;
  type: string;
}

/** `422 {"detail": [issues]}`. */
export function validationError(issues: ValidationIssue[]): HttpError {
  return detail(422, issues);
}

const GENERIC_DETAIL: Record<number, string> = {
  400: 'Bad Request',
  401: 'Unauthorized',
  403: 'Forbidden',
  404: 'Not Found',
  405: 'Method Not Allowed',
  408: 'Request Timeout',
  413: 'Request body too large',
  415: 'Unsupported Media Type',
  429: 'Rate limit exceeded',
  500: 'Internal server error',
  503: 'Service unavailable',
};

/** The body of every error response: `{"detail": …}`; a 500 never says more than `Internal server error`. */
export function renderRagError(error: HttpError): { detail: unknown } {
  if (Object.hasOwn(error.detail, 'detail')) return { detail: error.detail.detail };
  return {
    detail: GENERIC_DETAIL[error.status] ?? (error.status >= 500 ? 'Internal server error' : 'Bad Request'),
  };
}

/** Domain and infrastructure failures → the HTTP answer the spec names; anything unknown → 500. */
export function toRagHttpError(error: unknown): HttpError {
  if (error instanceof HttpError) return error;
  if (error instanceof BudgetExceededError) return detail(402, error.message);
  if (error instanceof DatabaseUnavailableError || isDatabaseUnavailable(error)) {
    return detail(503, 'Database unavailable');
  }
  const code = (error as FastifyError | null)?.code;
  if (code === 'FST_ERR_CTP_BODY_TOO_LARGE') return detail(413, 'Request body too large');
  return toHttpError(error);
}

/**
 * The error handler of the API scope: the kernel's root handler only knows HttpErrors, so routes are registered
 * inside a scope that maps domain errors first.
 */
export function ragErrorHandler(error: unknown, request: FastifyRequest, reply: FastifyReply): void {
  const httpError = toRagHttpError(error);
  if (httpError.status >= 500 && !(error instanceof HttpError) && httpError.status !== 503) {
    request.log.error({ err: error, event: 'unhandled_error' }, 'unhandled_error');
  }
  reply
    .code(httpError.status)
    .headers(httpError.headers)
    .type('application/json; charset=utf-8')
    .send(renderRagError(httpError));
}

// ---- input validation (FastAPI/pydantic-shaped 422 items) ----

export type InputLocation = 'body' | 'query' | 'path';

interface FieldOptions {
  required?: boolean;
}

/**
 * Reads typed fields of a body, query or path object and collects validation issues; `done()` throws the
 * 422 when any field was wrong. Missing optional fields read as undefined.
 */
export class InputReader {
  readonly issues: ValidationIssue[] = [];
  readonly source: Record<string, unknown>;

  constructor(
    readonly location: InputLocation,
    source: unknown,
  ) {
    if (source !== null && typeof source === 'object' && !Array.isArray(source)) {
      this.source = source as Record<string, unknown>;
    } else {
      this.source = {};
      if (location === 'body') {
        this.issues.push(
          source === undefined || source === null
            ? { loc: ['body'], msg: 'Field required', type: 'missing' }
            : {
                loc: ['body'],
                msg: 'Input should be a valid dictionary or object to extract fields from',
                type: 'model_attributes_type',
              },
        );
      }
    }
  }

  static body(request: FastifyRequest): InputReader {
    return new InputReader('body', request.body);
  }

  static query(request: FastifyRequest): InputReader {
    return new InputReader('query', request.query);
  }

  static path(request: FastifyRequest): InputReader {
    return new InputReader('path', request.params);
  }

  /** True when the field is present (and not null). */
  has(name: string): boolean {
    return this.source[name] !== undefined && this.source[name] !== null;
  }

  #issue(name: string, msg: string, type: string): undefined {
    this.issues.push({ loc: [this.location, name], msg, type });
    return undefined;
  }

  #missing(name: string, options: FieldOptions): undefined {
    if (options.required) this.#issue(name, 'Field required', 'missing');
    return undefined;
  }

  string(
    name: string,
    options: FieldOptions & { min?: number; max?: number; trim?: boolean } = {},
  ): string | undefined {
    const raw = this.source[name];
    if (raw === undefined || raw === null) return this.#missing(name, options);
    if (typeof raw !== 'string') return this.#issue(name, 'Input should be a valid string', 'string_type');
    const value = options.trim ? raw.trim() : raw;
    const length = [...value].length;
    if (options.min !== undefined && length < options.min) {
      return this.#issue(
        name,
        `String should have at least ${options.min} character${options.min === 1 ? '' : 's'}`,
        'string_too_short',
      );
    }
    if (options.max !== undefined && length > options.max) {
      return this.#issue(
        name,
        `String should have at most ${options.max} character${options.max === 1 ? '' : 's'}`,
        'string_too_long',
      );
    }
    return value;
  }

  /** An integer; strings of digits are accepted (query and path values are always strings). */
  integer(name: string, options: FieldOptions & { min?: number; max?: number } = {}): number | undefined {
    const raw = this.source[name];
    if (raw === undefined || raw === null || raw === '') return this.#missing(name, options);
    let value: number;
    if (typeof raw === 'number') {
      if (!Number.isFinite(raw)) return this.#issue(name, 'Input should be a finite number', 'finite_number');
      if (!Number.isInteger(raw)) {
        return this.#issue(
          name,
          'Input should be a valid integer, got a number with a fractional part',
          'int_from_float',
        );
      }
      value = raw;
    } else if (typeof raw === 'string' && /^\s*[+-]?\d+\s*$/.test(raw)) {
      value = Number(raw.trim());
    } else if (typeof raw === 'string') {
      return this.#issue(
        name,
        'Input should be a valid integer, unable to parse string as an integer',
        'int_parsing',
      );
    } else {
      return this.#issue(name, 'Input should be a valid integer', 'int_type');
    }
    if (!Number.isSafeInteger(value)) {
      return this.#issue(
        name,
        'Input should be a valid integer, unable to parse string as an integer',
        'int_parsing',
      );
    }
    return this.#range(name, value, options);
  }

  /** A number (JSON number or numeric string). */
  number(name: string, options: FieldOptions & { min?: number; max?: number } = {}): number | undefined {
    const raw = this.source[name];
    if (raw === undefined || raw === null || raw === '') return this.#missing(name, options);
    let value: number;
    if (typeof raw === 'number') value = raw;
    else if (typeof raw === 'string' && /^\s*[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?\s*$/.test(raw))
      value = Number(raw);
    else if (typeof raw === 'string') {
      return this.#issue(
        name,
        'Input should be a valid number, unable to parse string as a number',
        'float_parsing',
      );
    } else return this.#issue(name, 'Input should be a valid number', 'float_type');
    if (!Number.isFinite(value)) return this.#issue(name, 'Input should be a finite number', 'finite_number');
    return this.#range(name, value, options);
  }

  /** A boolean: JSON true/false, or (query values) 1/0, true/false, yes/no, on/off. */
  boolean(name: string, options: FieldOptions = {}): boolean | undefined {
    const raw = this.source[name];
    if (raw === undefined || raw === null) return this.#missing(name, options);
    if (typeof raw === 'boolean') return raw;
    if (raw === 0 || raw === 1) return raw === 1;
    if (typeof raw === 'string') {
      const word = raw.trim().toLowerCase();
      if (['1', 'true', 'yes', 'on', 't', 'y'].includes(word)) return true;
      if (['0', 'false', 'no', 'off', 'f', 'n'].includes(word)) return false;
      return this.#issue(name, 'Input should be a valid boolean, unable to interpret input', 'bool_parsing');
    }
    return this.#issue(name, 'Input should be a valid boolean', 'bool_type');
  }

  /** Adds an issue of the caller's own (e.g. an email format check). */
  fail(name: string, msg: string, type = 'value_error'): undefined {
    return this.#issue(name, msg, type);
  }

  #range(name: string, value: number, options: { min?: number; max?: number }): number | undefined {
    if (options.min !== undefined && value < options.min) {
      return this.#issue(
        name,
        `Input should be greater than or equal to ${options.min}`,
        'greater_than_equal',
      );
    }
    if (options.max !== undefined && value > options.max) {
      return this.#issue(name, `Input should be less than or equal to ${options.max}`, 'less_than_equal');
    }
    return value;
  }

  /** Throws the 422 when any field was invalid. */
  done(): void {
    if (this.issues.length > 0) throw validationError(this.issues);
  }
}

/** An integer path parameter (e.g. `/api/stores/:id`), else 422 with `loc: ["path", name]`. */
export function pathInt(request: FastifyRequest, name: string): number {
  const reader = InputReader.path(request);
  const value = reader.integer(name, { required: true });
  reader.done();
  return value as number;
}

// ---- rate limits ----

export const RATE_WINDOW_SECONDS = 60;
const MEMORY_MAX_PRINCIPALS = 5000;
const MEMORY_IDLE_MS = 15 * 60_000;

/** Fixed 60 s windows (`floor(unix_seconds / 60)`) per key; one hit per call. */
export interface RagRateLimiter {
  hit(key: string, limit: number, nowMs?: number): Promise<RateDecision>;
}

function decision(limit: number, count: number, bucket: number, nowMs: number): RateDecision {
  const end = (bucket + 1) * RATE_WINDOW_SECONDS;
  return {
    allowed: count <= limit,
    limit,
    remaining: Math.max(0, limit - count),
    resetEpochSeconds: end,
    retryAfterSeconds: Math.min(RATE_WINDOW_SECONDS, Math.max(1, Math.ceil(end - nowMs / 1000))),
  };
}

/**
 * In-process counters: one entry per key for its current bucket, at most 5 000 keys (least recently seen
 * evicted first), keys idle for 15 minutes dropped. Per process, lost on restart (spec §2.3.3).
 */
export class MemoryRateLimiter implements RagRateLimiter {
  readonly #entries = new Map<string, { bucket: number; count: number; seenMs: number }>();
  #nextSweepMs = 0;

  async hit(key: string, limit: number, nowMs = Date.now()): Promise<RateDecision> {
    const bucket = Math.floor(nowMs / 1000 / RATE_WINDOW_SECONDS);
    this.#sweep(nowMs);
    let entry = this.#entries.get(key);
    if (entry === undefined || entry.bucket !== bucket) entry = { bucket, count: 0, seenMs: nowMs };
    // Re-inserted on every hit so the Map's order is least recently seen first.
    this.#entries.delete(key);
    entry.count += 1;
    entry.seenMs = nowMs;
    this.#entries.set(key, entry);
    while (this.#entries.size > MEMORY_MAX_PRINCIPALS) {
      const oldest = this.#entries.keys().next().value as string;
      this.#entries.delete(oldest);
    }
    return decision(limit, entry.count, bucket, nowMs);
  }

  /** Keys tracked now. */
  get size(): number {
    return this.#entries.size;
  }

  #sweep(nowMs: number): void {
    if (nowMs < this.#nextSweepMs) return;
    this.#nextSweepMs = nowMs + RATE_WINDOW_SECONDS * 1000;
    for (const [key, entry] of this.#entries) {
      if (entry.seenMs > nowMs - MEMORY_IDLE_MS) break;
      this.#entries.delete(key);
    }
  }
}

// INCR and EXPIRE 120 together, so a counter never outlives its window by more than a minute.
const REDIS_HIT = new RedisScript(`
local n = redis.call('INCR', KEYS[1])
if n == 1 then redis.call('EXPIRE', KEYS[1], 120) end
return n
`);

/**
 * Counters shared by every process: `ratelimit:<key>:<bucket>` (INCR + EXPIRE 120). While Redis is unreachable
 * the in-memory limiter answers, with one `ratelimit_degraded` warning per outage.
 */
export class RedisRateLimiter implements RagRateLimiter {
  readonly #fallback = new MemoryRateLimiter();
  #degraded = false;

  constructor(
    private readonly redis: Redis,
    private readonly logger: Logger,
  ) {}

  async hit(key: string, limit: number, nowMs = Date.now()): Promise<RateDecision> {
    const bucket = Math.floor(nowMs / 1000 / RATE_WINDOW_SECONDS);
    try {
      if (this.redis.status !== 'ready') throw new Error('Connection is closed.');
      const count = Number(await REDIS_HIT.run(this.redis, [`ratelimit:${key}:${bucket}`], []));
      if (this.#degraded) {
        this.#degraded = false;
        this.logger.info({ event: 'ratelimit_recovered' }, 'ratelimit_recovered');
      }
      return decision(limit, count, bucket, nowMs);
    } catch (error) {
      if (this.redis.status === 'ready' && !isRedisUnavailable(error)) throw error;
      if (!this.#degraded) {
        this.#degraded = true;
        this.logger.warn(
          { event: 'ratelimit_degraded', reason: error instanceof Error ? error.message : String(error) },
          'ratelimit_degraded',
        );
      }
      return this.#fallback.hit(key, limit, nowMs);
    }
  }
}

function rateLimitHeaders(decision: RateDecision): Record<string, string> {
  return {
    'x-ratelimit-limit': String(decision.limit),
    'x-ratelimit-remaining': String(decision.remaining),
  };
}

function rateLimitError(decision: RateDecision): HttpError {
  return detail(429, 'Rate limit exceeded', {
    'retry-after': String(decision.retryAfterSeconds),
    'x-ratelimit-limit': String(decision.limit),
    'x-ratelimit-remaining': '0',
  });
}

/**
 * Counts one hit of a feature key (`user:<id>:chat`, `login:<email>`, `admin:<id>:<action>`, …); throws the 429
 * of spec §3.1 when over `perMinute`. The scope label of `rate_limit_hits_total` is the key's feature part.
 */
export async function featureRateLimit(
  context: RagContext,
  _request: FastifyRequest,
  _reply: FastifyReply,
  key: string,
  perMinute: number,
): Promise<void> {
  const result = await context.limiter.hit(key, perMinute);
  if (result.allowed) return;
  context.metrics.rateLimitHits.inc({ scope: featureScope(key) });
  throw rateLimitError(result);
}

/** The per-admin, per-action limit of spec §3.9: `admin:<id>:<action>` at RATE_LIMIT_PER_MINUTE. */
export function adminRateLimit(
  context: RagContext,
  request: FastifyRequest,
  reply: FastifyReply,
  adminId: number,
  action: string,
): Promise<void> {
  return featureRateLimit(
    context,
    request,
    reply,
    `admin:${adminId}:${action}`,
    context.config.rateLimitPerMinute,
  );
}

function featureScope(key: string): string {
  if (key.startsWith('login:')) return 'login';
  if (key.startsWith('admin:')) return 'admin';
  const parts = key.split(':');
  return parts.length >= 3 ? (parts[2] as string) : 'global';
}

// ---- authentication ----

/** The authenticated caller of a request. */
export interface AuthUser {
  id: number;
  email: string;
  is_admin: boolean;
  is_active: boolean;
  created_at: Date;
  /** the token's id and expiry (logout revokes it) */
  jti: string;
  tokenExpiresAt: Date;
}

type TokenOutcome = { claims: TokenClaims; userId: number } | { error: string };

/** The bearer token's verification, computed once per request (the global rate limit needs it first). */
async function tokenOutcome(request: FastifyRequest): Promise<TokenOutcome> {
  if (request.tokenOutcome !== null) return request.tokenOutcome as TokenOutcome;
  const { config } = request.server.rag;
  const header = request.headers.authorization;
  const token = /^bearer\s/i.test(header ?? '') ? parseBearerToken(header) : null;
  let outcome: TokenOutcome;
  if (token === null) outcome = { error: 'Missing bearer token' };
  else {
    try {
      const claims = await verifyToken(token, {
        secret: config.jwtSecret,
        issuer: config.jwtIssuer,
        audience: config.jwtAudience,
      });
      outcome = { claims, userId: numericSubject(claims) };
    } catch (error) {
      if (!(error instanceof TokenError)) throw error;
      outcome = { error: error.reason === 'payload' ? 'Invalid token payload' : 'Invalid token' };
    }
  }
  request.tokenOutcome = outcome;
  return outcome;
}

function unauthorized(message: string): HttpError {
  return detail(401, message, { 'www-authenticate': 'Bearer' });
}

/** The row of an existing user as the caller of a request. */
function toAuthUser(row: UserRow, claims: TokenClaims): AuthUser {
  return {
    id: row.id,
    email: row.email,
    is_admin: row.is_admin,
    is_active: row.is_active,
    created_at: row.created_at,
    jti: claims.jti,
    tokenExpiresAt: new Date(claims.exp * 1000),
  };
}

/**
 * Whether the token is revoked and the user row. Without Redis both come from the database in one query; with
 * Redis the revocation check and the user lookup run concurrently, and an unreachable Redis answers 503 whatever
 * the lookup found. Nothing is cached: a revoked token or a deactivated user is refused at once.
 */
/**
 * Tokens whose user and revocation were read, remembered until `users` or `revoked_tokens` is next written
 * (embedded database without Redis only: there this process is their only writer).
 */
const AUTH_CACHE_ENTRIES = 10_000;

async function userAndRevocation(
  context: RagContext,
  request: FastifyRequest,
  outcome: { claims: TokenClaims; userId: number },
): Promise<{ revoked: boolean; user: UserRow | undefined }> {
  const { jti } = outcome.claims;
  if (context.revocations instanceof DatabaseRevocationStore)
    return watchedCache<{ revoked: boolean; user: UserRow | undefined }>(
      context.db,
      'authenticated-users',
      ['users', 'revoked_tokens'],
      AUTH_CACHE_ENTRIES,
    ).get(`${outcome.userId}:${jti}`, () => findUserWithRevocation(context.db.kysely, outcome.userId, jti));
  const [revoked, user] = await Promise.allSettled([
    context.revocations.isRevoked(jti),
    findUserById(context.db.kysely, outcome.userId),
  ]);
  if (revoked.status === 'rejected') {
    if (context.redis === null) throw revoked.reason;
    request.log.warn(
      { event: 'auth_revocation_degraded', reason: (revoked.reason as Error).message },
      'auth_revocation_degraded',
    );
    throw detail(503, 'Revocation service unavailable; please retry shortly');
  }
  if (revoked.value) return { revoked: true, user: undefined };
  if (user.status === 'rejected') throw user.reason;
  return { revoked: false, user: user.value };
}

/**
 * The caller, or the 401/403 of spec §3.1: `Missing bearer token`, `Invalid token`, `Invalid token payload`,
 * `Token revoked`, `User not found`, `User is inactive`; 503 when the revocation store (Redis) is unreachable.
 */
export async function requireUser(request: FastifyRequest): Promise<AuthUser> {
  if (request.ragUser !== null) return request.ragUser as AuthUser;
  const context = request.server.rag;
  const outcome = await tokenOutcome(request);
  if ('error' in outcome) throw unauthorized(outcome.error);
  const { revoked, user: row } = await userAndRevocation(context, request, outcome);
  if (revoked) throw unauthorized('Token revoked');
  if (row === undefined) throw unauthorized('User not found');
  if (!row.is_active) throw detail(403, 'User is inactive');
  const user = toAuthUser(row, outcome.claims);
  request.ragUser = user;
  request.log = request.log.child({ user_id: user.id });
  return user;
}

/** requireUser, then 403 `Admin access required` for a non-admin. */
export async function requireAdmin(request: FastifyRequest): Promise<AuthUser> {
  const user = await requireUser(request);
  if (!user.is_admin) throw detail(403, 'Admin access required');
  return user;
}

// ---- hooks ----

const EXPOSED_HEADERS = 'x-vercel-ai-ui-message-stream, X-Request-ID, X-Session-Id';
const STATE_CHANGING = new Set(['POST', 'PUT', 'PATCH', 'DELETE']);
const CSRF_EXEMPT = new Set(['/health', '/metrics']);
const NEVER_LIMITED = new Set(['/live', '/ready', '/health', '/metrics']);

function pathOf(url: string): string {
  const question = url.indexOf('?');
  return question < 0 ? url : url.slice(0, question);
}

function sendDetail(
  reply: FastifyReply,
  status: number,
  message: string,
  headers: Record<string, string> = {},
): void {
  reply.code(status).headers(headers).type('application/json; charset=utf-8').send({ detail: message });
}

/** Paths subject to the global rate limit: the API (static UI files, probes and metrics never are). */
function globallyLimited(method: string, path: string): boolean {
  return method !== 'OPTIONS' && !NEVER_LIMITED.has(path) && (path === '/api' || path.startsWith('/api/'));
}

/**
 * Registers, on the root scope (so 404s get them too): client IP, HSTS, CORS and preflights, the global rate
 * limit, CSRF (before auth and body parsing), the JSON parser with the MAX_JSON_MB cap, HTTP metrics and the
 * `request_complete` line.
 */
export function registerConventions(app: FastifyInstance, context: RagContext): void {
  const { config, metrics, limiter } = context;
  const trusted = config.trustedProxyIps.length > 0 ? trustedProxyList(config.trustedProxyIps) : null;
  const allowedOrigins = new Set(config.corsOrigins);
  const anyOrigin = allowedOrigins.has('*');
  const preflightHeaders: Record<string, string> = {
    'access-control-allow-methods': config.corsAllowMethods.join(', '),
    'access-control-allow-headers': config.corsAllowHeaders.join(', '),
    'access-control-max-age': '600',
  };

  app.decorateRequest('clientIp', '');
  app.decorateRequest('tokenOutcome', null);
  app.decorateRequest('ragUser', null);

  app.addHook('onRequest', async (request, reply) => {
    const peer = request.raw.socket.remoteAddress;
    const forwarded = request.headers['x-forwarded-for'];
    request.clientIp = resolveClientIp(
      peer,
      typeof forwarded === 'string' ? forwarded : forwarded?.join(','),
      trusted,
    );
    const fromTrustedProxy = trusted !== null && listed(trusted, normaliseAddress(peer ?? ''));
    const proto = request.headers['x-forwarded-proto'];
    if (request.protocol === 'https' || (fromTrustedProxy && proto === 'https')) {
      reply.header('strict-transport-security', HSTS);
    }

    const origin = request.headers.origin;
    const originAllowed = origin !== undefined && (anyOrigin || allowedOrigins.has(origin));
    if (origin !== undefined) reply.header('vary', 'Origin');
    if (originAllowed) {
      reply.header('access-control-allow-origin', origin);
      if (config.corsAllowCredentials) reply.header('access-control-allow-credentials', 'true');
      reply.header('access-control-expose-headers', EXPOSED_HEADERS);
    }
    if (
      request.method === 'OPTIONS' &&
      origin !== undefined &&
      request.headers['access-control-request-method'] !== undefined
    ) {
      if (originAllowed) reply.code(204).headers(preflightHeaders).send();
      else sendDetail(reply, 400, 'Disallowed CORS origin');
      return reply;
    }

    const path = pathOf(request.url);
    if (globallyLimited(request.method, path)) {
      const outcome = await tokenOutcome(request);
      const key = 'userId' in outcome ? `user:${outcome.userId}` : `ip:${request.clientIp}`;
      const result = await limiter.hit(key, config.rateLimitPerMinute);
      reply.headers(rateLimitHeaders(result));
      if (!result.allowed) {
        metrics.rateLimitHits.inc({ scope: 'global' });
        const error = rateLimitError(result);
        sendDetail(reply, 429, 'Rate limit exceeded', error.headers);
        return reply;
      }
    }

    if (config.requireCsrfHeader && STATE_CHANGING.has(request.method) && !CSRF_EXEMPT.has(path)) {
      const header = request.headers['x-requested-with'];
      if (typeof header !== 'string' || header.toLowerCase() !== 'xmlhttprequest') {
        sendDetail(reply, 403, 'CSRF check failed: X-Requested-With header required');
        return reply;
      }
    }
    return undefined;
  });

  // JSON bodies: over MAX_JSON_MB → 413 (Content-Length is checked before reading; a chunked body is cut at the
  // cap); malformed → 422 json_invalid; an empty body reads as "no body" so the route reports missing fields.
  app.removeContentTypeParser('application/json');
  app.addContentTypeParser(
    'application/json',
    { parseAs: 'string', bodyLimit: config.maxJsonBytes },
    (_request, body, done) => {
      const text = body as string;
      if (text.trim() === '') {
        done(null, undefined);
        return;
      }
      try {
        done(null, JSON.parse(text));
      } catch (error) {
        done(
          validationError([
            {
              loc: ['body', 0],
              msg: `JSON decode error${error instanceof Error ? `: ${error.message}` : ''}`,
              type: 'json_invalid',
            },
          ]),
          undefined,
        );
      }
    },
  );

  app.addHook('onResponse', async (request, reply) => {
    const endpoint = request.routeOptions.url ?? 'unmatched';
    const seconds = reply.elapsedTime / 1000;
    metrics.httpRequests.inc({ method: request.method, endpoint, status: String(reply.statusCode) });
    metrics.httpDuration.observe({ method: request.method, endpoint }, seconds);
    request.log.info(
      {
        event: 'request_complete',
        method: request.method,
        path: pathOf(request.url),
        status: reply.statusCode,
        dur_ms: Math.round(reply.elapsedTime * 100) / 100,
        client_ip: request.clientIp,
      },
      'request_complete',
    );
  });
}

declare module 'fastify' {
  interface FastifyInstance {
    /** the RAG context of this process */
    rag: RagContext;
  }
  interface FastifyRequest {
    /** the client IP of spec §3.1 (socket peer, or X-Forwarded-For from a trusted proxy) */
    clientIp: string;
    /** the bearer token's verification outcome, once computed */
    tokenOutcome: unknown;
    /** the authenticated caller, once requireUser succeeded */
    ragUser: AuthUser | null;
  }
}
