// The DocOps error body (spec §3.8.1): {error_code, message, detail: {..., request_id}}.
import { HttpError } from '@quintet/kernel/errors';
import type { FastifyRequest } from 'fastify';

export { HttpError };

/** Renders any error as the DocOps JSON body. */
export function renderDocopsError(error: HttpError, request: FastifyRequest): Record<string, unknown> {
  return {
    error_code: error.code,
    message: error.message,
    detail: { ...error.detail, request_id: request.id },
  };
}

/** `log outcome` of an error status (spec §3.10). */
export function outcomeOfStatus(status: number): string {
  switch (status) {
    case 400:
    case 401:
    case 404:
    case 405:
      return 'bad_request';
    case 408:
      return 'timeout';
    case 413:
      return 'payload_too_large';
    case 415:
      return 'unsupported_media_type';
    case 429:
      return 'rate_limited';
    case 499:
      return 'client_disconnected';
    default:
      return 'internal_error';
  }
}

export const badRequest = (message: string, detail: Record<string, unknown>) =>
  new HttpError(400, 'INVALID_ARGUMENT', message, detail);

export const conflict = (message: string, detail: Record<string, unknown>) =>
  new HttpError(400, 'INVALID_ARGUMENT_CONFLICT', message, detail);

export const unsupportedMedia = (message: string, detail: Record<string, unknown>) =>
  new HttpError(415, 'INVALID_MEDIA_TYPE', message, detail);
