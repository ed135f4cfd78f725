// Persistence of batches, alerts, stream incidents and the advice cache (spec §3.14), on PGlite or PostgreSQL
// through the kernel db layer. Every public method maps connection-level failures to StoreUnavailableError
// (HTTP 503 {"detail":"store unavailable"}); malformed ids are "not found", never SQL errors.
import { randomUUID } from 'node:crypto';
import { type Database, isDatabaseUnavailable, openDatabase } from '@quintet/kernel/db';
import type { Logger } from '@quintet/kernel/log';
import {
  type ColumnType,
  type ExpressionBuilder,
  type Generated,
  type Selectable,
  sql,
  type Transaction,
} from 'kysely';
import { OWSC_MIGRATION_NAMESPACE, OWSC_MIGRATIONS } from './migrations.js';
import { levelRank } from './rules.js';
import {
  ALERT_LEVELS,
  type Alert,
  type AlertLevel,
  type AlertSource,
  type AlertType,
  type BatchResult,
  type EvaluationMode,
  type StoredAlert,
} from './types.js';

// ---- public shapes ----

export interface BatchMeta {
  id: string;
  /** ISO 8601 UTC */
  created_at: string;
  filename: string | null;
  site: string | null;
  /** hex sha256 of the uploaded CSV */
  sha256: string;
}

export type StoredBatch = BatchMeta & BatchResult;

/** One row of GET /api/batches. */
export interface BatchListItem {
  id: string;
  created_at: string;
  filename: string | null;
  site: string | null;
  rows: number;
  species: string[];
  count: number;
  compliant: boolean;
  mode: EvaluationMode;
}

export interface Incident {
  id: string;
  source: 'stream';
  species: string;
  state: 'open' | 'closed';
  opened_at: string;
  closed_at: string | null;
  limit: number;
  peak_value: number;
  peak_level: AlertLevel;
  alert_count: number;
  acknowledged: boolean;
  acknowledged_at: string | null;
  acknowledged_by: string | null;
  ack_note: string | null;
}

export type IncidentEventName = 'opened' | 'alert' | 'acknowledged' | 'closed';

/** A timeline entry: `alert` events carry alert_id, type, level, value; `acknowledged` carries by, note. */
export interface IncidentEvent {
  at: string;
  event: IncidentEventName;
  [key: string]: unknown;
}

export type IncidentWithTimeline = Incident & { timeline: IncidentEvent[] };

export interface AlertFilter {
  source?: AlertSource;
  species?: string;
  level?: AlertLevel;
  /** this level or a higher one (info < watch < warning < critical) */
  min_level?: AlertLevel;
  batch_id?: string;
  incident_id?: string;
  limit: number;
  offset: number;
}

export interface IncidentFilter {
  state?: 'open' | 'closed';
  species?: string;
  limit: number;
  offset: number;
}

export interface Page<T> {
  items: T[];
  total: number;
}

/** An alert about to be stored; an id assigned earlier (an alert broadcast while the store was down) is kept. */
export type NewStreamAlert = Alert & { id?: string };

export interface StreamAlertsRecord {
  stored: StoredAlert[];
  incident: Incident;
  /** true when these alerts opened the incident */
  opened: boolean;
}

/** The database is unreachable (refused, reset, terminated, closed): HTTP 503 {"detail":"store unavailable"}. */
export class StoreUnavailableError extends Error {
  constructor(cause: unknown) {
    super('store unavailable', { cause });
    this.name = 'StoreUnavailableError';
  }
}

/** A second acknowledgement: HTTP 409 with this message. */
export class AlreadyAcknowledgedError extends Error {
  readonly incident: Incident;
  constructor(incident: Incident) {
    super(`incident already acknowledged by ${incident.acknowledged_by} at ${incident.acknowledged_at}`);
    this.name = 'AlreadyAcknowledgedError';
    this.incident = incident;
  }
}

const UUID_PATTERN = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/** True for a canonical UUID text (what the uuid columns accept). */
export function isUuid(value: string): boolean {
  return UUID_PATTERN.test(value);
}

