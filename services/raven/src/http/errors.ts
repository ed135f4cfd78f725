// The Raven Zero error body (spec §3.8): `{"detail": <string|object|array>}` with application/json.
import { HttpError } from '@quintet/kernel/errors';
import type { FastifyReply } from 'fastify';

export { HttpError };

const GENERIC_DETAIL: Record<number, string> = {
  400: 'There was an error parsing the body',
  401: 'Unauthorized',
  403: 'Forbidden',
  404: 'Not Found',
  405: 'Method Not Allowed',
  408: 'Upload timed out',
  413: 'Request Entity Too Large',
  415: 'Unsupported Media Type',
  429: 'Too Many Requests',
  503: 'Service temporarily unavailable',
};

export const SERVICE_UNAVAILABLE = 'Service temporarily unavailable';

/** An error whose body is exactly `{"detail": detail}`. */
export function detailError(
  status: number,
  detail: unknown,
  headers: Record<string, string> = {},
): HttpError {
  return new HttpError(status, 'RAVEN', typeof detail === 'string' ? detail : 'error', { detail }, headers);
}

/** The detail text of a bare status (framework errors, 404, 405). */
export function genericDetail(status: number): string {
  return status >= 500 ? 'Internal Server Error' : (GENERIC_DETAIL[status] ?? 'Bad Request');
}

/** Renders any error as `{"detail": ...}`; unexpected errors never carry an internal message. */
export function renderRavenError(error: HttpError): { detail: unknown } {
  if (error.code === 'RAVEN' && 'detail' in error.detail) return { detail: error.detail.detail };
  return { detail: genericDetail(error.status) };
}

/** Sends `{"detail": detail}` with the status and headers. */
export function sendDetail(
  reply: FastifyReply,
  status: number,
  detail: unknown,
  headers: Record<string, string> = {},
): FastifyReply {
  return reply.code(status).headers(headers).type('application/json').send({ detail });
}

/** 503 with `Retry-After: 5` (store down or saturated). */
export function sendUnavailable(reply: FastifyReply): FastifyReply {
  return sendDetail(reply, 503, SERVICE_UNAVAILABLE, { 'retry-after': '5' });
}
