import { sql } from 'kysely';
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
  primeDocumentIndex,
  type RetrievalSettings,
  requiredMatches,
  searchCandidates,
  summaryContext,
  warmRetrievalCache,
} from '../../src/domain/retrieval.js';
import {
  buildDocumentPostings,
  buildDocumentVectors,
  rankLexical,
  rankVectors,
  TermDictionary,
  TopScores,
} from '../../src/domain/retrieval-index.js';
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
  // A thousand rows per statement: documents of thousands of chunks stay quick to set up.
  for (let start = 0; start < texts.length; start += 1_000) {
    const rows = await db.kysely
      .insertInto('chunks')
      .values(
        texts.slice(start, start + 1_000).map((text, offset) => {
          const { terms, count } = termFrequencies(text);
          return {
            document_id: document.id,
            store_id: storeId,
            ordinal: start + offset,
            page: null,
            text,
            token_count: Math.max(1, Math.floor(text.length / 4)),
            terms: JSON.stringify(terms),
            term_count: count,
          };
        }),
      )
      .returning(['id', 'ordinal'])
      .execute();
    const ids = rows.sort((a, b) => a.ordinal - b.ordinal).map((row) => row.id);
    chunkIds.push(...ids);
    if (db.vectorEnabled)
      await db.kysely
        .insertInto('chunk_vectors')
        .values(
          ids.map((id, offset) => ({
            chunk_id: id,
            store_id: storeId,
            embedding: toPgVector(localEmbedding(texts[start + offset] as string, DIM)),
          })),
        )
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

/** Deterministic pseudo-random numbers in [0, 1). */
function seededRandom(seed: number): () => number {
  let state = seed;
  return () => {
    state = (state * 1103515245 + 12345) & 0x7fffffff;
    return state / 0x80000000;
  };
}

describe('in-memory scans', () => {
  it('keeps the best N by score desc, id asc — what a full sort keeps, ties included', () => {
    const random = seededRandom(7);
    const entries = Array.from({ length: 500 }, (_, index) => ({
      id: (index * 7919) % 1000,
      score: Math.floor(random() * 20) / 4,
    }));
    for (const size of [1, 5, 40, 600]) {
      const top = new TopScores(size);
      for (const entry of entries) top.offer(entry.id, entry.score);
      const expected = [...entries].sort((a, b) => b.score - a.score || a.id - b.id).slice(0, size);
      expect(top.sorted().map(({ id, score }) => ({ id, score }))).toEqual(expected);
    }
  });

  // Three documents of random chunks over a small vocabulary (most terms in most chunks, as in the benchmark).
  const vocabulary = ['pump', 'valv', 'pressur', 'filter', 'sensor', 'reactor', 'coolant', 'flow', '7x9'];
  const random = seededRandom(42);
  let nextChunkId = 1;
  const documents = [30, 1, 45].map((chunkCount) =>
    Array.from({ length: chunkCount }, () => {
      const terms: Record<string, number> = {};
      let count = 0;
      for (const term of vocabulary)
        if (random() < 0.6) {
          const tf = 1 + Math.floor(random() * 4);
          terms[term] = tf;
          count += tf;
        }
      count += Math.floor(random() * 5);
      nextChunkId += 1 + Math.floor(random() * 3);
      return { id: nextChunkId, terms, term_count: count };
    }),
  );

  it('scores BM25 over several documents exactly as the formula over the whole scope', () => {
    const dictionary = new TermDictionary();
    const allPostings = documents.map((rows) => buildDocumentPostings(rows, dictionary));
    // The same cached postings scored in a smaller scope again (other N, df, avgdl), then the whole one again.
    for (const scope of [
      [0, 1, 2],
      [0, 2],
      [0, 1, 2],
    ]) {
      const scoped = scope.map((index) => documents[index] ?? []);
      const postings = scope.map((index) => allPostings[index] as (typeof allPostings)[number]);
      const all = scoped.flat();
      const avgdl = all.reduce((sum, row) => sum + row.term_count, 0) / all.length;
      for (const query of [
        ['pump', 'flow'],
        ['7x9'],
        ['coolant', 'absent', 'sensor', 'valv'],
        ['absent'],
        ['flow'],
      ]) {
        const ranking = rankLexical(
          postings,
          query.map((term) => dictionary.idOf(term)),
          10,
        );
        const df = query.map((term) => all.filter((row) => (row.terms[term] ?? 0) > 0).length);
        expect(ranking.totalChunks).toBe(all.length);
        expect(ranking.documentFrequencies).toEqual(df);
        const expected = all
          .map((row) => {
            let score = 0;
            for (const [index, term] of query.entries()) {
              const tf = row.terms[term] ?? 0;
              if (tf === 0) continue;
              const idf = bm25Idf(all.length, df[index] ?? 0);
              score +=
                (idf * tf * (BM25_K1 + 1)) /
                (tf + BM25_K1 * (1 - BM25_B + (BM25_B * row.term_count) / avgdl));
            }
            return { id: row.id, score };
          })
          .filter((row) => row.score > 0)
          .sort((a, b) => b.score - a.score || a.id - b.id)
          .slice(0, 10);
        expect(ranking.ranked.map((row) => row.id)).toEqual(expected.map((row) => row.id));
        for (const [index, row] of ranking.ranked.entries())
          expect(row.score).toBeCloseTo(expected[index]?.score ?? Number.NaN, 12);
        for (const [documentIndex, rows] of scoped.entries())
          for (const row of rows)
            expect(ranking.matched(row.id, documentIndex)).toBe(
              query.filter((term) => (row.terms[term] ?? 0) > 0).length,
            );
      }
    }
  });

  it('ranks vectors by cosine, nearest first, reading only the query’s non-zero dimensions', () => {
    const dim = 16;
    const vectors = documents.map((rows) =>
      rows.map((row) => ({ id: row.id, values: Array.from({ length: dim }, () => random() * 2 - 1) })),
    );
    const matrices = vectors.map((rows) =>
      buildDocumentVectors(
        rows.map((row) => ({ id: row.id, embedding: JSON.stringify(row.values) })),
        dim,
      ),
    );
    const query = new Float32Array(dim);
    query[1] = 0.5;
    query[4] = -2;
    query[9] = 1;
    query[11] = 0.3;
    query[12] = -0.7;
    query[15] = 2;
    const length = (values: ArrayLike<number>) => Math.hypot(...Array.from(values));
    const expected = vectors
      .flatMap((rows, documentIndex) =>
        rows.map((row) => {
          let dot = 0;
          for (let d = 0; d < dim; d++) dot += (row.values[d] ?? 0) * (query[d] ?? 0);
          return { id: row.id, cosine: dot / length(row.values) / length(query), documentIndex };
        }),
      )
      .sort((a, b) => b.cosine - a.cosine || a.id - b.id)
      .slice(0, 12);
    const ranked = rankVectors(matrices, query, 12);
    expect(ranked.map((row) => [row.id, row.documentIndex])).toEqual(
      expected.map((row) => [row.id, row.documentIndex]),
    );
    for (const [index, row] of ranked.entries())
      expect(1 - row.distance).toBeCloseTo(expected[index]?.cosine ?? Number.NaN, 6);
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

  it('serves a re-indexed document’s new chunks, never its previous ones', async () => {
    const store = await createStore(db, alice, 'Reindexed');
    const { documentId, chunkIds } = await indexedDocument(db, store, 'birds.txt', [
      'Puffins nest on the cliffs of Iceland.',
    ]);
    const passing = async (query: string) =>
      (await search(alice, [store], query)).candidates.filter((c) => c.passesGate).map((c) => c.chunkId);
    expect(await passing('puffin cliffs')).toEqual(chunkIds);
    // A re-index swaps in a new generation of chunks and a new index time in one transaction.
    const { terms, count } = termFrequencies('Gannets dive for mackerel offshore.');
    const replaced = await db.kysely.transaction().execute(async (trx) => {
      const { index_generation } = await trx
        .updateTable('documents')
        .set((eb) => ({
          index_generation: eb('index_generation', '+', 1),
          status_updated_at: new Date(Date.now() + 1000),
        }))
        .where('id', '=', documentId)
        .returning('index_generation')
        .executeTakeFirstOrThrow();
      const chunk = await trx
        .insertInto('chunks')
        .values({
          document_id: documentId,
          store_id: store,
          ordinal: 0,
          page: null,
          text: 'Gannets dive for mackerel offshore.',
          token_count: 8,
          terms: JSON.stringify(terms),
          term_count: count,
          generation: index_generation,
        })
        .returning('id')
        .executeTakeFirstOrThrow();
      if (db.vectorEnabled)
        await trx
          .insertInto('chunk_vectors')
          .values({
            chunk_id: chunk.id,
            store_id: store,
            embedding: toPgVector(localEmbedding('Gannets dive for mackerel offshore.', DIM)),
          })
          .execute();
      return chunk.id;
    });
    expect(await passing('puffin cliffs')).toEqual([]);
    expect(await passing('gannet mackerel')).toEqual([replaced]);
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

  it('loads a document larger than one page of index rows whole, its last chunks included', async () => {
    const store = await createStore(db, alice, 'Ledger');
    const texts = Array.from(
      { length: 2_300 },
      (_, index) => `Ledger entry ${index} records the harbour code zq${index} for the customs office.`,
    );
    const { chunkIds } = await indexedDocument(db, store, 'ledger.txt', texts);
    for (const index of [0, 999, 1_000, 2_299]) {
      const result = await search(alice, [store], `harbour code zq${index}`);
      expect(result.candidates[0]).toMatchObject({ chunkId: chunkIds[index], passesGate: true });
      if (db.vectorEnabled) expect(result.candidates[0]?.vectorScore).toBeGreaterThan(0.5);
    }
  });

  it('primes the index of a document from the rows written, so that its first search reads none', async () => {
    const store = await createStore(db, alice, 'Primed');
    const texts = [
      'Spring tides follow the new and the full moon.',
      'Tide tables list the hour of each high water.',
    ];
    const { documentId, chunkIds } = await indexedDocument(db, store, 'tides.txt', texts);
    const [{ version }] = (
      await sql<{ version: string }>`
        select (extract(epoch from status_updated_at) * 1000000)::bigint::text as version
        from documents where id = ${documentId}`.execute(db.kysely)
    ).rows as [{ version: string }];
    await primeDocumentIndex(db, {
      documentId,
      version,
      chunks: texts.map((text, index) => {
        const { terms, count } = termFrequencies(text);
        return {
          id: chunkIds[index] as number,
          terms: JSON.stringify(terms),
          termCount: count,
          embedding: db.vectorEnabled ? localEmbedding(text, DIM) : null,
        };
      }),
    });
    // Emptied in place (same index version): only the primed postings still know the terms.
    const emptyTerms = (id: number) =>
      db.kysely
        .updateTable('chunks')
        .set({ terms: JSON.stringify({}), term_count: 0 })
        .where('document_id', '=', id)
        .execute();
    await emptyTerms(documentId);
    const passing = (await search(alice, [store], 'spring full moon')).candidates.filter((c) => c.passesGate);
    expect(passing.map((candidate) => candidate.chunkId)).toEqual([chunkIds[0]]);
    if (db.vectorEnabled) expect(passing[0]?.vectorScore).toBeGreaterThan(0.5);

    // Without priming, the same edit is what the first search loads.
    const cold = await indexedDocument(db, store, 'neap.txt', ['Neap tides come with the half moon.']);
    await emptyTerms(cold.documentId);
    const coldPassing = (await search(alice, [store], 'neap tides half')).candidates.filter(
      (candidate) => candidate.passesGate && candidate.documentId === cold.documentId,
    );
    expect(coldPassing).toEqual([]);
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