// ---- tables ----

type Timestamp = ColumnType<Date, Date, Date>;

interface BatchesTable {
  id: string;
  seq: Generated<number>;
  created_at: Timestamp;
  filename: string | null;
  site: string | null;
  sha256: string;
  format: string;
  rows: number;
  mode: EvaluationMode;
  // json columns: written as JSON text, read back parsed
  permit: ColumnType<unknown, string, never>;
  result: ColumnType<BatchResult, string, never>;
}

interface IncidentsTable {
  id: string;
  seq: Generated<number>;
  source: Generated<'stream'>;
  species: string;
  state: 'open' | 'closed';
  opened_at: Timestamp;
  closed_at: Date | null;
  peak_value: number;
  peak_level: AlertLevel;
  limit: number;
  alert_count: number;
  acknowledged_at: Date | null;
  acknowledged_by: string | null;
  ack_note: string | null;
}

interface AlertsTable {
  id: string;
  seq: Generated<number>;
  source: AlertSource;
  batch_id: string | null;
  incident_id: string | null;
  time_text: string;
  time_numeric: boolean;
  species: string;
  type: AlertType;
  level: AlertLevel;
  value: number;
  limit: number;
  ratio: number;
  window: number | null;
  action: string;
  message: string;
  created_at: Timestamp;
}

interface IncidentEventsTable {
  seq: Generated<number>;
  incident_id: string;
  at: Timestamp;
  event: IncidentEventName;
  data: ColumnType<Record<string, unknown>, string, never>;
}

interface AdviceCacheTable {
  key: string;
  value: string;
  created_at: Generated<Date>;
}

interface OwscTables {
  batches: BatchesTable;
  incidents: IncidentsTable;
  alerts: AlertsTable;
  incident_events: IncidentEventsTable;
  advice_cache: AdviceCacheTable;
}

type IncidentRow = Selectable<IncidentsTable>;
type AlertRow = Selectable<AlertsTable>;

// Rows per INSERT statement: well under PostgreSQL's 65,535 bind parameters at 17 columns per alert.
const INSERT_CHUNK = 1000;
// Re-tries when the open incident found by a conflicting insert was closed before it could be locked.
const OPEN_INCIDENT_ATTEMPTS = 5;

const iso = (value: Date): string => value.toISOString();
const isoOrNull = (value: Date | null): string | null => (value === null ? null : value.toISOString());

function toIncident(row: IncidentRow): Incident {
  return {
    id: row.id,
    source: 'stream',
    species: row.species,
    state: row.state,
    opened_at: iso(row.opened_at),
    closed_at: isoOrNull(row.closed_at),
    limit: row.limit,
    peak_value: row.peak_value,
    peak_level: row.peak_level,
    alert_count: row.alert_count,
    acknowledged: row.acknowledged_at !== null,
    acknowledged_at: isoOrNull(row.acknowledged_at),
    acknowledged_by: row.acknowledged_by,
    ack_note: row.ack_note,
  };
}

function toStoredAlert(row: AlertRow): StoredAlert {
  const alert: StoredAlert = {
    time: row.time_numeric ? Number(row.time_text) : row.time_text,
    species: row.species,
    type: row.type,
    level: row.level,
    value: row.value,
    limit: row.limit,
    action: row.action,
    message: row.message,
    ratio: row.ratio,
    id: row.id,
    source: row.source,
    batch_id: row.batch_id,
    incident_id: row.incident_id,
    created_at: iso(row.created_at),
  };
  if (row.window !== null) {
    // keep the Alert key order of spec §3.1: window follows ratio
    const { id, source, batch_id, incident_id, created_at, ...plain } = alert;
    return { ...plain, window: row.window, id, source, batch_id, incident_id, created_at };
  }
  return alert;
}

