// Gemini REST client for image labels (spec §3.6.7, "VLM call"): one generateContent request per image,
// a timeout per attempt, one retry on network errors/timeouts/429/5xx, and a circuit breaker in front.
import { setTimeout as delay } from 'node:timers/promises';
import { CircuitBreaker, type CircuitState } from './circuit-breaker.js';

export interface VlmLabels {
  primaryCategory: string;
  tags: string[];
  description: string;
  detectedObjects: { name: string; confidence: number }[];
  sceneType: string;
  colorPalette: string[];
  suggestedClusterName: string | null;
}

export interface GeminiClientOptions {
  apiKey: string;
  model: string;
  /** e.g. `https://generativelanguage.googleapis.com` (a trailing slash is tolerated). */
  baseUrl: string;
  /** Limit of one attempt, response body included (ms). */
  timeoutMs: number;
  /** Pause before the single retry (ms); default 500. */
  retryDelayMs?: number;
  /** Default: opens after 5 consecutive failures for 60 s. */
  breaker?: CircuitBreaker;
  fetchImpl?: typeof fetch;
}

export type VlmOutcome =
  | { ok: true; labels: VlmLabels; elapsedMs: number }
  | { ok: false; reason: 'error' | 'circuit_open'; error: string; elapsedMs: number };

export const IMAGE_PROMPT = `Analyze this image and describe it for a media library that files similar images together.
Answer with one JSON object only, no markdown, with exactly these fields:
{
  "primary_category": "one lower-case word or short phrase for the main subject, e.g. animal, person, vehicle, nature, food, building, object, abstract, landscape, indoor scene",
  "tags": ["5 to 15 short lower-case descriptive tags"],
  "description": "one or two sentences describing the image",
  "detected_objects": [{"name": "object name", "confidence": 0.0}],
  "scene_type": "indoor, outdoor, studio, screenshot, document or unknown",
  "color_palette": ["3 to 5 dominant colours as hex codes like #1a2b3c"],
  "suggested_cluster_name": "a short title-case name for a folder of similar images"
}
Confidence values are numbers between 0 and 1.`;

const VIDEO_NOTE = '\nThe image is a keyframe taken from a video; describe the video it comes from.';

const DEFAULT_RETRY_DELAY_MS = 500;
const MAX_TAGS = 15;
const MAX_PALETTE = 5;
const MIN_PALETTE = 3;
const PALETTE_PADDING = '#808080';

/** An attempt's failure, and whether the spec allows retrying it (network, timeout, 429, 5xx). */
class AttemptError extends Error {
  constructor(
    message: string,
    readonly retryable: boolean,
  ) {
    super(message);
  }
}

/** Talks to the Gemini `generateContent` endpoint and turns its answer into normalised labels. */
export class GeminiClient {
  readonly #apiKey: string;
  readonly #url: string;
  readonly #timeoutMs: number;
  readonly #retryDelayMs: number;
  readonly #breaker: CircuitBreaker;
  readonly #fetch: typeof fetch;

  constructor(options: GeminiClientOptions) {
    this.#apiKey = options.apiKey;
    this.#url = `${options.baseUrl.replace(/\/+$/, '')}/v1beta/models/${encodeURIComponent(options.model)}:generateContent`;
    this.#timeoutMs = options.timeoutMs;
    this.#retryDelayMs = options.retryDelayMs ?? DEFAULT_RETRY_DELAY_MS;
    this.#breaker = options.breaker ?? new CircuitBreaker({ failureThreshold: 5, openMs: 60_000 });
    const fetchImpl = options.fetchImpl ?? fetch;
    // Called through a wrapper so the implementation never sees this client as its receiver.
    this.#fetch = (input, init) => fetchImpl(input, init);
  }

  get circuitState(): CircuitState {
    return this.#breaker.state;
  }

