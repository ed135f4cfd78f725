// Stored alerts and stream incidents (spec §3.5): GET /api/alerts, GET /api/incidents, GET /api/incidents/:id
// (with its timeline) and POST /api/incidents/:id/ack, which is broadcast on /ws/alerts.
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { AlreadyAcknowledgedError } from '../domain/store.js';
import { ALERT_LEVELS, type AlertSource } from '../domain/types.js';
import { fromStore, ParamReader, pageParams } from './api-params.js';
import type { OwscContext } from './context.js';
import { detailError, type ValidationIssue, validationError } from './conventions.js';

const SOURCES: readonly AlertSource[] = ['batch', 'stream'];
const STATES = ['open', 'closed'] as const;
const INCIDENT_NOT_FOUND = 'incident not found';
const MAX_BY_CHARS = 100;
const MAX_NOTE_CHARS = 1000;

function queryOf(request: FastifyRequest): ParamReader {
  return new ParamReader(request.query as Record<string, unknown>, 'query');
}

function idOf(request: FastifyRequest): string {
  return (request.params as { id: string }).id;
}

/** Checks a string field of the ack body; returns the issue or null. */
function stringIssue(
  name: string,
  value: unknown,
  options: { required: boolean; max: number },
): ValidationIssue | null {
  if (value === undefined || value === null) {
    return options.required
      ? { loc: ['body', name], msg: 'field required', type: 'value_error.missing' }
      : null;
  }
  if (typeof value !== 'string')
    return { loc: ['body', name], msg: 'str type expected', type: 'type_error.str' };
  if (options.required && value.trim() === '') {
    return {
      loc: ['body', name],
      msg: 'ensure this value has at least 1 characters',
      type: 'value_error.any_str.min_length',
      ctx: { limit_value: 1 },
    };
  }
  if (value.length > options.max) {
    return {
      loc: ['body', name],
      msg: `ensure this value has at most ${options.max} characters`,
      type: 'value_error.any_str.max_length',
      ctx: { limit_value: options.max },
    };
  }
  return null;
}

/** The `by` and `note` of an ack body, or every problem as a 422. */
function ackBody(body: unknown): { by: string; note: string | null } {
  if (typeof body !== 'object' || body === null || Array.isArray(body)) {
    const missing = body === undefined || body === null;
    throw validationError([
      missing
        ? { loc: ['body'], msg: 'field required', type: 'value_error.missing' }
        : { loc: ['body'], msg: 'value is not a valid dict', type: 'type_error.dict' },
    ]);
  }
  const { by, note } = body as { by?: unknown; note?: unknown };
  const issues = [
    stringIssue('by', by, { required: true, max: MAX_BY_CHARS }),
    stringIssue('note', note, { required: false, max: MAX_NOTE_CHARS }),
  ].filter((issue): issue is ValidationIssue => issue !== null);
  if (issues.length > 0) throw validationError(issues);
  return { by: by as string, note: typeof note === 'string' ? note : null };
}

/** GET /api/alerts, GET /api/incidents, GET /api/incidents/:id, POST /api/incidents/:id/ack. */
export function registerIncidentRoutes(app: FastifyInstance, context: OwscContext): void {
  const { store } = context;

  app.get('/api/alerts', async (request) => {
    const query = queryOf(request);
    const source = query.choice('source', SOURCES);
    const species = query.string('species');
    const level = query.choice('level', ALERT_LEVELS);
    const minLevel = query.choice('min_level', ALERT_LEVELS);
    const batchId = query.string('batch_id');
    const incidentId = query.string('incident_id');
    const page = pageParams(query);
    query.done();
    return fromStore(
      store.listAlerts({
        ...page,
        ...(source !== undefined ? { source } : {}),
        ...(species !== undefined ? { species } : {}),
        ...(level !== undefined ? { level } : {}),
        ...(minLevel !== undefined ? { min_level: minLevel } : {}),
        ...(batchId !== undefined ? { batch_id: batchId } : {}),
        ...(incidentId !== undefined ? { incident_id: incidentId } : {}),
      }),
    );
  });

  app.get('/api/incidents', async (request) => {
    const query = queryOf(request);
    const state = query.choice('state', STATES);
    const species = query.string('species');
    const page = pageParams(query);
    query.done();
    return fromStore(
      store.listIncidents({
        ...page,
        ...(state !== undefined ? { state } : {}),
        ...(species !== undefined ? { species } : {}),
      }),
    );
  });

  app.get('/api/incidents/:id', async (request) => {
    const incident = await fromStore(store.getIncident(idOf(request)));
    if (incident === null) throw detailError(404, INCIDENT_NOT_FOUND);
    return incident;
  });

  app.post('/api/incidents/:id/ack', async (request) => {
    // Order of spec §3.5: body 422, then unknown 404, then already acknowledged 409.
    const { by, note } = ackBody(request.body);
    let incident: Awaited<ReturnType<typeof store.acknowledgeIncident>>;
    try {
      incident = await fromStore(store.acknowledgeIncident(idOf(request), by, note));
    } catch (error) {
      if (error instanceof AlreadyAcknowledgedError) throw detailError(409, error.message);
      throw error;
    }
    if (incident === null) throw detailError(404, INCIDENT_NOT_FOUND);
    context.publishAlertEvent({ type: 'incident', event: 'acknowledged', incident });
    return incident;
  });
}
