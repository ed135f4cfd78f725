// Builds tiny ONNX models, tokenizer.json and preprocessor_config.json files in a model directory, shaped like
// the real CLIP and sentence-transformers exports, so the loading code runs end to end on known weights.
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import onnxProto from 'onnx-proto';

const { onnx } = onnxProto;

const FLOAT = 1;
const INT64 = 7;
const ATTRIBUTE_INT = 2;
const ATTRIBUTE_INTS = 7;

/** Width of the tiny text towers' token embeddings. */
export const TOKEN_WIDTH = 8;
/** Width of the tiny sentence model's hidden states (as all-mpnet-base-v2). */
export const SENTENCE_WIDTH = 768;

/** Vocabulary of the test tokenizers; a token's id is its index. */
export const TINY_VOCAB: readonly string[] = [
  '[PAD]',
  '[UNK]',
  '<|startoftext|>',
  '<|endoftext|>',
  '[CLS]',
  '[SEP]',
  'a',
  'photo',
  'of',
  'animal',
  'person',
  'vehicle',
  'nature',
  'food',
  'building',
  'object',
  'abstract',
  'landscape',
  'indoor',
  'scene',
  'cat',
  'dog',
  'red',
  'green',
  'blue',
];

/** Id of a vocabulary token. */
export function tokenId(token: string): number {
  const id = TINY_VOCAB.indexOf(token);
  if (id < 0) throw new Error(`${token} is not in the test vocabulary`);
  return id;
}

/** Deterministic pseudo-random weights in [-1, 1) (a 32-bit LCG), so tests can recompute outputs by hand. */
export function seededWeights(count: number, seed: number): Float32Array {
  const out = new Float32Array(count);
  let state = seed >>> 0;
  for (let i = 0; i < count; i++) {
    state = (Math.imul(state, 1664525) + 1013904223) >>> 0;
    out[i] = state / 2 ** 31 - 1;
  }
  return out;
}

type Dim = number | string;

function valueInfo(name: string, elemType: number, dims: readonly Dim[]): onnxProto.onnx.IValueInfoProto {
  return {
    name,
    type: {
      tensorType: {
        elemType,
        shape: { dim: dims.map((dim) => (typeof dim === 'number' ? { dimValue: dim } : { dimParam: dim })) },
      },
    },
  };
}

function floatTensor(name: string, dims: readonly number[], data: Float32Array): onnxProto.onnx.ITensorProto {
  if (data.length !== dims.reduce((a, b) => a * b, 1))
    throw new Error(`${name}: data does not fit [${dims}]`);
  return {
    name,
    dims: [...dims],
    dataType: FLOAT,
    rawData: new Uint8Array(data.buffer, data.byteOffset, data.byteLength),
  };
}

function int64Tensor(name: string, values: readonly number[]): onnxProto.onnx.ITensorProto {
  const data = BigInt64Array.from(values, (value) => BigInt(value));
  return { name, dims: [values.length], dataType: INT64, rawData: new Uint8Array(data.buffer) };
}

function node(
  opType: string,
  input: string[],
  output: string[],
  attributes: Record<string, number | number[]> = {},
): onnxProto.onnx.INodeProto {
  const attribute = Object.entries(attributes).map(([name, value]) =>
    Array.isArray(value)
      ? { name, type: ATTRIBUTE_INTS, ints: value }
      : { name, type: ATTRIBUTE_INT, i: value },
  );
  return { opType, input, output, name: `${opType}_${output[0]}`, attribute };
}

function writeModel(path: string, graph: onnxProto.onnx.IGraphProto): void {
  const bytes = onnx.ModelProto.encode({
    irVersion: 8,
    producerName: 'allocator-tests',
    opsetImport: [{ domain: '', version: 13 }],
    graph,
  }).finish();
  writeFileSync(path, bytes);
}

/** Writes a WordPiece tokenizer.json over TINY_VOCAB that wraps every text in `start … end` special tokens. */
function writeTokenizer(
  dir: string,
  start: string,
  end: string,
  extra: { padding?: unknown; truncation?: unknown } = {},
): void {
  const special = ['[PAD]', '[UNK]', '<|startoftext|>', '<|endoftext|>', '[CLS]', '[SEP]'];
  const tokenizer = {
    version: '1.0',
    truncation: extra.truncation ?? null,
    padding: extra.padding ?? null,
    added_tokens: special.map((content) => ({
      id: tokenId(content),
      content,
      single_word: false,
      lstrip: false,
      rstrip: false,
      normalized: false,
      special: true,
    })),
    normalizer: { type: 'Lowercase' },
    pre_tokenizer: { type: 'Whitespace' },
    model: {
      type: 'WordPiece',
      unk_token: '[UNK]',
      continuing_subword_prefix: '##',
      max_input_chars_per_word: 100,
      vocab: Object.fromEntries(TINY_VOCAB.map((token, id) => [token, id])),
    },
    post_processor: {
      type: 'TemplateProcessing',
      single: [
        { SpecialToken: { id: start, type_id: 0 } },
        { Sequence: { id: 'A', type_id: 0 } },
        { SpecialToken: { id: end, type_id: 0 } },
      ],
      pair: [
        { SpecialToken: { id: start, type_id: 0 } },
        { Sequence: { id: 'A', type_id: 0 } },
        { SpecialToken: { id: end, type_id: 0 } },
        { Sequence: { id: 'B', type_id: 1 } },
        { SpecialToken: { id: end, type_id: 1 } },
      ],
      special_tokens: Object.fromEntries(
        [start, end].map((token) => [token, { id: token, ids: [tokenId(token)], tokens: [token] }]),
      ),
    },
    decoder: { type: 'WordPiece', prefix: '##', cleanup: true },
  };
  writeFileSync(join(dir, 'tokenizer.json'), JSON.stringify(tokenizer));
}

