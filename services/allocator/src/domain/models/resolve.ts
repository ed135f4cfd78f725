// Where a configured model lives (spec §3.3 EMBEDDING_MODEL / TEXT_EMBEDDING_MODEL, §3.6.3), and what the ONNX
// image and sentence models share: finding their files, opening sessions, tokenising to the inputs a graph
// declares, normalising outputs. Nothing here downloads anything: a model is a directory on disk.
import { statSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { isAbsolute, join, resolve } from 'node:path';
import type { Tokenizer } from '@huggingface/tokenizers';
import type * as Ort from 'onnxruntime-node';

// onnxruntime-node is a large native library (tens of MB resident once loaded): with the built-in embedders it
// is never needed, so it is loaded when the first model is opened, not at start-up.
let onnxRuntime: typeof Ort | undefined;

async function loadOnnxRuntime(): Promise<typeof Ort> {
  onnxRuntime ??= await import('onnxruntime-node');
  return onnxRuntime;
}

/** The runtime of the sessions opened so far (tensors are only built for an open session). */
export function loadedOnnxRuntime(): typeof Ort {
  if (onnxRuntime === undefined) throw new Error('onnxruntime-node is loaded by openOnnxSession first');
  return onnxRuntime;
}

/** Values of EMBEDDING_MODEL / TEXT_EMBEDDING_MODEL that select the built-in embedders. */
const BUILTIN_VALUES = new Set(['builtin', 'builtin-visual-v1', 'builtin-hash-v1']);

/** EMBEDDING_MODEL / TEXT_EMBEDDING_MODEL value → 'builtin' or a directory: a path that exists, else MODELS_DIR/<id>; null dir when missing (with the reason). */
export function resolveModelDirectory(
  value: string,
  modelsDir: string,
): { kind: 'builtin' } | { kind: 'directory'; dir: string } | { kind: 'missing'; reason: string } {
  const trimmed = value.trim();
  if (trimmed === '') return { kind: 'missing', reason: 'no model configured (empty value)' };
  if (BUILTIN_VALUES.has(trimmed.toLowerCase())) return { kind: 'builtin' };
  const candidates = [resolve(trimmed)];
  if (!isAbsolute(trimmed)) candidates.push(resolve(modelsDir, trimmed));
  const problems: string[] = [];
  for (const candidate of candidates) {
    const kind = entryKind(candidate);
    if (kind === 'directory') return { kind: 'directory', dir: candidate };
    problems.push(kind === 'missing' ? `${candidate} does not exist` : `${candidate} is not a directory`);
  }
  return { kind: 'missing', reason: `model directory not found for "${trimmed}": ${problems.join('; ')}` };
}

function entryKind(path: string): 'directory' | 'other' | 'missing' {
  try {
    return statSync(path).isDirectory() ? 'directory' : 'other';
  } catch {
    return 'missing';
  }
}

/**
 * Path of `onnx/<stem>.onnx`, else `onnx/<stem>_quantized.onnx`, in a model directory; throws naming the file
 * (`what` says which model, for the message) when neither exists.
 */
export function findOnnxFile(dir: string, stem: string, what: string): string {
  const candidates = [join('onnx', `${stem}.onnx`), join('onnx', `${stem}_quantized.onnx`)];
  for (const relative of candidates) {
    if (entryKind(join(dir, relative)) === 'other') return join(dir, relative);
  }
  throw new Error(`${what} ${dir} is missing ${candidates[0]} (or ${candidates[1]})`);
}

/** Parsed JSON file of a model directory; `undefined` when optional and absent; throws naming the file otherwise. */
export async function readModelJson(
  dir: string,
  name: string,
  what: string,
  required: true,
): Promise<unknown>;
export async function readModelJson(
  dir: string,
  name: string,
  what: string,
  required: false,
): Promise<unknown | undefined>;
export async function readModelJson(
  dir: string,
  name: string,
  what: string,
  required: boolean,
): Promise<unknown | undefined> {
  let text: string;
  try {
    text = await readFile(join(dir, name), 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') {
      if (!required) return undefined;
      throw new Error(`${what} ${dir} is missing ${name}`);
    }
    throw new Error(`${what} ${dir}: cannot read ${name}: ${(error as Error).message}`);
  }
  try {
    return JSON.parse(text) as unknown;
  } catch (error) {
    throw new Error(`${what} ${dir}: ${name} is not valid JSON: ${(error as Error).message}`);
  }
}

/** Opens an ONNX file with onnxruntime-node; the error names the file. */
export async function openOnnxSession(path: string): Promise<Ort.InferenceSession> {
  const ort = await loadOnnxRuntime();
  try {
    return await ort.InferenceSession.create(path, { graphOptimizationLevel: 'all' });
  } catch (error) {
    throw new Error(`cannot load ONNX model ${path}: ${(error as Error).message}`);
  }
}

/** A tokenizer.json with what its configuration says about padding, truncation and special tokens. */
export interface ModelTokenizer {
  readonly tokenizer: Tokenizer;
  /** Id used for padding: tokenizer_config `pad_token`, else tokenizer.json `padding.pad_id`, else the end token. */
  readonly padId: number;
  /** `padding.strategy.Fixed` of tokenizer.json, when set. */
  readonly fixedLength: number | null;
  /** `truncation.max_length` of tokenizer.json, when set. */
  readonly truncationLength: number | null;
  /** tokenizer_config.json `model_max_length`, when it is a real limit. */
  readonly modelMaxLength: number | null;
}

/** Loads tokenizer.json (required) and tokenizer_config.json (optional) of a model directory. */
export async function loadModelTokenizer(dir: string, what: string): Promise<ModelTokenizer> {
  const json = await readModelJson(dir, 'tokenizer.json', what, true);
  const config = (await readModelJson(dir, 'tokenizer_config.json', what, false)) ?? {};
  if (!isRecord(json) || !isRecord(json.model)) {
    throw new Error(`${what} ${dir}: tokenizer.json has no "model" object`);
  }
  if (!isRecord(config)) throw new Error(`${what} ${dir}: tokenizer_config.json is not an object`);
  const { Tokenizer } = await import('@huggingface/tokenizers');
  let tokenizer: Tokenizer;
  try {
    // Minimal tokenizer.json files may leave out the optional components, which the library requires as keys.
    const complete = {
      added_tokens: [],
      normalizer: null,
      pre_tokenizer: null,
      post_processor: null,
      decoder: null,
      ...json,
    };
    tokenizer = new Tokenizer(complete, config);
  } catch (error) {
    throw new Error(`${what} ${dir}: tokenizer.json cannot be loaded: ${(error as Error).message}`);
  }
  const padding = isRecord(json.padding) ? json.padding : undefined;
  const truncation = isRecord(json.truncation) ? json.truncation : undefined;
  const strategy = padding && isRecord(padding.strategy) ? padding.strategy : undefined;
  const fixedLength = positiveInteger(strategy?.Fixed);
  const padId =
    tokenId(tokenizer, config.pad_token) ??
    (typeof padding?.pad_id === 'number' ? padding.pad_id : undefined) ??
    tokenId(tokenizer, config.eos_token) ??
    tokenizer.token_to_id('<|endoftext|>') ??
    0;
  const maxLength = positiveInteger(config.model_max_length);
  return {
    tokenizer,
    padId,
    fixedLength,
    truncationLength: positiveInteger(truncation?.max_length),
    // Configs without a limit carry a huge sentinel (1e30) instead.
    modelMaxLength: maxLength !== null && maxLength <= 1_000_000 ? maxLength : null,
  };
}

function tokenId(tokenizer: Tokenizer, token: unknown): number | undefined {
  const content = isRecord(token) ? token.content : token;
  return typeof content === 'string' ? tokenizer.token_to_id(content) : undefined;
}

function positiveInteger(value: unknown): number | null {
  return typeof value === 'number' && Number.isInteger(value) && value > 0 ? value : null;
}

/**
 * Token ids (with the tokenizer's special tokens) and attention mask of `text`, cut to `maxLength` (a trailing
 * special token is kept, as the reference tokenizers truncate before adding it) and padded with `padId` to
 * `padTo` when given.
 */
export function encodeText(
  model: ModelTokenizer,
  text: string,
  maxLength: number | null,
  padTo: number | null,
): { ids: number[]; mask: number[] } {
  let ids = model.tokenizer.encode(text).ids;
  if (maxLength !== null && ids.length > maxLength) {
    const last = ids[ids.length - 1] as number;
    const endsWithSpecial = model.tokenizer.get_added_tokens_decoder().get(last)?.special === true;
    ids = endsWithSpecial ? [...ids.slice(0, maxLength - 1), last] : ids.slice(0, maxLength);
  }
  const mask = ids.map(() => 1);
  if (padTo !== null) {
    while (ids.length < padTo) {
      ids.push(model.padId);
      mask.push(0);
    }
  }
  return { ids, mask };
}

/** Names of the token inputs this code knows how to fill. */
const TEXT_INPUTS = new Set(['input_ids', 'attention_mask', 'token_type_ids', 'position_ids']);

/** Throws unless the graph takes `input_ids` and only inputs that `textFeeds` fills. */
export function checkTextInputs(session: Ort.InferenceSession, file: string): void {
  if (!session.inputNames.includes('input_ids')) {
    throw new Error(`${file} has no input_ids input (inputs: ${session.inputNames.join(', ')})`);
  }
  const unknown = session.inputNames.filter((name) => !TEXT_INPUTS.has(name));
  if (unknown.length > 0) throw new Error(`${file} has unsupported inputs: ${unknown.join(', ')}`);
}

/** Feeds for a text graph: `input_ids` and, when the graph declares them, the mask, zero type ids and positions. */
export function textFeeds(
  session: Ort.InferenceSession,
  ids: readonly number[],
  mask: readonly number[],
): Record<string, Ort.Tensor> {
  const feeds: Record<string, Ort.Tensor> = {};
  session.inputNames.forEach((name, index) => {
    const values =
      name === 'input_ids'
        ? ids
        : name === 'attention_mask'
          ? mask
          : name === 'token_type_ids'
            ? ids.map(() => 0)
            : ids.map((_, position) => position);
    feeds[name] = integerTensor(session.inputMetadata[index], values);
  });
  return feeds;
}

function integerTensor(
  metadata: Ort.InferenceSession.ValueMetadata | undefined,
  values: readonly number[],
): Ort.Tensor {
  const dims = [1, values.length];
  // Most exports take int64 token ids; some are converted to int32.
  const { Tensor } = loadedOnnxRuntime();
  if (metadata?.isTensor && metadata.type === 'int32')
    return new Tensor('int32', Int32Array.from(values), dims);
  return new Tensor(
    'int64',
    BigInt64Array.from(values, (value) => BigInt(value)),
    dims,
  );
}

/** Name of the output to read: the first of `preferred` the graph has, else its first output. */
export function chooseOutput(session: Ort.InferenceSession, preferred: readonly string[]): string {
  const name =
    preferred.find((candidate) => session.outputNames.includes(candidate)) ?? session.outputNames[0];
  if (name === undefined) throw new Error('the ONNX graph has no outputs');
  return name;
}

/** Static size of the last dimension of an output, or null when it is symbolic or unknown. */
export function staticLastDimension(session: Ort.InferenceSession, outputName: string): number | null {
  const metadata = session.outputMetadata[session.outputNames.indexOf(outputName)];
  if (!metadata?.isTensor || metadata.shape.length === 0) return null;
  const last = metadata.shape[metadata.shape.length - 1];
  return typeof last === 'number' && last > 0 ? last : null;
}

/** Float32 data of an output tensor; throws when it is not float32. */
export function floatOutput(
  results: Ort.InferenceSession.ReturnType,
  name: string,
): { data: Float32Array; dims: readonly number[] } {
  const tensor = results[name];
  if (tensor?.type !== 'float32') {
    throw new Error(`output ${name} is not a float32 tensor (got ${tensor?.type ?? 'nothing'})`);
  }
  return { data: tensor.data as Float32Array, dims: tensor.dims };
}

/** `vector` scaled to unit length (a zero vector stays zero). */
export function l2Normalise(vector: Float32Array): Float32Array {
  let sum = 0;
  for (const value of vector) sum += value * value;
  const norm = Math.sqrt(sum);
  const out = new Float32Array(vector.length);
  if (norm < 1e-12) return out;
  for (let i = 0; i < vector.length; i++) out[i] = (vector[i] as number) / norm;
  return out;
}

/** True for a plain JSON object. */
export function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}
