// The HTTP process of every service: a Fastify app with request ids, security headers, the service's own
// error bodies (never a framework default), 404/405 handling, HTTP metrics; graceful shutdown; cluster workers.
import cluster from 'node:cluster';
import Fastify, {
  type FastifyInstance,
  type FastifyReply,
  type FastifyRequest,
  LogController,
} from 'fastify';
import type { Logger } from 'pino';
import { HttpError, toHttpError } from './errors.js';
import { type HttpMetrics, serveClusterMetrics } from './metrics.js';
import { BASE_SECURITY_HEADERS, newRequestId } from './security.js';

export interface HttpAppOptions {
  logger: Logger;
  /** builds the response body of every error (the service's own shape) */
  renderError: (error: HttpError, request: FastifyRequest) => unknown;
  /** response header carrying the request id on every response, e.g. `x-request-id` */
  requestIdHeader: string;
  newRequestId?: () => string;
  httpMetrics?: HttpMetrics;
  /** JSON/text body limit in bytes (uploads are streamed by the routes themselves) */
  bodyLimit?: number;
  /** extra headers on every response */
  headers?: Record<string, string>;
}

interface KnownRoute {
  pattern: RegExp;
  methods: Set<string>;
}

function routePattern(url: string): RegExp {
  const source = url
    .split('/')
    .map((segment) => {
      if (segment === '*') return '.*';
      if (segment.startsWith(':')) return '[^/]+';
      return segment.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
    })
    .join('/');
  return new RegExp(`^${source}/?$`);
}

/** Builds the service's Fastify app with the kernel's standard behaviour. */
export function createHttpApp(options: HttpAppOptions): FastifyInstance {
  const app = Fastify({
    loggerInstance: options.logger,
    // Services log their own request events; the framework's per-request lines would only repeat them.
    logController: new LogController({ disableRequestLogging: true, requestIdLogLabel: 'request_id' }),
    genReqId: options.newRequestId ?? (() => newRequestId()),
    bodyLimit: options.bodyLimit ?? 1024 * 1024,
    return503OnClosing: true,
    forceCloseConnections: 'idle',
    // Errors the router raises before any hook runs (a malformed URL such as `/%`) get the service's own body
    // and headers too, never the framework's default.
    frameworkErrors: (error, request, reply) => {
      reply.header(options.requestIdHeader, request.id);
      reply.headers(fixedHeaders);
      sendError(toHttpError(error), request, reply);
    },
  }) as unknown as FastifyInstance;

  const known = new Map<string, KnownRoute>();
  app.addHook('onRoute', (route) => {
    const entry = known.get(route.url) ?? { pattern: routePattern(route.url), methods: new Set<string>() };
    for (const method of [route.method].flat()) entry.methods.add(method.toUpperCase());
    known.set(route.url, entry);
  });

  const fixedHeaders = { ...BASE_SECURITY_HEADERS, ...options.headers };
  app.addHook('onRequest', async (request, reply) => {
    reply.header(options.requestIdHeader, request.id);
    reply.headers(fixedHeaders);
  });

  // Shutdown: a keep-alive connection whose request was in flight when closing began would stay open until its
  // idle timeout after the response, holding the server's close (and the process) for the whole grace period.
  // Responses sent while closing end their connection, and connections that fall idle are closed.
  let closing = false;
  app.addHook('preClose', async () => {
    closing = true;
  });
  app.addHook('onSend', async (_request, reply, payload) => {
    if (closing) reply.header('connection', 'close');
    return payload;
  });
  app.addHook('onResponse', async () => {
    if (closing) setImmediate(() => app.server.closeIdleConnections());
  });

  if (options.httpMetrics) {
    const metrics = options.httpMetrics;
    app.addHook('onResponse', async (request, reply) => {
      const route = request.routeOptions.url ?? 'unmatched';
      metrics.observe(request.method, route, reply.statusCode, reply.elapsedTime / 1000);
    });
  }

  const sendError = (error: HttpError, request: FastifyRequest, reply: FastifyReply) => {
    reply
      .code(error.status)
      .headers(error.headers)
      .type('application/json')
      .send(options.renderError(error, request));
  };

  app.setNotFoundHandler((request, reply) => {
    const path = request.url.split('?')[0] ?? '/';
    const allowed = new Set<string>();
    for (const route of known.values()) {
      if (route.pattern.test(path)) for (const method of route.methods) allowed.add(method);
    }
    if (allowed.size > 0 && !allowed.has(request.method)) {
      const allow = [...allowed].sort();
      sendError(
        new HttpError(
          405,
          'METHOD_NOT_ALLOWED',
          'method not allowed',
          { path, method: request.method, allowed: allow },
          { allow: allow.join(', ') },
        ),
        request,
        reply,
      );
      return;
    }
    sendError(new HttpError(404, 'NOT_FOUND', 'not found', { path }), request, reply);
  });

  app.setErrorHandler((error, request, reply) => {
    const httpError = toHttpError(error);
    // A deliberate HttpError (e.g. 503 while not ready) is an answer, not a failure worth a stack trace.
    if (httpError.status >= 500 && !(error instanceof HttpError))
      request.log.error({ err: error }, 'unhandled error');
    sendError(httpError, request, reply);
  });

  return app;
}

