// The debug endpoints' guard (spec S10): a disabled endpoint is 404 before any credential check; with
// DOCOPS_WEB_BASIC_AUTH set, missing or wrong credentials get 401 with a Basic challenge.
import { type BasicCredentials, basicAuthMatches } from '@quintet/kernel/auth';
import type { FastifyRequest } from 'fastify';
import { HttpError } from './errors.js';

/** Throws the 404 or 401 the request deserves; returns when it may pass. */
export function guardDebugEndpoint(
  request: FastifyRequest,
  enabled: boolean,
  credentials: BasicCredentials | null,
): void {
  const path = request.url.split('?')[0] ?? '/';
  if (!enabled) throw new HttpError(404, 'NOT_FOUND', 'not found', { path });
  if (credentials && !basicAuthMatches(request.headers.authorization, credentials)) {
    throw new HttpError(
      401,
      'UNAUTHORIZED',
      'authentication required',
      { path, auth_enabled: true },
      { 'www-authenticate': 'Basic realm="docops"' },
    );
  }
}
