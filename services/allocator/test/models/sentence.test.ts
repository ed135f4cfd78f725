import { mkdtempSync, rmSync, unlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { loadSentenceModel, type SentenceModel } from '../../src/domain/models/sentence.js';
import { SENTENCE_WIDTH, seededWeights, TINY_VOCAB, tokenId, writeTinySentenceModel } from './tiny-models.js';

const root = mkdtempSync(join(tmpdir(), 'allocator-sentence-'));
const opened: SentenceModel[] = [];
afterAll(async () => {
  await Promise.all(opened.map((model) => model.close()));
  rmSync(root, { recursive: true, force: true });
});

let dirCount = 0;
function modelDir(name = 'mpnet-tiny'): string {
  dirCount++;
  return join(root, String(dirCount), name);
}

async function load(dir: string): Promise<SentenceModel> {
  const model = await loadSentenceModel(dir);
  opened.push(model);
  return model;
}

/** [CLS] words [SEP] as ids. */
function sentenceIds(words: string[]): number[] {
  return [tokenId('[CLS]'), ...words.map(tokenId), tokenId('[SEP]')];
}

/** Normalised mean of the word-embedding rows of `ids`. */
function handEmbedding(wordEmbeddings: Float32Array, ids: number[]): Float64Array {
  const mean = new Float64Array(SENTENCE_WIDTH);
  for (const id of ids) {
    for (let d = 0; d < SENTENCE_WIDTH; d++) {
      mean[d] = (mean[d] as number) + (wordEmbeddings[id * SENTENCE_WIDTH + d] as number) / ids.length;
    }
  }
  const length = Math.sqrt(mean.reduce((sum, value) => sum + value * value, 0));
  return mean.map((value) => value / length);
}

function expectVectorClose(actual: Float32Array, expected: Float64Array, tolerance = 1e-5): void {
  expect(actual.length).toBe(expected.length);
  let worst = 0;
  for (let i = 0; i < actual.length; i++)
    worst = Math.max(worst, Math.abs((actual[i] as number) - (expected[i] as number)));
  expect(worst).toBeLessThan(tolerance);
}

function cosine(a: Float32Array, b: Float64Array): number {
  let sum = 0;
  for (let i = 0; i < a.length; i++) sum += (a[i] as number) * (b[i] as number);
  return sum;
}

describe('loadSentenceModel', () => {
  it('reports the directory name and the 768-d size of the hidden states', async () => {
    const tiny = writeTinySentenceModel(modelDir('all-mpnet-tiny'));
    const model = await load(tiny.dir);
    expect(model.modelId).toBe('all-mpnet-tiny');
    expect(model.dimension).toBe(768);
  });

  it('mean-pools the token embeddings of the text with its special tokens and normalises', async () => {
    const tiny = writeTinySentenceModel(modelDir());
    const model = await load(tiny.dir);
    const embedding = await model.embed('Red cat');
    expect(embedding).toBeInstanceOf(Float32Array);
    expect(embedding.length).toBe(768);
    expectVectorClose(embedding, handEmbedding(tiny.wordEmbeddings, sentenceIds(['red', 'cat'])));
    const other = await model.embed('blue dog zebra');
    expectVectorClose(other, handEmbedding(tiny.wordEmbeddings, sentenceIds(['blue', 'dog', '[UNK]'])));
  });

  it('leaves padding out of the mean (attention mask 0)', async () => {
    // The pad row is huge: averaging it in would swamp the real tokens.
    const wordEmbeddings = seededWeights(TINY_VOCAB.length * SENTENCE_WIDTH, 21);
    wordEmbeddings.fill(50, tokenId('[PAD]') * SENTENCE_WIDTH, (tokenId('[PAD]') + 1) * SENTENCE_WIDTH);
    const tiny = writeTinySentenceModel(modelDir(), { wordEmbeddings, fixedPadding: 12 });
    const model = await load(tiny.dir);
    const embedding = await model.embed('red green cat');
    const ids = sentenceIds(['red', 'green', 'cat']);
    expectVectorClose(embedding, handEmbedding(wordEmbeddings, ids));
    const padded = [...ids, ...Array<number>(12 - ids.length).fill(tokenId('[PAD]'))];
    expect(cosine(embedding, handEmbedding(wordEmbeddings, padded))).toBeLessThan(0.5);
  });

  it('cuts text to the tokenizer truncation length, keeping the end token', async () => {
    const tiny = writeTinySentenceModel(modelDir(), { truncation: 5 });
    const model = await load(tiny.dir);
    const embedding = await model.embed('red green blue cat dog');
    expectVectorClose(embedding, handEmbedding(tiny.wordEmbeddings, sentenceIds(['red', 'green', 'blue'])));
  });

  it("prefers sentence_bert_config.json's max_seq_length", async () => {
    const tiny = writeTinySentenceModel(modelDir(), { truncation: 6, maxSeqLength: 4 });
    const model = await load(tiny.dir);
    const embedding = await model.embed('red green blue cat dog');
    expectVectorClose(embedding, handEmbedding(tiny.wordEmbeddings, sentenceIds(['red', 'green'])));
  });

  it('feeds token_type_ids when the graph declares them, and finds quantized files', async () => {
    const tiny = writeTinySentenceModel(modelDir(), { tokenTypeIds: true, quantized: true });
    const model = await load(tiny.dir);
    const embedding = await model.embed('a photo');
    expectVectorClose(embedding, handEmbedding(tiny.wordEmbeddings, sentenceIds(['a', 'photo'])));
  });

  it('names missing files', async () => {
    const noTokenizer = writeTinySentenceModel(modelDir());
    unlinkSync(join(noTokenizer.dir, 'tokenizer.json'));
    await expect(loadSentenceModel(noTokenizer.dir)).rejects.toThrow(
      `${noTokenizer.dir} is missing tokenizer.json`,
    );
    const noGraph = writeTinySentenceModel(modelDir());
    unlinkSync(join(noGraph.dir, 'onnx', 'model.onnx'));
    await expect(loadSentenceModel(noGraph.dir)).rejects.toThrow(
      'is missing onnx/model.onnx (or onnx/model_quantized.onnx)',
    );
  });
});
