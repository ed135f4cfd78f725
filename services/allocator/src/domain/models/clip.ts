// CLIP through onnxruntime-node (spec §3.6.3): a model directory laid out like Xenova/clip-vit-base-patch32,
// images preprocessed as the reference CLIP image processor does, text padded to 77 tokens, both towers'
// outputs L2-normalised; and the zero-shot category of the fallback labeller (§3.6.7).
import { basename, relative } from 'node:path';
import type * as ort from 'onnxruntime-node';
import sharp from 'sharp';
import {
  checkTextInputs,
  chooseOutput,
  encodeText,
  findOnnxFile,
  floatOutput,
  isRecord,
  l2Normalise,
  loadedOnnxRuntime,
  loadModelTokenizer,
  type ModelTokenizer,
  openOnnxSession,
  readModelJson,
  staticLastDimension,
  textFeeds,
} from './resolve.js';

/** CLIP's text context length: every prompt is padded or cut to this many tokens. */
const CLIP_TEXT_LENGTH = 77;

const WHAT = 'CLIP model directory';

export interface ClipModel {
  /** Directory basename, reported as the embedding model. */
  readonly modelId: string;
  /** Size of the embeddings (from the vision output shape, or a first run). */
  readonly dimension: number;
  /** L2-normalised embedding of any image sharp decodes. */
  embedImage(image: Buffer): Promise<Float32Array>;
  /** L2-normalised embedding of a text through the text tower. */
  embedText(text: string): Promise<Float32Array>;
  close(): Promise<void>;
}

export interface PreprocessorConfig {
  shortestEdge: number;
  cropHeight: number;
  cropWidth: number;
  rescaleFactor: number;
  imageMean: [number, number, number];
  imageStd: [number, number, number];
  doResize: boolean;
  doCenterCrop: boolean;
  doNormalize: boolean;
}

// The reference CLIP image processor's defaults, for keys a preprocessor_config.json leaves out.
const CLIP_DEFAULTS: PreprocessorConfig = {
  shortestEdge: 224,
  cropHeight: 224,
  cropWidth: 224,
  rescaleFactor: 1 / 255,
  imageMean: [0.48145466, 0.4578275, 0.40821073],
  imageStd: [0.26862954, 0.26130258, 0.27577711],
  doResize: true,
  doCenterCrop: true,
  doNormalize: true,
};

/** Reads a preprocessor_config.json (both the `size: 224` and `size: {shortest_edge}` forms); throws on invalid values. */
export function parsePreprocessorConfig(json: unknown): PreprocessorConfig {
  if (!isRecord(json)) throw new Error('preprocessor_config.json is not an object');
  const size = json.size;
  const shortestEdge =
    size === undefined
      ? CLIP_DEFAULTS.shortestEdge
      : typeof size === 'number'
        ? size
        : isRecord(size)
          ? (size.shortest_edge ?? size.height)
          : size;
  const crop = json.crop_size;
  const cropHeight = crop === undefined ? CLIP_DEFAULTS.cropHeight : isRecord(crop) ? crop.height : crop;
  const cropWidth = crop === undefined ? CLIP_DEFAULTS.cropWidth : isRecord(crop) ? crop.width : crop;
  const rescale = json.rescale_factor ?? CLIP_DEFAULTS.rescaleFactor;
  return {
    shortestEdge: checkedSize('size.shortest_edge', shortestEdge),
    cropHeight: checkedSize('crop_size.height', cropHeight),
    cropWidth: checkedSize('crop_size.width', cropWidth),
    rescaleFactor: json.do_rescale === false ? 1 : checkedNumber('rescale_factor', rescale),
    imageMean: checkedTriple('image_mean', json.image_mean ?? CLIP_DEFAULTS.imageMean, false),
    imageStd: checkedTriple('image_std', json.image_std ?? CLIP_DEFAULTS.imageStd, true),
    doResize: checkedFlag('do_resize', json.do_resize),
    doCenterCrop: checkedFlag('do_center_crop', json.do_center_crop),
    doNormalize: checkedFlag('do_normalize', json.do_normalize),
  };
}

