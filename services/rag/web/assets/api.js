// Calls to the RAG Assistant API: the bearer token (sessionStorage, with an in-memory fallback), the CSRF header
// on every mutating request, readable error texts, upload progress and authenticated downloads.

const TOKEN_KEY = 'rag.accessToken';
const MUTATING = new Set(['POST', 'PUT', 'PATCH', 'DELETE']);

/** A non-2xx answer, with the server's `detail` as its message. */
export class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

let memoryToken = '';
let unauthorizedHandler = () => {};

/** Sets what happens when the server refuses the current token (the page returns to the sign-in form). */
export function onUnauthorized(handler) {
  unauthorizedHandler = handler;
}

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
    // storage disabled: the in-memory token serves until reload
  }
}

/** The headers every request carries: the bearer token and, for mutations, the CSRF marker. */
function requestHeaders(method, extra) {
  const headers = new Headers(extra);
  const token = getToken();
  if (token !== '') headers.set('Authorization', `Bearer ${token}`);
  if (MUTATING.has(method)) headers.set('X-Requested-With', 'XMLHttpRequest');
  return headers;
}

/**
 * fetch() against the API. `json` is sent as the JSON body. A 401 for the token in use tells the page (which
 * signs out) and raises ApiError like every other failure status.
 */
export async function apiFetch(path, { method = 'GET', json, body, headers, signal } = {}) {
  const allHeaders = requestHeaders(method, headers);
  let payload = body;
  if (json !== undefined) {
    allHeaders.set('Content-Type', 'application/json');
    payload = JSON.stringify(json);
  }
  const usedToken = getToken();
  const response = await fetch(path, {
    method,
    headers: allHeaders,
    body: payload,
    signal,
    cache: 'no-store',
  });
  if (response.ok) return response;
  const detail = detailText(await readBody(response), response.status);
  if (response.status === 401 && usedToken !== '' && usedToken === getToken()) unauthorizedHandler();
  throw new ApiError(response.status, detail);
}

/** The parsed JSON body of a successful call (null for an empty body). */
export async function apiJson(path, options = {}) {
  return readBody(await apiFetch(path, options));
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

/** A readable message from an error body: `{"detail": "…"}` or the 422 validation list. */
export function detailText(body, status) {
  const detail = body && typeof body === 'object' && 'detail' in body ? body.detail : body;
  if (typeof detail === 'string' && detail !== '') return detail;
  if (Array.isArray(detail)) {
    return detail
      .map((issue) => {
        if (!issue || typeof issue !== 'object') return String(issue);
        const field = Array.isArray(issue.loc) ? issue.loc.slice(1).join('.') : '';
        return field === '' ? String(issue.msg) : `${field}: ${issue.msg}`;
      })
      .join('\n');
  }
  return `Request failed (HTTP ${status})`;
}

/**
 * POSTs multipart form data with XMLHttpRequest, which (unlike fetch) reports upload progress; resolves with
 * the JSON answer, rejects with ApiError.
 */
export function uploadWithProgress(path, formData, onProgress) {
  return new Promise((resolve, reject) => {
    const request = new XMLHttpRequest();
    const usedToken = getToken();
    request.open('POST', path);
    for (const [name, value] of requestHeaders('POST')) request.setRequestHeader(name, value);
    request.upload.addEventListener('progress', (event) => {
      if (event.lengthComputable) onProgress(event.loaded / event.total);
    });
    request.addEventListener('load', () => {
      let body = null;
      try {
        body = request.responseText === '' ? null : JSON.parse(request.responseText);
      } catch {
        body = request.responseText;
      }
      if (request.status >= 200 && request.status < 300) {
        onProgress(1);
        resolve(body);
        return;
      }
      if (request.status === 401 && usedToken === getToken()) unauthorizedHandler();
      reject(new ApiError(request.status, detailText(body, request.status)));
    });
    request.addEventListener('error', () => reject(new ApiError(0, 'Network error during upload')));
    request.addEventListener('abort', () => reject(new ApiError(0, 'Upload cancelled')));
    request.send(formData);
  });
}

/**
 * Downloads an API file with the bearer token (a plain link could not send it): fetch → blob → a temporary
 * object URL clicked as a download link.
 */
export async function downloadFile(path, filename) {
  const response = await apiFetch(path);
  const blob = await response.blob();
  const url = URL.createObjectURL(blob);
  const link = document.createElement('a');
  link.href = url;
  link.download = filename;
  link.hidden = true;
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(url), 60_000);
}
