// Live evaluation of stream readings (spec §3.7): per-species rolling windows, exceedance and trend alerts,
// stream incidents in the store, and a bounded queue of alerts raised while the store is down (spec §7.2).
import { randomUUID } from 'node:crypto';
import type { Logger } from '@quintet/kernel/log';
import { substitutedValue } from './csv.js';
import { limitFor } from './permit.js';
import { buildAlert } from './rules.js';
import { type Incident, type OwscStore, StoreUnavailableError } from './store.js';
import type { Alert, NondetectPolicy, Permit, ReadingTime, StoredAlert } from './types.js';

/** A stream message that the rule engine evaluates. */
export interface LiveReading {
  species: string;
  /** the concentration as sent (for a non-detect: its detection limit) */
  value: number;
  nondetect?: boolean;
  /** the message's `time`, else its `timestamp` */
  time: ReadingTime;
}

export interface LiveIncidentEvent {
  event: 'opened' | 'closed';
  incident: Incident;
}

/** What to push on /ws/alerts after a reading. */
export interface LiveEvents {
  alerts: StoredAlert[];
  incidentEvents: LiveIncidentEvent[];
}

/** The part of the store the monitor writes to. */
export type LiveStore = Pick<OwscStore, 'recordStreamAlerts' | 'closeOpenIncident'>;

export interface LiveMonitorOptions {
  permit: Permit;
  store: LiveStore;
  logger: Logger;
  /** queued alerts kept while the store is down (default 10,000); the oldest are dropped beyond it */
  maxPending?: number;
  /** delay between attempts to store the queue while the store is down (default 1 s) */
  retryMs?: number;
  /** value of a non-detect in rolling means (`OW_SC_NONDETECT`, default `zero`) */
  nondetect?: NondetectPolicy;
  /**
   * Incident changes made when queued alerts are stored by the background retry (the queued alerts themselves
   * were returned for broadcast when they were raised, so `alerts` is empty here).
   */
  onFlushed?: (events: LiveEvents) => void;
}

export const DEFAULT_MAX_PENDING = 10_000;
const DEFAULT_RETRY_MS = 1000;

function readingTime(value: unknown): ReadingTime | undefined {
  if (typeof value === 'number' && Number.isFinite(value)) return value;
  if (typeof value === 'string' && value.trim() !== '') return value;
  return undefined;
}

/**
 * The live reading carried by a stream message: a non-empty string `species` and a finite numeric
 * `concentration` (alias `value`) ≥ 0; `nondetect: true` marks a non-detect. Null for any other message
 * (which is still relayed by the caller).
 */
export function readingFromMessage(message: Record<string, unknown>): LiveReading | null {
  const species = message.species;
  if (typeof species !== 'string' || species === '') return null;
  const concentration = message.concentration !== undefined ? message.concentration : message.value;
  if (typeof concentration !== 'number' || !Number.isFinite(concentration) || concentration < 0) return null;
  // The server stamps every accepted message, so the clock fallback only serves direct callers.
  const time = readingTime(message.time) ?? readingTime(message.timestamp) ?? Date.now() / 1000;
  const reading: LiveReading = { species, value: concentration, time };
  if (message.nondetect === true) reading.nondetect = true;
  return reading;
}

/** The value a reading contributes to a rolling mean (spec §3.1 non-detect substitution). */
function meanValue(reading: LiveReading, policy: NondetectPolicy): number {
  return reading.nondetect ? substitutedValue(reading.value, policy) : reading.value;
}

/** Work waiting for the store: the alerts of one reading, or a compliant reading that may close an incident. */
type QueuedReading =
  | { kind: 'alerts'; species: string; at: Date; alerts: StoredAlert[] }
  | { kind: 'compliant'; species: string; at: Date };

const noEvents = (): LiveEvents => ({ alerts: [], incidentEvents: [] });

/**
 * Evaluates this instance's own readings against the permit and keeps the stream incidents in the store.
 * Readings of one species are persisted strictly in arrival order (one promise chain per species).
 */
export class LiveMonitor {
  private readonly permit: Permit;
  private readonly store: LiveStore;
  private readonly logger: Logger;
  private readonly maxPending: number;
  private readonly retryMs: number;
  private readonly nondetect: NondetectPolicy;
  private readonly onFlushed: ((events: LiveEvents) => void) | undefined;
  private readonly windows = new Map<string, number[]>();
  private readonly tails = new Map<string, Promise<unknown>>();
  private readonly queue: QueuedReading[] = [];
  private queuedAlerts = 0;
  private queuedCompliant = 0;
  private retryTimer: NodeJS.Timeout | undefined;
  private storeDown = false;
  private closed = false;

