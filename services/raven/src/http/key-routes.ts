// GET /preview/{key}, GET /download/{key}, GET /status/{key}, DELETE /files/{key} (spec §3.9).
// Link-preview bots are refused first (no store access), then the service checks blocks before any lookup.
import { paceStreamedBytes } from '@quintet/kernel/memory';
import { isRedisUnavailable } from '@quintet/kernel/redis';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { contentDisposition } from '../domain/filename.js';
import { IntegrityError, type LookupFailure } from '../domain/service-types.js';
import { downloadContentType } from '../domain/sniff.js';
import { baseUrl, clientIdentity, isLinkPreviewBot } from './client.js';
import type { RavenContext } from './context.js';
import { sendDetail, sendUnavailable } from './errors.js';

const NOT_FOUND_PREVIEW = 'Upload not found or link expired';
const ALREADY_PREVIEWED =
  'This file preview has already been accessed and is no longer available for security reasons.';
const FILE_NOT_FOUND = 'File not found';
const BURNED = 'Download limit has been reached';

function headerValue(request: FastifyRequest, name: string): string | null {
  const value = request.headers[name];
  const text = Array.isArray(value) ? value[0] : value;
  return text === undefined || text === '' ? null : text;
}

function sendFailure(
  reply: FastifyReply,
  failure: LookupFailure,
  context: RavenContext,
  notFound: string,
): FastifyReply {
  switch (failure.kind) {
    case 'not_found':
      return sendDetail(reply, 404, notFound);
    case 'already_previewed':
      return sendDetail(reply, 404, ALREADY_PREVIEWED);
    case 'burned':
      return sendDetail(reply, 410, BURNED);
    case 'password_required':
      return sendDetail(reply, 401, 'Password required');
    case 'invalid_password':
      return sendDetail(reply, 401, 'Invalid password');
    case 'blocked':
      context.metrics.blocked.inc();
      return sendDetail(
        reply,
        429,
        {
          error: 'Too many failed attempts. Temporarily blocked.',
          retry_after_seconds: failure.retryAfterSeconds,
        },
        { 'retry-after': String(failure.retryAfterSeconds) },
      );
    default:
      return sendUnavailable(reply);
  }
}

const secondsLeft = (expiresAt: Date) => Math.max(0, Math.floor((expiresAt.getTime() - Date.now()) / 1000));

function refuseBot(request: FastifyRequest, reply: FastifyReply, context: RavenContext): boolean {
  if (!isLinkPreviewBot(request, context)) return false;
  sendDetail(reply, 403, 'One-time links cannot be opened by link-preview bots');
  return true;
}

type KeyRequest = FastifyRequest<{ Params: { key: string } }>;

async function preview(request: KeyRequest, reply: FastifyReply, context: RavenContext) {
  if (refuseBot(request, reply, context)) return reply;
  const outcome = await context.service.preview(
    request.params.key,
    headerValue(request, 'x-password'),
    clientIdentity(request, context),
  );
  if (!outcome.ok) return sendFailure(reply, outcome.failure, context, NOT_FOUND_PREVIEW);
  const info = outcome.value;
  const downloadUrl = `${baseUrl(request, context)}/download/${info.key}`;
  const left = secondsLeft(info.expiresAt);
  return reply.type('application/json').send({
    key: info.key,
    filename: info.filename,
    size: info.size,
    mime_type: info.mimeType,
    expiry: info.expiresAt.toISOString(),
    uses: info.uses,
    minutes_left: Math.floor(left / 60),
    download_url: downloadUrl,
    curl_example: `curl -OJ ${downloadUrl}`,
    created_at: info.createdAt.toISOString(),
    sha256: info.sha256,
    seconds_left: left,
    uses_total: info.usesTotal,
    password_protected: info.passwordProtected,
  });
}

async function download(request: KeyRequest, reply: FastifyReply, context: RavenContext) {
  const { metrics } = context;
  if (refuseBot(request, reply, context)) {
    metrics.downloads.inc({ result: 'bot' });
    return reply;
  }
  let outcome: Awaited<ReturnType<RavenContext['service']['download']>>;
  try {
    outcome = await context.service.download(
      request.params.key,
      headerValue(request, 'x-password'),
      clientIdentity(request, context),
    );
  } catch (error) {
    if (!(error instanceof IntegrityError)) throw error;
    metrics.downloads.inc({ result: 'integrity_failed' });
    request.log.error({}, 'integrity_check_failed');
    return sendDetail(reply, 500, {
      error_code: 'INTEGRITY_CHECK_FAILED',
      message: 'The stored file failed authentication',
    });
  }
  if (!outcome.ok) {
    metrics.downloads.inc({ result: outcome.failure.kind });
    return sendFailure(reply, outcome.failure, context, FILE_NOT_FOUND);
  }
  const file = outcome.value;
  metrics.downloads.inc({ result: 'ok' });
  file.body.on('data', (chunk: Buffer) => {
    metrics.bytesDownloaded.inc(chunk.length);
    paceStreamedBytes(chunk.length);
  });
  return reply
    .code(200)
    .headers({
      'content-type': downloadContentType(file.mimeType),
      'content-length': String(file.size),
      'content-disposition': contentDisposition(file.filename),
      'x-sha256': file.sha256,
      'repr-digest': `sha-256=:${Buffer.from(file.sha256, 'hex').toString('base64')}:`,
      'content-encoding': 'identity',
      'accept-ranges': 'none',
    })
    .send(file.body);
}

async function status(request: KeyRequest, reply: FastifyReply, context: RavenContext) {
  const outcome = await context.service.status(request.params.key, clientIdentity(request, context));
  if (!outcome.ok) return sendFailure(reply, outcome.failure, context, FILE_NOT_FOUND);
  const info = outcome.value;
  if (info === null) {
    return reply.type('application/json').send({
      key: context.service.normalize(request.params.key),
      status: 'expired_or_burned',
      remaining_uses: 0,
      expires_at: null,
      is_accessible: false,
    });
  }
  return reply.type('application/json').send({
    key: info.key,
    status: info.status,
    remaining_uses: info.remainingUses,
    expires_at: info.expiresAt.toISOString(),
    is_accessible: info.status === 'active',
    uses_total: info.usesTotal,
    previewed: info.previewed,
    password_required: info.passwordRequired,
    seconds_left: secondsLeft(info.expiresAt),
  });
}

async function remove(request: KeyRequest, reply: FastifyReply, context: RavenContext) {
  const outcome = await context.service.remove(
    request.params.key,
    headerValue(request, 'x-password'),
    clientIdentity(request, context),
  );
  if (!outcome.ok) return sendFailure(reply, outcome.failure, context, FILE_NOT_FOUND);
  return reply.code(204).send();
}

/** Registers the key routes (with and without the trailing slash; HEAD is not served: 405). */
export function registerKeyRoutes(app: FastifyInstance, context: RavenContext): void {
  const routes = [
    ['GET', 'preview', preview],
    ['GET', 'download', download],
    ['GET', 'status', status],
    ['DELETE', 'files', remove],
  ] as const;
  for (const [method, prefix, handler] of routes) {
    for (const url of [`/${prefix}/:key`, `/${prefix}/:key/`]) {
      app.route<{ Params: { key: string } }>({
        method,
        url,
        exposeHeadRoute: false,
        // A store outage answers 503 with Retry-After (never a 500, never a hang).
        handler: (request, reply) =>
          handler(request, reply, context).catch((error: unknown) => {
            if (isRedisUnavailable(error)) return sendUnavailable(reply);
            throw error;
          }),
      });
    }
  }
}
