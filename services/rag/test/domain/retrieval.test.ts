import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RagDb } from '../../src/domain/database.js';
import {
  restoreDocument,
  restoreStore,
  softDeleteDocument,
  softDeleteStore,
} from '../../src/domain/documents.js';
import {
  BM25_B,
  BM25_K1,
  bm25Idf,
  isSummaryIntent,
  type RetrievalSettings,
  requiredMatches,
  searchCandidates,
  summaryContext,
  warmRetrievalCache,
} from '../../src/domain/retrieval.js';
import { contentTerms, termFrequencies } from '../../src/domain/text/analysis.js';
import { localEmbedding, toPgVector } from '../../src/domain/text/embedding.js';
import { createStore, createUser, testBackends } from './rag-fixtures.js';

const SETTINGS: RetrievalSettings = { candidates: 40, rrfK: 60, minTermCoverage: 0.3, topK: 50 };
const DIM = 384;

/** A DONE document with one chunk per text (terms and, where pgvector exists, the local embedding). */
async function indexedDocument(
  db: RagDb,
  storeId: number,
  filename: string,
  texts: string[],
  indexedAt = new Date(),
): Promise<{ documentId: number; chunkIds: number[] }> {
  const document = await db.kysely
    .insertInto('documents')
    .values({
      store_id: storeId,
      filename,
      display_name: filename.replace(/\.\w+$/, ''),
      mime_type: 'text/plain',
      size_bytes: 10,
      sha256: '0'.repeat(64),
      storage_path: '/nowhere',
      status: 'DONE',
      status_updated_at: indexedAt,
      chunk_count: texts.length,
    })
    .returning('id')
    .executeTakeFirstOrThrow();
  const chunkIds: number[] = [];
  for (const [ordinal, text] of texts.entries()) {
    const { terms, count } = termFrequencies(text);
    const chunk = await db.kysely
      .insertInto('chunks')
      .values({
        document_id: document.id,
        store_id: storeId,
        ordinal,
        page: null,
        text,
        token_count: Math.max(1, Math.floor(text.length / 4)),
        terms: JSON.stringify(terms),
        term_count: count,
      })
      .returning('id')
      .executeTakeFirstOrThrow();
    chunkIds.push(chunk.id);
    if (db.vectorEnabled)
      await db.kysely
        .insertInto('chunk_vectors')
        .values({ chunk_id: chunk.id, store_id: storeId, embedding: toPgVector(localEmbedding(text, DIM)) })
        .execute();
  }
  return { documentId: document.id, chunkIds };
}

const CORPUS = [
  'The quarterly revenue grew by 12 percent thanks to strong widget sales in Europe.',
  'Widget production moved to the new factory in Porto; widget defects fell sharply.',
  'Employee onboarding takes two weeks and includes security training.',
  'The cafeteria menu changes every Monday and offers vegetarian dishes.',
  'Revenue from services declined while widget revenue doubled in Asia.',
];

/** BM25 of `text` for the query, over CORPUS, exactly as the spec defines it. */
function expectedBm25(query: string, text: string): number {
  const q = [...new Set(contentTerms(query))];
  const docs = CORPUS.map((entry) => termFrequencies(entry));
  const avgdl = docs.reduce((sum, doc) => sum + doc.count, 0) / docs.length;
  const doc = termFrequencies(text);
  let score = 0;
  for (const term of q) {
    const tf = doc.terms[term] ?? 0;
    if (tf === 0) continue;
    const df = docs.filter((entry) => (entry.terms[term] ?? 0) > 0).length;
    const idf = Math.log(1 + (docs.length - df + 0.5) / (df + 0.5));
    score += (idf * tf * (BM25_K1 + 1)) / (tf + BM25_K1 * (1 - BM25_B + (BM25_B * doc.count) / avgdl));
  }
  return score;
}

describe('gate arithmetic', () => {
  it('needs max(1, ceil(0.3 × |Q|)) matched terms and nothing passes an empty Q', () => {
    expect(requiredMatches(1, 0.3)).toBe(1);
    expect(requiredMatches(3, 0.3)).toBe(1);
    expect(requiredMatches(4, 0.3)).toBe(2);
    expect(requiredMatches(10, 0.3)).toBe(3);
    expect(requiredMatches(0, 0.3)).toBe(Number.POSITIVE_INFINITY);
    expect(bm25Idf(10, 2)).toBeCloseTo(Math.log(1 + 8.5 / 2.5), 12);
  });

  it('recognises the summary intent', () => {
    expect(isSummaryIntent('Summarize the key findings from my uploads.')).toBe(true);
    expect(isSummaryIntent('Give me an overview')).toBe(true);
    expect(isSummaryIntent('Create an outline using the latest documents.')).toBe(true);
    expect(isSummaryIntent('What are the key points?')).toBe(true);
    expect(isSummaryIntent('What is the revenue?')).toBe(false);
  });
});