function checkedSize(key: string, value: unknown): number {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < 1) {
    throw new Error(`preprocessor_config.json: ${key} must be a positive integer`);
  }
  return value;
}

function checkedNumber(key: string, value: unknown): number {
  if (typeof value !== 'number' || !Number.isFinite(value) || value <= 0) {
    throw new Error(`preprocessor_config.json: ${key} must be a positive number`);
  }
  return value;
}

function checkedTriple(key: string, value: unknown, positive: boolean): [number, number, number] {
  // A single number applies to all three channels, as in the reference processor.
  const triple = typeof value === 'number' ? [value, value, value] : value;
  if (
    !Array.isArray(triple) ||
    triple.length !== 3 ||
    !triple.every((entry) => typeof entry === 'number' && Number.isFinite(entry) && (!positive || entry > 0))
  ) {
    throw new Error(`preprocessor_config.json: ${key} must be three ${positive ? 'positive ' : ''}numbers`);
  }
  return [triple[0], triple[1], triple[2]];
}

function checkedFlag(key: string, value: unknown): boolean {
  if (value === undefined) return true;
  if (typeof value !== 'boolean') throw new Error(`preprocessor_config.json: ${key} must be true or false`);
  return value;
}

/** Width and height after resizing the shortest edge to `edge`, the other side scaled and truncated (reference rule). */
function shortestEdgeSize(width: number, height: number, edge: number): [number, number] {
  return width <= height
    ? [edge, Math.max(1, Math.floor((edge * height) / width))]
    : [Math.max(1, Math.floor((edge * width) / height)), edge];
}

/** Preprocessing of §3.6.3 (shortest edge bicubic resize, centre crop, rescale, normalise, NCHW float32). Exported for tests. */
export async function clipPixelValues(
  image: Buffer,
  config: PreprocessorConfig,
): Promise<{ data: Float32Array; dims: [1, 3, number, number] }> {
  const metadata = await sharp(image).metadata();
  const sourceWidth = metadata.autoOrient?.width ?? metadata.width;
  const sourceHeight = metadata.autoOrient?.height ?? metadata.height;
  if (!sourceWidth || !sourceHeight) throw new Error('image has no dimensions');
  let pipeline = sharp(image, { autoOrient: true }).flatten({ background: '#ffffff' });
  if (config.doResize) {
    const [width, height] = shortestEdgeSize(sourceWidth, sourceHeight, config.shortestEdge);
    if (width !== sourceWidth || height !== sourceHeight) {
      pipeline = pipeline.resize(width, height, { fit: 'fill', kernel: 'cubic', fastShrinkOnLoad: false });
    }
  }
  const { data: pixels, info } = await pipeline
    .toColourspace('srgb')
    .raw()
    .toBuffer({ resolveWithObject: true });
  const outHeight = config.doCenterCrop ? config.cropHeight : info.height;
  const outWidth = config.doCenterCrop ? config.cropWidth : info.width;
  // Floor division also centres a crop larger than the image, which is padded with zeros as the reference does.
  const top = Math.floor((info.height - outHeight) / 2);
  const left = Math.floor((info.width - outWidth) / 2);
  const plane = outHeight * outWidth;
  const data = new Float32Array(3 * plane);
  const channels = info.channels;
  for (let c = 0; c < 3; c++) {
    // Grey images repeat their single band.
    const band = channels >= 3 ? c : 0;
    const mean = config.doNormalize ? (config.imageMean[c] as number) : 0;
    const std = config.doNormalize ? (config.imageStd[c] as number) : 1;
    for (let y = 0; y < outHeight; y++) {
      const sourceY = y + top;
      for (let x = 0; x < outWidth; x++) {
        const sourceX = x + left;
        const inside = sourceY >= 0 && sourceY < info.height && sourceX >= 0 && sourceX < info.width;
        const raw = inside ? (pixels[(sourceY * info.width + sourceX) * channels + band] as number) : 0;
        data[c * plane + y * outWidth + x] = (raw * config.rescaleFactor - mean) / std;
      }
    }
  }
  return { data, dims: [1, 3, outHeight, outWidth] };
}

