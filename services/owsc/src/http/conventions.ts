// HTTP conventions of every OWSC response (spec §3.5, §3.10, §3.11): request ids, security headers, CORS,
// the `/api/*` rate limit (before authentication) and bearer token, the `{"detail": …}` error bodies, the JSON
// body limit, and one access line per request.
import { randomBytes } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import { bearerMatches } from '@quintet/kernel/auth';
import { HttpError } from '@quintet/kernel/errors';
import type { FixedWindowLimiter, RateRule } from '@quintet/kernel/rate-limit';
import { clientIp, trustedProxyList } from '@quintet/kernel/security';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { OwscConfig } from '../config.js';
import type { OwscMetrics } from './metrics.js';

export { HttpError };

const REQUEST_ID = /^[A-Za-z0-9._:-]{1,128}$/;

/** A valid incoming `X-Request-ID` is echoed; anything else is replaced by 16 random hex characters. */
export function requestIdFor(request?: IncomingMessage): string {
  const incoming = request?.headers['x-request-id'];
  return typeof incoming === 'string' && REQUEST_ID.test(incoming)
    ? incoming
    : randomBytes(8).toString('hex');
}

export const CONTENT_SECURITY_POLICY =
  "default-src 'self'; img-src 'self' data:; script-src 'self'; style-src 'self' 'unsafe-inline'; connect-src 'self'; object-src 'none'; base-uri 'self'; frame-ancestors 'none'";

/** The headers every response carries (spec §3.10), whatever its status or route. */
export const SECURITY_HEADERS: Readonly<Record<string, string>> = Object.freeze({
  'x-content-type-options': 'nosniff',
  'x-frame-options': 'DENY',
  'referrer-policy': 'no-referrer',
  'strict-transport-security': 'max-age=31536000; includeSubDomains',
  'content-security-policy': CONTENT_SECURITY_POLICY,
});

// ---- error bodies ----

/** An error whose body is exactly `{"detail": detail}` (a string, or the 422 list). */
export function detailError(
  status: number,
  detail: unknown,
  headers: Record<string, string> = {},
): HttpError {
  return new HttpError(status, 'OWSC', typeof detail === 'string' ? detail : 'error', { detail }, headers);
}

/** One entry of a 422 body, the shape FastAPI clients parse. */
export interface ValidationIssue {
  loc: (string | number)[];
  msg: string;
  type: string;
  [extra: string]: unknown;
}

/** `422 {"detail": [issues]}`. */
export function validationError(issues: ValidationIssue[]): HttpError {
  return detailError(422, issues);
}

/** Sends `{"detail": detail}` with the status and headers. */
export function sendDetail(
  reply: FastifyReply,
  status: number,
  detail: unknown,
  headers: Record<string, string> = {},
): FastifyReply {
  return reply.code(status).headers(headers).type('application/json; charset=utf-8').send({ detail });
}

const GENERIC_DETAIL: Record<number, string> = {
  400: 'Bad Request',
  401: 'Unauthorized',
  403: 'Forbidden',
  404: 'Not Found',
  405: 'Method Not Allowed',
  408: 'Request Timeout',
  413: 'Request Entity Too Large',
  415: 'Unsupported Media Type',
  429: 'Too Many Requests',
  503: 'Service Unavailable',
};

// Errors the kernel builds from framework errors and unmatched routes carry these generic messages; any other
// HttpError is a deliberate answer whose message is its detail.
const KERNEL_CODES = new Set([
  'BAD_REQUEST',
  'NOT_FOUND',
  'METHOD_NOT_ALLOWED',
  'REQUEST_TIMEOUT',
  'PAYLOAD_TOO_LARGE',
  'UNSUPPORTED_MEDIA_TYPE',
  'TOO_MANY_REQUESTS',
  'INTERNAL_ERROR',
]);

/** The body of every error response: `{"detail": …}`; a 500 adds the request id and never says more. */
export function renderOwscError(error: HttpError, request: FastifyRequest): Record<string, unknown> {
  if (Object.hasOwn(error.detail, 'detail')) return { detail: error.detail.detail };
  if (error.status === 500) return { detail: 'Internal Server Error', request_id: request.id };
  if (KERNEL_CODES.has(error.code) || error.status > 500) {
    return {
      detail: GENERIC_DETAIL[error.status] ?? (error.status > 500 ? 'Service Unavailable' : 'Bad Request'),
    };
  }
  return { detail: error.message };
}

// ---- rate limit ----

// ---- hooks ----

const EXPOSED_HEADERS = 'X-Request-ID, Retry-After, X-RateLimit-Limit, X-RateLimit-Remaining';
const PREFLIGHT_HEADERS: Readonly<Record<string, string>> = Object.freeze({
  'access-control-allow-methods': 'GET, POST, OPTIONS',
  'access-control-allow-headers': 'Authorization, Content-Type, X-Request-ID',
  'access-control-max-age': '600',
});
const UNAUTHORIZED_HEADERS: Readonly<Record<string, string>> = Object.freeze({
  'www-authenticate': 'Bearer',
});
const SECRET_QUERY_NAME = /token|secret|passw|api[_-]?key|signature|credential|auth/i;

/** The request's path and query with secret-like query values replaced by `[REDACTED]` (spec §3.11). */
export function redactedPath(url: string): string {
  const question = url.indexOf('?');
  if (question < 0) return url;
  const query = url
    .slice(question + 1)
    .split('&')
    .map((pair) => {
      const equals = pair.indexOf('=');
      if (equals < 0) return pair;
      let name = pair.slice(0, equals);
      try {
        name = decodeURIComponent(name.replace(/\+/g, ' '));
      } catch {
        // keep the raw name: a malformed escape still gets checked
      }
      return SECRET_QUERY_NAME.test(name) ? `${pair.slice(0, equals)}=[REDACTED]` : pair;
    })
    .join('&');
  return `${url.slice(0, question)}?${query}`;
}