function alertRow(
  alert: Alert,
  id: string,
  placement: { source: AlertSource; batch_id: string | null; incident_id: string | null; created_at: Date },
) {
  return {
    id,
    source: placement.source,
    batch_id: placement.batch_id,
    incident_id: placement.incident_id,
    time_text: String(alert.time),
    time_numeric: typeof alert.time === 'number',
    species: alert.species,
    type: alert.type,
    level: alert.level,
    value: alert.value,
    limit: alert.limit,
    ratio: alert.ratio,
    window: alert.window ?? null,
    action: alert.action,
    message: alert.message,
    created_at: placement.created_at,
  };
}

function highestLevel(levels: AlertLevel[]): AlertLevel {
  return levels.reduce((best, level) => (levelRank(level) > levelRank(best) ? level : best));
}

function chunks<T>(items: readonly T[], size: number): T[][] {
  const out: T[][] = [];
  for (let start = 0; start < items.length; start += size) out.push(items.slice(start, start + size));
  return out;
}

/** The owsc SQL store. Open it once per process; it is safe to share between concurrent requests. */
export class OwscStore {
  private constructor(private readonly database: Database<OwscTables>) {}

  /** Opens PostgreSQL (`url`) or PGlite (`dataDir`, or in memory when neither is given) and migrates it. */
  static async open(options: { url?: string; dataDir?: string; logger?: Logger }): Promise<OwscStore> {
    let database: Database<OwscTables> | undefined;
    try {
      database = await openDatabase<OwscTables>({
        ...options,
        applicationName: 'owsc',
        // A few statements per batch or alert: the embedded engine's own thread would buy nothing here and
        // cost ~20 MB of the idle-memory budget (spec §6, O7: 208 MB measured with it, 189 MB without).
        thread: false,
      });
      await database.migrate(OWSC_MIGRATION_NAMESPACE, OWSC_MIGRATIONS);
      return new OwscStore(database);
    } catch (error) {
      await database?.close().catch(() => {});
      throw isDatabaseUnavailable(error) ? new StoreUnavailableError(error) : error;
    }
  }

  private get db() {
    return this.database.kysely;
  }

  /** The engine in use, for logs and /api/status-like reports. */
  get dialect(): 'pglite' | 'postgres' {
    return this.database.dialect;
  }

  /** Maps connection failures to StoreUnavailableError; every other error passes through unchanged. */
  private async guard<T>(operation: () => Promise<T>): Promise<T> {
    try {
      return await operation();
    } catch (error) {
      if (error instanceof StoreUnavailableError || !isDatabaseUnavailable(error)) throw error;
      throw new StoreUnavailableError(error);
    }
  }

  /** One cheap round trip; rejects with StoreUnavailableError when the database is unreachable. */
  ping(): Promise<void> {
    return this.guard(() => this.database.ping());
  }

  close(): Promise<void> {
    return this.database.close();
  }

  /** Stores a batch result and its alerts (source `batch`) in one transaction. */
  saveBatch(meta: BatchMeta, result: BatchResult): Promise<StoredBatch> {
    return this.guard(async () => {
      const createdAt = new Date(meta.created_at);
      await this.db.transaction().execute(async (trx) => {
        await trx
          .insertInto('batches')
          .values({
            id: meta.id,
            created_at: createdAt,
            filename: meta.filename,
            site: meta.site,
            sha256: meta.sha256,
            format: result.format,
            rows: result.rows,
            mode: result.mode,
            permit: JSON.stringify(result.permit),
            result: JSON.stringify(result),
          })
          .execute();
        const placement = {
          source: 'batch' as const,
          batch_id: meta.id,
          incident_id: null,
          created_at: createdAt,
        };
        for (const part of chunks(result.alerts, INSERT_CHUNK)) {
          await trx
            .insertInto('alerts')
            .values(part.map((alert) => alertRow(alert, randomUUID(), placement)))
            .execute();
        }
      });
      return { ...meta, ...result };
    });
  }