  /** Labels one JPEG (for a video: its first keyframe); never throws, failures come back as an outcome. */
  async labelImage(jpeg: Buffer, kind: 'image' | 'video'): Promise<VlmOutcome> {
    const startedAt = performance.now();
    const elapsed = (): number => Math.round(performance.now() - startedAt);
    if (!this.#breaker.allowRequest()) {
      return {
        ok: false,
        reason: 'circuit_open',
        error: 'Gemini circuit breaker is open',
        elapsedMs: elapsed(),
      };
    }
    const body = JSON.stringify(requestBody(jpeg, kind));
    let lastError = '';
    for (let attempt = 1; attempt <= 2; attempt += 1) {
      try {
        const labels = await this.#attempt(body);
        this.#breaker.recordSuccess();
        return { ok: true, labels, elapsedMs: elapsed() };
      } catch (error) {
        lastError = this.#redact(error instanceof Error ? error.message : String(error));
        const retryable = error instanceof AttemptError && error.retryable;
        if (!retryable || attempt === 2) break;
        await delay(this.#retryDelayMs);
      }
    }
    this.#breaker.recordFailure();
    return { ok: false, reason: 'error', error: lastError, elapsedMs: elapsed() };
  }

  async #attempt(body: string): Promise<VlmLabels> {
    const signal = AbortSignal.timeout(this.#timeoutMs);
    let text: string;
    let status: number;
    try {
      const response = await this.#fetch(this.#url, {
        method: 'POST',
        headers: { 'content-type': 'application/json', 'x-goog-api-key': this.#apiKey },
        body,
        signal,
      });
      status = response.status;
      text = await response.text();
    } catch (error) {
      if (signal.aborted)
        throw new AttemptError(`Gemini request timed out after ${this.#timeoutMs} ms`, true);
      throw new AttemptError(`Gemini request failed: ${networkErrorText(error)}`, true);
    }
    if (status < 200 || status > 299) {
      const retryable = status === 429 || status >= 500;
      const detail = apiErrorMessage(text);
      throw new AttemptError(`Gemini API answered HTTP ${status}${detail ? `: ${detail}` : ''}`, retryable);
    }
    return parseGenerateContentResponse(text);
  }

  // Error texts end up in logs and metadata; the key must never travel with them.
  #redact(message: string): string {
    return this.#apiKey ? message.split(this.#apiKey).join('[redacted]') : message;
  }
}

function requestBody(jpeg: Buffer, kind: 'image' | 'video'): unknown {
  return {
    contents: [
      {
        role: 'user',
        parts: [
          { text: kind === 'video' ? IMAGE_PROMPT + VIDEO_NOTE : IMAGE_PROMPT },
          { inline_data: { mime_type: 'image/jpeg', data: jpeg.toString('base64') } },
        ],
      },
    ],
    generationConfig: {
      temperature: 0.3,
      topP: 0.95,
      topK: 40,
      maxOutputTokens: 2048,
      responseMimeType: 'application/json',
    },
  };
}

function networkErrorText(error: unknown): string {
  const cause = (error as { cause?: { code?: unknown; message?: unknown } } | null)?.cause;
  if (typeof cause?.code === 'string') return cause.code;
  if (typeof cause?.message === 'string') return cause.message;
  return error instanceof Error ? error.message : String(error);
}

/** The `error.message` of a Google API error body, shortened; '' when there is none. */
function apiErrorMessage(text: string): string {
  try {
    const parsed = JSON.parse(text) as { error?: { message?: unknown } };
    const message = parsed?.error?.message;
    return typeof message === 'string' ? message.slice(0, 200) : '';
  } catch {
    return '';
  }
}