/** Loads onnx/vision_model(_quantized).onnx, onnx/text_model(_quantized).onnx, tokenizer.json, preprocessor_config.json with onnxruntime-node; throws a clear Error on anything missing/invalid. */
export async function loadClipModel(dir: string): Promise<ClipModel> {
  const visionFile = findOnnxFile(dir, 'vision_model', WHAT);
  const textFile = findOnnxFile(dir, 'text_model', WHAT);
  const tokenizer = await loadModelTokenizer(dir, WHAT);
  let preprocessor: PreprocessorConfig;
  try {
    preprocessor = parsePreprocessorConfig(await readModelJson(dir, 'preprocessor_config.json', WHAT, true));
  } catch (error) {
    const message = (error as Error).message;
    throw new Error(message.startsWith(WHAT) ? message : `${WHAT} ${dir}: ${message}`);
  }
  const vision = await openOnnxSession(visionFile);
  let text: ort.InferenceSession;
  try {
    text = await openOnnxSession(textFile);
  } catch (error) {
    await vision.release();
    throw error;
  }
  try {
    const model = new OnnxClipModel(basename(dir), vision, text, tokenizer, preprocessor);
    await model.check(relative(dir, visionFile), relative(dir, textFile));
    return model;
  } catch (error) {
    await Promise.all([vision.release(), text.release()]);
    throw new Error(`${WHAT} ${dir}: ${(error as Error).message}`);
  }
}

class OnnxClipModel implements ClipModel {
  #dimension = 0;
  readonly #pixelInput: string;
  readonly #imageOutput: string;
  readonly #textOutput: string;

  constructor(
    readonly modelId: string,
    private readonly vision: ort.InferenceSession,
    private readonly text: ort.InferenceSession,
    private readonly tokenizer: ModelTokenizer,
    private readonly preprocessor: PreprocessorConfig,
  ) {
    this.#pixelInput = vision.inputNames.includes('pixel_values')
      ? 'pixel_values'
      : (vision.inputNames[0] ?? '');
    this.#imageOutput = chooseOutput(vision, ['image_embeds']);
    this.#textOutput = chooseOutput(text, ['text_embeds']);
  }

  get dimension(): number {
    return this.#dimension;
  }