  constructor(options: LiveMonitorOptions) {
    this.permit = options.permit;
    this.store = options.store;
    this.logger = options.logger;
    this.maxPending = options.maxPending ?? DEFAULT_MAX_PENDING;
    this.retryMs = options.retryMs ?? DEFAULT_RETRY_MS;
    this.nondetect = options.nondetect ?? 'zero';
    this.onFlushed = options.onFlushed;
  }

  /** Live alerts raised while the store was down, waiting to be stored. */
  get pendingCount(): number {
    return this.queuedAlerts;
  }

  /**
   * A reading from this instance's own client: updates the species' window, evaluates it, persists the result
   * and resolves with what to broadcast on /ws/alerts. While the store is down the alerts are still returned
   * (with locally generated ids) and queued for storage.
   */
  observeOwn(reading: LiveReading): Promise<LiveEvents> {
    const limit = limitFor(this.permit, reading.species);
    if (limit === undefined) return Promise.resolve(noEvents());
    const window = this.remember(reading);
    const alerts = this.evaluate(reading, limit, window);
    const at = new Date();
    return this.serialise(reading.species, () => this.persist(reading.species, alerts, at));
  }

  /** A fan-out reading from another instance: only updates the rolling window (never evaluated). */
  observeRemote(reading: LiveReading): void {
    if (limitFor(this.permit, reading.species) === undefined) return;
    this.remember(reading);
  }

  /** Stops the retry timer and waits for the readings being persisted. Queued alerts are not stored. */
  async close(): Promise<void> {
    this.closed = true;
    clearTimeout(this.retryTimer);
    this.retryTimer = undefined;
    await Promise.all([...this.tails.values()]);
  }

  /** Appends the reading to its species' window and returns the window as it is now. */
  private remember(reading: LiveReading): number[] {
    let window = this.windows.get(reading.species);
    if (!window) {
      window = [];
      this.windows.set(reading.species, window);
    }
    window.push(meanValue(reading, this.nondetect));
    if (window.length > this.permit.rolling_window) window.shift();
    return [...window];
  }

  private evaluate(reading: LiveReading, limit: number, window: number[]): Alert[] {
    const alerts: Alert[] = [];
    const base = { species: reading.species, time: reading.time, limit };
    if (!reading.nondetect && reading.value > limit) {
      alerts.push(buildAlert(this.permit, { ...base, type: 'exceedance', value: reading.value }));
    }
    const size = this.permit.rolling_window;
    if (window.length >= size) {
      const mean = window.reduce((sum, value) => sum + value, 0) / window.length;
      if (mean > limit)
        alerts.push(buildAlert(this.permit, { ...base, type: 'trend', value: mean, window: size }));
    }
    return alerts;
  }

  /** Runs `task` after every earlier task of the same species has settled. */
  private serialise<T>(species: string, task: () => Promise<T>): Promise<T> {
    const previous = this.tails.get(species) ?? Promise.resolve();
    const run = previous.then(task);
    const tail = run.then(
      () => {},
      () => {},
    );
    this.tails.set(species, tail);
    void tail.then(() => {
      if (this.tails.get(species) === tail) this.tails.delete(species);
    });
    return run;
  }

  private async persist(species: string, alerts: Alert[], at: Date): Promise<LiveEvents> {
    const events = noEvents();
    // The species' backlog goes first, so its incidents open and close in arrival order.
    if (this.queue.some((entry) => entry.species === species)) {
      const drained = await this.flushSpecies(species, events);
      if (!drained) {
        events.alerts.push(...this.enqueue(species, alerts, at));
        return events;
      }
    }
    try {
      if (alerts.length > 0) {
        const record = await this.store.recordStreamAlerts(species, alerts, at);
        events.alerts.push(...record.stored);
        if (record.opened) events.incidentEvents.push({ event: 'opened', incident: record.incident });
      } else {
        const closed = await this.store.closeOpenIncident(species, at);
        if (closed) events.incidentEvents.push({ event: 'closed', incident: closed });
      }
      this.markStoreUp();
    } catch (error) {
      if (!(error instanceof StoreUnavailableError)) throw error;
      this.markStoreDown(error);
      events.alerts.push(...this.enqueue(species, alerts, at));
    }
    return events;
  }

