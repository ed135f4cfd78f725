// The WebSocket routes of spec §3.7 (§8 cases 30, 31, 32; §7.1 WS rows; §7.2 slow consumer).
import { Socket } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import {
  metricValue,
  openSocket,
  startTestDashboard,
  type TestDashboard,
  type TestSocket,
  until,
} from './harness.js';

const TOKEN = 'ws-token-81d2';
const ORIGIN = 'https://ops.example.com';
const bearer = { authorization: `Bearer ${TOKEN}` };

async function metrics(server: TestDashboard): Promise<string> {
  return (await fetch(`${server.url}/metrics`)).text();
}

describe('with a token, 5 messages/s, 256-byte messages and a CORS list', () => {
  let server: TestDashboard;
  const open: TestSocket[] = [];
  const connect = async (path: string, options: Parameters<typeof openSocket>[1] = { headers: bearer }) => {
    const client = await openSocket(`${server.wsUrl}${path}`, options);
    open.push(client);
    return client;
  };

  beforeAll(async () => {
    server = await startTestDashboard({
      OW_SC_API_TOKEN: TOKEN,
      OW_SC_WS_MSGS_PER_SEC: '5',
      OW_SC_WS_MAX_MESSAGE_BYTES: '256',
      OW_SC_WS_MAX_CONNECTIONS: '6',
      OW_SC_CORS_ORIGINS: ORIGIN,
    });
  });
  afterAll(async () => {
    await server.close();
  });
  const closeAll = async () => {
    for (const client of open.splice(0)) client.close();
    expect(await until(() => server.context.streams.activeConnections === 0)).toBe(true);
  };

  it('relays to the other clients only, stamping a timestamp unless one is given (case 30)', async () => {
    const sender = await connect('/ws/effluent');
    const receiver = await connect('/ws/effluent');
    const before = Date.now() / 1000;
    sender.send({ species: 'Cu', concentration: 0.2, time: 1 });
    const relayed = (await receiver.next()) as Record<string, unknown>;
    expect(relayed).toMatchObject({ species: 'Cu', concentration: 0.2, time: 1 });
    expect(relayed.timestamp as number).toBeGreaterThanOrEqual(before - 1);
    expect(relayed.timestamp as number).toBeLessThanOrEqual(Date.now() / 1000 + 1);

    sender.send({ species: 'Cu', concentration: 0.3, timestamp: 12.5, note: 'free-form' });
    expect(await receiver.next()).toEqual({
      species: 'Cu',
      concentration: 0.3,
      timestamp: 12.5,
      note: 'free-form',
    });
    // Nothing comes back to the sender.
    expect(await sender.silentFor(200)).toBe(true);
    expect(server.context.streams.buffer.size).toBe(2);
    await closeAll();
  });

  it('drops oversize, invalid and flooding messages with one error frame each, keeping the socket (case 31)', async () => {
    const beforeText = await metrics(server);
    const errorsBefore = metricValue(beforeText, 'ws_errors_total') ?? 0;
    const receivedBefore = metricValue(beforeText, 'ws_messages_received_total') ?? 0;
    const sender = await connect('/ws/effluent');
    const receiver = await connect('/ws/effluent');

    sender.send({ species: 'Cu', note: 'x'.repeat(300) });
    expect(await sender.next()).toEqual({ type: 'error', detail: 'message too large' });
    for (const invalid of ['{not json', '[1,2]', '"text"', 'null']) {
      sender.send(invalid);
      expect(await sender.next()).toEqual({
        type: 'error',
        detail: 'invalid message: expected a JSON object',
      });
    }
    // A message of exactly the limit is accepted.
    const exact = JSON.stringify({ species: 'Cu', pad: '' });
    const padded = JSON.stringify({ species: 'Cu', pad: 'p'.repeat(256 - exact.length) });
    expect(Buffer.byteLength(padded)).toBe(256);
    sender.send(padded);
    expect(((await receiver.next()) as { pad: string }).pad).toHaveLength(256 - exact.length);

    // The rate window starts at the first message of the window: 5 accepted, the rest dropped, one error frame.
    await new Promise((resolve) => setTimeout(resolve, 1100));
    for (let index = 0; index < 9; index++) sender.send({ species: 'Cu', n: index });
    for (let index = 0; index < 5; index++) expect(((await receiver.next()) as { n: number }).n).toBe(index);
    expect(await sender.next()).toEqual({ type: 'error', detail: 'rate limit exceeded' });
    expect(await sender.silentFor(300)).toBe(true);
    expect(await receiver.silentFor(0)).toBe(true);
    expect(sender.socket.readyState).toBe(WebSocket.OPEN);

    // A new window accepts again.
    await new Promise((resolve) => setTimeout(resolve, 1000));
    sender.send({ species: 'Cu', n: 99 });
    expect(((await receiver.next()) as { n: number }).n).toBe(99);

    const text = await metrics(server);
    expect((metricValue(text, 'ws_errors_total') ?? 0) - errorsBefore).toBe(1 + 4 + 4);
    expect((metricValue(text, 'ws_messages_received_total') ?? 0) - receivedBefore).toBe(1 + 4 + 1 + 9 + 1);
    expect(metricValue(text, 'ws_messages_dropped_total{reason="oversize"}')).toBe(1);
    expect(metricValue(text, 'ws_messages_dropped_total{reason="invalid"}')).toBe(4);
    expect(metricValue(text, 'ws_messages_dropped_total{reason="rate"}')).toBe(4);
    await closeAll();
  });

  it('authenticates by header or ?token= and closes 1008 without a valid token (case 32)', async () => {
    for (const path of ['/ws/effluent', '/ws/alerts']) {
      const anonymous = await openSocket(`${server.wsUrl}${path}`);
      expect(await anonymous.closed).toEqual({ code: 1008, reason: 'Unauthorized' });
      const wrong = await openSocket(`${server.wsUrl}${path}?token=wrong`);
      expect(await wrong.closed).toEqual({ code: 1008, reason: 'Unauthorized' });
      expect(wrong.received).toEqual([]);
    }
    const byQuery = await connect(`/ws/effluent?token=${TOKEN}`);
    const byHeader = await connect('/ws/effluent', { headers: { authorization: `bearer ${TOKEN}` } });
    byHeader.send({ species: 'Cu', concentration: 1 });
    expect(await byQuery.next()).toMatchObject({ species: 'Cu', concentration: 1 });
    await closeAll();
    // The query token never reaches the logs.
    expect(server.rawLogs.join('')).not.toContain(TOKEN);
    expect(server.logs.some((line) => line.msg === 'websocket closed' && line.route === '/ws/effluent')).toBe(
      true,
    );
    const closedLine = server.logs.find((line) => line.msg === 'websocket closed');
    expect(typeof closedLine?.request_id).toBe('string');
    expect(typeof closedLine?.close_code).toBe('number');
  });

  it('refuses a handshake from an unlisted Origin with 403 and accepts listed or absent ones', async () => {
    await expect(
      openSocket(`${server.wsUrl}/ws/effluent`, { headers: bearer, origin: 'https://evil.example' }),
    ).rejects.toThrow('handshake refused: 403');
    const listed = await connect('/ws/effluent', { headers: bearer, origin: ORIGIN });
    expect(listed.socket.readyState).toBe(WebSocket.OPEN);
    await closeAll();
  });

  it('closes connections beyond OW_SC_WS_MAX_CONNECTIONS with 1013', async () => {
    for (let index = 0; index < 6; index++) await connect(index % 2 === 0 ? '/ws/effluent' : '/ws/alerts');
    const extra = await openSocket(`${server.wsUrl}/ws/effluent`, { headers: bearer });
    expect(await extra.closed).toEqual({ code: 1013, reason: 'Try again later' });
    const status = (await (await fetch(`${server.url}/api/status`, { headers: bearer })).json()) as {
      active_connections: number;
    };
    expect(status.active_connections).toBe(6);
    expect(metricValue(await metrics(server), 'ws_active_connections')).toBe(6);
    await closeAll();
  });

  it('pushes live alerts and incident events on /ws/alerts and answers client objects', async () => {
    const alerts = await connect('/ws/alerts');
    const analyser = await connect('/ws/effluent');
    analyser.send({ species: 'SO4', concentration: 350, time: '2026-01-01T00:00:00Z' });
    const first = (await alerts.next(5000)) as Record<string, unknown>;
    const second = (await alerts.next(5000)) as Record<string, unknown>;
    const events = [first, second];
    const opened = events.find((event) => event.type === 'incident') as {
      event: string;
      incident: Record<string, unknown>;
    };
    const alert = events.find((event) => event.type === 'alert') as { alert: Record<string, unknown> };
    expect(opened.event).toBe('opened');
    expect(opened.incident).toMatchObject({ species: 'SO4', state: 'open' });
    expect(alert.alert).toMatchObject({
      species: 'SO4',
      type: 'exceedance',
      level: 'watch',
      value: 350,
      limit: 250,
      source: 'stream',
      time: '2026-01-01T00:00:00Z',
    });

    alerts.send({ hello: 'operator' });
    const reply = (await alerts.next()) as Record<string, unknown>;
    expect(reply).toMatchObject({
      type: 'alert_processed',
      alert: { hello: 'operator' },
      status: 'received',
    });
    expect(typeof reply.timestamp).toBe('number');
    alerts.send('nonsense');
    expect(await alerts.next()).toEqual({ type: 'error', detail: 'invalid message: expected a JSON object' });
    expect(alerts.socket.readyState).toBe(WebSocket.OPEN);

    // A compliant reading closes the incident.
    analyser.send({ species: 'SO4', concentration: 1, time: '2026-01-01T00:01:00Z' });
    const closed = (await alerts.next(5000)) as { type: string; event: string };
    expect(closed).toMatchObject({ type: 'incident', event: 'closed' });
    await closeAll();
  });
});

