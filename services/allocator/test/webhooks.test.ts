// Webhook delivery (spec §3.16; acceptance 44 at delivery level) against a local receiver.
import { createHmac, timingSafeEqual } from 'node:crypto';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { callbackUrlProblem, deliverWebhook, signWebhookBody } from '../src/domain/webhooks.js';

const SECRET = 'whsec-test-51e2';
const UUID_V4 = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;

interface Received {
  method: string;
  url: string;
  headers: IncomingMessage['headers'];
  rawBody: string;
}

type Reply = (response: ServerResponse) => void;

interface Receiver {
  url: string;
  received: Received[];
  close(): Promise<void>;
}

const receivers: Receiver[] = [];

async function startReceiver(replies: Reply[]): Promise<Receiver> {
  const received: Received[] = [];
  const server = createServer((request, response) => {
    const chunks: Buffer[] = [];
    request.on('data', (chunk: Buffer) => chunks.push(chunk));
    request.on('end', () => {
      received.push({
        method: request.method ?? '',
        url: request.url ?? '',
        headers: request.headers,
        rawBody: Buffer.concat(chunks).toString('utf8'),
      });
      replies[Math.min(received.length - 1, replies.length - 1)]?.(response);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  const receiver: Receiver = {
    url: `http://127.0.0.1:${port}/hooks/allocator?src=test`,
    received,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
  receivers.push(receiver);
  return receiver;
}

function status(code: number): Reply {
  return (response) => {
    response.writeHead(code, { 'content-type': 'text/plain' });
    response.end(`status ${code}`);
  };
}

/** The receiver's side of the contract: HMAC-SHA256 over the raw body, compared in constant time. */
function signatureVerifies(secret: string, rawBody: string, header: string | string[] | undefined): boolean {
  if (typeof header !== 'string' || !header.startsWith('sha256=')) return false;
  const expected = Buffer.from(createHmac('sha256', secret).update(rawBody).digest('hex'));
  const given = Buffer.from(header.slice('sha256='.length));
  return expected.length === given.length && timingSafeEqual(expected, given);
}

/** A sleep that returns at once and records what was asked for. */
function recordingSleep() {
  const requested: number[] = [];
  const sleep = async (ms: number) => {
    requested.push(ms);
  };
  return { requested, sleep };
}

async function closedPortUrl(): Promise<string> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return `http://127.0.0.1:${port}/hook`;
}

const JOB_BODY = {
  job_id: '0b7c6f1e-8a3d-4c2b-9e5f-1a2b3c4d5e6f',
  status: 'done',
  progress: { queued: 0, processing: 0, done: 1, failed: 0, pending_review: 0, total: 1 },
  note: 'naïve café ✓',
};

afterEach(async () => {
  await Promise.all(receivers.splice(0).map((receiver) => receiver.close()));
});

describe('deliverWebhook', () => {
  it('POSTs the body with the headers of §3.16 and a signature the receiver can verify', async () => {
    const receiver = await startReceiver([status(204)]);
    const { requested, sleep } = recordingSleep();
    const result = await deliverWebhook(receiver.url, 'job.completed', JOB_BODY, {
      version: '1.2.3',
      secret: SECRET,
      sleep,
    });

    expect(result).toEqual({
      delivered: true,
      attempts: 1,
      status: 204,
      error: null,
      deliveryId: expect.stringMatching(UUID_V4),
    });
    expect(requested).toEqual([]);
    expect(receiver.received).toHaveLength(1);
    const [hit] = receiver.received;
    expect(hit?.method).toBe('POST');
    expect(hit?.url).toBe('/hooks/allocator?src=test');
    expect(hit?.headers['content-type']).toBe('application/json');
    expect(hit?.headers['user-agent']).toBe('file-allocator/1.2.3');
    expect(hit?.headers['x-allocator-event']).toBe('job.completed');
    expect(hit?.headers['x-allocator-delivery']).toBe(result.deliveryId);
    expect(hit?.rawBody).toBe(JSON.stringify(JOB_BODY));
    expect(JSON.parse(hit?.rawBody ?? '')).toEqual(JOB_BODY);
    expect(signatureVerifies(SECRET, hit?.rawBody ?? '', hit?.headers['x-allocator-signature'])).toBe(true);
    expect(
      signatureVerifies('another-secret', hit?.rawBody ?? '', hit?.headers['x-allocator-signature']),
    ).toBe(false);
  });

  it('sends no signature header without a secret', async () => {
    const receiver = await startReceiver([status(200)]);
    const result = await deliverWebhook(
      receiver.url,
      'batch.completed',
      { batch_id: 'b' },
      { version: '0.1.0', secret: '' },
    );
    expect(result.delivered).toBe(true);
    expect(receiver.received[0]?.headers['x-allocator-event']).toBe('batch.completed');
    expect(receiver.received[0]?.headers['x-allocator-signature']).toBeUndefined();
  });

  it('retries a 500 after 1 s, keeping the delivery id and signature, then succeeds', async () => {
    const receiver = await startReceiver([status(500), status(200)]);
    const { requested, sleep } = recordingSleep();
    const result = await deliverWebhook(receiver.url, 'job.failed', JOB_BODY, {
      version: '1.2.3',
      secret: SECRET,
      sleep,
    });

    expect(result).toEqual({
      delivered: true,
      attempts: 2,
      status: 200,
      error: null,
      deliveryId: result.deliveryId,
    });
    expect(requested).toEqual([1000]);
    expect(receiver.received).toHaveLength(2);
    const [first, second] = receiver.received;
    expect(second?.headers['x-allocator-delivery']).toBe(first?.headers['x-allocator-delivery']);
    expect(second?.headers['x-allocator-delivery']).toBe(result.deliveryId);
    expect(second?.headers['x-allocator-event']).toBe('job.failed');
    expect(second?.rawBody).toBe(first?.rawBody);
    expect(signatureVerifies(SECRET, second?.rawBody ?? '', second?.headers['x-allocator-signature'])).toBe(
      true,
    );
  });

  it('gives up after 5 attempts with backoff 1, 2, 4, 8 s against a receiver that keeps failing', async () => {
    const receiver = await startReceiver([status(503)]);
    const { requested, sleep } = recordingSleep();
    const result = await deliverWebhook(receiver.url, 'job.completed', JOB_BODY, {
      version: '1.2.3',
      secret: SECRET,
      sleep,
    });
    expect(result).toEqual({
      delivered: false,
      attempts: 5,
      status: 503,
      error: 'HTTP 503',
      deliveryId: result.deliveryId,
    });
    expect(requested).toEqual([1000, 2000, 4000, 8000]);
    expect(new Set(receiver.received.map((hit) => hit.headers['x-allocator-delivery']))).toEqual(
      new Set([result.deliveryId]),
    );
  });

  it('gives up after 5 attempts when the receiver is down', async () => {
    const url = await closedPortUrl();
    const { requested, sleep } = recordingSleep();
    const result = await deliverWebhook(url, 'job.completed', JOB_BODY, {
      version: '1.2.3',
      secret: SECRET,
      sleep,
    });
    expect(result).toEqual({
      delivered: false,
      attempts: 5,
      status: null,
      error: 'network error: ECONNREFUSED',
      deliveryId: expect.stringMatching(UUID_V4),
    });
    expect(requested).toEqual([1000, 2000, 4000, 8000]);
  });

  it('times out a receiver that never answers', async () => {
    const receiver = await startReceiver([() => {}]);
    const { requested, sleep } = recordingSleep();
    const result = await deliverWebhook(receiver.url, 'job.completed', JOB_BODY, {
      version: '1.2.3',
      secret: SECRET,
      sleep,
      timeoutMs: 100,
      maxAttempts: 2,
    });
    expect(result).toMatchObject({
      delivered: false,
      attempts: 2,
      status: null,
      error: 'timed out after 100 ms',
    });
    expect(receiver.received).toHaveLength(2);
    expect(requested).toEqual([1000]);
  });

  it('does not follow redirects (a redirect is a failed attempt)', async () => {
    const redirect: Reply = (response) => {
      response.writeHead(302, { location: 'http://127.0.0.1:9/elsewhere' });
      response.end();
    };
    const receiver = await startReceiver([redirect]);
    const { sleep } = recordingSleep();
    const result = await deliverWebhook(receiver.url, 'job.completed', JOB_BODY, {
      version: '1.2.3',
      secret: SECRET,
      sleep,
      maxAttempts: 2,
    });
    expect(result).toMatchObject({ delivered: false, attempts: 2, status: 302, error: 'HTTP 302' });
  });

  it('stops waiting for the next attempt when aborted', async () => {
    const receiver = await startReceiver([status(500)]);
    const controller = new AbortController();
    const sleep = async (_ms: number, signal?: AbortSignal) => {
      controller.abort();
      if (signal?.aborted) throw signal.reason;
    };
    const result = await deliverWebhook(
      receiver.url,
      'job.completed',
      JOB_BODY,
      { version: '1.2.3', secret: SECRET, sleep },
      controller.signal,
    );
    expect(result).toMatchObject({ delivered: false, attempts: 1, status: 500, error: 'delivery aborted' });
    expect(receiver.received).toHaveLength(1);
  });

  it('uses a real timer for the backoff when no sleep is given', async () => {
    const receiver = await startReceiver([status(500), status(200)]);
    const startedAt = Date.now();
    const result = await deliverWebhook(receiver.url, 'job.completed', JOB_BODY, {
      version: '1.2.3',
      secret: SECRET,
      backoffMs: [120],
    });
    expect(result).toMatchObject({ delivered: true, attempts: 2 });
    expect(Date.now() - startedAt).toBeGreaterThanOrEqual(115);
  });
});

describe('signWebhookBody', () => {
  it('is sha256= and the hex HMAC-SHA256 of the raw body', () => {
    expect(signWebhookBody('key', 'The quick brown fox jumps over the lazy dog')).toBe(
      'sha256=f7bc83f430538424b13298e6aa6fb143ef4d59a14946175997479dbc2d1a3cd8',
    );
  });
});

describe('callbackUrlProblem', () => {
  it('accepts http and https URLs up to 2048 characters', () => {
    expect(callbackUrlProblem('https://hooks.example.com/allocator', [])).toBeNull();
    expect(callbackUrlProblem('http://10.0.0.5:8080/cb?x=1', [])).toBeNull();
    const longest = `https://example.com/${'a'.repeat(2048 - 'https://example.com/'.length)}`;
    expect(longest).toHaveLength(2048);
    expect(callbackUrlProblem(longest, [])).toBeNull();
  });

  it('rejects longer URLs, other schemes and non-URLs', () => {
    expect(callbackUrlProblem(`https://example.com/${'a'.repeat(2049 - 20)}`, [])).toBe(
      'callback_url must be at most 2048 characters',
    );
    for (const url of [
      'ftp://example.com/x',
      'file:///etc/passwd',
      'javascript:alert(1)',
      'not a url',
      '/relative/path',
      '',
    ]) {
      expect(callbackUrlProblem(url, [])).toBe('callback_url must be an absolute http or https URL');
    }
  });

  it('restricts hosts to WEBHOOK_ALLOWED_HOSTS when the list is set', () => {
    const allowed = ['hooks.example.com', ' Internal.Example.org ', 'localhost:9000', '::1'];
    expect(callbackUrlProblem('https://hooks.example.com/x', allowed)).toBeNull();
    expect(callbackUrlProblem('https://HOOKS.EXAMPLE.COM:8443/x', allowed)).toBeNull();
    expect(callbackUrlProblem('http://internal.example.org/x', allowed)).toBeNull();
    expect(callbackUrlProblem('http://localhost:9000/x', allowed)).toBeNull();
    expect(callbackUrlProblem('http://[::1]:8000/x', allowed)).toBeNull();
    expect(callbackUrlProblem('http://localhost:9001/x', allowed)).toBe(
      "callback_url host 'localhost' is not in WEBHOOK_ALLOWED_HOSTS",
    );
    expect(callbackUrlProblem('https://evil.example.com/x', allowed)).toBe(
      "callback_url host 'evil.example.com' is not in WEBHOOK_ALLOWED_HOSTS",
    );
    expect(callbackUrlProblem('https://hooks.example.com.evil.net/x', allowed)).toBe(
      "callback_url host 'hooks.example.com.evil.net' is not in WEBHOOK_ALLOWED_HOSTS",
    );
    expect(callbackUrlProblem('https://hooks.example.com@evil.net/x', allowed)).toBe(
      "callback_url host 'evil.net' is not in WEBHOOK_ALLOWED_HOSTS",
    );
  });
});
