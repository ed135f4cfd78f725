// Optional hosted advice (spec §3.6, `OW_SC_ADVICE_PROVIDER=openai`): an OpenAI-compatible chat-completions
// endpoint is asked for one action per alert. Only sanitised alert fields leave the process (species ≤ 64
// characters, numbers, known enums; at most 128 alerts). Every failure — network, timeout, status, invalid
// answer, open breaker — yields null and the caller falls back to the catalogue.
import { createHash } from 'node:crypto';
import type { Logger } from '@quintet/kernel/log';
import canonicalize from 'canonicalize';
import { type AlertInput, alertLevel, alertSpecies } from './remediation.js';
import type { AlertLevel } from './types.js';

export interface AdviceCache {
  get(key: string): Promise<string | undefined>;
  set(key: string, value: string): Promise<void>;
}

export interface HostedAdvice {
  /** one action per alert sent (the first MAX_HOSTED_ALERTS alerts), in input order */
  actions: string[];
  rationale: string;
}

export interface OpenAiAdviceOptions {
  apiKey: string;
  /** e.g. `https://api.openai.com/v1`; `/chat/completions` is appended */
  baseUrl: string;
  model: string;
  cache?: AdviceCache;
  /** per attempt (default 30 s) */
  timeoutMs?: number;
  /** attempts after the first one (default 3) */
  retries?: number;
  /** first backoff delay, doubled per retry (default 250 ms) */
  backoffMs?: number;
  fetchImpl?: typeof fetch;
  logger?: Logger;
  now?: () => number;
}

export const DEFAULT_OPENAI_BASE_URL = 'https://api.openai.com/v1';
export const DEFAULT_OPENAI_MODEL = 'gpt-4o-mini';
export const MAX_HOSTED_ALERTS = 128;
const MAX_SPECIES_CHARS = 64;
const MAX_SITE_CHARS = 128;
const MAX_ACTION_CHARS = 1000;
const MAX_RATIONALE_CHARS = 4000;
const BREAKER_FAILURES = 5;
const BREAKER_WINDOW_MS = 60_000;
const ALERT_TYPES = new Set(['exceedance', 'trend', 'daily_maximum', 'monthly_average']);

interface SanitisedAlert {
  species: string;
  level: AlertLevel;
  type: string | null;
  value: number | null;
  limit: number | null;
  ratio: number | null;
}

function finiteOrNull(value: unknown): number | null {
  return typeof value === 'number' && Number.isFinite(value) ? value : null;
}

/** Strips control characters and truncates: free text from a CSV must not steer the prompt. */
function cleanText(text: string, maxChars: number): string {
  // biome-ignore lint/suspicious/noControlCharactersInRegex: control characters are what is removed
  return [...text.replace(/[\u0000-\u001f\u007f]/g, ' ')].slice(0, maxChars).join('');
}

/** The fields of an alert that may be sent to a hosted provider. */
export function sanitiseAlert(alert: AlertInput): SanitisedAlert {
  const record = alert as Record<string, unknown>;
  const type = typeof record.type === 'string' && ALERT_TYPES.has(record.type) ? record.type : null;
  return {
    species: cleanText(alertSpecies(alert), MAX_SPECIES_CHARS),
    level: alertLevel(alert),
    type,
    value: finiteOrNull(record.value),
    limit: finiteOrNull(record.limit),
    ratio: finiteOrNull(record.ratio),
  };
}

const SYSTEM_PROMPT =
  'You advise operators of an industrial effluent treatment plant. For each permit alert given as JSON, ' +
  'recommend one concise, practical treatment action. Answer with a JSON object ' +
  '{"actions": [one string per alert, in the same order], "rationale": "<one short paragraph>"} and nothing else.';

