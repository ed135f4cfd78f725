// The error body of every non-2xx response (spec §3.1.3): {"error","detail","request_id"[, "details"]}.
import { HttpError } from '@quintet/kernel/errors';
import type { FastifyRequest } from 'fastify';

export type ErrorCode =
  | 'bad_request'
  | 'invalid_id'
  | 'invalid_json'
  | 'unauthorized'
  | 'forbidden'
  | 'not_found'
  | 'method_not_allowed'
  | 'conflict'
  | 'idempotency_conflict'
  | 'payload_too_large'
  | 'range_not_satisfiable'
  | 'unsupported_media_type'
  | 'validation_error'
  | 'internal_error'
  | 'service_unavailable';

/** One problem of a 422: where (`["query","limit"]`), what, and its kind. */
export interface ValidationIssue {
  loc: (string | number)[];
  msg: string;
  type: string;
}

/** An error answered with the allocator's body. `details` are validation issues or one string per offending part. */
export function apiError(
  status: number,
  code: ErrorCode,
  detail: string,
  details?: readonly (ValidationIssue | string)[],
  headers: Record<string, string> = {},
): HttpError {
  return new HttpError(status, code, detail, details === undefined ? {} : { details }, headers);
}

export const badRequest = (detail: string, details?: readonly string[]) =>
  apiError(400, 'bad_request', detail, details);
export const notFound = (detail = 'Not found') => apiError(404, 'not_found', detail);
export const conflict = (detail: string) => apiError(409, 'conflict', detail);

/** 422 with one issue per problem. */
export function validationError(issues: readonly ValidationIssue[]): HttpError {
  const first = issues[0];
  const detail = first === undefined ? 'Request validation failed' : `${first.loc.join('.')}: ${first.msg}`;
  return apiError(422, 'validation_error', detail, issues);
}

// Kernel/framework codes (upper case) → the allocator's codes.
const KERNEL_CODES: Record<string, ErrorCode> = {
  BAD_REQUEST: 'bad_request',
  NOT_FOUND: 'not_found',
  METHOD_NOT_ALLOWED: 'method_not_allowed',
  PAYLOAD_TOO_LARGE: 'payload_too_large',
  UNSUPPORTED_MEDIA_TYPE: 'unsupported_media_type',
  INTERNAL_ERROR: 'internal_error',
  REQUEST_TIMEOUT: 'bad_request',
  TOO_MANY_REQUESTS: 'service_unavailable',
};

const DEFAULT_DETAILS: Partial<Record<ErrorCode, string>> = {
  not_found: 'Not found',
  method_not_allowed: 'Method not allowed',
  internal_error: 'Internal server error',
  payload_too_large: 'Request body too large',
  unsupported_media_type: 'Unsupported media type',
  bad_request: 'Bad request',
};

/** Renders any HttpError as the allocator's body; 500s never carry internals. */
export function renderAllocatorError(error: HttpError, request: FastifyRequest): Record<string, unknown> {
  // The allocator's own errors use lower-case codes and messages written for clients; kernel and framework
  // errors get a generic text, since theirs can name internals.
  const own = error.code === error.code.toLowerCase();
  const code = (own ? error.code : (KERNEL_CODES[error.code] ?? 'internal_error')) as ErrorCode;
  const detail = own ? error.message : (DEFAULT_DETAILS[code] ?? 'Internal server error');
  const body: Record<string, unknown> = { error: code, detail, request_id: request.id };
  const details = error.detail.details;
  if (Array.isArray(details)) body.details = details;
  return body;
}
