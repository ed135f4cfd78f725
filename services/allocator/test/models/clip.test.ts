import { mkdtempSync, rmSync, unlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import sharp from 'sharp';
import { afterAll, describe, expect, it } from 'vitest';
import {
  type ClipModel,
  clipPixelValues,
  loadClipModel,
  parsePreprocessorConfig,
  ZERO_SHOT_CATEGORIES,
  zeroShotCategory,
} from '../../src/domain/models/clip.js';
import {
  CLIP_PREPROCESSOR_JSON,
  seededWeights,
  TINY_VOCAB,
  TOKEN_WIDTH,
  tokenId,
  writeTinyClipModel,
} from './tiny-models.js';

const root = mkdtempSync(join(tmpdir(), 'allocator-clip-'));
const opened: ClipModel[] = [];
afterAll(async () => {
  await Promise.all(opened.map((model) => model.close()));
  rmSync(root, { recursive: true, force: true });
});

let dirCount = 0;
function modelDir(name = 'clip-tiny'): string {
  dirCount++;
  return join(root, String(dirCount), name);
}

async function load(dir: string): Promise<ClipModel> {
  const model = await loadClipModel(dir);
  opened.push(model);
  return model;
}

const MEAN = CLIP_PREPROCESSOR_JSON.image_mean;
const STD = CLIP_PREPROCESSOR_JSON.image_std;
const RESCALE = CLIP_PREPROCESSOR_JSON.rescale_factor;
const CLIP_CONFIG = parsePreprocessorConfig(CLIP_PREPROCESSOR_JSON);

/** Normalised value of an 8-bit level in a channel, as float32. */
function normalised(level: number, channel: number): number {
  return Math.fround((level * RESCALE - (MEAN[channel] as number)) / (STD[channel] as number));
}

type Rgb = [number, number, number];
const RED: Rgb = [255, 0, 0];
const GREEN: Rgb = [0, 255, 0];
const BLUE: Rgb = [0, 0, 255];

async function solidPng(width: number, height: number, colour: Rgb): Promise<Buffer> {
  return sharp({
    create: { width, height, channels: 3, background: { r: colour[0], g: colour[1], b: colour[2] } },
  })
    .png()
    .toBuffer();
}

/** PNG whose pixel (x, y) has colour `paint(x, y)`. */
async function paintedPng(
  width: number,
  height: number,
  paint: (x: number, y: number) => Rgb,
): Promise<Buffer> {
  const raw = Buffer.alloc(width * height * 3);
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) raw.set(paint(x, y), (y * width + x) * 3);
  }
  return sharp(raw, { raw: { width, height, channels: 3 } })
    .png()
    .toBuffer();
}

/** Every value of channel `c` of an NCHW tensor of one image. */
function channelValues(data: Float32Array, c: number, height: number, width: number): Float32Array {
  return data.subarray(c * height * width, (c + 1) * height * width);
}

function expectAllEqual(values: Float32Array, expected: number): void {
  expect(Math.min(...values)).toBe(expected);
  expect(Math.max(...values)).toBe(expected);
}

function norm(vector: Float32Array): number {
  return Math.sqrt(vector.reduce((sum, value) => sum + value * value, 0));
}

function dot(a: Float32Array, b: Float32Array): number {
  let sum = 0;
  for (let i = 0; i < a.length; i++) sum += (a[i] as number) * (b[i] as number);
  return sum;
}

function normalise(vector: Float64Array): Float64Array {
  const length = Math.sqrt(vector.reduce((sum, value) => sum + value * value, 0));
  return vector.map((value) => value / length);
}

/** row-vector × matrix (rows × columns, row-major). */
function project(vector: ArrayLike<number>, matrix: Float32Array, columns: number): Float64Array {
  const out = new Float64Array(columns);
  for (let r = 0; r < vector.length; r++) {
    for (let c = 0; c < columns; c++)
      out[c] = (out[c] as number) + (vector[r] as number) * (matrix[r * columns + c] as number);
  }
  return out;
}

