// Webhook delivery (spec §3.16): the terminal job or batch body is POSTed to the request's callback_url,
// signed with WEBHOOK_SECRET, retried on non-2xx answers and network errors with a fixed backoff.
import { createHmac, randomUUID } from 'node:crypto';
import { setTimeout as delay } from 'node:timers/promises';

export type WebhookEvent = 'job.completed' | 'job.failed' | 'batch.completed';

export interface WebhookDeliveryResult {
  delivered: boolean;
  attempts: number;
  /** HTTP status of the last attempt, null when it got no answer. */
  status: number | null;
  /** Why the last attempt failed; null when delivered. */
  error: string | null;
  deliveryId: string;
}

export interface WebhookSenderOptions {
  /** Service version, sent as `User-Agent: file-allocator/<version>`. */
  version: string;
  /** HMAC key; empty → no `X-Allocator-Signature` header. */
  secret: string;
  /** Limit of one attempt (ms); default 5000. */
  timeoutMs?: number;
  /** Pauses before attempts 2, 3, …; the last value repeats. Default [1000, 2000, 4000, 8000]. */
  backoffMs?: readonly number[];
  /** Default 5. */
  maxAttempts?: number;
  fetchImpl?: typeof fetch;
  sleep?: (ms: number, signal?: AbortSignal) => Promise<void>;
}

export const MAX_CALLBACK_URL_LENGTH = 2048;
const DEFAULT_TIMEOUT_MS = 5000;
const DEFAULT_BACKOFF_MS: readonly number[] = [1000, 2000, 4000, 8000];
const DEFAULT_MAX_ATTEMPTS = 5;

/** `sha256=<hex HMAC-SHA256(secret, rawBody)>`, the value of `X-Allocator-Signature`. */
export function signWebhookBody(secret: string, rawBody: string): string {
  return `sha256=${createHmac('sha256', secret).update(rawBody, 'utf8').digest('hex')}`;
}

/** POSTs `body` with the headers of §3.16 (same X-Allocator-Delivery on every attempt), retrying non-2xx/network errors. */
export async function deliverWebhook(
  url: string,
  event: WebhookEvent,
  body: unknown,
  options: WebhookSenderOptions,
  signal?: AbortSignal,
): Promise<WebhookDeliveryResult> {
  const deliveryId = randomUUID();
  const rawBody = JSON.stringify(body);
  const headers: Record<string, string> = {
    'content-type': 'application/json',
    'user-agent': `file-allocator/${options.version}`,
    'x-allocator-event': event,
    'x-allocator-delivery': deliveryId,
  };
  if (options.secret) headers['x-allocator-signature'] = signWebhookBody(options.secret, rawBody);

  const timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  const backoffMs = options.backoffMs ?? DEFAULT_BACKOFF_MS;
  const maxAttempts = Math.max(1, options.maxAttempts ?? DEFAULT_MAX_ATTEMPTS);
  const fetchImpl = options.fetchImpl ?? fetch;
  const sleep = options.sleep ?? defaultSleep;

  let status: number | null = null;
  let error: string | null = null;
  let attempts = 0;
  while (attempts < maxAttempts) {
    if (attempts > 0) {
      const pause = backoffMs[Math.min(attempts - 1, backoffMs.length - 1)] ?? 0;
      try {
        await sleep(pause, signal);
      } catch {
        // Aborted while waiting (shutdown): give up with the last attempt's result.
      }
    }
    if (signal?.aborted) {
      return { delivered: false, attempts, status, error: 'delivery aborted', deliveryId };
    }
    attempts += 1;
    const timeout = AbortSignal.timeout(timeoutMs);
    try {
      const response = await fetchImpl(url, {
        method: 'POST',
        headers,
        body: rawBody,
        // A redirect could lead past the callback host allow-list, so it is not followed.
        redirect: 'manual',
        signal: signal ? AbortSignal.any([signal, timeout]) : timeout,
      });
      status = response.status;
      await response.body?.cancel().catch(() => undefined);
      if (status >= 200 && status <= 299)
        return { delivered: true, attempts, status, error: null, deliveryId };
      error = `HTTP ${status}`;
    } catch (failure) {
      status = null;
      error = timeout.aborted ? `timed out after ${timeoutMs} ms` : networkErrorText(failure);
    }
  }
  return { delivered: false, attempts, status, error, deliveryId };
}

/** Ingest-time check (§3.4 callback_url / §3.16): http(s), ≤ 2048 chars, host in the allow-list when one is set; returns an error message or null. */
export function callbackUrlProblem(url: string, allowedHosts: readonly string[]): string | null {
  if (url.length > MAX_CALLBACK_URL_LENGTH) {
    return `callback_url must be at most ${MAX_CALLBACK_URL_LENGTH} characters`;
  }
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    return 'callback_url must be an absolute http or https URL';
  }
  if ((parsed.protocol !== 'http:' && parsed.protocol !== 'https:') || parsed.hostname === '') {
    return 'callback_url must be an absolute http or https URL';
  }
  const allowed = allowedHosts.map((host) => host.trim().toLowerCase()).filter((host) => host !== '');
  if (allowed.length === 0) return null;
  // An entry may name a bare host (any port) or host:port; IPv6 literals match with or without brackets.
  const bareHost = parsed.hostname.replace(/^\[(.*)\]$/, '$1');
  if (allowed.includes(parsed.hostname) || allowed.includes(bareHost) || allowed.includes(parsed.host))
    return null;
  return `callback_url host '${parsed.hostname}' is not in WEBHOOK_ALLOWED_HOSTS`;
}

async function defaultSleep(ms: number, signal?: AbortSignal): Promise<void> {
  await delay(ms, undefined, signal ? { signal } : undefined);
}

function networkErrorText(error: unknown): string {
  if (error instanceof Error && error.name === 'AbortError') return 'delivery aborted';
  const cause = (error as { cause?: { code?: unknown; message?: unknown } } | null)?.cause;
  if (typeof cause?.code === 'string') return `network error: ${cause.code}`;
  if (typeof cause?.message === 'string') return `network error: ${cause.message}`;
  return `network error: ${error instanceof Error ? error.message : String(error)}`;
}