  /** The stored batch result, or null for an unknown or malformed id. */
  getBatch(id: string): Promise<StoredBatch | null> {
    if (!isUuid(id)) return Promise.resolve(null);
    return this.guard(async () => {
      const row = await this.db
        .selectFrom('batches')
        .select(['id', 'created_at', 'filename', 'site', 'sha256', 'result'])
        .where('id', '=', id)
        .executeTakeFirst();
      if (!row) return null;
      return {
        id: row.id,
        created_at: iso(row.created_at),
        filename: row.filename,
        site: row.site,
        sha256: row.sha256,
        ...row.result,
      };
    });
  }

  /** Batches, newest first. */
  listBatches(limit: number, offset: number): Promise<Page<BatchListItem>> {
    return this.guard(async () => {
      const rows = await this.db
        .selectFrom('batches')
        .select([
          'id',
          'created_at',
          'filename',
          'site',
          'rows',
          'mode',
          sql<string[]>`result -> 'species'`.as('species'),
          sql<number>`(result ->> 'count')::integer`.as('count'),
          sql<boolean>`(result ->> 'compliant')::boolean`.as('compliant'),
        ])
        .orderBy('created_at', 'desc')
        .orderBy('seq', 'desc')
        .limit(limit)
        .offset(offset)
        .execute();
      const total = await this.db
        .selectFrom('batches')
        .select((eb) => eb.fn.countAll<number>().as('total'))
        .executeTakeFirstOrThrow();
      return {
        items: rows.map((row) => ({
          id: row.id,
          created_at: iso(row.created_at),
          filename: row.filename,
          site: row.site,
          rows: row.rows,
          species: row.species,
          count: row.count,
          compliant: row.compliant,
          mode: row.mode,
        })),
        total: Number(total.total),
      };
    });
  }

  /**
   * Stored alerts, newest first; alerts created in the same instant (one batch, one reading) keep their
   * evaluation order. A malformed batch_id or incident_id matches nothing.
   */
  listAlerts(filter: AlertFilter): Promise<Page<StoredAlert>> {
    if (
      (filter.batch_id !== undefined && !isUuid(filter.batch_id)) ||
      (filter.incident_id !== undefined && !isUuid(filter.incident_id))
    ) {
      return Promise.resolve({ items: [], total: 0 });
    }
    const where = (eb: ExpressionBuilder<OwscTables, 'alerts'>) => {
      const conditions = [];
      if (filter.source !== undefined) conditions.push(eb('source', '=', filter.source));
      if (filter.species !== undefined) conditions.push(eb('species', '=', filter.species));
      if (filter.level !== undefined) conditions.push(eb('level', '=', filter.level));
      if (filter.min_level !== undefined) {
        const floor = levelRank(filter.min_level);
        const atLeast = ALERT_LEVELS.filter((level) => levelRank(level) >= floor);
        conditions.push(eb('level', 'in', atLeast));
      }
      if (filter.batch_id !== undefined) conditions.push(eb('batch_id', '=', filter.batch_id));
      if (filter.incident_id !== undefined) conditions.push(eb('incident_id', '=', filter.incident_id));
      return eb.and(conditions);
    };
    return this.guard(async () => {
      const rows = await this.db
        .selectFrom('alerts')
        .selectAll()
        .where(where)
        .orderBy('created_at', 'desc')
        .orderBy('seq', 'asc')
        .limit(filter.limit)
        .offset(filter.offset)
        .execute();
      const total = await this.db
        .selectFrom('alerts')
        .select((eb) => eb.fn.countAll<number>().as('total'))
        .where(where)
        .executeTakeFirstOrThrow();
      return { items: rows.map(toStoredAlert), total: Number(total.total) };
    });
  }

  /** Incidents, newest (most recently opened) first. */
  listIncidents(filter: IncidentFilter): Promise<Page<Incident>> {
    const where = (eb: ExpressionBuilder<OwscTables, 'incidents'>) => {
      const conditions = [];
      if (filter.state !== undefined) conditions.push(eb('state', '=', filter.state));
      if (filter.species !== undefined) conditions.push(eb('species', '=', filter.species));
      return eb.and(conditions);
    };
    return this.guard(async () => {
      const rows = await this.db
        .selectFrom('incidents')
        .selectAll()
        .where(where)
        .orderBy('opened_at', 'desc')
        .orderBy('seq', 'desc')
        .limit(filter.limit)
        .offset(filter.offset)
        .execute();
      const total = await this.db
        .selectFrom('incidents')
        .select((eb) => eb.fn.countAll<number>().as('total'))
        .where(where)
        .executeTakeFirstOrThrow();
      return { items: rows.map(toIncident), total: Number(total.total) };
    });
  }