  /** Validates both graphs against the configuration and settles the embedding size. */
  async check(visionFile: string, textFile: string): Promise<void> {
    if (this.vision.inputNames.length !== 1) {
      throw new Error(
        `${visionFile} must take one input (pixel_values), not: ${this.vision.inputNames.join(', ')}`,
      );
    }
    const pixelMetadata = this.vision.inputMetadata[0];
    if (pixelMetadata?.isTensor && this.preprocessor.doCenterCrop) {
      const [, , height, width] = pixelMetadata.shape;
      const expected = [this.preprocessor.cropHeight, this.preprocessor.cropWidth];
      if (
        (typeof height === 'number' && height !== expected[0]) ||
        (typeof width === 'number' && width !== expected[1])
      ) {
        throw new Error(
          `${visionFile} takes ${height}×${width} images but preprocessor_config.json crops to ${expected[0]}×${expected[1]}`,
        );
      }
    }
    checkTextInputs(this.text, textFile);
    const imageDimension = staticLastDimension(this.vision, this.#imageOutput);
    const textDimension = staticLastDimension(this.text, this.#textOutput);
    this.#dimension = imageDimension ?? (await this.#runVision(this.#blankPixels())).length;
    if (textDimension !== null && textDimension !== this.#dimension) {
      throw new Error(
        `text embeddings have ${textDimension} dimensions but image embeddings ${this.#dimension}`,
      );
    }
  }

  async embedImage(image: Buffer): Promise<Float32Array> {
    const { data, dims } = await clipPixelValues(image, this.preprocessor);
    const { Tensor } = loadedOnnxRuntime();
    return this.#checked(l2Normalise(await this.#runVision(new Tensor('float32', data, dims))), 'image');
  }

  async embedText(text: string): Promise<Float32Array> {
    const { ids, mask } = encodeText(this.tokenizer, text, CLIP_TEXT_LENGTH, CLIP_TEXT_LENGTH);
    const results = await this.text.run(textFeeds(this.text, ids, mask));
    return this.#checked(l2Normalise(embeddingRow(floatOutput(results, this.#textOutput))), 'text');
  }

  async close(): Promise<void> {
    await Promise.all([this.vision.release(), this.text.release()]);
  }

  async #runVision(pixels: ort.Tensor): Promise<Float32Array> {
    const results = await this.vision.run({ [this.#pixelInput]: pixels });
    return embeddingRow(floatOutput(results, this.#imageOutput));
  }

  #blankPixels(): ort.Tensor {
    const { cropHeight, cropWidth } = this.preprocessor;
    const { Tensor } = loadedOnnxRuntime();
    return new Tensor('float32', new Float32Array(3 * cropHeight * cropWidth), [1, 3, cropHeight, cropWidth]);
  }

  #checked(embedding: Float32Array, tower: string): Float32Array {
    if (embedding.length !== this.#dimension) {
      throw new Error(`${tower} embedding has ${embedding.length} dimensions, expected ${this.#dimension}`);
    }
    return embedding;
  }
}

/** The single embedding of a batch-of-one output shaped [1, D] (or [D]). */
function embeddingRow(output: { data: Float32Array; dims: readonly number[] }): Float32Array {
  const { data, dims } = output;
  if (dims.length > 2 || (dims.length === 2 && dims[0] !== 1)) {
    throw new Error(`expected an embedding output shaped [1, D], got [${dims.join(', ')}]`);
  }
  return data;
}

/** The categories of the zero-shot fallback labeller (§3.6.7), in the spec's order. */
export const ZERO_SHOT_CATEGORIES: readonly string[] = Object.freeze([
  'animal',
  'person',
  'vehicle',
  'nature',
  'food',
  'building',
  'object',
  'abstract',
  'landscape',
  'indoor scene',
]);

// Prompt embeddings are computed once per loaded model.
const promptEmbeddings = new WeakMap<ClipModel, Promise<Float32Array[]>>();

/** Zero-shot primary category: highest cosine to "a photo of a {c}" text embeddings (cached per model). */
export async function zeroShotCategory(
  model: ClipModel,
  imageEmbedding: Float32Array,
): Promise<{ category: string; score: number }> {
  let prompts = promptEmbeddings.get(model);
  if (!prompts) {
    prompts = Promise.all(
      ZERO_SHOT_CATEGORIES.map((category) => model.embedText(`a photo of a ${category}`)),
    );
    promptEmbeddings.set(model, prompts);
    // A failed computation is not cached, so a later call tries again.
    prompts.catch(() => promptEmbeddings.delete(model));
  }
  const embeddings = await prompts;
  const image = l2Normalise(imageEmbedding);
  let best = { category: ZERO_SHOT_CATEGORIES[0] as string, score: Number.NEGATIVE_INFINITY };
  embeddings.forEach((prompt, index) => {
    let score = 0;
    for (let i = 0; i < prompt.length; i++) score += (prompt[i] as number) * (image[i] ?? 0);
    // Ties keep the earlier category.
    if (score > best.score) best = { category: ZERO_SHOT_CATEGORIES[index] as string, score };
  });
  return best;
}