class AttemptFailure extends Error {
  constructor(
    message: string,
    readonly retryable: boolean,
  ) {
    super(message);
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Validates a chat-completions answer: the message content must be the JSON object asked for. */
export function parseHostedAnswer(body: unknown, expectedActions: number): HostedAdvice | null {
  const choices = (body as { choices?: unknown } | null)?.choices;
  if (!Array.isArray(choices)) return null;
  const content = (choices[0] as { message?: { content?: unknown } } | undefined)?.message?.content;
  if (typeof content !== 'string') return null;
  let answer: unknown;
  try {
    answer = JSON.parse(content);
  } catch {
    return null;
  }
  return validateHostedAdvice(answer, expectedActions);
}

function validateHostedAdvice(answer: unknown, expectedActions: number): HostedAdvice | null {
  if (typeof answer !== 'object' || answer === null) return null;
  const { actions, rationale } = answer as { actions?: unknown; rationale?: unknown };
  if (!Array.isArray(actions) || actions.length !== expectedActions || typeof rationale !== 'string')
    return null;
  const cleaned: string[] = [];
  for (const action of actions) {
    if (typeof action !== 'string' || action.trim() === '' || action.length > MAX_ACTION_CHARS) return null;
    cleaned.push(action.trim());
  }
  if (rationale.length > MAX_RATIONALE_CHARS) return null;
  return { actions: cleaned, rationale: rationale.trim() };
}

export class OpenAiAdviceProvider {
  private readonly fetchImpl: typeof fetch;
  private readonly now: () => number;
  private readonly timeoutMs: number;
  private readonly retries: number;
  private readonly backoffMs: number;
  private failures: number[] = [];
  private openUntil = 0;

  constructor(private readonly options: OpenAiAdviceOptions) {
    this.fetchImpl = options.fetchImpl ?? fetch;
    this.now = options.now ?? Date.now;
    this.timeoutMs = options.timeoutMs ?? 30_000;
    this.retries = options.retries ?? 3;
    this.backoffMs = options.backoffMs ?? 250;
  }

  /** True while the breaker refuses to send requests (5 failed requests within 60 s opens it for 60 s). */
  get breakerOpen(): boolean {
    return this.now() < this.openUntil;
  }

  /** Hosted actions for the alerts (the first 128), or null to fall back to the catalogue. */
  async advise(alerts: readonly AlertInput[], site?: string): Promise<HostedAdvice | null> {
    const sent = alerts.slice(0, MAX_HOSTED_ALERTS).map(sanitiseAlert);
    if (sent.length === 0) return null;
    const request = {
      model: this.options.model,
      temperature: 0,
      response_format: { type: 'json_object' },
      messages: [
        { role: 'system', content: SYSTEM_PROMPT },
        {
          role: 'user',
          content: JSON.stringify({
            site: site === undefined ? null : cleanText(site, MAX_SITE_CHARS),
            alerts: sent,
          }),
        },
      ],
    };
    const body = canonicalize(request) as string;
    const key = createHash('sha256').update(body).digest('hex');
    const cached = await this.readCache(key, sent.length);
    if (cached) return cached;

    for (let attempt = 0; attempt <= this.retries; attempt++) {
      if (this.breakerOpen) {
        this.options.logger?.warn({ event: 'advice_breaker_open' }, 'hosted advice skipped: breaker open');
        return null;
      }
      try {
        const advice = await this.attempt(body, sent.length);
        this.failures = [];
        await this.writeCache(key, advice);
        return advice;
      } catch (error) {
        this.recordFailure();
        const failure = error instanceof AttemptFailure ? error : new AttemptFailure(String(error), true);
        this.options.logger?.warn(
          { event: 'advice_request_failed', attempt: attempt + 1, reason: failure.message },
          'hosted advice request failed',
        );
        if (!failure.retryable || attempt === this.retries) return null;
        await sleep(this.backoffMs * 2 ** attempt);
      }
    }
    return null;
  }

  private async attempt(body: string, expectedActions: number): Promise<HostedAdvice> {
    const url = `${this.options.baseUrl.replace(/\/+$/, '')}/chat/completions`;
    let response: Response;
    let text: string;
    try {
      response = await this.fetchImpl(url, {
        method: 'POST',
        headers: { authorization: `Bearer ${this.options.apiKey}`, 'content-type': 'application/json' },
        body,
        signal: AbortSignal.timeout(this.timeoutMs),
      });
      text = await response.text();
    } catch (error) {
      const timedOut =
        error instanceof Error && (error.name === 'TimeoutError' || error.name === 'AbortError');
      throw new AttemptFailure(timedOut ? `timed out after ${this.timeoutMs} ms` : 'connection failed', true);
    }
    if (!response.ok) {
      // Throttling and server errors may pass; other statuses (bad key, bad request) will not.
      throw new AttemptFailure(
        `status ${response.status}`,
        response.status === 429 || response.status >= 500,
      );
    }
    let parsed: unknown;
    try {
      parsed = JSON.parse(text);
    } catch {
      throw new AttemptFailure('response is not JSON', false);
    }
    const advice = parseHostedAnswer(parsed, expectedActions);
    if (!advice) throw new AttemptFailure('answer does not have the expected shape', false);
    return advice;
  }

  private recordFailure(): void {
    const now = this.now();
    this.failures = this.failures.filter((at) => now - at < BREAKER_WINDOW_MS);
    this.failures.push(now);
    if (this.failures.length >= BREAKER_FAILURES) {
      this.openUntil = now + BREAKER_WINDOW_MS;
      this.failures = [];
      this.options.logger?.warn({ event: 'advice_breaker_opened' }, 'hosted advice breaker opened for 60 s');
    }
  }

  private async readCache(key: string, expectedActions: number): Promise<HostedAdvice | null> {
    if (!this.options.cache) return null;
    try {
      const value = await this.options.cache.get(key);
      return value === undefined ? null : validateHostedAdvice(JSON.parse(value), expectedActions);
    } catch (error) {
      this.options.logger?.warn({ event: 'advice_cache_failed', err: error }, 'advice cache read failed');
      return null;
    }
  }

  private async writeCache(key: string, advice: HostedAdvice): Promise<void> {
    if (!this.options.cache) return;
    try {
      await this.options.cache.set(key, JSON.stringify(advice));
    } catch (error) {
      this.options.logger?.warn({ event: 'advice_cache_failed', err: error }, 'advice cache write failed');
    }
  }
}
