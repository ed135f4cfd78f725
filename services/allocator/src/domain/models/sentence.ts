// ONNX sentence model for document chunks (spec §3.7, TEXT_EMBEDDING_MODEL): token embeddings mean-pooled over
// the attention mask, then L2-normalised, as sentence-transformers does for models like all-mpnet-base-v2.
import { basename, relative } from 'node:path';
import type * as ort from 'onnxruntime-node';
import {
  checkTextInputs,
  chooseOutput,
  encodeText,
  findOnnxFile,
  floatOutput,
  isRecord,
  l2Normalise,
  loadModelTokenizer,
  type ModelTokenizer,
  openOnnxSession,
  readModelJson,
  staticLastDimension,
  textFeeds,
} from './resolve.js';

const WHAT = 'sentence model directory';

/** Token limit when neither sentence_bert_config.json nor the tokenizer files state one. */
const DEFAULT_MAX_TOKENS = 512;

export interface SentenceModel {
  /** Directory basename, reported as the embedding model. */
  readonly modelId: string;
  /** Size of the embeddings. */
  readonly dimension: number;
  /** L2-normalised mean of the token embeddings of `text`. */
  embed(text: string): Promise<Float32Array>;
  close(): Promise<void>;
}

/** ONNX sentence model dir (onnx/model(_quantized).onnx + tokenizer.json): mean pooling over attention_mask, L2-normalised. */
export async function loadSentenceModel(dir: string): Promise<SentenceModel> {
  const file = findOnnxFile(dir, 'model', WHAT);
  const tokenizer = await loadModelTokenizer(dir, WHAT);
  const sentenceConfig = await readModelJson(dir, 'sentence_bert_config.json', WHAT, false);
  const configuredMax = isRecord(sentenceConfig) ? sentenceConfig.max_seq_length : undefined;
  const maxTokens =
    (typeof configuredMax === 'number' && Number.isInteger(configuredMax) && configuredMax > 0
      ? configuredMax
      : null) ??
    tokenizer.truncationLength ??
    tokenizer.modelMaxLength ??
    DEFAULT_MAX_TOKENS;
  const session = await openOnnxSession(file);
  try {
    checkTextInputs(session, relative(dir, file));
    const model = new OnnxSentenceModel(basename(dir), session, tokenizer, maxTokens);
    await model.settleDimension();
    return model;
  } catch (error) {
    await session.release();
    throw new Error(`${WHAT} ${dir}: ${(error as Error).message}`);
  }
}

class OnnxSentenceModel implements SentenceModel {
  #dimension = 0;
  readonly #output: string;

  constructor(
    readonly modelId: string,
    private readonly session: ort.InferenceSession,
    private readonly tokenizer: ModelTokenizer,
    private readonly maxTokens: number,
  ) {
    this.#output = chooseOutput(session, ['last_hidden_state', 'token_embeddings']);
  }

  get dimension(): number {
    return this.#dimension;
  }

  /** Takes the size from the output shape, else from embedding a short text once. */
  async settleDimension(): Promise<void> {
    this.#dimension = staticLastDimension(this.session, this.#output) ?? (await this.#pooled('a')).length;
  }

  async embed(text: string): Promise<Float32Array> {
    const embedding = await this.#pooled(text);
    if (embedding.length !== this.#dimension) {
      throw new Error(`embedding has ${embedding.length} dimensions, expected ${this.#dimension}`);
    }
    return embedding;
  }

  async close(): Promise<void> {
    await this.session.release();
  }

  async #pooled(text: string): Promise<Float32Array> {
    const { ids, mask } = encodeText(this.tokenizer, text, this.maxTokens, this.tokenizer.fixedLength);
    if (ids.length === 0) return new Float32Array(this.#dimension);
    const results = await this.session.run(textFeeds(this.session, ids, mask));
    const { data, dims } = floatOutput(results, this.#output);
    if (dims.length === 2 && dims[0] === 1) return l2Normalise(data); // the graph pooled already
    if (dims.length !== 3 || dims[0] !== 1 || dims[1] !== ids.length) {
      throw new Error(`expected token embeddings shaped [1, ${ids.length}, D], got [${dims.join(', ')}]`);
    }
    return l2Normalise(meanPool(data, ids.length, dims[2] as number, mask));
  }
}

/** Mean of the rows of a [tokens × width] matrix whose mask entry is 1. */
function meanPool(
  hidden: Float32Array,
  tokens: number,
  width: number,
  mask: readonly number[],
): Float32Array {
  const sum = new Float64Array(width);
  let count = 0;
  for (let t = 0; t < tokens; t++) {
    if (mask[t] !== 1) continue;
    count++;
    const offset = t * width;
    for (let d = 0; d < width; d++) sum[d] = (sum[d] as number) + (hidden[offset + d] as number);
  }
  const mean = new Float32Array(width);
  // The reference clamps the token count at 1e-9, which leaves an all-masked input at zero.
  const divisor = Math.max(count, 1e-9);
  for (let d = 0; d < width; d++) mean[d] = (sum[d] as number) / divisor;
  return mean;
}
