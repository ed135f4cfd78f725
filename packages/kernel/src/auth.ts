// Credentials from request headers. Comparisons are constant-time; parsing never throws.
import { constantTimeEqual } from './security.js';

export interface BasicCredentials {
  user: string;
  password: string;
}

/**
 * Parses `user:pass` configuration text (split at the first colon, both sides non-empty); null when malformed.
 */
export function parseBasicCredentials(text: string): BasicCredentials | null {
  const colon = text.indexOf(':');
  if (colon <= 0 || colon === text.length - 1) return null;
  return { user: text.slice(0, colon), password: text.slice(colon + 1) };
}

/** Reads an `Authorization: Basic ...` header (scheme case-insensitive, strict base64); null when malformed. */
export function parseBasicAuthHeader(header: string | undefined): BasicCredentials | null {
  const match = /^basic\s+([A-Za-z0-9+/]+={0,2})\s*$/i.exec(header ?? '');
  if (!match?.[1] || match[1].length % 4 !== 0) return null;
  const decoded = Buffer.from(match[1], 'base64').toString('utf8');
  const colon = decoded.indexOf(':');
  if (colon < 0) return null;
  return { user: decoded.slice(0, colon), password: decoded.slice(colon + 1) };
}

/** True when the header carries exactly the expected basic credentials. */
export function basicAuthMatches(header: string | undefined, expected: BasicCredentials): boolean {
  const given = parseBasicAuthHeader(header);
  if (!given) return false;
  // Both halves are always compared so the time does not tell which one was wrong.
  const userOk = constantTimeEqual(given.user, expected.user);
  const passwordOk = constantTimeEqual(given.password, expected.password);
  return userOk && passwordOk;
}

/** Reads an `Authorization: Bearer <token>` header (scheme case-insensitive); null when absent or malformed. */
export function parseBearerToken(header: string | undefined): string | null {
  const match = /^bearer\s+(\S+)\s*$/i.exec(header ?? '');
  return match?.[1] ?? null;
}

/** True when the header carries the expected bearer token. */
export function bearerMatches(header: string | undefined, expected: string): boolean {
  const token = parseBearerToken(header);
  return token !== null && constantTimeEqual(token, expected);
}
