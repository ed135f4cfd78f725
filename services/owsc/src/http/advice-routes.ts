// POST /api/advise (spec §3.5, §3.6): remediation advice per alert from the active permit's actions and the
// catalogue, or from the hosted provider when configured (any failure falls back to the catalogue).
import type { FastifyInstance } from 'fastify';
import {
  type AlertInput,
  adviseAlerts,
  CATALOGUE_RATIONALE,
  httpAdviceResponse,
  withHostedActions,
} from '../domain/remediation.js';
import type { OwscContext } from './context.js';
import { detailError, type ValidationIssue, validationError } from './conventions.js';

/** Most alerts one request may carry (spec §3.5). */
export const MAX_ADVISE_ALERTS = 10_000;
const MAX_SITE_CHARS = 200;

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** The alerts and site of the body, or every problem as a 422; more than 10,000 alerts → 413. */
function adviseBody(body: unknown): { alerts: AlertInput[]; site: string | undefined } {
  if (!isObject(body)) {
    throw validationError([{ loc: ['body'], msg: 'value is not a valid dict', type: 'type_error.dict' }]);
  }
  const issues: ValidationIssue[] = [];
  const alerts = body.alerts ?? [];
  if (!Array.isArray(alerts)) {
    issues.push({ loc: ['body', 'alerts'], msg: 'value is not a valid list', type: 'type_error.list' });
  } else {
    alerts.forEach((alert, index) => {
      if (!isObject(alert)) {
        issues.push({
          loc: ['body', 'alerts', index],
          msg: 'value is not a valid dict',
          type: 'type_error.dict',
        });
      }
    });
  }
  const site = body.site ?? undefined;
  if (site !== undefined && typeof site !== 'string') {
    issues.push({ loc: ['body', 'site'], msg: 'str type expected', type: 'type_error.str' });
  } else if (typeof site === 'string' && site.length > MAX_SITE_CHARS) {
    issues.push({
      loc: ['body', 'site'],
      msg: `ensure this value has at most ${MAX_SITE_CHARS} characters`,
      type: 'value_error.any_str.max_length',
      ctx: { limit_value: MAX_SITE_CHARS },
    });
  }
  // A list too long to be worth checking item by item is refused as too large first.
  if (Array.isArray(alerts) && alerts.length > MAX_ADVISE_ALERTS) {
    throw detailError(413, `too many alerts: more than ${MAX_ADVISE_ALERTS}`);
  }
  if (issues.length > 0) throw validationError(issues.slice(0, 20));
  return { alerts: alerts as AlertInput[], site: site as string | undefined };
}

/** POST /api/advise. */
export function registerAdviceRoutes(app: FastifyInstance, context: OwscContext): void {
  app.post('/api/advise', async (request) => {
    const { alerts, site } = adviseBody(request.body);
    const advice = adviseAlerts(alerts, context.config.permit);
    if (context.adviceProvider !== null && alerts.length > 0) {
      const hosted = await context.adviceProvider.advise(alerts, site);
      if (hosted !== null) {
        return httpAdviceResponse(withHostedActions(advice, hosted.actions), 'openai', hosted.rationale);
      }
    }
    return httpAdviceResponse(advice, 'catalogue', CATALOGUE_RATIONALE);
  });
}
