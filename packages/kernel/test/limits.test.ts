import { Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { describe, expect, it } from 'vitest';
import { byteLimit, ConcurrencyGate, GateFullError, UploadTooLargeError } from '../src/limits.js';

describe('ConcurrencyGate', () => {
  it('hands slots out in FIFO order as they are released', async () => {
    const gate = new ConcurrencyGate({ slots: 2, queueTimeoutMs: 1000 });
    const first = await gate.acquire();
    const second = await gate.acquire();
    expect(first.waitedMs).toBe(0);
    expect(gate.inUse).toBe(2);

    const order: string[] = [];
    const queued = ['a', 'b', 'c'].map((name) =>
      gate.acquire().then((ticket) => {
        order.push(name);
        return ticket;
      }),
    );
    expect(gate.waiting).toBe(3);

    first.release();
    first.release(); // a second release must not free another slot
    const a = await queued[0];
    expect(order).toEqual(['a']);
    expect(gate.inUse).toBe(2);
    expect(gate.waiting).toBe(2);

    second.release();
    a?.release();
    const [, b, c] = await Promise.all(queued);
    expect(order).toEqual(['a', 'b', 'c']);
    expect(c?.waitedMs).toBeGreaterThanOrEqual(0);
    b?.release();
    c?.release();
    expect(gate.inUse).toBe(0);
    expect(gate.slots).toBe(2);
  });

  it('lets a newcomer wait behind the queue instead of overtaking it', async () => {
    const gate = new ConcurrencyGate({ slots: 1, queueTimeoutMs: 1000 });
    const held = await gate.acquire();
    const order: string[] = [];
    const early = gate.acquire().then((t) => {
      order.push('early');
      t.release();
    });
    held.release();
    const late = gate.acquire().then((t) => {
      order.push('late');
      t.release();
    });
    await Promise.all([early, late]);
    expect(order).toEqual(['early', 'late']);
  });

  it('rejects with GateFullError after the queue timeout and leaves the queue', async () => {
    const gate = new ConcurrencyGate({ slots: 1, queueTimeoutMs: 80 });
    const held = await gate.acquire();
    const started = performance.now();
    const error = await gate.acquire().catch((e: unknown) => e);
    expect(error).toBeInstanceOf(GateFullError);
    expect((error as GateFullError).waitedMs).toBeGreaterThanOrEqual(75);
    expect(performance.now() - started).toBeGreaterThanOrEqual(75);
    expect(gate.waiting).toBe(0);
    held.release();
    expect(gate.inUse).toBe(0);
  });

  it('rejects at once when the queue timeout is 0 and no slot is free', async () => {
    const gate = new ConcurrencyGate({ slots: 1, queueTimeoutMs: 0 });
    const held = await gate.acquire();
    const error = await gate.acquire().catch((e: unknown) => e);
    expect(error).toBeInstanceOf(GateFullError);
    expect((error as GateFullError).waitedMs).toBe(0);
    expect(gate.waiting).toBe(0);
    held.release();
    await expect(gate.acquire()).resolves.toMatchObject({ waitedMs: 0 });
  });

  it("rejects with the signal's reason when aborted while queued, and the slot goes to the next", async () => {
    const gate = new ConcurrencyGate({ slots: 1, queueTimeoutMs: 5000 });
    const held = await gate.acquire();
    const controller = new AbortController();
    const aborted = gate.acquire(controller.signal).catch((e: unknown) => e);
    const next = gate.acquire();
    expect(gate.waiting).toBe(2);
    const reason = new Error('client disconnected');
    controller.abort(reason);
    expect(await aborted).toBe(reason);
    expect(gate.waiting).toBe(1);
    held.release();
    const ticket = await next;
    expect(gate.inUse).toBe(1);
    ticket.release();

    const already = AbortSignal.abort(new Error('gone'));
    await expect(gate.acquire(already)).rejects.toThrow('gone');
    expect(gate.inUse).toBe(0);
  });
});

describe('byteLimit', () => {
  async function pump(chunks: Buffer[], maxBytes: number): Promise<{ error: unknown; received: number }> {
    let received = 0;
    const sink = new Writable({
      write(chunk: Buffer, _encoding, callback) {
        received += chunk.length;
        callback();
      },
    });
    const error = await pipeline(Readable.from(chunks), byteLimit(maxBytes), sink).catch((e: unknown) => e);
    return { error, received };
  }

  it('passes a stream of exactly the limit through', async () => {
    const { error, received } = await pump([Buffer.alloc(600), Buffer.alloc(400)], 1000);
    expect(error).toBeUndefined();
    expect(received).toBe(1000);
  });

  it('fails with the bytes received when the limit was crossed', async () => {
    const { error, received } = await pump([Buffer.alloc(600), Buffer.alloc(500), Buffer.alloc(700)], 1000);
    expect(error).toBeInstanceOf(UploadTooLargeError);
    expect(error).toMatchObject({ maxBytes: 1000, receivedBytes: 1100 });
    expect((error as UploadTooLargeError).receivedBytes).toBeGreaterThan(1000);
    expect(received).toBe(600);
  });
});