  /** The incident with its timeline in happening order, or null for an unknown or malformed id. */
  getIncident(id: string): Promise<IncidentWithTimeline | null> {
    if (!isUuid(id)) return Promise.resolve(null);
    return this.guard(async () => {
      const row = await this.db.selectFrom('incidents').selectAll().where('id', '=', id).executeTakeFirst();
      if (!row) return null;
      const events = await this.db
        .selectFrom('incident_events')
        .select(['at', 'event', 'data'])
        .where('incident_id', '=', id)
        .orderBy('seq', 'asc')
        .execute();
      const timeline = events.map((event) => ({ at: iso(event.at), event: event.event, ...event.data }));
      return { ...toIncident(row), timeline };
    });
  }

  /**
   * Acknowledges an incident (open or closed) once: returns it acknowledged, null for an unknown or malformed
   * id, and throws AlreadyAcknowledgedError when it already was (the conditional UPDATE makes two racing
   * acknowledgements produce exactly one success).
   */
  acknowledgeIncident(
    id: string,
    by: string,
    note: string | null,
    at: Date = new Date(),
  ): Promise<Incident | null> {
    if (!isUuid(id)) return Promise.resolve(null);
    return this.guard(() =>
      this.db.transaction().execute(async (trx) => {
        const updated = await trx
          .updateTable('incidents')
          .set({ acknowledged_at: at, acknowledged_by: by, ack_note: note })
          .where('id', '=', id)
          .where('acknowledged_at', 'is', null)
          .returningAll()
          .executeTakeFirst();
        if (!updated) {
          const existing = await trx
            .selectFrom('incidents')
            .selectAll()
            .where('id', '=', id)
            .executeTakeFirst();
          if (!existing) return null;
          throw new AlreadyAcknowledgedError(toIncident(existing));
        }
        await appendEvents(trx, id, at, [{ event: 'acknowledged', data: { by, note } }]);
        return toIncident(updated);
      }),
    );
  }

  /**
   * Stores live alerts of one species (source `stream`) in its open incident, opening one when there is none:
   * events `opened` (when opened) then one `alert` per alert; peak value/level and alert_count follow. Safe
   * across instances sharing PostgreSQL: the unique partial index on open incidents decides who opens.
   */
  recordStreamAlerts(
    species: string,
    alerts: readonly NewStreamAlert[],
    at: Date,
  ): Promise<StreamAlertsRecord> {
    if (alerts.length === 0) return Promise.reject(new Error('recordStreamAlerts needs at least one alert'));
    const peakValue = Math.max(...alerts.map((alert) => alert.value));
    const peakLevel = highestLevel(alerts.map((alert) => alert.level));
    return this.guard(() =>
      this.db.transaction().execute(async (trx) => {
        const { incident, opened } = await lockOrOpenIncident(trx, {
          id: randomUUID(),
          species,
          state: 'open',
          opened_at: at,
          closed_at: null,
          peak_value: peakValue,
          peak_level: peakLevel,
          limit: alerts[0]?.limit ?? 0,
          alert_count: alerts.length,
          acknowledged_at: null,
          acknowledged_by: null,
          ack_note: null,
        });
        let current = incident;
        if (!opened) {
          current = await trx
            .updateTable('incidents')
            .set({
              peak_value: Math.max(incident.peak_value, peakValue),
              peak_level: highestLevel([incident.peak_level, peakLevel]),
              alert_count: incident.alert_count + alerts.length,
            })
            .where('id', '=', incident.id)
            .returningAll()
            .executeTakeFirstOrThrow();
        }
        const placement = {
          source: 'stream' as const,
          batch_id: null,
          incident_id: current.id,
          created_at: at,
        };
        const rows = alerts.map((alert) => alertRow(alert, alert.id ?? randomUUID(), placement));
        const stored = await trx.insertInto('alerts').values(rows).returningAll().execute();
        const events: PendingEvent[] = opened ? [{ event: 'opened', data: {} }] : [];
        for (const row of stored) {
          events.push({
            event: 'alert',
            data: { alert_id: row.id, type: row.type, level: row.level, value: row.value },
          });
        }
        await appendEvents(trx, current.id, at, events);
        // RETURNING gives rows in insertion order; the map keeps it explicit.
        const byId = new Map(stored.map((row) => [row.id, row]));
        return {
          stored: rows.map((row) => toStoredAlert(byId.get(row.id) as AlertRow)),
          incident: toIncident(current),
          opened,
        };
      }),
    );
  }