describe('without a message rate limit', () => {
  let server: TestDashboard;
  beforeAll(async () => {
    server = await startTestDashboard(
      { OW_SC_WS_MSGS_PER_SEC: '0', OW_SC_WS_MAX_MESSAGE_BYTES: '65536' },
      { pingIntervalMs: 150 },
    );
  });
  afterAll(async () => {
    await server.close();
  });

  it('closes a frame over max(65536, 8 × limit) with 1009', async () => {
    const client = await openSocket(`${server.wsUrl}/ws/effluent`);
    client.send(JSON.stringify({ pad: 'x'.repeat(8 * 65536 + 10) }));
    expect((await client.closed).code).toBe(1009);
  });

  it('closes a consumer whose send buffer passes 1 MiB with 1008 "consumer too slow"', async () => {
    const slow = await openSocket(`${server.wsUrl}/ws/effluent`);
    const publisher = await openSocket(`${server.wsUrl}/ws/effluent`);
    // The slow client stops reading: the server's send buffer for it grows.
    (slow.socket as unknown as { _socket: { pause(): void } })._socket.pause();
    const payload = JSON.stringify({ species: 'Cu', pad: 'y'.repeat(60_000) });
    let slowClosed = false;
    void slow.closed.then(() => {
      slowClosed = true;
    });
    const serverClosedSlow = () => server.logs.some((line) => line.msg === 'websocket consumer too slow');
    for (let round = 0; round < 40 && !serverClosedSlow(); round++) {
      for (let index = 0; index < 50; index++) publisher.send(payload);
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    expect(serverClosedSlow()).toBe(true);
    (slow.socket as unknown as { _socket: { resume(): void } })._socket.resume();
    expect(await until(() => slowClosed, 10_000)).toBe(true);
    expect((await slow.closed).code).toBe(1008);
    expect((await slow.closed).reason).toBe('consumer too slow');
    expect(publisher.socket.readyState).toBe(WebSocket.OPEN);
    publisher.close();
  });

  it('drops a peer that misses two pongs', async () => {
    const quiet = await openSocket(`${server.wsUrl}/ws/alerts`);
    // `ws` answers pings automatically; a paused socket cannot.
    (quiet.socket as unknown as { _socket: { pause(): void } })._socket.pause();
    expect(
      await until(() => server.logs.some((line) => line.msg === 'websocket peer missed pongs'), 5000),
    ).toBe(true);
    expect(await until(() => server.context.streams.activeConnections === 0, 5000)).toBe(true);
  });
});

describe('fan-out writes', () => {
  let server: TestDashboard;
  beforeAll(async () => {
    // The default ping interval (30 s): no ping frame lands in the measured window.
    server = await startTestDashboard({ OW_SC_WS_MSGS_PER_SEC: '0' });
  });
  afterAll(async () => {
    await server.close();
  });

  it('sends every frame one subscriber gets in one turn of the event loop in a single write, in order', async () => {
    const subscriber = await openSocket(`${server.wsUrl}/ws/effluent`);
    const clientSide = (subscriber.socket as unknown as { _socket: Socket })._socket;
    // Count the writes of the server's end of this subscriber's connection only.
    const isServerEnd = (socket: Socket) =>
      socket.remotePort === clientSide.localPort && socket.localPort === clientSide.remotePort;
    const prototype = Socket.prototype as unknown as Record<
      '_write' | '_writev',
      (this: Socket, ...args: unknown[]) => void
    >;
    const original = { write: prototype._write, writev: prototype._writev };
    let writes = 0;
    prototype._write = function (this: Socket, ...args: unknown[]) {
      if (isServerEnd(this)) writes++;
      return original.write.apply(this, args);
    };
    prototype._writev = function (this: Socket, ...args: unknown[]) {
      if (isServerEnd(this)) writes++;
      return original.writev.apply(this, args);
    };
    try {
      for (let seq = 0; seq < 20; seq++) server.context.streams.receiveRemote({ species: 'Zn', seq });
      const received = [];
      for (let seq = 0; seq < 20; seq++) received.push(await subscriber.next());
      expect(received.map((message) => (message as { seq: number }).seq)).toEqual([...Array(20).keys()]);
    } finally {
      prototype._write = original.write;
      prototype._writev = original.writev;
    }
    // Without the batching: 20 writes, one per frame.
    expect(writes).toBe(1);
    subscriber.close();
  });
});
