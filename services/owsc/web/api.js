// Calls to the dashboard's API: the operator token (kept in sessionStorage, sent as `Authorization: Bearer` and
// as `?token=` on WebSocket URLs, which browsers cannot give headers), error texts, and the 401 hook.

const TOKEN_KEY = 'owsc.apiToken';

/** Thrown for a 401: the handler registered with onUnauthorized has already been told. */
export class UnauthorizedError extends Error {
  constructor() {
    super('Unauthorized');
  }
}

/** A non-2xx answer other than 401, with the server's `detail` as text. */
export class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

let unauthorizedHandler = () => {};

/** Sets what happens when the server refuses the current token (one handler, the page's). */
export function onUnauthorized(handler) {
  unauthorizedHandler = handler;
}

/** Tells the page that `usedToken` was refused, unless the operator has entered another one meanwhile. */
export function reportUnauthorized(usedToken) {
  if (usedToken === getToken()) unauthorizedHandler();
}

// Also held in memory, for browsers with storage disabled (the token then lasts until the page is reloaded).
let memoryToken = '';

export function getToken() {
  try {
    return sessionStorage.getItem(TOKEN_KEY) ?? memoryToken;
  } catch {
    return memoryToken;
  }
}

export function setToken(token) {
  memoryToken = token;
  try {
    if (token === '') sessionStorage.removeItem(TOKEN_KEY);
    else sessionStorage.setItem(TOKEN_KEY, token);
  } catch {
    // storage disabled: memoryToken serves
  }
}

/** fetch() with the token; a 401 raises UnauthorizedError after telling the page. */
export async function apiFetch(path, init = {}) {
  const token = getToken();
  const headers = new Headers(init.headers);
  if (token !== '') headers.set('Authorization', `Bearer ${token}`);
  const response = await fetch(path, { ...init, headers, cache: 'no-store' });
  if (response.status === 401) {
    if (token === getToken()) unauthorizedHandler();
    throw new UnauthorizedError();
  }
  return response;
}

/** The JSON body of a successful call; otherwise ApiError with the server's detail. */
export async function apiJson(path, init = {}) {
  const response = await apiFetch(path, init);
  const body = await readBody(response);
  if (!response.ok) throw new ApiError(response.status, detailText(body, response.status));
  return body;
}

async function readBody(response) {
  const text = await response.text();
  if (text === '') return null;
  try {
    return JSON.parse(text);
  } catch {
    return text;
  }
}

/** A readable message from an error body: `{"detail": "…"}` or the validation list (with CSV line/column). */
export function detailText(body, status) {
  const detail = body && typeof body === 'object' && 'detail' in body ? body.detail : body;
  if (typeof detail === 'string' && detail !== '') return detail;
  if (Array.isArray(detail)) {
    return detail
      .map((issue) => {
        if (!issue || typeof issue !== 'object') return String(issue);
        const where = [];
        if (issue.line !== undefined) where.push(`line ${issue.line}`);
        if (issue.column !== undefined) where.push(`column ${issue.column}`);
        if (where.length === 0 && Array.isArray(issue.loc)) where.push(issue.loc.join('.'));
        return where.length > 0 ? `${where.join(', ')}: ${issue.msg}` : String(issue.msg);
      })
      .join('\n');
  }
  return `Request failed (HTTP ${status})`;
}

/** The same-origin WebSocket URL of `path` (wss: under https:), with `?token=` when a token is set. */
export function socketUrl(path) {
  const url = new URL(path, window.location.href);
  url.protocol = window.location.protocol === 'https:' ? 'wss:' : 'ws:';
  const token = getToken();
  if (token !== '') url.searchParams.set('token', token);
  return { url: url.href, token };
}
