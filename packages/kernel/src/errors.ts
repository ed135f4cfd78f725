// Typed HTTP errors. The kernel never renders a body itself: each service turns an HttpError into its own
// error shape, so no framework default body (or stack trace) ever reaches a client.

/** An error with the HTTP status, the service's error code, a human message and structured detail. */
export class HttpError extends Error {
  override readonly name = 'HttpError';
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly detail: Record<string, unknown> = {},
    readonly headers: Record<string, string> = {},
  ) {
    super(message);
  }
}

const FRAMEWORK_CODES: Record<number, [string, string]> = {
  400: ['BAD_REQUEST', 'bad request'],
  404: ['NOT_FOUND', 'not found'],
  405: ['METHOD_NOT_ALLOWED', 'method not allowed'],
  408: ['REQUEST_TIMEOUT', 'request timed out'],
  413: ['PAYLOAD_TOO_LARGE', 'request body too large'],
  415: ['UNSUPPORTED_MEDIA_TYPE', 'unsupported media type'],
  429: ['TOO_MANY_REQUESTS', 'too many requests'],
};

/**
 * Any thrown value → HttpError: HttpErrors pass through; framework errors with a 4xx status keep their status
 * with a generic message (their text can name internals); everything else is a 500 with no detail.
 */
export function toHttpError(error: unknown): HttpError {
  if (error instanceof HttpError) return error;
  const status = (error as { statusCode?: unknown } | null)?.statusCode;
  if (typeof status === 'number' && status >= 400 && status < 500) {
    const [code, message] = FRAMEWORK_CODES[status] ?? ['BAD_REQUEST', 'bad request'];
    return new HttpError(status, code, message);
  }
  return new HttpError(500, 'INTERNAL_ERROR', 'internal error', { reason: 'internal' });
}

/** Socket error codes that mean "the server cannot be reached now" (a 503, not a bug). */
export const NETWORK_UNAVAILABLE_CODES: ReadonlySet<string> = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ETIMEDOUT',
  'EPIPE',
  'ENOTFOUND',
  'EAI_AGAIN',
  'EHOSTUNREACH',
  'ENETUNREACH',
]);
