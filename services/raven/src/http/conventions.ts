// HTTP conventions of every response (spec §3.8): security headers, CORS, request ids, the per-request log line,
// and the request context (id, method, route template) every log line written while handling a request carries.
import { AsyncLocalStorage } from 'node:async_hooks';
import { randomUUID } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import type { FastifyInstance, FastifyRequest, HookHandlerDoneFunction } from 'fastify';
import type { RavenConfig } from '../config.js';
import { routeTemplate } from './metrics.js';

const REQUEST_ID = /^[A-Za-z0-9._:-]{1,128}$/;

/** A valid incoming `X-Request-ID` is reused; otherwise a new UUIDv4. Fastify passes the raw request. */
export function requestIdFor(request?: IncomingMessage): string {
  const incoming = request?.headers['x-request-id'];
  return typeof incoming === 'string' && REQUEST_ID.test(incoming) ? incoming : randomUUID();
}

/** CSP of every non-HTML response. */
export const API_CSP = "default-src 'none'; frame-ancestors 'none'; sandbox";
/** CSP of HTML pages: self only. */
export const PAGE_CSP =
  "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'";

/** The headers every response carries. */
export function securityHeaders(config: RavenConfig): Record<string, string> {
  const headers: Record<string, string> = {
    'cache-control': 'no-store, no-cache, must-revalidate, max-age=0',
    pragma: 'no-cache',
    expires: '0',
    'x-content-type-options': 'nosniff',
    'x-frame-options': 'DENY',
    'x-xss-protection': '1; mode=block',
    'referrer-policy': 'no-referrer',
    'content-security-policy': API_CSP,
  };
  if (config.publicBaseUrl?.toLowerCase().startsWith('https://')) {
    headers['strict-transport-security'] = 'max-age=31536000';
  }
  return headers;
}

/** What every log line of a request carries (spec §3.13): never the raw path, which may hold a key. */
export interface RequestLogContext {
  request_id: string;
  method: string;
  /** the route template, e.g. `/download/{key}` */
  path: string;
}

const requestContext = new AsyncLocalStorage<RequestLogContext>();

/** The context of the request being handled by the current asynchronous flow, if any. */
export function currentRequestContext(): RequestLogContext | undefined {
  return requestContext.getStore();
}

function contextOf(request: FastifyRequest): RequestLogContext {
  return {
    request_id: String(request.id),
    method: request.method,
    path: routeTemplate(request.routeOptions.url),
  };
}

/** Runs the rest of the request's hooks and its handler inside the request's context. */
function enterContext(request: FastifyRequest, _reply: unknown, done: HookHandlerDoneFunction): void {
  requestContext.run(contextOf(request), done);
}

const EXPOSED = 'X-SHA256, Content-Disposition, X-Request-ID, Retry-After, Repr-Digest';

/** CORS on every response and the preflight answer (204), plus the `request_finished` log line. */
export function registerConventions(app: FastifyInstance, config: RavenConfig): void {
  // The route's own log lines (`request.log`) carry method and path next to the framework's `request_id`; the
  // domain's lines get all three from the asynchronous context (entered again before the handler, as body
  // parsing may resume in another context).
  app.addHook('onRequest', (request, _reply, done) => {
    const context = contextOf(request);
    request.log = request.log.child({ method: context.method, path: context.path });
    // Streamed bodies are read in the socket's callbacks: their events (and whatever runs synchronously from
    // them, such as a multipart parser's handlers) are emitted inside the request's context too.
    const raw = request.raw;
    const emit = raw.emit;
    raw.emit = function emitInContext(this: IncomingMessage, ...args: Parameters<typeof emit>) {
      return requestContext.run(context, () => emit.apply(this, args));
    } as typeof emit;
    requestContext.run(context, done);
  });
  app.addHook('preHandler', enterContext);

  app.addHook('onRequest', async (request, reply) => {
    const origin = request.headers.origin;
    if (config.corsOrigins === '*') {
      reply.header('access-control-allow-origin', '*');
    } else {
      reply.header('vary', 'Origin');
      if (origin !== undefined && config.corsOrigins.includes(origin)) {
        reply.header('access-control-allow-origin', origin);
      }
    }
    reply.header('access-control-expose-headers', EXPOSED);
    if (request.method === 'OPTIONS' && request.headers['access-control-request-method'] !== undefined) {
      reply
        .code(204)
        .headers({
          'access-control-allow-methods': 'GET, POST, PUT, DELETE',
          'access-control-allow-headers': 'Content-Type, Accept, X-Password, X-Request-ID',
          'access-control-max-age': '600',
        })
        .send();
      return reply;
    }
    return undefined;
  });

  app.addHook('onResponse', async (request, reply) => {
    const seconds = reply.elapsedTime / 1000;
    request.log.info(
      {
        status_code: reply.statusCode,
        duration: `${seconds.toFixed(4)}s`,
        duration_ms: Math.round(reply.elapsedTime * 1000) / 1000,
      },
      'request_finished',
    );
  });
}