/**
 * Runs `shutdown` once on the first SIGTERM or SIGINT, then exits with its code (0 unless it throws).
 * A second signal during shutdown exits at once with 1.
 */
export function onShutdownSignal(shutdown: (signal: NodeJS.Signals) => Promise<void>, logger: Logger): void {
  let stopping = false;
  const handle = (signal: NodeJS.Signals) => {
    if (stopping) {
      logger.warn({ signal }, 'second signal during shutdown, exiting now');
      process.exit(1);
    }
    stopping = true;
    logger.info({ signal }, 'shutting down');
    shutdown(signal).then(
      () => process.exit(0),
      (error: unknown) => {
        logger.error({ err: error }, 'shutdown failed');
        process.exit(1);
      },
    );
  };
  process.on('SIGTERM', handle);
  process.on('SIGINT', handle);
}

export interface ClusterOptions {
  workers: number;
  logger: Logger;
  /** starts one HTTP worker (the whole server when workers = 1) */
  startWorker: () => Promise<void>;
  /** how long the primary waits for workers after forwarding a shutdown signal */
  shutdownTimeoutMs: number;
}

/**
 * With one worker, runs the server in this process (no cluster primary). With more, this process becomes a
 * primary that forks the workers (they share the listening port), restarts any that crash, aggregates their
 * metrics, and on SIGTERM/SIGINT forwards the signal and exits 0 once all have exited.
 */
export async function runWithWorkers(options: ClusterOptions): Promise<void> {
  if (options.workers <= 1 || cluster.isWorker) {
    await options.startWorker();
    return;
  }
  const { logger } = options;
  serveClusterMetrics();
  let stopping = false;
  const restarts: number[] = [];
  cluster.on('exit', (worker, code, signal) => {
    if (stopping) return;
    const now = Date.now();
    restarts.push(now);
    while (restarts.length > 0 && (restarts[0] as number) < now - 60_000) restarts.shift();
    logger.error(
      { worker_pid: worker.process.pid, code, signal },
      'HTTP worker exited; starting a replacement',
    );
    // A crash loop would otherwise spin the CPU: back off when many workers died within a minute.
    const delay = restarts.length > options.workers * 5 ? 5000 : 0;
    setTimeout(() => {
      if (!stopping) cluster.fork();
    }, delay);
  });
  for (let index = 0; index < options.workers; index++) cluster.fork();
  logger.info({ workers: options.workers }, 'cluster primary started');
  onShutdownSignal(async (signal) => {
    stopping = true;
    const alive = Object.values(cluster.workers ?? {}).filter((worker) => worker && !worker.isDead());
    await new Promise<void>((resolve) => {
      let remaining = alive.length;
      if (remaining === 0) resolve();
      const timer = setTimeout(() => {
        for (const worker of alive) worker?.process.kill('SIGKILL');
        resolve();
      }, options.shutdownTimeoutMs);
      for (const worker of alive) {
        worker?.once('exit', () => {
          remaining -= 1;
          if (remaining === 0) {
            clearTimeout(timer);
            resolve();
          }
        });
        worker?.process.kill(signal);
      }
    });
  }, logger);
}
