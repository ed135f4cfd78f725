import { randomUUID } from 'node:crypto';
import { createLogger } from '@quintet/kernel/log';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  type LiveEvents,
  LiveMonitor,
  type LiveReading,
  type LiveStore,
  readingFromMessage,
} from '../../src/domain/live.js';
import { OwscStore, StoreUnavailableError } from '../../src/domain/store.js';
import type { NondetectPolicy, Permit } from '../../src/domain/types.js';

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

describe('readingFromMessage', () => {
  it('reads species, concentration (or value), non-detect flag and time (else timestamp)', () => {
    expect(readingFromMessage({ species: 'SO4', concentration: 260, time: 5, timestamp: 1.5 })).toEqual({
      species: 'SO4',
      value: 260,
      time: 5,
    });
    expect(readingFromMessage({ species: 'As', value: 0.02, timestamp: 1700000000.25 })).toEqual({
      species: 'As',
      value: 0.02,
      time: 1700000000.25,
    });
    expect(readingFromMessage({ species: 'Ni', concentration: 0, time: '2024-05-01T10:00:00Z' })).toEqual({
      species: 'Ni',
      value: 0,
      time: '2024-05-01T10:00:00Z',
    });
    expect(
      readingFromMessage({ species: 'As', concentration: 0.005, nondetect: true, timestamp: 2 }),
    ).toEqual({
      species: 'As',
      value: 0.005,
      nondetect: true,
      time: 2,
    });
    // a time that is neither a number nor a string falls back to the timestamp
    expect(readingFromMessage({ species: 'SO4', concentration: 1, time: null, timestamp: 3 })?.time).toBe(3);
  });

  it('returns null for messages that are not readings', () => {
    const notReadings: Record<string, unknown>[] = [
      { concentration: 1, timestamp: 1 },
      { species: '', concentration: 1, timestamp: 1 },
      { species: 7, concentration: 1, timestamp: 1 },
      { species: 'SO4', timestamp: 1 },
      { species: 'SO4', concentration: '260', timestamp: 1 },
      { species: 'SO4', concentration: -1, timestamp: 1 },
      { species: 'SO4', concentration: Number.NaN, timestamp: 1 },
      { species: 'SO4', concentration: Number.POSITIVE_INFINITY, timestamp: 1 },
      { species: 'SO4', concentration: null, value: 3, timestamp: 1 },
      { hello: 'world' },
    ];
    for (const message of notReadings)
      expect(readingFromMessage(message), JSON.stringify(message)).toBeNull();
  });
});

/** A logger whose JSON lines are kept for assertions. */
function capturingLogger() {
  const lines: Record<string, unknown>[] = [];
  const logger = createLogger({
    name: 'owsc-test',
    level: 'debug',
    destination: { write: (line: string) => void lines.push(JSON.parse(line)) },
  });
  return { logger, lines };
}

/**
 * A store that can be switched off (while down, every write fails as an unreachable database does) and slowed
 * down per call (`latency`), to show that a monitor does not rely on calls finishing in the order they start.
 */
class SwitchableStore implements LiveStore {
  down = false;
  latency: (call: number) => number = () => 0;
  private calls = 0;
  constructor(private readonly inner: OwscStore) {}
  private async before(): Promise<void> {
    const delay = this.latency(this.calls++);
    if (delay > 0) await new Promise((resolve) => setTimeout(resolve, delay));
    if (this.down) throw new StoreUnavailableError(new Error('Connection terminated'));
  }
  recordStreamAlerts: LiveStore['recordStreamAlerts'] = async (...args) => {
    await this.before();
    return this.inner.recordStreamAlerts(...args);
  };
  closeOpenIncident: LiveStore['closeOpenIncident'] = async (...args) => {
    await this.before();
    return this.inner.closeOpenIncident(...args);
  };
}