function expectVectorClose(actual: Float32Array, expected: Float64Array, tolerance = 1e-5): void {
  expect(actual.length).toBe(expected.length);
  let worst = 0;
  for (let i = 0; i < actual.length; i++)
    worst = Math.max(worst, Math.abs((actual[i] as number) - (expected[i] as number)));
  expect(worst).toBeLessThan(tolerance);
}

/** Ids the test tokenizer gives a text: start token, words, end token, padded to 77 with `pad`. */
function clipIds(words: string[], pad: number): number[] {
  const ids = [tokenId('<|startoftext|>'), ...words.map(tokenId), tokenId('<|endoftext|>')];
  while (ids.length < 77) ids.push(pad);
  return ids;
}

/** The tiny text tower by hand: mean of the token embeddings of `ids` (only the first `real` when given) × projection. */
function handTextEmbedding(
  model: { tokenEmbeddings: Float32Array; textProjection: Float32Array; dimension: number },
  ids: number[],
  real = ids.length,
): Float64Array {
  const mean = new Float64Array(TOKEN_WIDTH);
  for (const id of ids.slice(0, real)) {
    for (let d = 0; d < TOKEN_WIDTH; d++)
      mean[d] = (mean[d] as number) + (model.tokenEmbeddings[id * TOKEN_WIDTH + d] as number) / real;
  }
  return normalise(project(mean, model.textProjection, model.dimension));
}

describe('parsePreprocessorConfig', () => {
  it('reads the CLIP preprocessor config', () => {
    expect(CLIP_CONFIG).toEqual({
      shortestEdge: 224,
      cropHeight: 224,
      cropWidth: 224,
      rescaleFactor: 0.00392156862745098,
      imageMean: [0.48145466, 0.4578275, 0.40821073],
      imageStd: [0.26862954, 0.26130258, 0.27577711],
      doResize: true,
      doCenterCrop: true,
      doNormalize: true,
    });
  });

  it('reads the older integer size form and fills in CLIP defaults', () => {
    expect(parsePreprocessorConfig({ size: 256, crop_size: 240, do_center_crop: false })).toEqual({
      ...CLIP_CONFIG,
      shortestEdge: 256,
      cropHeight: 240,
      cropWidth: 240,
      rescaleFactor: 1 / 255,
      doCenterCrop: false,
    });
  });

  it('rejects invalid values naming the key', () => {
    expect(() => parsePreprocessorConfig({ image_std: [0.2, 0, 0.3] })).toThrow('image_std');
    expect(() => parsePreprocessorConfig({ image_mean: [0.5, 0.5] })).toThrow('image_mean');
    expect(() => parsePreprocessorConfig({ size: { shortest_edge: 0 } })).toThrow('size.shortest_edge');
    expect(() => parsePreprocessorConfig({ do_resize: 'yes' })).toThrow('do_resize');
    expect(() => parsePreprocessorConfig([])).toThrow('not an object');
  });
});