  /** Closes the species' open incident (event `closed`); null when none is open. */
  closeOpenIncident(species: string, at: Date): Promise<Incident | null> {
    return this.guard(() =>
      this.db.transaction().execute(async (trx) => {
        const closed = await trx
          .updateTable('incidents')
          .set({ state: 'closed', closed_at: at })
          .where('species', '=', species)
          .where('state', '=', 'open')
          .returningAll()
          .executeTakeFirst();
        if (!closed) return null;
        await appendEvents(trx, closed.id, at, [{ event: 'closed', data: {} }]);
        return toIncident(closed);
      }),
    );
  }

  /** A cached hosted-advice answer (spec §3.6), or undefined. */
  adviceCacheGet(key: string): Promise<string | undefined> {
    return this.guard(async () => {
      const row = await this.db
        .selectFrom('advice_cache')
        .select('value')
        .where('key', '=', key)
        .executeTakeFirst();
      return row?.value;
    });
  }

  adviceCacheSet(key: string, value: string): Promise<void> {
    return this.guard(async () => {
      await this.db
        .insertInto('advice_cache')
        .values({ key, value })
        .onConflict((conflict) =>
          conflict
            .column('key')
            .doUpdateSet({ value: (eb) => eb.ref('excluded.value'), created_at: new Date() }),
        )
        .execute();
    });
  }
}

interface PendingEvent {
  event: IncidentEventName;
  data: Record<string, unknown>;
}

async function appendEvents(
  trx: Transaction<OwscTables>,
  incidentId: string,
  at: Date,
  events: readonly PendingEvent[],
): Promise<void> {
  if (events.length === 0) return;
  await trx
    .insertInto('incident_events')
    .values(
      events.map(({ event, data }) => ({ incident_id: incidentId, at, event, data: JSON.stringify(data) })),
    )
    .execute();
}

/**
 * Inserts `candidate` as the species' open incident unless one is open already; the existing one is then
 * locked (FOR UPDATE) so concurrent joiners update its peak and count one after another.
 */
async function lockOrOpenIncident(
  trx: Transaction<OwscTables>,
  candidate: Omit<IncidentRow, 'seq' | 'source'>,
): Promise<{ incident: IncidentRow; opened: boolean }> {
  for (let attempt = 0; attempt < OPEN_INCIDENT_ATTEMPTS; attempt++) {
    const inserted = await trx
      .insertInto('incidents')
      .values(candidate)
      // The index predicate must be a literal for PostgreSQL to match the partial unique index.
      .onConflict((conflict) => conflict.column('species').where(sql<boolean>`state = 'open'`).doNothing())
      .returningAll()
      .executeTakeFirst();
    if (inserted) return { incident: inserted, opened: true };
    const existing = await trx
      .selectFrom('incidents')
      .selectAll()
      .where('species', '=', candidate.species)
      .where('state', '=', 'open')
      .forUpdate()
      .executeTakeFirst();
    if (existing) return { incident: existing, opened: false };
    // Closed between our insert attempt and the lock: try to open again.
  }
  throw new Error(`could not open or join the open incident of ${candidate.species}`);
}
