// A WebSocket that reconnects with backoff (0.5 s doubling to 10 s) and stops on close 1008 (token refused).
import { reportUnauthorized, socketUrl } from './api.js';

export const INITIAL_DELAY_MS = 500;
export const MAX_DELAY_MS = 10_000;
const CLOSE_POLICY = 1008;
/** a connection that lasted this long was healthy: the next failure retries from the initial delay */
const HEALTHY_MS = 5_000;

/**
 * status: 'idle' (not started or stopped) | 'connecting' | 'open' | 'waiting' (a retry is scheduled) |
 * 'unauthorized' (closed with 1008; waits for start() with a new token).
 */
export class ReconnectingSocket {
  #path;
  #onMessage;
  #onOpen;
  #onStatus;
  #socket = null;
  #timer = null;
  #delay = INITIAL_DELAY_MS;
  #openedAt = 0;
  status = 'idle';

  constructor({ path, onMessage, onOpen = () => {}, onStatus = () => {} }) {
    this.#path = path;
    this.#onMessage = onMessage;
    this.#onOpen = onOpen;
    this.#onStatus = onStatus;
  }

  /** (Re)connects now, from the initial delay. */
  start() {
    this.stop();
    this.#delay = INITIAL_DELAY_MS;
    this.#connect();
  }

  stop() {
    clearTimeout(this.#timer);
    this.#timer = null;
    if (this.#socket !== null) {
      const socket = this.#socket;
      this.#socket = null;
      socket.onopen = socket.onmessage = socket.onclose = socket.onerror = null;
      socket.close();
    }
    this.#setStatus('idle');
  }

  #setStatus(status) {
    if (this.status === status) return;
    this.status = status;
    this.#onStatus(status);
  }

  #connect() {
    this.#timer = null;
    const { url, token } = socketUrl(this.#path);
    const socket = new WebSocket(url);
    this.#socket = socket;
    this.#setStatus('connecting');
    socket.onopen = () => {
      this.#openedAt = Date.now();
      this.#setStatus('open');
      this.#onOpen();
    };
    socket.onmessage = (event) => {
      if (typeof event.data !== 'string') return;
      let message;
      try {
        message = JSON.parse(event.data);
      } catch {
        return;
      }
      if (message !== null && typeof message === 'object') this.#onMessage(message);
    };
    socket.onclose = (event) => {
      if (this.#socket !== socket) return;
      this.#socket = null;
      // 1008 is also used for a consumer that reads too slowly: that one simply reconnects.
      if (event.code === CLOSE_POLICY && !/too slow/i.test(event.reason)) {
        this.#setStatus('unauthorized');
        reportUnauthorized(token);
        return;
      }
      const wasOpen = this.#openedAt !== 0;
      if (wasOpen && Date.now() - this.#openedAt >= HEALTHY_MS) this.#delay = INITIAL_DELAY_MS;
      this.#openedAt = 0;
      this.#setStatus('waiting');
      this.#timer = setTimeout(() => this.#connect(), this.#delay);
      this.#delay = Math.min(this.#delay * 2, MAX_DELAY_MS);
    };
  }
}