describe('clipPixelValues', () => {
  it('gives a [1,3,224,224] tensor with exact normalised values for a solid red image', async () => {
    const { data, dims } = await clipPixelValues(await solidPng(300, 200, RED), CLIP_CONFIG);
    expect(dims).toEqual([1, 3, 224, 224]);
    expect(data.length).toBe(3 * 224 * 224);
    expectAllEqual(channelValues(data, 0, 224, 224), normalised(255, 0));
    expectAllEqual(channelValues(data, 1, 224, 224), normalised(0, 1));
    expectAllEqual(channelValues(data, 2, 224, 224), normalised(0, 2));
    expect(data[0]).toBeCloseTo((1 - 0.48145466) / 0.26862954, 5);
    expect(data[224 * 224]).toBeCloseTo(-0.4578275 / 0.26130258, 5);
    expect(data[2 * 224 * 224]).toBeCloseTo(-0.40821073 / 0.27577711, 5);
  });

  it('crops the centre of a landscape image', async () => {
    // 448×224: red | green | blue in vertical bands; the centre 224 columns are the green band.
    const image = await paintedPng(448, 224, (x) => (x < 112 ? RED : x < 336 ? GREEN : BLUE));
    const { data, dims } = await clipPixelValues(image, CLIP_CONFIG);
    expect(dims).toEqual([1, 3, 224, 224]);
    expectAllEqual(channelValues(data, 0, 224, 224), normalised(0, 0));
    expectAllEqual(channelValues(data, 1, 224, 224), normalised(255, 1));
    expectAllEqual(channelValues(data, 2, 224, 224), normalised(0, 2));
  });

  it('crops the centre of a portrait image', async () => {
    const image = await paintedPng(224, 448, (_, y) => (y < 112 ? RED : y < 336 ? BLUE : GREEN));
    const { data } = await clipPixelValues(image, CLIP_CONFIG);
    expectAllEqual(channelValues(data, 0, 224, 224), normalised(0, 0));
    expectAllEqual(channelValues(data, 2, 224, 224), normalised(255, 2));
  });

  it('resizes the shortest edge to 224 before cropping', async () => {
    // 896×448 halves to 448×224; the crop then covers exactly the middle (green) band of the original.
    const image = await paintedPng(896, 448, (x) => (x < 224 ? RED : x < 672 ? GREEN : BLUE));
    const { data, dims } = await clipPixelValues(image, CLIP_CONFIG);
    expect(dims).toEqual([1, 3, 224, 224]);
    const green = channelValues(data, 1, 224, 224);
    const red = channelValues(data, 0, 224, 224);
    // Away from the band edges (where the bicubic kernel blends), the crop is pure green.
    for (let y = 0; y < 224; y += 7) {
      for (let x = 4; x < 220; x++) {
        expect(Math.abs((green[y * 224 + x] as number) - normalised(255, 1))).toBeLessThan(0.02);
        expect(Math.abs((red[y * 224 + x] as number) - normalised(0, 0))).toBeLessThan(0.02);
      }
    }
  });

  it('keeps the crop size and pads when the image is smaller and resizing is off', async () => {
    const config = { ...CLIP_CONFIG, doResize: false };
    const { data, dims } = await clipPixelValues(await solidPng(101, 224, RED), config);
    expect(dims).toEqual([1, 3, 224, 224]);
    const red = channelValues(data, 0, 224, 224);
    // 62 zero columns on the left (ceil of 123/2), the 101 image columns, 61 on the right.
    expect(red[61]).toBe(normalised(0, 0));
    expect(red[62]).toBe(normalised(255, 0));
    expect(red[162]).toBe(normalised(255, 0));
    expect(red[163]).toBe(normalised(0, 0));
  });

  it('flattens transparency onto white', async () => {
    const transparent = await sharp({
      create: { width: 50, height: 50, channels: 4, background: { r: 0, g: 0, b: 0, alpha: 0 } },
    })
      .png()
      .toBuffer();
    const { data } = await clipPixelValues(transparent, CLIP_CONFIG);
    for (let c = 0; c < 3; c++) expectAllEqual(channelValues(data, c, 224, 224), normalised(255, c));
  });

  it('applies the EXIF orientation', async () => {
    // Left half red, right half green; orientation 6 turns it a quarter clockwise, so red ends on top.
    const raw = await paintedPng(448, 224, (x) => (x < 224 ? RED : GREEN));
    const rotated = await sharp(raw).jpeg({ quality: 95 }).withMetadata({ orientation: 6 }).toBuffer();
    const { data } = await clipPixelValues(rotated, CLIP_CONFIG);
    const red = channelValues(data, 0, 224, 224);
    expect(Math.abs((red[50 * 224 + 112] as number) - normalised(255, 0))).toBeLessThan(0.1);
    expect(Math.abs((red[170 * 224 + 112] as number) - normalised(0, 0))).toBeLessThan(0.1);
  });

  it('rejects bytes that are not an image', async () => {
    await expect(clipPixelValues(Buffer.from('not an image'), CLIP_CONFIG)).rejects.toThrow();
  });
});