function pathOf(url: string): string {
  const question = url.indexOf('?');
  return question < 0 ? url : url.slice(0, question);
}

/** True when `Origin` may use the API and the WebSockets: any with `*`, else the listed ones. */
export function originAllowed(config: OwscConfig, origin: string): boolean {
  return config.corsOrigins === '*' || config.corsOrigins.includes(origin);
}

/** The client address of a request: the socket peer, or `X-Forwarded-For` from a trusted proxy. */
export type ClientAddress = (request: FastifyRequest) => string;

/** Builds the client-address function of OW_SC_TRUST_PROXY. */
export function clientAddressOf(config: OwscConfig): ClientAddress {
  const trusted = config.trustedProxies.length > 0 ? trustedProxyList(config.trustedProxies) : null;
  return (request) => {
    const forwarded = request.headers['x-forwarded-for'];
    return clientIp(
      request.raw.socket.remoteAddress,
      typeof forwarded === 'string' ? forwarded : forwarded?.join(','),
      trusted,
    );
  };
}

/** True when the request presents the API token (always true when no token is configured). */
export function apiAuthorized(config: OwscConfig, authorization: string | undefined): boolean {
  return config.apiToken === undefined || bearerMatches(authorization, config.apiToken);
}

export interface ConventionParts {
  config: OwscConfig;
  metrics: OwscMetrics;
  limiter: FixedWindowLimiter;
}

/**
 * Registers CORS, preflights, the API rate limit and token (in that order, so preflights are never refused
 * for want of a token and floods are throttled before the token is checked), the JSON body parser and the
 * access log line.
 */
export function registerConventions(app: FastifyInstance, parts: ConventionParts): void {
  const { config, metrics, limiter } = parts;
  const clientAddress = clientAddressOf(config);
  const rateRule: RateRule | null =
    config.rateLimitPerSecond > 0
      ? { limit: config.rateLimitPerSecond, unit: 'second', windowSeconds: 1 }
      : null;
  const rateLimitText = String(config.rateLimitPerSecond);
  const anyOrigin = config.corsOrigins === '*';
  const wildcardHeaders = {
    'access-control-allow-origin': '*',
    'access-control-expose-headers': EXPOSED_HEADERS,
  };

  app.decorateRequest('clientAddress', '');

  app.addHook('onRequest', (request, reply, done) => {
    request.clientAddress = clientAddress(request);
    const origin = request.headers.origin;
    // CORS: `*` answers every origin; a list echoes a listed origin only.
    let corsAllowed = anyOrigin;
    if (anyOrigin) reply.headers(wildcardHeaders);
    else {
      reply.header('vary', 'Origin');
      if (origin !== undefined && originAllowed(config, origin)) {
        corsAllowed = true;
        reply.header('access-control-allow-origin', origin);
        reply.header('access-control-expose-headers', EXPOSED_HEADERS);
      }
    }
    if (
      request.method === 'OPTIONS' &&
      origin !== undefined &&
      request.headers['access-control-request-method'] !== undefined
    ) {
      if (corsAllowed) reply.code(204).headers(PREFLIGHT_HEADERS).send();
      else sendDetail(reply, 403, 'Origin not allowed');
      return;
    }
    const path = pathOf(request.url);
    if (!path.startsWith('/api/')) {
      done();
      return;
    }
    if (rateRule === null) {
      authorize(request, reply, done);
      return;
    }
    limiter.hit('api', `${request.clientAddress}|${path}`, rateRule).then(
      (decision) => {
        reply.header('x-ratelimit-limit', rateLimitText);
        reply.header('x-ratelimit-remaining', String(decision.remaining));
        if (!decision.allowed) {
          metrics.httpRateLimited.inc();
          sendDetail(reply, 429, 'Too Many Requests', { 'retry-after': '1' });
          return;
        }
        authorize(request, reply, done);
      },
      (error: unknown) => done(error as Error),
    );
  });

  const authorize = (request: FastifyRequest, reply: FastifyReply, done: (error?: Error) => void) => {
    if (apiAuthorized(config, request.headers.authorization)) {
      done();
      return;
    }
    sendDetail(reply, 401, 'Unauthorized', UNAUTHORIZED_HEADERS);
  };

  // JSON bodies: over OW_SC_MAX_JSON_BYTES → 413 (the framework checks Content-Length before reading); not
  // JSON → 422 in the FastAPI list shape.
  app.removeContentTypeParser('application/json');
  app.addContentTypeParser(
    'application/json',
    { parseAs: 'string', bodyLimit: config.maxJsonBytes },
    (_request, body, done) => {
      try {
        done(null, JSON.parse(body as string));
      } catch {
        done(validationError([{ loc: ['body'], msg: 'JSON decode error', type: 'json_invalid' }]), undefined);
      }
    },
  );

  app.addHook('onResponse', (request, reply, done) => {
    request.log.info(
      {
        method: request.method,
        path: redactedPath(request.url),
        status: reply.statusCode,
        duration_ms: Math.round(reply.elapsedTime * 1000) / 1000,
        ip: request.clientAddress,
      },
      'request completed',
    );
    done();
  });
}

declare module 'fastify' {
  interface FastifyRequest {
    /** the client address (socket peer, or `X-Forwarded-For` from a trusted proxy) */
    clientAddress: string;
  }
}