function parseGenerateContentResponse(text: string): VlmLabels {
  let envelope: unknown;
  try {
    envelope = JSON.parse(text);
  } catch {
    throw new AttemptError('Gemini response is not valid JSON', false);
  }
  const answerText = (envelope as { candidates?: { content?: { parts?: { text?: unknown }[] } }[] } | null)
    ?.candidates?.[0]?.content?.parts?.[0]?.text;
  if (typeof answerText !== 'string') throw new AttemptError('Gemini response has no answer text', false);
  let answer: unknown;
  try {
    answer = JSON.parse(stripCodeFence(answerText));
  } catch (error) {
    throw new AttemptError(`Gemini answer is not valid JSON: ${(error as Error).message}`, false);
  }
  if (Array.isArray(answer) && answer.length === 1) answer = answer[0];
  if (answer === null || typeof answer !== 'object' || Array.isArray(answer)) {
    throw new AttemptError('Gemini answer is not a JSON object', false);
  }
  return normaliseVlmAnswer(answer);
}

// Models sometimes wrap JSON in a markdown fence even when asked not to.
function stripCodeFence(text: string): string {
  const trimmed = text.trim();
  const fenced = /^```[A-Za-z]*\s*\n?([\s\S]*?)\n?\s*```$/.exec(trimmed);
  return fenced ? (fenced[1] ?? '') : trimmed;
}

/** Normalises a parsed answer: defaults for missing fields, invalid palette entries dropped and padded to 3 greys, ≤ 15 tags. */
export function normaliseVlmAnswer(answer: unknown): VlmLabels {
  const record =
    answer !== null && typeof answer === 'object' && !Array.isArray(answer)
      ? (answer as Record<string, unknown>)
      : {};
  const field = (snake: string, camel: string): unknown => record[snake] ?? record[camel];

  const primaryCategory = nonEmptyString(field('primary_category', 'primaryCategory')) ?? 'unknown';
  const tags = uniqueStrings(field('tags', 'tags')).slice(0, MAX_TAGS);
  const palette = uniqueStrings(field('color_palette', 'colorPalette'))
    .map(normaliseHexColour)
    .filter((colour): colour is string => colour !== null)
    .slice(0, MAX_PALETTE);
  while (palette.length < MIN_PALETTE) palette.push(PALETTE_PADDING);

  return {
    primaryCategory,
    tags: tags.length > 0 ? tags : [primaryCategory, 'content'],
    description: nonEmptyString(field('description', 'description')) ?? '',
    detectedObjects: detectedObjects(field('detected_objects', 'detectedObjects')),
    sceneType: nonEmptyString(field('scene_type', 'sceneType')) ?? 'unknown',
    colorPalette: palette,
    suggestedClusterName: nonEmptyString(field('suggested_cluster_name', 'suggestedClusterName')),
  };
}

function nonEmptyString(value: unknown): string | null {
  if (typeof value !== 'string') return null;
  const trimmed = value.trim();
  return trimmed === '' ? null : trimmed;
}

function uniqueStrings(value: unknown): string[] {
  if (!Array.isArray(value)) return [];
  const seen = new Set<string>();
  for (const item of value) {
    const text = nonEmptyString(item);
    if (text !== null) seen.add(text);
  }
  return [...seen];
}

/** `#rgb` / `#rrggbb` (any case) → lower-case `#rrggbb`; anything else → null. */
function normaliseHexColour(value: string): string | null {
  const match = /^#([0-9a-f]{3}|[0-9a-f]{6})$/i.exec(value);
  if (!match?.[1]) return null;
  const hex = match[1].toLowerCase();
  return hex.length === 3 ? `#${[...hex].map((digit) => digit + digit).join('')}` : `#${hex}`;
}

function detectedObjects(value: unknown): { name: string; confidence: number }[] {
  if (!Array.isArray(value)) return [];
  const objects: { name: string; confidence: number }[] = [];
  for (const item of value) {
    if (item === null || typeof item !== 'object') continue;
    const entry = item as Record<string, unknown>;
    const name = nonEmptyString(entry.name);
    if (name === null) continue;
    const raw = typeof entry.confidence === 'string' ? Number(entry.confidence) : entry.confidence;
    const confidence = typeof raw === 'number' && Number.isFinite(raw) ? Math.min(1, Math.max(0, raw)) : 0;
    objects.push({ name, confidence });
  }
  return objects;
}