describe('loadClipModel', () => {
  it('reports the directory name and a 512-d embedding size', async () => {
    const tiny = writeTinyClipModel(modelDir('clip-vit-tiny'));
    const model = await load(tiny.dir);
    expect(model.modelId).toBe('clip-vit-tiny');
    expect(model.dimension).toBe(512);
  });

  it('embeds a solid image as the normalised projection of its channel means', async () => {
    const tiny = writeTinyClipModel(modelDir());
    const model = await load(tiny.dir);
    const embedding = await model.embedImage(await solidPng(64, 48, RED));
    expect(embedding).toBeInstanceOf(Float32Array);
    expect(embedding.length).toBe(512);
    expect(norm(embedding)).toBeCloseTo(1, 5);
    const means = [normalised(255, 0), normalised(0, 1), normalised(0, 2)];
    expectVectorClose(embedding, normalise(project(means, tiny.visionWeights, 512)));
  });

  it('averages each channel over the cropped tensor (GlobalAveragePool) for a varied image', async () => {
    const tiny = writeTinyClipModel(modelDir());
    const model = await load(tiny.dir);
    const image = await paintedPng(320, 240, (x, y) => [x % 256, (y * 3) % 256, (x + y) % 256]);
    const { data } = await clipPixelValues(image, CLIP_CONFIG);
    const plane = 224 * 224;
    const means = [0, 1, 2].map(
      (c) => channelValues(data, c, 224, 224).reduce((sum, value) => sum + value, 0) / plane,
    );
    const embedding = await model.embedImage(image);
    expect(norm(embedding)).toBeCloseTo(1, 5);
    expectVectorClose(embedding, normalise(project(means, tiny.visionWeights, 512)));
    const other = await model.embedImage(await solidPng(64, 64, BLUE));
    expect(dot(embedding, other)).toBeLessThan(0.999);
  });

  it('embeds text through the text tower from 77 token ids padded with the end token', async () => {
    const tiny = writeTinyClipModel(modelDir());
    const model = await load(tiny.dir);
    const cat = await model.embedText('A photo of a cat');
    const dog = await model.embedText('a photo of a dog');
    expect(cat.length).toBe(512);
    expect(norm(cat)).toBeCloseTo(1, 5);
    expect(norm(dog)).toBeCloseTo(1, 5);
    const pad = tokenId('<|endoftext|>');
    expectVectorClose(cat, handTextEmbedding(tiny, clipIds(['a', 'photo', 'of', 'a', 'cat'], pad)));
    expectVectorClose(dog, handTextEmbedding(tiny, clipIds(['a', 'photo', 'of', 'a', 'dog'], pad)));
    // One token of 77 differs, so the embeddings differ a little, but well beyond float error.
    expect(dot(cat, dog)).toBeLessThan(1 - 1e-5);
    // Unknown words become the unknown token.
    const unknown = await model.embedText('zebra');
    expectVectorClose(unknown, handTextEmbedding(tiny, clipIds(['[UNK]'], pad)));
  });

  it("pads with the tokenizer config's pad token", async () => {
    const tiny = writeTinyClipModel(modelDir(), {
      tokenizerConfig: { eos_token: '<|endoftext|>', pad_token: '[PAD]' },
    });
    const model = await load(tiny.dir);
    const embedding = await model.embedText('red cat');
    expectVectorClose(embedding, handTextEmbedding(tiny, clipIds(['red', 'cat'], tokenId('[PAD]'))));
  });

  it('cuts long text to 77 tokens, keeping the end token', async () => {
    const tiny = writeTinyClipModel(modelDir(), { tokenizerConfig: null });
    const model = await load(tiny.dir);
    const words = Array.from({ length: 100 }, (_, i) => (i % 2 === 0 ? 'red' : 'blue'));
    const embedding = await model.embedText(words.join(' '));
    const ids = [tokenId('<|startoftext|>'), ...words.slice(0, 75).map(tokenId), tokenId('<|endoftext|>')];
    expect(ids.length).toBe(77);
    expectVectorClose(embedding, handTextEmbedding(tiny, ids));
  });

  it('feeds attention_mask (1 for tokens, 0 for padding) when the graph declares it', async () => {
    const tiny = writeTinyClipModel(modelDir(), { textAttentionMask: true });
    const model = await load(tiny.dir);
    const embedding = await model.embedText('a photo of a cat');
    const ids = clipIds(['a', 'photo', 'of', 'a', 'cat'], tokenId('<|endoftext|>'));
    // The graph averages the masked tokens only: the 7 real ones.
    expectVectorClose(embedding, handTextEmbedding(tiny, ids, 7));
    const unmasked = handTextEmbedding(tiny, ids);
    expect(Math.abs(dot(embedding, Float32Array.from(unmasked)) - 1)).toBeGreaterThan(1e-3);
  });

  it('picks up the quantized file names', async () => {
    const tiny = writeTinyClipModel(modelDir(), { quantized: true });
    const model = await load(tiny.dir);
    expect(model.dimension).toBe(512);
    const embedding = await model.embedImage(await solidPng(32, 32, GREEN));
    const means = [normalised(0, 0), normalised(255, 1), normalised(0, 2)];
    expectVectorClose(embedding, normalise(project(means, tiny.visionWeights, 512)));
  });

  it('prefers the full-precision files when both are present', async () => {
    const dir = modelDir();
    writeTinyClipModel(dir, { quantized: true, visionWeights: seededWeights(3 * 512, 77) });
    const full = writeTinyClipModel(dir, { visionWeights: seededWeights(3 * 512, 78) });
    const model = await load(dir);
    const embedding = await model.embedImage(await solidPng(32, 32, RED));
    const means = [normalised(255, 0), normalised(0, 1), normalised(0, 2)];
    expectVectorClose(embedding, normalise(project(means, full.visionWeights, 512)));
  });

  it('learns the size from a first run when the output shape is symbolic', async () => {
    const tiny = writeTinyClipModel(modelDir(), { symbolicOutputs: true, dimension: 96 });
    const model = await load(tiny.dir);
    expect(model.dimension).toBe(96);
    expect((await model.embedText('cat')).length).toBe(96);
  });

  it.each([
    ['onnx/vision_model.onnx'],
    ['onnx/text_model.onnx'],
    ['tokenizer.json'],
    ['preprocessor_config.json'],
  ])('names a missing %s', async (file) => {
    const tiny = writeTinyClipModel(modelDir());
    unlinkSync(join(tiny.dir, file));
    await expect(loadClipModel(tiny.dir)).rejects.toThrow(file);
  });

  it('names an invalid ONNX file, tokenizer or preprocessor config', async () => {
    const broken = writeTinyClipModel(modelDir());
    writeFileSync(join(broken.dir, 'onnx', 'text_model.onnx'), 'garbage');
    await expect(loadClipModel(broken.dir)).rejects.toThrow(/cannot load ONNX model .*text_model\.onnx/);

    const badJson = writeTinyClipModel(modelDir());
    writeFileSync(join(badJson.dir, 'tokenizer.json'), '{');
    await expect(loadClipModel(badJson.dir)).rejects.toThrow('tokenizer.json is not valid JSON');

    const badConfig = writeTinyClipModel(modelDir(), { preprocessor: { image_std: [0, 0, 0] } });
    await expect(loadClipModel(badConfig.dir)).rejects.toThrow(/preprocessor_config\.json: image_std/);
  });

  it('rejects a vision graph whose input size differs from the crop size', async () => {
    const tiny = writeTinyClipModel(modelDir(), { visionSide: 256 });
    await expect(loadClipModel(tiny.dir)).rejects.toThrow(
      'onnx/vision_model.onnx takes 256×256 images but preprocessor_config.json crops to 224×224',
    );
  });
});