/** The preprocessor_config.json of openai/clip-vit-base-patch32 as exported for onnx use. */
export const CLIP_PREPROCESSOR_JSON = {
  crop_size: { height: 224, width: 224 },
  do_center_crop: true,
  do_convert_rgb: true,
  do_normalize: true,
  do_rescale: true,
  do_resize: true,
  feature_extractor_type: 'CLIPFeatureExtractor',
  image_mean: [0.48145466, 0.4578275, 0.40821073],
  image_processor_type: 'CLIPImageProcessor',
  image_std: [0.26862954, 0.26130258, 0.27577711],
  resample: 3,
  rescale_factor: 0.00392156862745098,
  size: { shortest_edge: 224 },
};

export interface TinyClipOptions {
  /** Embedding size (default 512). */
  dimension?: number;
  /** Vision projection, 3 × dimension (default seeded). */
  visionWeights?: Float32Array;
  /** Token embedding table, TINY_VOCAB.length × TOKEN_WIDTH (default seeded). */
  tokenEmbeddings?: Float32Array;
  /** Text projection, TOKEN_WIDTH × dimension (default seeded). */
  textProjection?: Float32Array;
  /** Name the graphs `*_quantized.onnx`. */
  quantized?: boolean;
  /** The text graph declares `attention_mask` and averages only the tokens it marks. */
  textAttentionMask?: boolean;
  /** Declare the embedding outputs' last dimension symbolically. */
  symbolicOutputs?: boolean;
  /** Side of the square vision input (default 224); the preprocessor config is not changed by it. */
  visionSide?: number;
  /** preprocessor_config.json contents (default CLIP_PREPROCESSOR_JSON). */
  preprocessor?: unknown;
  /** tokenizer_config.json contents; null writes none (default: CLIP's, padding with `<|endoftext|>`). */
  tokenizerConfig?: Record<string, unknown> | null;
}

export interface TinyClip {
  dir: string;
  dimension: number;
  visionWeights: Float32Array;
  tokenEmbeddings: Float32Array;
  textProjection: Float32Array;
}

/** Writes a CLIP-layout model directory (onnx/vision_model.onnx, onnx/text_model.onnx, tokenizer files, preprocessor config). */
export function writeTinyClipModel(dir: string, options: TinyClipOptions = {}): TinyClip {
  const dimension = options.dimension ?? 512;
  const visionWeights = options.visionWeights ?? seededWeights(3 * dimension, 1);
  const tokenEmbeddings = options.tokenEmbeddings ?? seededWeights(TINY_VOCAB.length * TOKEN_WIDTH, 2);
  const textProjection = options.textProjection ?? seededWeights(TOKEN_WIDTH * dimension, 3);
  const suffix = options.quantized ? '_quantized' : '';
  const side = options.visionSide ?? 224;
  const outDim: Dim = options.symbolicOutputs ? 'embedding' : dimension;
  mkdirSync(join(dir, 'onnx'), { recursive: true });

  // pixel_values → per-channel means → projection; the pooled means are exposed first, as a distractor output.
  writeModel(join(dir, 'onnx', `vision_model${suffix}.onnx`), {
    name: 'tiny_clip_vision',
    input: [valueInfo('pixel_values', FLOAT, [1, 3, side, side])],
    initializer: [floatTensor('visual_projection', [3, dimension], visionWeights)],
    node: [
      node('GlobalAveragePool', ['pixel_values'], ['pooled_4d']),
      node('Flatten', ['pooled_4d'], ['last_hidden_state'], { axis: 1 }),
      node('MatMul', ['last_hidden_state', 'visual_projection'], ['image_embeds']),
    ],
    output: [valueInfo('last_hidden_state', FLOAT, [1, 3]), valueInfo('image_embeds', FLOAT, [1, outDim])],
  });

  const textInputs = [valueInfo('input_ids', INT64, [1, 77])];
  const textNodes = [node('Gather', ['token_embedding', 'input_ids'], ['last_hidden_state'], { axis: 0 })];
  const textInitializers = [
    floatTensor('token_embedding', [TINY_VOCAB.length, TOKEN_WIDTH], tokenEmbeddings),
    floatTensor('text_projection', [TOKEN_WIDTH, dimension], textProjection),
  ];
  if (options.textAttentionMask) {
    textInputs.push(valueInfo('attention_mask', INT64, [1, 77]));
    textInitializers.push(int64Tensor('axis_1', [1]), int64Tensor('axis_2', [2]));
    textNodes.push(
      node('Cast', ['attention_mask'], ['mask'], { to: FLOAT }),
      node('Unsqueeze', ['mask', 'axis_2'], ['mask_3d']),
      node('Mul', ['last_hidden_state', 'mask_3d'], ['masked']),
      node('ReduceSum', ['masked', 'axis_1'], ['summed'], { keepdims: 0 }),
      node('ReduceSum', ['mask', 'axis_1'], ['count'], { keepdims: 1 }),
      node('Div', ['summed', 'count'], ['pooled']),
    );
  } else {
    textNodes.push(node('ReduceMean', ['last_hidden_state'], ['pooled'], { axes: [1], keepdims: 0 }));
  }
  textNodes.push(node('MatMul', ['pooled', 'text_projection'], ['text_embeds']));
  writeModel(join(dir, 'onnx', `text_model${suffix}.onnx`), {
    name: 'tiny_clip_text',
    input: textInputs,
    initializer: textInitializers,
    node: textNodes,
    output: [
      valueInfo('last_hidden_state', FLOAT, [1, 77, TOKEN_WIDTH]),
      valueInfo('text_embeds', FLOAT, [1, outDim]),
    ],
  });

  writeTokenizer(dir, '<|startoftext|>', '<|endoftext|>');
  const tokenizerConfig =
    options.tokenizerConfig === undefined
      ? {
          bos_token: '<|startoftext|>',
          eos_token: '<|endoftext|>',
          pad_token: '<|endoftext|>',
          unk_token: '[UNK]',
        }
      : options.tokenizerConfig;
  if (tokenizerConfig !== null)
    writeFileSync(join(dir, 'tokenizer_config.json'), JSON.stringify(tokenizerConfig));
  writeFileSync(
    join(dir, 'preprocessor_config.json'),
    JSON.stringify(options.preprocessor ?? CLIP_PREPROCESSOR_JSON),
  );
  return { dir, dimension, visionWeights, tokenEmbeddings, textProjection };
}

