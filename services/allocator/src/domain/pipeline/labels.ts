// Labels of a media asset (spec §3.6.7): the Gemini VLM when enabled with a key, else — or when it fails or
// its circuit is open, if VLM_FALLBACK_TO_CLIP — the offline fallback (CLIP zero-shot category when a CLIP
// model is loaded, heuristic colour/brightness/shape tags always). VLM_ENABLED=false → no labels.
import type { AllocatorRuntime } from '../../runtime.js';
import { CircuitBreaker, type CircuitState } from '../labels/circuit-breaker.js';
import { GeminiClient, type VlmLabels } from '../labels/gemini.js';
import { heuristicLabels, type MediaKind } from '../media/heuristic-labels.js';
import type { AnalysedImage } from '../media/image.js';

export interface AssetLabels {
  tags: string[];
  suggestedClusterName: string | null;
  /** the `vlm_*` metadata keys */
  metadata: Record<string, unknown>;
  /** category, scene type and description: the `labels` search field */
  searchText: string;
}

const KIND_PLURAL: Record<MediaKind, string> = { image: 'Images', video: 'Videos', audio: 'Audio' };

function capitalise(text: string): string {
  return text.length === 0 ? text : text[0]?.toUpperCase() + text.slice(1);
}

export class MediaLabeller {
  readonly #runtime: AllocatorRuntime;
  readonly #client: GeminiClient | null;
  readonly #breaker = new CircuitBreaker({ failureThreshold: 5, openMs: 60_000 });

  constructor(runtime: AllocatorRuntime) {
    this.#runtime = runtime;
    const { config } = runtime;
    this.#client =
      config.vlmEnabled && config.geminiApiKey !== ''
        ? new GeminiClient({
            apiKey: config.geminiApiKey,
            model: config.geminiModel,
            baseUrl: config.geminiBaseUrl,
            timeoutMs: config.vlmTimeoutMs,
            breaker: this.#breaker,
          })
        : null;
  }

  /** `/health.vlm` */
  get status(): {
    enabled: boolean;
    provider: 'gemini' | null;
    model: string | null;
    circuit: CircuitState;
    fallback: boolean;
  } {
    const { config } = this.#runtime;
    return {
      enabled: config.vlmEnabled,
      provider: this.#client === null ? null : 'gemini',
      model: this.#client === null ? null : config.geminiModel,
      circuit: this.#breaker.state,
      fallback: config.vlmFallbackToClip,
    };
  }

  async label(input: {
    kind: MediaKind;
    image: AnalysedImage;
    embedding: Float32Array;
    ocrWordCount: number;
  }): Promise<AssetLabels | null> {
    const { config, metrics } = this.#runtime;
    if (!config.vlmEnabled) return null;
    let fallbackReason: 'no_key' | 'error' | 'circuit_open' = 'no_key';
    let vlmError: string | null = null;
    if (this.#client !== null && input.kind !== 'audio') {
      const outcome = await this.#client.labelImage(Buffer.from(input.image.normalisedJpeg), input.kind);
      if (outcome.ok) {
        metrics.vlmRequests.inc({ status: 'success' });
        return this.#fromVlm(outcome.labels, config.geminiModel, outcome.elapsedMs);
      }
      if (outcome.reason === 'error') metrics.vlmRequests.inc({ status: 'failure' });
      fallbackReason = outcome.reason;
      vlmError = outcome.error;
      if (!config.vlmFallbackToClip)
        return { tags: [], suggestedClusterName: null, metadata: { vlm_error: vlmError }, searchText: '' };
    }
    metrics.vlmFallback.inc({ reason: fallbackReason });
    const started = performance.now();
    const heuristic = heuristicLabels(input.image.small, {
      width: input.image.width,
      height: input.image.height,
      kind: input.kind,
      ocrWordCount: input.ocrWordCount,
    });
    const clipCategory =
      input.kind === 'audio' ? null : await this.#runtime.mediaEmbedder.zeroShotCategory(input.embedding);
    const primary = clipCategory ?? heuristic.primaryCategory;
    const suggested =
      clipCategory === null
        ? heuristic.suggestedClusterName
        : `${capitalise(clipCategory)} ${KIND_PLURAL[input.kind]}`;
    const metadata: Record<string, unknown> = {
      vlm_primary_category: primary,
      vlm_tags: heuristic.tags,
      vlm_description: heuristic.description,
      vlm_detected_objects: [],
      vlm_scene_type: heuristic.sceneType,
      vlm_color_palette: input.image.dominantColors.slice(0, 5),
      vlm_suggested_cluster_name: suggested,
      vlm_model: clipCategory === null ? 'heuristic-fallback' : 'clip-fallback',
      vlm_fallback_used: true,
      vlm_processing_time_ms: Math.round((performance.now() - started) * 100) / 100,
      ...(vlmError === null ? {} : { vlm_error: vlmError }),
    };
    return {
      tags: heuristic.tags,
      suggestedClusterName: suggested,
      metadata,
      searchText: [primary, heuristic.sceneType, heuristic.description].join(' '),
    };
  }

  #fromVlm(labels: VlmLabels, model: string, elapsedMs: number): AssetLabels {
    return {
      tags: labels.tags,
      suggestedClusterName: labels.suggestedClusterName,
      metadata: {
        vlm_primary_category: labels.primaryCategory,
        vlm_tags: labels.tags,
        vlm_description: labels.description,
        vlm_detected_objects: labels.detectedObjects,
        vlm_scene_type: labels.sceneType,
        vlm_color_palette: labels.colorPalette,
        vlm_suggested_cluster_name: labels.suggestedClusterName,
        vlm_model: model,
        vlm_fallback_used: false,
        vlm_processing_time_ms: Math.round(elapsedMs * 100) / 100,
      },
      searchText: [labels.primaryCategory, labels.sceneType, labels.description].join(' '),
    };
  }
}