describe('zeroShotCategory', () => {
  it('lists the ten categories of the fallback labeller', () => {
    expect(ZERO_SHOT_CATEGORIES).toEqual([
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
  });

  it('picks the category whose prompt embedding was built to match the image, and caches the prompts', async () => {
    // Only category words carry a token embedding, so each prompt's text embedding is its word's row × projection.
    const tokenEmbeddings = new Float32Array(TINY_VOCAB.length * TOKEN_WIDTH);
    const categoryWords = ZERO_SHOT_CATEGORIES.map((category) => category.split(' ')[0] as string);
    const seeded = seededWeights(categoryWords.length * TOKEN_WIDTH, 9);
    categoryWords.forEach((word, index) => {
      tokenEmbeddings.set(
        seeded.subarray(index * TOKEN_WIDTH, (index + 1) * TOKEN_WIDTH),
        tokenId(word) * TOKEN_WIDTH,
      );
    });
    const textProjection = seededWeights(TOKEN_WIDTH * 512, 10);
    const promptDirection = (word: string) =>
      project(
        tokenEmbeddings.subarray(tokenId(word) * TOKEN_WIDTH, (tokenId(word) + 1) * TOKEN_WIDTH),
        textProjection,
        512,
      );
    // Vision weights W solve P·W = T: pure red, green and blue images map onto food, nature and vehicle.
    const colours = [RED, GREEN, BLUE];
    const pixelMeans = colours.map((colour) => colour.map((level, c) => normalised(level, c)));
    const targets = ['food', 'nature', 'vehicle'].map(promptDirection);
    const inverse = invert3(pixelMeans);
    const visionWeights = new Float32Array(3 * 512);
    for (let row = 0; row < 3; row++) {
      for (let col = 0; col < 512; col++) {
        let sum = 0;
        for (let k = 0; k < 3; k++) sum += (inverse[row]?.[k] as number) * (targets[k]?.[col] as number);
        visionWeights[row * 512 + col] = sum;
      }
    }
    const tiny = writeTinyClipModel(modelDir(), { tokenEmbeddings, textProjection, visionWeights });
    const loaded = await load(tiny.dir);
    let textCalls = 0;
    const model: ClipModel = {
      modelId: loaded.modelId,
      dimension: loaded.dimension,
      embedImage: (image) => loaded.embedImage(image),
      embedText: (text) => {
        textCalls++;
        return loaded.embedText(text);
      },
      close: () => loaded.close(),
    };

    const expected = ['food', 'nature', 'vehicle'];
    for (const [index, colour] of colours.entries()) {
      const result = await zeroShotCategory(model, await model.embedImage(await solidPng(40, 40, colour)));
      expect(result.category).toBe(expected[index]);
      expect(result.score).toBeCloseTo(1, 4);
    }
    expect(textCalls).toBe(10);
  });
});

/** Inverse of a 3×3 matrix (adjugate over determinant). */
function invert3(m: number[][]): number[][] {
  const [[a, b, c], [d, e, f], [g, h, i]] = m as [Triple, Triple, Triple];
  const det = a * (e * i - f * h) - b * (d * i - f * g) + c * (d * h - e * g);
  return [
    [(e * i - f * h) / det, (c * h - b * i) / det, (b * f - c * e) / det],
    [(f * g - d * i) / det, (a * i - c * g) / det, (c * d - a * f) / det],
    [(d * h - e * g) / det, (b * g - a * h) / det, (a * e - b * d) / det],
  ];
}

type Triple = [number, number, number];