export interface TinySentenceOptions {
  /** Word embedding table, TINY_VOCAB.length × SENTENCE_WIDTH (default seeded). */
  wordEmbeddings?: Float32Array;
  /** tokenizer.json `padding.strategy.Fixed`. */
  fixedPadding?: number;
  /** tokenizer.json `truncation.max_length`. */
  truncation?: number;
  /** sentence_bert_config.json `max_seq_length`. */
  maxSeqLength?: number;
  /** The graph also declares `token_type_ids`. */
  tokenTypeIds?: boolean;
  quantized?: boolean;
}

export interface TinySentence {
  dir: string;
  wordEmbeddings: Float32Array;
}

/** Writes a sentence-model directory (onnx/model.onnx: input_ids + attention_mask → Gather → last_hidden_state). */
export function writeTinySentenceModel(dir: string, options: TinySentenceOptions = {}): TinySentence {
  const wordEmbeddings = options.wordEmbeddings ?? seededWeights(TINY_VOCAB.length * SENTENCE_WIDTH, 4);
  mkdirSync(join(dir, 'onnx'), { recursive: true });
  const inputs = [
    valueInfo('input_ids', INT64, ['batch', 'sequence']),
    valueInfo('attention_mask', INT64, ['batch', 'sequence']),
  ];
  if (options.tokenTypeIds) inputs.push(valueInfo('token_type_ids', INT64, ['batch', 'sequence']));
  writeModel(join(dir, 'onnx', `model${options.quantized ? '_quantized' : ''}.onnx`), {
    name: 'tiny_sentence',
    input: inputs,
    initializer: [floatTensor('word_embeddings', [TINY_VOCAB.length, SENTENCE_WIDTH], wordEmbeddings)],
    node: [node('Gather', ['word_embeddings', 'input_ids'], ['last_hidden_state'], { axis: 0 })],
    output: [valueInfo('last_hidden_state', FLOAT, ['batch', 'sequence', SENTENCE_WIDTH])],
  });
  writeTokenizer(dir, '[CLS]', '[SEP]', {
    padding:
      options.fixedPadding === undefined
        ? null
        : {
            strategy: { Fixed: options.fixedPadding },
            direction: 'Right',
            pad_id: 0,
            pad_type_id: 0,
            pad_token: '[PAD]',
          },
    truncation:
      options.truncation === undefined
        ? null
        : { direction: 'Right', max_length: options.truncation, strategy: 'LongestFirst', stride: 0 },
  });
  writeFileSync(
    join(dir, 'tokenizer_config.json'),
    JSON.stringify({
      cls_token: '[CLS]',
      sep_token: '[SEP]',
      pad_token: '[PAD]',
      unk_token: '[UNK]',
      model_max_length: 512,
    }),
  );
  if (options.maxSeqLength !== undefined) {
    writeFileSync(
      join(dir, 'sentence_bert_config.json'),
      JSON.stringify({ max_seq_length: options.maxSeqLength, do_lower_case: false }),
    );
  }
  return { dir, wordEmbeddings };
}
