import { randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openDatabase } from '@quintet/kernel/db';
import { testDatabaseUrl } from '@quintet/kernel/testing';
import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildAlert } from '../../src/domain/rules.js';
import {
  AlreadyAcknowledgedError,
  type BatchMeta,
  type Incident,
  OwscStore,
  StoreUnavailableError,
} from '../../src/domain/store.js';
import type { Alert, AlertLevel, BatchResult, Permit } from '../../src/domain/types.js';

const serverUrl = await testDatabaseUrl();
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

// Limits deliberately not in jsonb's key order (shorter keys first): the stored permit must keep this order.
const PERMIT: Permit = {
  limits_mgL: { SO4: 250, Zn: 1, As: 0.01 },
  rolling_window: 3,
  actions: { SO4: 'Increase lime dosing.' },
  daily_max_limits_mgL: {},
  monthly_average_limits_mgL: {},
  timezone: 'UTC',
};

function exceedance(species: string, value: number, time: number | string = 1): Alert {
  const limit = PERMIT.limits_mgL[species] ?? 1;
  return buildAlert(PERMIT, { type: 'exceedance', species, time, value, limit });
}

function trend(species: string, value: number, time: number | string = 1): Alert {
  const limit = PERMIT.limits_mgL[species] ?? 1;
  return buildAlert(PERMIT, { type: 'trend', species, time, value, limit, window: 3 });
}

function batchResult(alerts: Alert[]): BatchResult {
  return {
    count: alerts.length,
    alerts,
    compliant: alerts.length === 0,
    mode: 'all',
    format: 'tidy',
    rows: 9,
    readings: 9,
    species: ['SO4', 'Zn'],
    time_kind: 'numeric',
    permit: PERMIT,
    summary: {
      SO4: {
        n: 5,
        min: 200,
        max: 600,
        mean: 1234.5678901234567 / 3,
        last: 600,
        last_time: 8,
        limit: 250,
        exceedances: 2,
        nondetects: 0,
      },
      Zn: {
        n: 4,
        min: 0.1,
        max: 3,
        mean: 1.1,
        last: 3,
        last_time: 8,
        limit: 1,
        exceedances: 1,
        nondetects: 1,
      },
    },
    statistics: null,
  };
}

function batchMeta(createdAt: string, overrides: Partial<BatchMeta> = {}): BatchMeta {
  return {
    id: randomUUID(),
    created_at: createdAt,
    filename: 'effluent.csv',
    site: 'Plant <A>',
    sha256: 'ab'.repeat(32),
    ...overrides,
  };
}

/** A species name of its own per test, so tests sharing one database never see each other's incidents. */
const freshSpecies = () => `SP${randomUUID().slice(0, 8)}`;

interface Backend {
  name: string;
  open(): Promise<OwscStore>;
  /** the same database opened again after close (a restart), when the backend keeps data */
  reopen?: () => Promise<OwscStore>;
  /** a second store on the same database at the same time (another instance), when the backend allows it */
  openSecond?: () => Promise<OwscStore>;
  cleanup(): Promise<void>;
}

function pgliteMemory(): Backend {
  return { name: 'PGlite in memory', open: () => OwscStore.open({}), cleanup: async () => {} };
}

function pgliteDirectory(): Backend {
  const root = mkdtempSync(join(tmpdir(), 'owsc-store-'));
  const dataDir = join(root, 'owsc-db');
  return {
    name: 'PGlite on a data directory',
    open: () => OwscStore.open({ dataDir }),
    reopen: () => OwscStore.open({ dataDir }),
    cleanup: async () => rmSync(root, { recursive: true, force: true }),
  };
}

/** PostgreSQL with every table in a schema of its own (other suites share the server), dropped afterwards. */
function postgres(url: string): Backend {
  const schema = `owsc_store_${randomUUID().replaceAll('-', '')}`;
  const parsed = new URL(url);
  parsed.searchParams.set('options', `-c search_path=${schema}`);
  const schemaUrl = parsed.toString();
  const admin = async (statement: ReturnType<typeof sql>) => {
    const database = await openDatabase<unknown>({ url, poolSize: 1 });
    try {
      await statement.execute(database.kysely);
    } finally {
      await database.close();
    }
  };
  let created = false;
  return {
    name: 'PostgreSQL',
    async open() {
      if (!created) await admin(sql`create schema ${sql.id(schema)}`);
      created = true;
      return OwscStore.open({ url: schemaUrl });
    },
    reopen: () => OwscStore.open({ url: schemaUrl }),
    openSecond: () => OwscStore.open({ url: schemaUrl }),
    cleanup: () => admin(sql`drop schema if exists ${sql.id(schema)} cascade`),
  };
}