describe('LiveMonitor', () => {
  let store: OwscStore;

  beforeAll(async () => {
    store = await OwscStore.open({});
  });
  afterAll(async () => {
    await store?.close();
  });

  /** A permit limiting one fresh species (tests share the database) at `limit`. */
  function setup(
    options: { limit?: number; window?: number; maxPending?: number; nondetect?: NondetectPolicy } = {},
  ) {
    const species = `SP${randomUUID().slice(0, 8)}`;
    const permit: Permit = {
      limits_mgL: { [species]: options.limit ?? 250 },
      rolling_window: options.window ?? 3,
      actions: { [species]: 'Increase lime dosing.' },
      daily_max_limits_mgL: {},
      monthly_average_limits_mgL: {},
      timezone: 'UTC',
    };
    const switchable = new SwitchableStore(store);
    const { logger, lines } = capturingLogger();
    const flushed: LiveEvents[] = [];
    const monitor = new LiveMonitor({
      permit,
      store: switchable,
      logger,
      retryMs: 20,
      ...(options.maxPending === undefined ? {} : { maxPending: options.maxPending }),
      ...(options.nondetect === undefined ? {} : { nondetect: options.nondetect }),
      onFlushed: (events) => flushed.push(events),
    });
    let time = 0;
    const reading = (value: number, extra: Partial<LiveReading> = {}): LiveReading => ({
      species,
      value,
      time: ++time,
      ...extra,
    });
    return { species, monitor, switchable, lines, flushed, reading };
  }

  it('raises an exceedance, opens an incident, joins it and closes it on the first compliant reading', async () => {
    const { species, monitor, reading } = setup();
    expect(await monitor.observeOwn(reading(200))).toEqual({ alerts: [], incidentEvents: [] });

    const opened = await monitor.observeOwn(reading(300));
    expect(opened.alerts).toEqual([
      {
        time: 2,
        species,
        type: 'exceedance',
        level: 'info',
        value: 300,
        limit: 250,
        action: 'Increase lime dosing.',
        message: `${species} concentration 300.000 mg/L exceeds limit 250.000 mg/L`,
        ratio: 1.2,
        id: expect.stringMatching(UUID),
        source: 'stream',
        batch_id: null,
        incident_id: expect.stringMatching(UUID),
        created_at: expect.any(String),
      },
    ]);
    expect(opened.incidentEvents).toEqual([
      {
        event: 'opened',
        incident: expect.objectContaining({ species, state: 'open', alert_count: 1, limit: 250 }),
      },
    ]);
    const incidentId = opened.incidentEvents[0]?.incident.id;

    // window [200, 300, 400]: mean 300 > 250 → trend too, both join the open incident
    const joined = await monitor.observeOwn(reading(400));
    expect(joined.alerts.map((alert) => [alert.type, alert.value, alert.level, alert.incident_id])).toEqual([
      ['exceedance', 400, 'warning', incidentId],
      ['trend', 300, 'info', incidentId],
    ]);
    expect(joined.alerts[1]).toMatchObject({
      window: 3,
      time: 3,
      message: `${species} rolling mean 300.000 mg/L over 3 readings exceeds limit 250.000 mg/L`,
    });
    expect(joined.incidentEvents).toEqual([]);

    // window [300, 400, 100]: mean 266.7 > 250 → still a trend alert, not compliant yet
    const stillHigh = await monitor.observeOwn(reading(100));
    expect(stillHigh.alerts.map((alert) => alert.type)).toEqual(['trend']);

    // window [400, 100, 50]: mean 183.3 → compliant: closes the incident
    const closed = await monitor.observeOwn(reading(50));
    expect(closed.alerts).toEqual([]);
    expect(closed.incidentEvents).toEqual([
      {
        event: 'closed',
        incident: expect.objectContaining({ id: incidentId, state: 'closed', alert_count: 4 }),
      },
    ]);
    expect(await monitor.observeOwn(reading(10))).toEqual({ alerts: [], incidentEvents: [] });

    const detail = await store.getIncident(incidentId ?? '');
    expect(detail?.timeline.map((event) => event.event)).toEqual([
      'opened',
      'alert',
      'alert',
      'alert',
      'alert',
      'closed',
    ]);
    expect(detail).toMatchObject({ peak_value: 400, peak_level: 'warning' });
    const stored = await store.listAlerts({
      incident_id: incidentId ?? '',
      source: 'stream',
      limit: 10,
      offset: 0,
    });
    expect(stored.total).toBe(4);
  });

  it('ignores species without a limit and compliant readings without an open incident', async () => {
    const { monitor, reading } = setup();
    expect(await monitor.observeOwn({ species: 'Unlisted', value: 1e9, time: 1 })).toEqual({
      alerts: [],
      incidentEvents: [],
    });
    expect(await monitor.observeOwn(reading(1))).toEqual({ alerts: [], incidentEvents: [] });
    expect((await store.listAlerts({ species: 'Unlisted', limit: 1, offset: 0 })).total).toBe(0);
  });

  it('counts fan-out readings in the window without evaluating them', async () => {
    const { species, monitor, reading } = setup();
    monitor.observeRemote(reading(900));
    monitor.observeRemote(reading(900));
    expect((await store.listAlerts({ species, limit: 10, offset: 0 })).total).toBe(0);
    // own reading 10: window [900, 900, 10], mean 603.3 > 250 → one trend alert raised by this instance
    const events = await monitor.observeOwn(reading(10));
    expect(events.alerts.map((alert) => [alert.type, alert.value])).toEqual([['trend', 1810 / 3]]);
    expect(events.incidentEvents.map((event) => event.event)).toEqual(['opened']);
  });

  it('never raises an exceedance for a non-detect and averages it by the policy', async () => {
    const zero = setup({ window: 2, limit: 1 });
    expect(await zero.monitor.observeOwn(zero.reading(5, { nondetect: true }))).toEqual({
      alerts: [],
      incidentEvents: [],
    });
    // window [0, 1.5]: mean 0.75 ≤ 1 → only the exceedance
    const afterZero = await zero.monitor.observeOwn(zero.reading(1.5));
    expect(afterZero.alerts.map((alert) => alert.type)).toEqual(['exceedance']);

    const dl = setup({ window: 2, limit: 1, nondetect: 'dl' });
    await dl.monitor.observeOwn(dl.reading(5, { nondetect: true }));
    // window [5, 1.5]: mean 3.25 > 1
    const afterDl = await dl.monitor.observeOwn(dl.reading(1.5));
    expect(afterDl.alerts.map((alert) => [alert.type, alert.value])).toEqual([
      ['exceedance', 1.5],
      ['trend', 3.25],
    ]);

    const half = setup({ window: 2, limit: 1, nondetect: 'half' });
    await half.monitor.observeOwn(half.reading(2, { nondetect: true }));
    const afterHalf = await half.monitor.observeOwn(half.reading(1.5));
    expect(afterHalf.alerts.map((alert) => [alert.type, alert.value])).toEqual([
      ['exceedance', 1.5],
      ['trend', 1.25],
    ]);
  });

  it('persists readings of one species in arrival order even when they are not awaited', async () => {
    // window 1: a reading above the limit raises an exceedance and a one-reading trend
    const { species, monitor, switchable, reading } = setup({ window: 1 });
    switchable.latency = (call) => 40 - 5 * call; // earlier calls are slower
    const values = [300, 100, 300, 400, 100, 100, 500];
    const results = await Promise.all(values.map((value) => monitor.observeOwn(reading(value))));
    expect(results.map((events) => events.incidentEvents.map((event) => event.event).join('+'))).toEqual([
      'opened',
      'closed',
      'opened',
      '',
      'closed',
      '',
      'opened',
    ]);
    const incidents = await store.listIncidents({ species, limit: 10, offset: 0 });
    expect(incidents.items.map((incident) => [incident.state, incident.alert_count])).toEqual([
      ['open', 2],
      ['closed', 4],
      ['closed', 2],
    ]);
  });

  it('queues alerts while the store is down, still returns them, drops the oldest beyond the bound', async () => {
    const { species, monitor, switchable, reading, lines } = setup({ window: 10, maxPending: 3 });
    await monitor.close(); // no background retry: the next reading flushes the queue
    switchable.down = true;
    const raised = [];
    for (const value of [301, 302, 303, 304, 305]) {
      const events = await monitor.observeOwn(reading(value));
      expect(events.incidentEvents).toEqual([]);
      expect(events.alerts).toHaveLength(1);
      expect(events.alerts[0]).toMatchObject({
        value,
        source: 'stream',
        incident_id: null,
        id: expect.stringMatching(UUID),
      });
      raised.push(...events.alerts);
    }
    expect(monitor.pendingCount).toBe(3);
    expect(lines.filter((line) => line.level === 'warn').map((line) => line.msg)).toEqual([
      'store unavailable: live alerts are queued until it is back',
      'store unavailable and the live alert queue is full: oldest queued alerts dropped',
      'store unavailable and the live alert queue is full: oldest queued alerts dropped',
    ]);
    expect(lines.at(-1)).toMatchObject({ dropped_alerts: 1, max_pending: 3 });

    switchable.down = false;
    const next = await monitor.observeOwn(reading(306));
    expect(monitor.pendingCount).toBe(0);
    // the backlog opened the incident (reported with this reading), the new alert joined it
    expect(next.incidentEvents.map((event) => event.event)).toEqual(['opened']);
    expect(next.alerts.map((alert) => alert.value)).toEqual([306]);
    const incidentId = next.alerts[0]?.incident_id ?? '';
    const stored = await store.listAlerts({ species, limit: 10, offset: 0 });
    // the three newest queued alerts kept the ids they were broadcast with; the two oldest were dropped
    expect(stored.items.map((alert) => alert.id).sort()).toEqual(
      [...raised.slice(2).map((alert) => alert.id), next.alerts[0]?.id].sort(),
    );
    expect(stored.items.every((alert) => alert.incident_id === incidentId)).toBe(true);
    const detail = await store.getIncident(incidentId);
    expect(detail?.timeline.map((event) => [event.event, event.value])).toEqual([
      ['opened', undefined],
      ['alert', 303],
      ['alert', 304],
      ['alert', 305],
      ['alert', 306],
    ]);
  });

  it('stores the queue in the background when the store is back, closing incidents in order', async () => {
    const { species, monitor, switchable, reading, flushed } = setup({ window: 1 });
    switchable.down = true;
    await monitor.observeOwn(reading(300));
    await monitor.observeOwn(reading(100)); // compliant: closes the incident once stored
    await monitor.observeOwn(reading(100)); // a second compliant reading adds nothing to the queue
    await monitor.observeOwn(reading(350));
    expect(monitor.pendingCount).toBe(4); // exceedance + one-reading trend, twice

    switchable.down = false;
    await expect.poll(() => monitor.pendingCount, { timeout: 2000, interval: 10 }).toBe(0);
    await expect.poll(() => flushed.length, { timeout: 2000, interval: 10 }).toBe(1);
    expect(flushed[0]?.alerts).toEqual([]);
    expect(flushed[0]?.incidentEvents.map((event) => [event.event, event.incident.state])).toEqual([
      ['opened', 'open'],
      ['closed', 'closed'],
      ['opened', 'open'],
    ]);
    const incidents = await store.listIncidents({ species, limit: 10, offset: 0 });
    expect(incidents.items.map((incident) => incident.state)).toEqual(['open', 'closed']);
    await monitor.close();
  });
});
