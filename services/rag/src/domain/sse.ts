// The chat event stream (spec §3.7): `data: <json>\n\n` frames on the raw response, keepalive comments after
// STREAM_KEEPALIVE_SECS of silence, `data: [DONE]` always last. A client that stops reading while more than
// STREAM_MAX_BUFFER_BYTES are queued is reported as backpressure; a closed connection aborts `disconnected`.
import type { ServerResponse } from 'node:http';

export const SSE_HEADERS: Readonly<Record<string, string>> = {
  'content-type': 'text/event-stream; charset=utf-8',
  'cache-control': 'no-cache, no-transform',
  connection: 'keep-alive',
  'x-vercel-ai-ui-message-stream': 'v1',
  'x-accel-buffering': 'no',
};

/** How long a client that stopped reading may keep the connection after its final frames were queued. */
const SLOW_CLIENT_GRACE_MS = 5_000;

export interface SseOptions {
  keepaliveSecs: number;
  maxBufferBytes: number;
}

export class SseStream {
  readonly #response: ServerResponse;
  readonly #options: SseOptions;
  readonly #disconnect = new AbortController();
  #keepalive: NodeJS.Timeout | undefined;
  #ended = false;

  constructor(response: ServerResponse, options: SseOptions) {
    this.#response = response;
    this.#options = options;
    response.on('close', () => {
      this.#stopKeepalive();
      if (!this.#ended) this.#disconnect.abort();
    });
  }

  /** Aborted when the client goes away before the stream ended. */
  get disconnected(): AbortSignal {
    return this.#disconnect.signal;
  }

  get ended(): boolean {
    return this.#ended || this.#response.destroyed;
  }

  /** Sends the status line and headers (`extra` first, then the fixed SSE set). */
  open(extra: Record<string, string | number | string[] | undefined>, sessionId: string): void {
    const headers: Record<string, string | number | string[]> = {};
    for (const [name, value] of Object.entries(extra)) {
      if (value !== undefined && name.toLowerCase() !== 'content-length') headers[name.toLowerCase()] = value;
    }
    Object.assign(headers, SSE_HEADERS, { 'x-session-id': sessionId });
    this.#response.writeHead(200, headers);
    this.#response.flushHeaders();
    this.#scheduleKeepalive();
  }

  /** Writes one frame; false when the client is gone or has fallen more than the buffer cap behind. */
  send(frame: object): boolean {
    return this.#write(`data: ${JSON.stringify(frame)}\n\n`);
  }

  /** True when the queued, unsent bytes exceed the cap: the client is not reading. */
  get overflowing(): boolean {
    return this.#response.writableLength > this.#options.maxBufferBytes;
  }

  /** Writes `data: [DONE]` and ends the response. A client that does not read is cut off after a grace period. */
  end(): void {
    if (this.#ended) return;
    this.#write('data: [DONE]\n\n');
    this.#ended = true;
    this.#stopKeepalive();
    if (this.#response.destroyed) return;
    const lagging = this.overflowing;
    this.#response.end();
    if (lagging) {
      const timer = setTimeout(() => this.#response.destroy(), SLOW_CLIENT_GRACE_MS);
      timer.unref();
      this.#response.once('close', () => clearTimeout(timer));
    }
  }

  #write(text: string): boolean {
    if (this.#ended || this.#response.destroyed || this.#response.writableEnded) return false;
    this.#response.write(text);
    this.#scheduleKeepalive();
    return !this.overflowing;
  }

  #scheduleKeepalive(): void {
    if (this.#options.keepaliveSecs <= 0) return;
    this.#stopKeepalive();
    this.#keepalive = setTimeout(() => {
      this.#write(`: keepalive ${Math.floor(Date.now() / 1000)}\n\n`);
    }, this.#options.keepaliveSecs * 1000);
    this.#keepalive.unref();
  }

  #stopKeepalive(): void {
    if (this.#keepalive !== undefined) clearTimeout(this.#keepalive);
    this.#keepalive = undefined;
  }
}