const backends: Backend[] = [pgliteMemory(), pgliteDirectory()];
if (serverUrl) backends.push(postgres(serverUrl));

describe.each(backends)('OwscStore on $name', (backend) => {
  let store: OwscStore;

  beforeAll(async () => {
    store = await backend.open();
  });
  afterAll(async () => {
    await store?.close();
    await backend.cleanup();
  });

  it('stores a batch and its alerts and serves the result back exactly, key order included', async () => {
    const alerts = [exceedance('SO4', 600, 5), trend('SO4', 300.5, 8), exceedance('Zn', 3, 8)];
    const meta = batchMeta('2031-05-04T10:20:30.123Z');
    const saved = await store.saveBatch(meta, batchResult(alerts));
    expect(saved).toEqual({ ...meta, ...batchResult(alerts) });

    const loaded = await store.getBatch(meta.id);
    expect(JSON.stringify(loaded)).toBe(JSON.stringify(saved));
    expect(Object.keys(loaded?.permit.limits_mgL ?? {})).toEqual(['SO4', 'Zn', 'As']);

    const stored = await store.listAlerts({ batch_id: meta.id, limit: 50, offset: 0 });
    expect(stored.total).toBe(3);
    expect(stored.items.map(({ id, source, batch_id, incident_id, created_at, ...alert }) => alert)).toEqual(
      alerts,
    );
    for (const alert of stored.items) {
      expect(alert.id).toMatch(UUID);
      expect(alert).toMatchObject({
        source: 'batch',
        batch_id: meta.id,
        incident_id: null,
        created_at: '2031-05-04T10:20:30.123Z',
      });
    }
    // A numeric time stays a number, a trend keeps its window, others have none.
    expect(stored.items[1]).toMatchObject({ time: 8, type: 'trend', window: 3 });
    expect(stored.items[0]).not.toHaveProperty('window');
  });

  it('keeps ISO times as strings', async () => {
    const meta = batchMeta('2031-05-04T10:20:31.000Z');
    await store.saveBatch(meta, batchResult([exceedance('SO4', 260, '2024-03-01T00:00:00Z')]));
    const { items } = await store.listAlerts({ batch_id: meta.id, limit: 10, offset: 0 });
    expect(items[0]?.time).toBe('2024-03-01T00:00:00Z');
  });

  it('answers null for unknown and malformed batch ids, never an SQL error', async () => {
    expect(await store.getBatch(randomUUID())).toBeNull();
    expect(await store.getBatch('not-a-uuid')).toBeNull();
    expect(await store.getBatch("1' or '1'='1")).toBeNull();
    expect(await store.listAlerts({ batch_id: 'nope', limit: 10, offset: 0 })).toEqual({
      items: [],
      total: 0,
    });
    expect(await store.listAlerts({ incident_id: 'nope', limit: 10, offset: 0 })).toEqual({
      items: [],
      total: 0,
    });
  });

  it('lists batches newest first with limit, offset and total', async () => {
    const before = (await store.listBatches(1, 0)).total;
    // Far-future timestamps: these three are the newest whatever the other tests stored.
    const first = batchMeta('2099-01-01T00:00:00.000Z', { filename: null, site: null });
    const second = batchMeta('2099-01-02T00:00:00.000Z');
    const third = batchMeta('2099-01-03T00:00:00.000Z');
    await store.saveBatch(first, batchResult([]));
    await store.saveBatch(second, batchResult([exceedance('SO4', 300)]));
    await store.saveBatch(third, batchResult([exceedance('SO4', 300), exceedance('Zn', 2)]));

    const page = await store.listBatches(2, 0);
    expect(page.total).toBe(before + 3);
    expect(page.items).toEqual([
      {
        id: third.id,
        created_at: third.created_at,
        filename: 'effluent.csv',
        site: 'Plant <A>',
        rows: 9,
        species: ['SO4', 'Zn'],
        count: 2,
        compliant: false,
        mode: 'all',
      },
      expect.objectContaining({ id: second.id, count: 1, compliant: false }),
    ]);
    const next = await store.listBatches(2, 2);
    expect(next.items[0]).toEqual(
      expect.objectContaining({ id: first.id, filename: null, site: null, compliant: true }),
    );
    expect((await store.listBatches(5, page.total)).items).toEqual([]);
  });

  it('filters alerts by source, species, level and min_level, newest first', async () => {
    const species = freshSpecies();
    const older = batchMeta('2040-01-01T00:00:00.000Z');
    const newer = batchMeta('2040-01-02T00:00:00.000Z');
    const make = (value: number) =>
      buildAlert(PERMIT, { type: 'exceedance', species, time: value, value, limit: 100 });
    // ratios 1.1 info, 1.3 watch, 1.6 warning, 2.5 critical
    await store.saveBatch(older, batchResult([make(110), make(130)]));
    await store.saveBatch(newer, batchResult([make(160), make(250)]));

    const levels = async (filter: { level?: AlertLevel; min_level?: AlertLevel }) => {
      const page = await store.listAlerts({ species, source: 'batch', ...filter, limit: 50, offset: 0 });
      return { levels: page.items.map((alert) => alert.level), total: page.total };
    };
    expect(await levels({})).toEqual({ levels: ['warning', 'critical', 'info', 'watch'], total: 4 });
    expect(await levels({ level: 'watch' })).toEqual({ levels: ['watch'], total: 1 });
    expect(await levels({ min_level: 'watch' })).toEqual({
      levels: ['warning', 'critical', 'watch'],
      total: 3,
    });
    expect(await levels({ min_level: 'critical' })).toEqual({ levels: ['critical'], total: 1 });
    expect(await levels({ min_level: 'info' })).toEqual({
      levels: ['warning', 'critical', 'info', 'watch'],
      total: 4,
    });
    expect((await store.listAlerts({ species, source: 'stream', limit: 50, offset: 0 })).total).toBe(0);

    const paged = await store.listAlerts({ species, limit: 2, offset: 1 });
    expect(paged.items.map((alert) => alert.value)).toEqual([250, 110]);
    expect(paged.total).toBe(4);
  });

  it('runs the incident lifecycle: open, join, close, reopen, with the timeline in order', async () => {
    const species = freshSpecies();
    const t = (second: number) => new Date(Date.UTC(2032, 0, 1, 0, 0, second));
    const first = await store.recordStreamAlerts(species, [exceedance(species, 2, 10)], t(1));
    expect(first.opened).toBe(true);
    expect(first.incident).toEqual({
      id: expect.stringMatching(UUID),
      source: 'stream',
      species,
      state: 'open',
      opened_at: '2032-01-01T00:00:01.000Z',
      closed_at: null,
      limit: 1,
      peak_value: 2,
      peak_level: 'critical',
      alert_count: 1,
      acknowledged: false,
      acknowledged_at: null,
      acknowledged_by: null,
      ack_note: null,
    } satisfies Incident);
    expect(first.stored[0]).toMatchObject({
      source: 'stream',
      batch_id: null,
      incident_id: first.incident.id,
      created_at: '2032-01-01T00:00:01.000Z',
      value: 2,
      time: 10,
    });

    const joined = await store.recordStreamAlerts(
      species,
      [exceedance(species, 1.2, 11), trend(species, 1.6, 11)],
      t(2),
    );
    expect(joined.opened).toBe(false);
    expect(joined.incident).toMatchObject({
      id: first.incident.id,
      alert_count: 3,
      peak_value: 2,
      peak_level: 'critical',
    });
    expect(joined.stored.map((alert) => alert.type)).toEqual(['exceedance', 'trend']);

    const closed = await store.closeOpenIncident(species, t(3));
    expect(closed).toMatchObject({
      id: first.incident.id,
      state: 'closed',
      closed_at: '2032-01-01T00:00:03.000Z',
    });
    expect(await store.closeOpenIncident(species, t(4))).toBeNull();

    const detail = await store.getIncident(first.incident.id);
    const alertIds = [...first.stored, ...joined.stored].map((alert) => alert.id);
    expect(detail?.timeline).toEqual([
      { at: '2032-01-01T00:00:01.000Z', event: 'opened' },
      {
        at: '2032-01-01T00:00:01.000Z',
        event: 'alert',
        alert_id: alertIds[0],
        type: 'exceedance',
        level: 'critical',
        value: 2,
      },
      {
        at: '2032-01-01T00:00:02.000Z',
        event: 'alert',
        alert_id: alertIds[1],
        type: 'exceedance',
        level: 'info',
        value: 1.2,
      },
      {
        at: '2032-01-01T00:00:02.000Z',
        event: 'alert',
        alert_id: alertIds[2],
        type: 'trend',
        level: 'warning',
        value: 1.6,
      },
      { at: '2032-01-01T00:00:03.000Z', event: 'closed' },
    ]);
    const incidentAlerts = await store.listAlerts({ incident_id: first.incident.id, limit: 10, offset: 0 });
    expect(incidentAlerts.items.map((alert) => alert.id)).toEqual([alertIds[1], alertIds[2], alertIds[0]]);

    const again = await store.recordStreamAlerts(species, [exceedance(species, 1.3, 12)], t(5));
    expect(again.opened).toBe(true);
    expect(again.incident.id).not.toBe(first.incident.id);
    expect(again.incident).toMatchObject({ peak_level: 'watch', alert_count: 1, state: 'open' });

    const all = await store.listIncidents({ species, limit: 10, offset: 0 });
    expect(all.items.map((incident) => incident.id)).toEqual([again.incident.id, first.incident.id]);
    expect(all.total).toBe(2);
    const open = await store.listIncidents({ species, state: 'open', limit: 10, offset: 0 });
    expect(open.items.map((incident) => incident.id)).toEqual([again.incident.id]);
    const closedPage = await store.listIncidents({ species, state: 'closed', limit: 1, offset: 0 });
    expect(closedPage).toEqual({ items: [expect.objectContaining({ id: first.incident.id })], total: 1 });
  });

  it('acknowledges once; a second acknowledgement fails with the 409 message', async () => {
    const species = freshSpecies();
    const { incident } = await store.recordStreamAlerts(species, [exceedance(species, 5)], new Date());
    const acked = await store.acknowledgeIncident(incident.id, 'alice', 'dosing raised');
    expect(acked).toMatchObject({
      id: incident.id,
      state: 'open',
      acknowledged: true,
      acknowledged_by: 'alice',
    });
    expect(acked?.ack_note).toBe('dosing raised');
    expect(acked?.acknowledged_at).toMatch(/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/);

    const second = store.acknowledgeIncident(incident.id, 'bob', null);
    await expect(second).rejects.toBeInstanceOf(AlreadyAcknowledgedError);
    await expect(second).rejects.toThrow(
      `incident already acknowledged by alice at ${acked?.acknowledged_at}`,
    );

    const detail = await store.getIncident(incident.id);
    expect(detail?.timeline.map((event) => event.event)).toEqual(['opened', 'alert', 'acknowledged']);
    expect(detail?.timeline[2]).toEqual({
      at: acked?.acknowledged_at,
      event: 'acknowledged',
      by: 'alice',
      note: 'dosing raised',
    });
    expect(detail).toMatchObject({ acknowledged_by: 'alice', state: 'open' });

    expect(await store.acknowledgeIncident(randomUUID(), 'alice', null)).toBeNull();
    expect(await store.acknowledgeIncident('42', 'alice', null)).toBeNull();
    expect(await store.getIncident('42')).toBeNull();
    expect(await store.getIncident(randomUUID())).toBeNull();
  });

  it('lets exactly one of two racing acknowledgements win, also after the incident closed', async () => {
    const species = freshSpecies();
    const { incident } = await store.recordStreamAlerts(species, [exceedance(species, 5)], new Date());
    await store.closeOpenIncident(species, new Date());
    const results = await Promise.allSettled([
      store.acknowledgeIncident(incident.id, 'alice', null),
      store.acknowledgeIncident(incident.id, 'bob', null),
    ]);
    expect(results.filter((result) => result.status === 'fulfilled')).toHaveLength(1);
    const failure = results.find((result) => result.status === 'rejected');
    expect(failure?.reason).toBeInstanceOf(AlreadyAcknowledgedError);
    expect((await store.getIncident(incident.id))?.state).toBe('closed');
  });

  it('caches advice answers', async () => {
    const key = `advice-${randomUUID()}`;
    expect(await store.adviceCacheGet(key)).toBeUndefined();
    await store.adviceCacheSet(key, '{"actions":["a"]}');
    expect(await store.adviceCacheGet(key)).toBe('{"actions":["a"]}');
    await store.adviceCacheSet(key, '{"actions":["b"]}');
    expect(await store.adviceCacheGet(key)).toBe('{"actions":["b"]}');
  });

  it.runIf(backend.reopen !== undefined)(
    'keeps batches, alerts and incidents across a restart on the same database',
    async () => {
      const species = freshSpecies();
      const meta = batchMeta('2035-06-01T12:00:00.000Z');
      const saved = await store.saveBatch(meta, batchResult([exceedance('SO4', 400, 3)]));
      const { incident } = await store.recordStreamAlerts(species, [exceedance(species, 3)], new Date());
      await store.acknowledgeIncident(incident.id, 'carol', null);
      const before = await store.getIncident(incident.id);
      await store.close();

      store = await (backend.reopen as () => Promise<OwscStore>)();
      expect(JSON.stringify(await store.getBatch(meta.id))).toBe(JSON.stringify(saved));
      expect((await store.listAlerts({ batch_id: meta.id, limit: 10, offset: 0 })).total).toBe(1);
      expect(await store.getIncident(incident.id)).toEqual(before);
      expect((await store.listIncidents({ species, state: 'open', limit: 10, offset: 0 })).total).toBe(1);
      // still one open incident per species after the restart
      const joined = await store.recordStreamAlerts(species, [exceedance(species, 4)], new Date());
      expect(joined).toMatchObject({
        opened: false,
        incident: { id: incident.id, alert_count: 2, peak_value: 4 },
      });
    },
  );

  // Last: it closes the suite's store (closing twice is harmless).
  it('makes every call of a closed store fail with StoreUnavailableError', async () => {
    await store.close();
    await expect(store.listBatches(1, 0)).rejects.toBeInstanceOf(StoreUnavailableError);
    await expect(store.ping()).rejects.toThrow('store unavailable');
    await expect(
      store.recordStreamAlerts('SO4', [exceedance('SO4', 300)], new Date()),
    ).rejects.toBeInstanceOf(StoreUnavailableError);
    await expect(store.getIncident(randomUUID())).rejects.toBeInstanceOf(StoreUnavailableError);
  });
});