describe.each(await testBackends())('retrieval on $name', (backend) => {
  let db: RagDb;
  let alice: number;
  let bob: number;
  let aliceStore: number;
  let bobStore: number;
  let corpusChunks: number[];

  beforeAll(async () => {
    db = await backend.open();
    alice = await createUser(db);
    bob = await createUser(db);
    aliceStore = await createStore(db, alice, 'Alice');
    bobStore = await createStore(db, bob, 'Bob');
    corpusChunks = (await indexedDocument(db, aliceStore, 'corpus.txt', CORPUS)).chunkIds;
    await indexedDocument(db, bobStore, 'bob.txt', ['Bob keeps his own widget revenue forecast here.']);
  });
  afterAll(async () => {
    await db?.close();
    await backend.cleanup();
  });

  const search = (userId: number, storeIds: number[], query: string, settings = SETTINGS) =>
    searchCandidates(db, {
      userId,
      storeIds,
      query,
      config: settings,
      ...(db.vectorEnabled ? { queryEmbedding: localEmbedding(query, DIM) } : {}),
    });

  it('scores chunks with BM25 (k1 1.2, b 0.75, the spec idf) and ranks the best match first', async () => {
    const query = 'widget revenue';
    const result = await search(alice, [aliceStore], query);
    expect(result.queryTerms).toEqual(contentTerms(query));
    const lexical = result.candidates.filter((candidate) => candidate.lexicalScore > 0);
    expect(lexical.map((candidate) => candidate.chunkId).sort()).toEqual(
      [corpusChunks[0], corpusChunks[1], corpusChunks[4]].sort(),
    );
    for (const candidate of lexical)
      expect(candidate.lexicalScore).toBeCloseTo(expectedBm25(query, candidate.text), 9);
    // Both terms, twice "widget"/"revenue" in chunk 4: the best lexical and re-ranked first.
    expect(result.candidates[0]?.chunkId).toBe(corpusChunks[4]);
    expect(result.candidates[0]).toMatchObject({
      documentId: expect.any(Number),
      storeId: aliceStore,
      ordinal: 4,
      title: 'corpus',
      filename: 'corpus.txt',
      mimeType: 'text/plain',
      coverage: 1,
      passesGate: true,
    });
    const [widget, revenue] = result.queryTerms;
    expect(result.idf(widget ?? '')).toBeCloseTo(bm25Idf(5, 3), 12);
    expect(result.idf(revenue ?? '')).toBeCloseTo(bm25Idf(5, 2), 12);
    expect(result.idf('unseen')).toBeCloseTo(bm25Idf(5, 0), 12);
  });

  it('fuses the lists with RRF k 60 and re-ranks passing chunks by coverage, fused score, id', async () => {
    const result = await search(alice, [aliceStore], 'widget defects in the factory');
    const passing = result.candidates.filter((candidate) => candidate.passesGate);
    expect(passing[0]?.chunkId).toBe(corpusChunks[1]);
    for (const candidate of result.candidates) {
      const lexicalRank = [...result.candidates]
        .filter((other) => other.lexicalScore > 0)
        .sort((a, b) => b.lexicalScore - a.lexicalScore || a.chunkId - b.chunkId)
        .findIndex((other) => other.chunkId === candidate.chunkId);
      if (!db.vectorEnabled && lexicalRank >= 0)
        expect(candidate.fused).toBeCloseTo(1 / (60 + lexicalRank + 1), 12);
    }
    for (let index = 1; index < passing.length; index++) {
      const before = passing[index - 1];
      const after = passing[index];
      if (before === undefined || after === undefined) continue;
      expect(
        before.coverage > after.coverage ||
          (before.coverage === after.coverage && before.fused >= after.fused),
      ).toBe(true);
    }
    // Passing candidates always come before the rest.
    const firstFailing = result.candidates.findIndex((candidate) => !candidate.passesGate);
    if (firstFailing >= 0)
      expect(result.candidates.slice(firstFailing).every((c) => !c.passesGate)).toBe(true);
  });

  it('refuses unrelated questions: nothing passes the gate, vector similarity alone never does', async () => {
    const result = await search(alice, [aliceStore], 'quantum chromodynamics lattice simulation');
    expect(result.candidates.every((candidate) => !candidate.passesGate)).toBe(true);
    if (db.vectorEnabled) {
      // The vector list still ranks every chunk, with similarity but zero coverage.
      expect(result.candidates.length).toBe(CORPUS.length);
      expect(
        result.candidates.every((candidate) => candidate.vectorScore !== null && candidate.coverage === 0),
      ).toBe(true);
    } else expect(result.candidates).toEqual([]);
    // A question made only of stop words has no terms: nothing passes.
    const empty = await search(alice, [aliceStore], 'what is it about?');
    expect(empty.queryTerms).toEqual([]);
    expect(empty.candidates.some((candidate) => candidate.passesGate)).toBe(false);
  });

  it('needs ceil(30 %) of the query terms: one of four is not enough', async () => {
    const result = await search(alice, [aliceStore], 'cafeteria astronomy telescope galaxy');
    const cafeteria = result.candidates.find((candidate) => candidate.chunkId === corpusChunks[3]);
    expect(cafeteria).toMatchObject({ coverage: 0.25, passesGate: false });
    const twoOfFour = await search(alice, [aliceStore], 'cafeteria vegetarian telescope galaxy');
    expect(twoOfFour.candidates[0]).toMatchObject({
      chunkId: corpusChunks[3],
      coverage: 0.5,
      passesGate: true,
    });
  });

  it('never returns another user’s chunks, even when given their store ids', async () => {
    const stolen = await search(bob, [aliceStore], 'widget revenue');
    expect(stolen.candidates).toEqual([]);
    const mixed = await search(bob, [aliceStore, bobStore], 'widget revenue Europe factory');
    expect(mixed.candidates.length).toBeGreaterThan(0);
    expect(mixed.candidates.every((candidate) => candidate.storeId === bobStore)).toBe(true);
    expect(await summaryContext(db, bob, [aliceStore])).toEqual([]);
  });

  it('drops deleted documents and stores from retrieval at once and brings restored ones back', async () => {
    const store = await createStore(db, alice, 'Temporary');
    const { documentId } = await indexedDocument(db, store, 'zebra.txt', [
      'Zebras graze on the savanna at dawn.',
    ]);
    const count = async () =>
      (await search(alice, [store], 'zebra savanna')).candidates.filter((c) => c.passesGate).length;
    expect(await count()).toBe(1);

    expect(await softDeleteDocument(db, alice, documentId)).toBe(true);
    expect(await count()).toBe(0);
    expect(await restoreDocument(db, documentId)).toEqual({ document_id: documentId, store_id: store });
    expect(await count()).toBe(1);

    expect(await softDeleteStore(db, bob, store)).toBe(false); // not Bob's
    expect(await softDeleteStore(db, alice, store)).toBe(true);
    expect(await count()).toBe(0);
    expect(await restoreStore(db, store)).toBe(true);
    expect(await count()).toBe(1);
  });

  it('leaves documents that are not DONE out of scope', async () => {
    const store = await createStore(db, alice, 'Pending');
    const { documentId } = await indexedDocument(db, store, 'okapi.txt', [
      'Okapis live in the Ituri rainforest.',
    ]);
    await db.kysely
      .updateTable('documents')
      .set({ status: 'RUNNING' })
      .where('id', '=', documentId)
      .execute();
    expect((await search(alice, [store], 'okapi rainforest')).candidates).toEqual([]);
  });

  it('applies metadata filters inside the scope', async () => {
    const store = await createStore(db, alice, 'Filtered');
    await indexedDocument(db, store, 'a.txt', ['Lighthouse keepers log the weather hourly.']);
    await indexedDocument(db, store, 'b.txt', ['Lighthouse lamps rotate once per minute.']);
    const result = await searchCandidates(db, {
      userId: alice,
      storeIds: [store],
      query: 'lighthouse',
      config: SETTINGS,
      metadataFilter: { filename: ['b.txt'] },
    });
    expect(result.candidates.map((candidate) => candidate.filename)).toEqual(['b.txt']);
  });

  it('warms the in-memory index of every indexed document', async () => {
    const { documents } = await warmRetrievalCache(db);
    expect(documents).toBeGreaterThanOrEqual(2);
    const result = await search(alice, [aliceStore], 'widget revenue');
    expect(result.candidates[0]?.chunkId).toBe(corpusChunks[4]);
  });

  it('keeps topK candidates', async () => {
    const result = await search(alice, [aliceStore], 'widget revenue', { ...SETTINGS, topK: 2 });
    expect(result.candidates).toHaveLength(2);
  });

  it('gives the summary context: first two sentences of the three most recently indexed documents', async () => {
    const store = await createStore(db, alice, 'Summaries');
    const texts = [
      'First one. Second one. Third one.',
      'Alpha report. Beta line. Gamma.',
      'Old A. Old B.',
      'New A! New B? New C.',
    ];
    for (const [index, text] of texts.entries())
      await indexedDocument(db, store, `s${index}.txt`, [text], new Date(Date.UTC(2030, 0, index + 1)));
    const context = await summaryContext(db, alice, [store]);
    expect(context.map((candidate) => candidate.text)).toEqual([
      'New A! New B?',
      'Old A. Old B.',
      'Alpha report. Beta line.',
    ]);
    expect(context.map((candidate) => candidate.filename)).toEqual(['s3.txt', 's2.txt', 's1.txt']);
  });
});