  /** Queues a reading's outcome while the store is down; returns the alerts with local ids for broadcast. */
  private enqueue(species: string, alerts: Alert[], at: Date): StoredAlert[] {
    if (alerts.length === 0) {
      // A compliant reading only matters once per species between alert readings: it closes the incident.
      const last = this.queue.findLast((entry) => entry.species === species);
      if (last?.kind !== 'compliant') {
        this.queue.push({ kind: 'compliant', species, at });
        this.queuedCompliant++;
      }
      this.trimQueue();
      this.scheduleRetry();
      return [];
    }
    const stored: StoredAlert[] = alerts.map((alert) => ({
      ...alert,
      id: randomUUID(),
      source: 'stream',
      batch_id: null,
      incident_id: null,
      created_at: at.toISOString(),
    }));
    this.queue.push({ kind: 'alerts', species, at, alerts: [...stored] });
    this.queuedAlerts += stored.length;
    this.trimQueue();
    this.scheduleRetry();
    return stored;
  }

  /** Keeps at most maxPending queued items (alerts and compliant readings), dropping the oldest. */
  private trimQueue(): void {
    let droppedAlerts = 0;
    let droppedReadings = 0;
    while (this.queuedAlerts + this.queuedCompliant > this.maxPending) {
      const oldest = this.queue[0];
      if (oldest === undefined) break;
      if (oldest.kind === 'compliant') {
        this.queue.shift();
        this.queuedCompliant--;
        droppedReadings++;
        continue;
      }
      oldest.alerts.shift();
      this.queuedAlerts--;
      droppedAlerts++;
      if (oldest.alerts.length === 0) this.queue.shift();
    }
    if (droppedAlerts > 0 || droppedReadings > 0) {
      this.logger.warn(
        {
          dropped_alerts: droppedAlerts,
          dropped_compliant_readings: droppedReadings,
          max_pending: this.maxPending,
        },
        'store unavailable and the live alert queue is full: oldest queued alerts dropped',
      );
    }
  }

  /**
   * Stores the species' queued readings in order. Returns true when its backlog is empty, false when the store
   * is still down. Incident changes are added to `events`.
   */
  private async flushSpecies(species: string, events: LiveEvents): Promise<boolean> {
    for (;;) {
      const entry = this.queue.find((queued) => queued.species === species);
      if (entry === undefined) return true;
      try {
        if (entry.kind === 'alerts') {
          const record = await this.store.recordStreamAlerts(species, [...entry.alerts], entry.at);
          if (record.opened) events.incidentEvents.push({ event: 'opened', incident: record.incident });
        } else {
          const closed = await this.store.closeOpenIncident(species, entry.at);
          if (closed) events.incidentEvents.push({ event: 'closed', incident: closed });
        }
      } catch (error) {
        if (error instanceof StoreUnavailableError) return false;
        // Retrying a failure that is not an outage would block the species' queue forever.
        this.logger.error({ err: error, species }, 'queued live alerts could not be stored: dropped');
      }
      this.removeQueued(entry);
    }
  }

  private removeQueued(entry: QueuedReading): void {
    const index = this.queue.indexOf(entry);
    if (index < 0) return; // dropped by trimQueue meanwhile
    this.queue.splice(index, 1);
    if (entry.kind === 'alerts') this.queuedAlerts -= entry.alerts.length;
    else this.queuedCompliant--;
  }

  private scheduleRetry(): void {
    if (this.retryTimer !== undefined || this.closed || this.queue.length === 0) return;
    this.retryTimer = setTimeout(() => {
      this.retryTimer = undefined;
      void this.flushAll();
    }, this.retryMs);
    this.retryTimer.unref();
  }

  /** Background retry: stores every species' backlog (each on its species' chain), then re-arms if needed. */
  private async flushAll(): Promise<void> {
    const species = [...new Set(this.queue.map((entry) => entry.species))];
    await Promise.all(
      species.map((name) =>
        this.serialise(name, async () => {
          const events = noEvents();
          const drained = await this.flushSpecies(name, events);
          if (drained) this.markStoreUp();
          if (events.incidentEvents.length > 0) this.onFlushed?.(events);
        }).catch((error: unknown) => {
          this.logger.error({ err: error, species: name }, 'storing queued live alerts failed');
        }),
      ),
    );
    this.scheduleRetry();
  }

  private markStoreDown(error: StoreUnavailableError): void {
    if (this.storeDown) return;
    this.storeDown = true;
    this.logger.warn({ err: error.cause }, 'store unavailable: live alerts are queued until it is back');
  }

  private markStoreUp(): void {
    if (!this.storeDown || this.queue.length > 0) return;
    this.storeDown = false;
    this.logger.info('store available again: queued live alerts stored');
  }
}