describe.runIf(serverUrl !== null)('two OwscStore instances on one PostgreSQL', () => {
  const backend = postgres(serverUrl ?? '');
  let first: OwscStore;
  let second: OwscStore;

  beforeAll(async () => {
    first = await backend.open();
    second = await (backend.openSecond as () => Promise<OwscStore>)();
  });
  afterAll(async () => {
    await first?.close();
    await second?.close();
    await backend.cleanup();
  });

  it('opens exactly one incident per species when both record alerts at once', async () => {
    for (let round = 0; round < 3; round++) {
      const species = freshSpecies();
      const at = new Date();
      const results = await Promise.all(
        Array.from({ length: 10 }, (_, index) =>
          (index % 2 === 0 ? first : second).recordStreamAlerts(
            species,
            [exceedance(species, 1 + index)],
            at,
          ),
        ),
      );
      expect(results.filter((result) => result.opened)).toHaveLength(1);
      expect(new Set(results.map((result) => result.incident.id)).size).toBe(1);
      const open = await first.listIncidents({ species, state: 'open', limit: 10, offset: 0 });
      expect(open.total).toBe(1);
      expect(open.items[0]).toMatchObject({ alert_count: 10, peak_value: 10, peak_level: 'critical' });
      const detail = await second.getIncident(open.items[0]?.id ?? '');
      expect(detail?.timeline.filter((event) => event.event === 'opened')).toHaveLength(1);
      expect(detail?.timeline[0]?.event).toBe('opened');
      expect(detail?.timeline.filter((event) => event.event === 'alert')).toHaveLength(10);
    }
  });

  it('migrates idempotently when a second instance starts on a migrated database', async () => {
    const third = await (backend.openSecond as () => Promise<OwscStore>)();
    await third.ping();
    await third.close();
  });
});

describe('an unreachable database', () => {
  it('fails to open an unreachable PostgreSQL with StoreUnavailableError', async () => {
    await expect(OwscStore.open({ url: 'postgres://postgres@127.0.0.1:1/owsc' })).rejects.toBeInstanceOf(
      StoreUnavailableError,
    );
  });
});
