import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createSqlJobQueue, RetryableJobError } from '@quintet/kernel/queue';
import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RagDb } from '../../src/domain/database.js';
import { getDocument, listDocumentChunks, requestReindex } from '../../src/domain/documents.js';
import {
  ANALYSIS_BATCH_CHUNKS,
  IngestWorkerPool,
  type WorkerExitReason,
} from '../../src/domain/ingest-worker.js';
import {
  createIngestionService,
  type EmbedFunction,
  INSERT_BATCH_ROWS,
  type IngestionDeps,
  indexDocument,
  indexingPrice,
  operationError,
  sanitizeFailureReason,
} from '../../src/domain/ingestion.js';
import { retrievalSettings, searchCandidates, type WrittenIndex } from '../../src/domain/retrieval.js';
import { termFrequencies } from '../../src/domain/text/analysis.js';
import { extractedTokenCount } from '../../src/domain/text/chunk.js';
import { indexCostUsd } from '../../src/domain/text/costs.js';
import { localEmbedding } from '../../src/domain/text/embedding.js';
import {
  capturingLogger,
  createDocument,
  createStore,
  createUser,
  testBackends,
  testConfig,
} from './rag-fixtures.js';

const localEmbed: EmbedFunction = async (texts) => texts.map((text) => localEmbedding(text, 384));

const NOTES = `# Field notes

The heron colony at Lake Varna counted 214 nests in April.
Most nests were built in the alder trees on the northern shore.

## Threats

Water levels dropped by 40 centimetres during the dry summer. Fishermen reported fewer carp near the reeds.
`;

function manyParagraphs(count: number, word: string): string {
  return Array.from(
    { length: count },
    (_, index) => `Paragraph ${index} talks about ${word} number ${index} in some detail.`,
  ).join('\n');
}

async function waitFor<T>(
  probe: () => Promise<T>,
  done: (value: T) => boolean,
  timeoutMs = 8000,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (done(value) || Date.now() > deadline) return value;
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
}

describe('failure reasons', () => {
  it('are one line without paths or secrets, at most 500 characters', () => {
    expect(
      sanitizeFailureReason(
        new Error("ENOENT: no such file or directory, open '/srv/rag/uploads/3/9/a.pdf'"),
      ),
    ).toBe("ENOENT: no such file or directory, open '[path]'");
    expect(
      sanitizeFailureReason(
        new Error('POST https://api.example.com/v1/embeddings failed\nkey=abc123 Bearer tok.en'),
      ),
    ).toBe('POST https://api.example.com failed key=[REDACTED] Bearer [REDACTED]');
    expect(sanitizeFailureReason(new Error("Unsupported document type 'application/pdf' at ./data/x"))).toBe(
      "Unsupported document type 'application/pdf' at [path]",
    );
    expect(sanitizeFailureReason(new Error('x'.repeat(900)))).toHaveLength(500);
    expect(operationError('ERROR', 'Encrypted PDF')).toBe('Indexing failed: Encrypted PDF');
    expect(operationError('DONE', null)).toBeNull();
  });
});

describe.each(await testBackends())('ingestion on $name', (backend) => {
  let db: RagDb;
  let uploads: string;
  let userId: number;
  let storeId: number;
  const config = testConfig();
  const deps = (overrides: Partial<IngestionDeps> = {}): IngestionDeps => ({
    db,
    config,
    logger: capturingLogger().logger,
    embed: localEmbed,
    ...overrides,
  });
  const signal = () => new AbortController().signal;
  const documentRow = (id: number) =>
    db.kysely.selectFrom('documents').selectAll().where('id', '=', id).executeTakeFirstOrThrow();
  const chunkCount = async (id: number) =>
    Number(
      (
        await db.kysely
          .selectFrom('chunks')
          .select((eb) => eb.fn.countAll().as('n'))
          .where('document_id', '=', id)
          .executeTakeFirstOrThrow()
      ).n,
    );
  const vectorCount = async (id: number) => {
    if (!db.vectorEnabled) return 0;
    const { rows } = await sql<{ n: number }>`
      select count(*)::int as n from chunk_vectors v join chunks c on c.id = v.chunk_id where c.document_id = ${id}`.execute(
      db.kysely,
    );
    return rows[0]?.n ?? 0;
  };

  beforeAll(async () => {
    db = await backend.open();
    uploads = mkdtempSync(join(tmpdir(), 'rag-ingest-'));
    userId = await createUser(db);
    storeId = await createStore(db, userId);
  });
  afterAll(async () => {
    await db?.close();
    await backend.cleanup();
    rmSync(uploads, { recursive: true, force: true });
  });

  it('indexes a Markdown document end to end: DONE, chunks, vectors, one INDEX cost row', async () => {
    const id = await createDocument(db, storeId, uploads, NOTES);
    expect(await indexDocument(deps(), id, signal())).toBe('done');

    const row = await documentRow(id);
    const tokens = extractedTokenCount([{ page: null, text: NOTES.trim() }]);
    expect(row).toMatchObject({ status: 'DONE', attempts: 1, last_error: null, page_count: null });
    expect(row.chunk_count).toBeGreaterThanOrEqual(1);
    expect(row.token_count).toBeGreaterThan(0);
    expect(Math.abs((row.token_count ?? 0) - tokens)).toBeLessThanOrEqual(2);
    expect(await chunkCount(id)).toBe(row.chunk_count);
    expect(await vectorCount(id)).toBe(backend.vector ? row.chunk_count : 0);

    const chunks = await listDocumentChunks(db, userId, id, { offset: 0, limit: 50 });
    expect(chunks?.total).toBe(row.chunk_count);
    expect(chunks?.chunks[0]).toMatchObject({
      ordinal: 0,
      page: null,
      text: expect.stringContaining('heron colony'),
    });

    const costs = await db.kysely
      .selectFrom('query_logs')
      .selectAll()
      .where('store_id', '=', storeId)
      .execute();
    expect(costs).toHaveLength(1);
    expect(costs[0]).toMatchObject({
      user_id: userId,
      model: 'INDEX',
      prompt_tokens: row.token_count,
      completion_tokens: 0,
    });
    expect(Number(costs[0]?.cost_usd)).toBe(
      Number(indexCostUsd(row.token_count ?? 0, indexingPrice(config))),
    );
    expect(Number(costs[0]?.cost_usd)).toBeGreaterThan(0);

    const found = await searchCandidates(db, {
      userId,
      storeIds: [storeId],
      query: 'How many heron nests were counted?',
      config: retrievalSettings(config),
      queryEmbedding: localEmbedding('How many heron nests were counted?', 384),
    });
    expect(found.candidates[0]).toMatchObject({ documentId: id, passesGate: true });

    // A second delivery of the same job changes nothing.
    expect(await indexDocument(deps(), id, signal())).toBe('skipped');
    expect((await documentRow(id)).attempts).toBe(1);
  });

  it('hands the index it made visible to onIndexed, as written, and nothing for a failed one', async () => {
    const written: WrittenIndex[] = [];
    const collect = deps({ onIndexed: (index) => written.push(index) });
    const id = await createDocument(db, storeId, uploads, `${NOTES}\n${manyParagraphs(1_200, 'ospreys')}`);
    expect(await indexDocument(collect, id, signal())).toBe('done');
    expect(written).toHaveLength(1);
    const [index] = written as [WrittenIndex];
    const { rows } = await sql<{ id: number; terms: unknown; term_count: number; version: string }>`
      select c.id, c.terms, c.term_count, (extract(epoch from d.status_updated_at) * 1000000)::bigint::text as version
      from chunks c join documents d on d.id = c.document_id
      where c.document_id = ${id} and c.generation = d.index_generation order by c.id`.execute(db.kysely);
    expect(rows.length).toBeGreaterThan(INSERT_BATCH_ROWS); // written in several statements
    expect(index.documentId).toBe(id);
    expect(index.version).toBe(rows[0]?.version);
    expect(index.chunks.map((chunk) => chunk.id)).toEqual(rows.map((row) => row.id));
    expect(index.chunks.map((chunk) => JSON.parse(chunk.terms))).toEqual(
      rows.map((row) => (typeof row.terms === 'string' ? JSON.parse(row.terms) : row.terms)),
    );
    expect(index.chunks.map((chunk) => chunk.termCount)).toEqual(rows.map((row) => row.term_count));
    for (const chunk of index.chunks)
      expect(chunk.embedding?.length ?? null).toBe(db.vectorEnabled ? 384 : null);

    const odd = await createDocument(db, storeId, uploads, 'bytes', {
      filename: 'odd.bin',
      mimeType: 'application/x-odd',
    });
    expect(await indexDocument(collect, odd, signal())).toBe('failed');
    expect(written).toHaveLength(1);
  });

  it('fails permanently with a sanitized message and no chunks', async () => {
    const id = await createDocument(db, storeId, uploads, NOTES);
    const failing: EmbedFunction = async () => {
      throw new Error(`model rejected input from ${uploads}/x.md with api_key=sk-secret`);
    };
    expect(await indexDocument(deps({ embed: db.vectorEnabled ? failing : localEmbed }), id, signal())).toBe(
      db.vectorEnabled ? 'failed' : 'done',
    );
    if (!db.vectorEnabled) return; // without pgvector nothing is embedded: see the parse failure below
    const row = await documentRow(id);
    expect(row.status).toBe('ERROR');
    expect(row.last_error).toBe('model rejected input from [path] with api_key=[REDACTED]');
    expect(await chunkCount(id)).toBe(0);
    expect(operationError(row.status, row.last_error)).toBe(
      'Indexing failed: model rejected input from [path] with api_key=[REDACTED]',
    );
  });

  it('turns a parse failure into ERROR at once (no retry), with the parser’s message', async () => {
    const id = await createDocument(db, storeId, uploads, 'not a pdf at all', {
      filename: 'fake.pdf',
      mimeType: 'application/pdf',
    });
    expect(await indexDocument(deps(), id, signal())).toBe('failed');
    const row = await documentRow(id);
    expect(row).toMatchObject({ status: 'ERROR', attempts: 1 });
    expect(row.last_error).not.toContain(uploads);
    expect(row.last_error?.length).toBeGreaterThan(0);
    expect(await chunkCount(id)).toBe(0);
  });

  it('retries transient failures (back to PENDING, RetryableJobError) and sets ERROR after the last attempt', async () => {
    const id = await createDocument(db, storeId, uploads, NOTES);
    const unavailable: EmbedFunction = async () => {
      throw Object.assign(new Error('embedding provider answered 503'), { status: 503 });
    };
    // Without pgvector the transient failure is the file vanishing under a retryable error instead.
    const failingDeps = db.vectorEnabled
      ? deps({ embed: unavailable })
      : deps({ config: { ...config, ingestJobTimeoutS: 0.001 } });
    const attempt = () =>
      db.vectorEnabled
        ? indexDocument(failingDeps, id, signal())
        : indexDocument(failingDeps, id, AbortSignal.abort());
    for (const expected of [1, 2]) {
      await expect(attempt()).rejects.toBeInstanceOf(RetryableJobError);
      expect(await documentRow(id)).toMatchObject({ status: 'PENDING', attempts: expected });
    }
    expect(await attempt()).toBe('failed');
    const row = await documentRow(id);
    expect(row.status).toBe('ERROR');
    expect(row.attempts).toBe(3);
    expect(row.last_error).toBe(
      db.vectorEnabled ? 'embedding provider answered 503' : 'Timed out after 0.001 s',
    );
    expect(await chunkCount(id)).toBe(0);
  });

  it('counts a timeout as a failed attempt and leaves nothing behind', async () => {
    const id = await createDocument(db, storeId, uploads, manyParagraphs(400, 'otters'), {
      filename: 'big.txt',
      mimeType: 'text/plain',
    });
    const controller = new AbortController();
    const slow: EmbedFunction = async (texts, abort) => {
      controller.abort();
      await new Promise((resolve) => setTimeout(resolve, 50));
      abort?.throwIfAborted();
      return texts.map((text) => localEmbedding(text, 384));
    };
    if (!db.vectorEnabled) controller.abort();
    await expect(indexDocument(deps({ embed: slow }), id, controller.signal)).rejects.toThrow(
      /Timed out after 300 s/,
    );
    expect(await documentRow(id)).toMatchObject({
      status: 'PENDING',
      attempts: 1,
      last_error: 'Timed out after 300 s',
    });
    expect(await chunkCount(id)).toBe(0);
  });

  it('skips deleted documents and documents RUNNING under a live lease; a re-delivery takes over', async () => {
    const deleted = await createDocument(db, storeId, uploads, NOTES);
    await db.kysely
      .updateTable('documents')
      .set({ deleted_at: new Date() })
      .where('id', '=', deleted)
      .execute();
    expect(await indexDocument(deps(), deleted, signal())).toBe('skipped');
    expect((await documentRow(deleted)).status).toBe('PENDING');

    const running = await createDocument(db, storeId, uploads, NOTES);
    await db.kysely
      .updateTable('documents')
      .set({ status: 'RUNNING', attempts: 1 })
      .where('id', '=', running)
      .execute();
    expect(await indexDocument(deps(), running, signal())).toBe('skipped');
    expect(await indexDocument(deps(), running, signal(), { takeOverRunning: true })).toBe('done');
    expect(await documentRow(running)).toMatchObject({ status: 'DONE', attempts: 2 });

    // A RUNNING lease older than INGEST_JOB_TIMEOUT_S is abandoned: the next job takes it.
    const abandoned = await createDocument(db, storeId, uploads, NOTES);
    await db.kysely
      .updateTable('documents')
      .set({ status: 'RUNNING', attempts: 1, status_updated_at: new Date(Date.now() - 301_000) })
      .where('id', '=', abandoned)
      .execute();
    expect(await indexDocument(deps(), abandoned, signal())).toBe('done');
  });

  it('changes nothing when the lease is lost before the swap', async () => {
    const id = await createDocument(db, storeId, uploads, NOTES);
    const stealing: EmbedFunction = async (texts) => {
      await db.kysely.updateTable('documents').set({ attempts: 7 }).where('id', '=', id).execute();
      return texts.map((text) => localEmbedding(text, 384));
    };
    if (!db.vectorEnabled) {
      // No embedding step without pgvector: take the lease away before the job starts instead.
      await db.kysely.updateTable('documents').set({ status: 'ERROR' }).where('id', '=', id).execute();
    }
    expect(await indexDocument(deps({ embed: stealing }), id, signal())).toBe('skipped');
    expect(await chunkCount(id)).toBe(0);
  });

  it('re-indexes atomically: the old chunks stay until the new index replaces them whole', async () => {
    const store = await createStore(db, userId, 'Re-index');
    const id = await createDocument(db, store, uploads, NOTES);
    await indexDocument(deps(), id, signal());
    const before = await listDocumentChunks(db, userId, id, { offset: 0, limit: 200 });
    const passing = async (query: string) =>
      (
        await searchCandidates(db, { userId, storeIds: [store], query, config: retrievalSettings(config) })
      ).candidates.filter((candidate) => candidate.passesGate).length;
    expect(await passing('heron nests')).toBeGreaterThan(0);
    const path = (await documentRow(id)).storage_path;

    // Rows of another generation (a re-index being written, a crashed attempt's) are invisible to every reader.
    await db.kysely
      .insertInto('chunks')
      .values({
        document_id: id,
        store_id: store,
        ordinal: 0,
        page: null,
        text: 'staged kingfishers paragraph',
        token_count: 5,
        terms: JSON.stringify(termFrequencies('staged kingfishers paragraph').terms),
        term_count: termFrequencies('staged kingfishers paragraph').count,
        generation: -1,
      })
      .execute();
    expect(await passing('kingfishers paragraph')).toBe(0);
    expect(await listDocumentChunks(db, userId, id, { offset: 0, limit: 200 })).toEqual(before);

    writeFileSync(path, manyParagraphs(120, 'kingfishers'));
    expect(await requestReindex(db, userId, id)).toBe('queued');
    expect(await requestReindex(db, userId, id)).toBe('busy');
    expect(await requestReindex(db, userId + 1000, id)).toBe('not_found');
    // While PENDING the previous index is still there, untouched.
    expect(await listDocumentChunks(db, userId, id, { offset: 0, limit: 200 })).toEqual(before);

    // A failing re-index keeps the old chunks (never a mix) and reports ERROR.
    const broken = deps({
      embed: async () => {
        throw new Error('boom');
      },
    });
    if (db.vectorEnabled) {
      expect(await indexDocument(broken, id, signal())).toBe('failed');
      expect(await listDocumentChunks(db, userId, id, { offset: 0, limit: 200 })).toEqual(before);
      expect(await requestReindex(db, userId, id)).toBe('queued');
    }

    expect(await indexDocument(deps(), id, signal())).toBe('done');
    const after = await listDocumentChunks(db, userId, id, { offset: 0, limit: 200 });
    const row = await documentRow(id);
    expect(after?.total).toBe(row.chunk_count);
    // Older generations (the previous index, the stray staged row) are gone from the table.
    expect(await chunkCount(id)).toBe(row.chunk_count);
    expect(after?.chunks.every((chunk) => chunk.text.includes('kingfishers'))).toBe(true);
    expect(after?.chunks.map((chunk) => chunk.ordinal)).toEqual(after?.chunks.map((_, index) => index));
    // Retrieval sees the new index at once, never the old one.
    expect(await passing('heron nests')).toBe(0);
    expect(await passing('kingfishers paragraph')).toBeGreaterThan(0);
    const oldIds = new Set(before?.chunks.map((chunk) => chunk.id));
    expect(after?.chunks.some((chunk) => oldIds.has(chunk.id))).toBe(false);
    expect(await vectorCount(id)).toBe(backend.vector ? row.chunk_count : 0);
    const indexRows = await db.kysely
      .selectFrom('query_logs')
      .select('prompt_tokens')
      .where('model', '=', 'INDEX')
      .where(sql<boolean>`(tags ->> 'document_id')::int = ${id}`)
      .execute();
    expect(indexRows).toHaveLength(2);
  });

  describe('in worker threads', () => {
    const pools: IngestWorkerPool[] = [];
    const poolOf = (options: ConstructorParameters<typeof IngestWorkerPool>[0]) => {
      const pool = new IngestWorkerPool(options);
      const exits: WorkerExitReason[] = [];
      pool.on('exit', (_threadId, reason) => exits.push(reason));
      pools.push(pool);
      return { pool, exits };
    };
    afterAll(async () => {
      await Promise.all(pools.map((pool) => pool.close()));
    });
    const chunksOf = (id: number) =>
      db.kysely
        .selectFrom('chunks')
        .select(['ordinal', 'page', 'text', 'token_count', 'terms', 'term_count'])
        .where('document_id', '=', id)
        .orderBy('ordinal')
        .execute();
    const vectorsOf = async (id: number) =>
      db.vectorEnabled
        ? (
            await sql<{ embedding: string }>`
              select v.embedding::text as embedding from chunk_vectors v join chunks c on c.id = v.chunk_id
              where c.document_id = ${id} order by c.ordinal`.execute(db.kysely)
          ).rows.map((row) => row.embedding)
        : [];
    const neverCalled: EmbedFunction = async () => {
      throw new Error('the local provider embeds in the worker');
    };

    it('indexes exactly what the inline path indexes, embedding locally in the worker', async () => {
      const { pool } = poolOf({ size: 2 });
      const content = `${NOTES}\n${manyParagraphs(150, 'herons')}`;
      const inline = await createDocument(db, storeId, uploads, content);
      const threaded = await createDocument(db, storeId, uploads, content);
      expect(await indexDocument(deps(), inline, signal())).toBe('done');
      expect(await indexDocument(deps({ worker: pool, embed: neverCalled }), threaded, signal())).toBe(
        'done',
      );

      const [inlineRow, threadedRow] = [await documentRow(inline), await documentRow(threaded)];
      expect(threadedRow).toMatchObject({
        status: 'DONE',
        chunk_count: inlineRow.chunk_count,
        token_count: inlineRow.token_count,
        page_count: null,
        last_error: null,
      });
      expect(inlineRow.chunk_count).toBeGreaterThan(3);
      expect(await chunksOf(threaded)).toEqual(await chunksOf(inline));
      const vectors = await vectorsOf(threaded);
      expect(vectors).toHaveLength(backend.vector ? (inlineRow.chunk_count ?? 0) : 0);
      expect(vectors).toEqual(await vectorsOf(inline));
      // The worker's results are searchable like any others.
      const found = await searchCandidates(db, {
        userId,
        storeIds: [storeId],
        query: 'herons number 42',
        config: retrievalSettings(config),
        queryEmbedding: localEmbedding('herons number 42', 384),
      });
      expect(found.candidates.some((candidate) => candidate.documentId === threaded)).toBe(true);
    });

    it('writes the first chunks while the rest are still analysed, every run in order', async () => {
      const { pool } = poolOf({ size: 1 });
      const id = await createDocument(db, storeId, uploads, manyParagraphs(40_000, 'grebes'), {
        filename: 'long.txt',
        mimeType: 'text/plain',
      });
      let indexing = true;
      let stagedWhileAnalysing = false;
      const watching = (async () => {
        while (indexing) {
          // rows of the new generation counted while the worker was busy before and after the count
          if (pool.busyCount === 1 && (await chunkCount(id)) > 0 && pool.busyCount === 1)
            stagedWhileAnalysing = true;
          await new Promise((resolve) => setTimeout(resolve, 5));
        }
      })();
      const outcome = await indexDocument(deps({ worker: pool, embed: neverCalled }), id, signal()).finally(
        () => {
          indexing = false;
        },
      );
      await watching;
      expect(outcome).toBe('done');
      expect(stagedWhileAnalysing).toBe(true);
      const row = await documentRow(id);
      const count = row.chunk_count ?? 0;
      expect(count).toBeGreaterThan(4 * ANALYSIS_BATCH_CHUNKS);
      expect((await chunksOf(id)).map((chunk) => chunk.ordinal)).toEqual(
        Array.from({ length: count }, (_, index) => index),
      );
      expect(await vectorCount(id)).toBe(backend.vector ? count : 0);
    });

    it('stops the analysis when a chunk cannot be written, and leaves no chunk behind', async () => {
      const { pool, exits } = poolOf({ size: 1 });
      const id = await createDocument(db, storeId, uploads, manyParagraphs(150_000, 'terns'), {
        filename: 'huge.txt',
        mimeType: 'text/plain',
      });
      // The second run of chunks is refused: the worker is still analysing the rest of this long document.
      await sql
        .raw(`create function refuse_chunk() returns trigger language plpgsql as $$
          begin
            if new.document_id = ${id} and new.ordinal >= ${ANALYSIS_BATCH_CHUNKS} then
              raise exception 'no room for chunk %', new.ordinal;
            end if;
            return new;
          end $$`)
        .execute(db.kysely);
      await sql`create trigger refuse_chunk before insert on chunks for each row execute function refuse_chunk()`.execute(
        db.kysely,
      );
      try {
        expect(await indexDocument(deps({ worker: pool, embed: neverCalled }), id, signal())).toBe('failed');
      } finally {
        await sql`drop trigger refuse_chunk on chunks`.execute(db.kysely);
        await sql`drop function refuse_chunk()`.execute(db.kysely);
      }
      expect(await documentRow(id)).toMatchObject({
        status: 'ERROR',
        attempts: 1,
        last_error: `no room for chunk ${ANALYSIS_BATCH_CHUNKS}`,
      });
      expect(await chunkCount(id)).toBe(0);
      await waitFor(
        async () => exits.length,
        (length) => length > 0,
      );
      expect(exits).toEqual(['aborted']);
      expect(pool.busyCount).toBe(0);
    });

    it('leaves a remote provider’s embeddings to this thread and keeps parse errors permanent', async () => {
      const { pool } = poolOf({ size: 1 });
      const remoteConfig = { ...config, embeddingProvider: 'gemini' as const };
      let embedded = 0;
      const remote: EmbedFunction = async (texts) => {
        embedded += texts.length;
        return texts.map((text) => localEmbedding(text, 384));
      };
      const id = await createDocument(db, storeId, uploads, NOTES);
      expect(
        await indexDocument(deps({ worker: pool, config: remoteConfig, embed: remote }), id, signal()),
      ).toBe('done');
      expect(embedded).toBe(db.vectorEnabled ? (await documentRow(id)).chunk_count : 0);

      const odd = await createDocument(db, storeId, uploads, 'bytes', {
        filename: 'odd.bin',
        mimeType: 'application/x-odd',
      });
      expect(await indexDocument(deps({ worker: pool }), odd, signal())).toBe('failed');
      const unsupported = await documentRow(odd);
      expect(unsupported).toMatchObject({ status: 'ERROR', attempts: 1 });
      expect(unsupported.last_error).toMatch(/^Unsupported document type /);

      const empty = await createDocument(db, storeId, uploads, '   \n\n  ', {
        filename: 'empty.txt',
        mimeType: 'text/plain',
      });
      expect(await indexDocument(deps({ worker: pool }), empty, signal())).toBe('failed');
      expect(await documentRow(empty)).toMatchObject({ status: 'ERROR', last_error: 'No extractable text' });
    });

    it('turns a worker running out of memory into ERROR, and the next document indexes', async () => {
      // 16 MB of heap holds a worker and a small document, not the analysis of ~3 MB of text.
      const { pool, exits } = poolOf({ size: 1, maxOldGenerationSizeMb: 16 });
      const big = await createDocument(db, storeId, uploads, manyParagraphs(45_000, 'pelicans'), {
        filename: 'big.txt',
        mimeType: 'text/plain',
      });
      expect(await indexDocument(deps({ worker: pool }), big, signal())).toBe('failed');
      expect(await documentRow(big)).toMatchObject({
        status: 'ERROR',
        attempts: 1,
        last_error: 'Document too large to process in memory',
      });
      expect(operationError('ERROR', (await documentRow(big)).last_error)).toBe(
        'Indexing failed: Document too large to process in memory',
      );
      expect(await chunkCount(big)).toBe(0);
      expect(exits).toEqual(['oom']);

      const small = await createDocument(db, storeId, uploads, NOTES);
      expect(await indexDocument(deps({ worker: pool }), small, signal())).toBe('done');
      expect((await documentRow(small)).status).toBe('DONE');
    });

    it('terminates the worker when the job is aborted (timeout) and leaves nothing behind', async () => {
      const { pool, exits } = poolOf({ size: 1 });
      const id = await createDocument(db, storeId, uploads, manyParagraphs(8_000, 'cormorants'), {
        filename: 'slow.txt',
        mimeType: 'text/plain',
      });
      const controller = new AbortController();
      pool.once('spawn', () => setTimeout(() => controller.abort(), 20));
      await expect(indexDocument(deps({ worker: pool }), id, controller.signal)).rejects.toThrow(
        /Timed out after 300 s/,
      );
      expect(await documentRow(id)).toMatchObject({
        status: 'PENDING',
        attempts: 1,
        last_error: 'Timed out after 300 s',
      });
      await waitFor(
        async () => exits.length,
        (count) => count > 0,
      );
      expect(exits).toEqual(['aborted']);
      expect(pool.busyCount).toBe(0);
      expect(await chunkCount(id)).toBe(0);
      // A fresh worker takes the retry.
      expect(await indexDocument(deps({ worker: pool }), id, signal())).toBe('done');
    });
  });

  it('runs jobs from the queue in-process and recovers a restart mid-ingestion without duplicate chunks', async () => {
    // Earlier tests leave PENDING/RUNNING documents behind on purpose: settle them so the counts below are exact.
    await sql`update documents set status = 'ERROR' where status in ('PENDING', 'RUNNING')`.execute(
      db.kysely,
    );
    await sql`delete from jobs`.execute(db.kysely);
    const queue = createSqlJobQueue(db.kysely, {
      table: 'jobs',
      dialect: db.dialect,
      pollMs: 20,
      leaseMs: 300,
    });
    const indexed: number[] = [];
    const service = createIngestionService({
      ...deps(),
      queue,
      onIndexed: (index) => indexed.push(index.documentId),
    });
    const fresh = await createDocument(db, storeId, uploads, NOTES);
    await service.enqueue(fresh);
    await service.enqueue(fresh); // the same PENDING state: one job
    expect(
      Number(
        (
          await db.kysely
            .selectFrom('jobs')
            .select((eb) => eb.fn.countAll().as('n'))
            .executeTakeFirstOrThrow()
        ).n,
      ),
    ).toBe(1);

    // A crash: the document was RUNNING and its job claimed by a process that is gone (lease soon expired).
    const crashed = await createDocument(db, storeId, uploads, manyParagraphs(60, 'beavers'), {
      filename: 'c.txt',
      mimeType: 'text/plain',
    });
    await service.enqueue(crashed);
    await db.kysely
      .updateTable('documents')
      .set({ status: 'RUNNING', attempts: 1 })
      .where('id', '=', crashed)
      .execute();
    await sql`update jobs set state = 'running', attempts = 1, lease_until = now() + interval '200 milliseconds'
      where (payload ->> 'documentId')::int = ${crashed}`.execute(db.kysely);
    // A PENDING document whose job was lost.
    const orphan = await createDocument(db, storeId, uploads, NOTES);

    const recovered = await service.recoverOnStartup();
    expect(recovered).toEqual(
      db.dialect === 'pglite' ? { reset: 1, failed: 0, enqueued: 1 } : { reset: 0, failed: 0, enqueued: 1 },
    );
    service.start(2);
    try {
      for (const id of [fresh, crashed, orphan]) {
        const row = await waitFor(
          () => documentRow(id),
          (value) => value.status === 'DONE',
        );
        expect(row.status).toBe('DONE');
        expect(await chunkCount(id)).toBe(row.chunk_count);
      }
      // Each document made DONE here is announced once (the server warms its index for the first search).
      expect([...indexed].sort((a, b) => a - b)).toEqual([fresh, crashed, orphan].sort((a, b) => a - b));
      const ordinals = await db.kysely
        .selectFrom('chunks')
        .select('ordinal')
        .where('document_id', '=', crashed)
        .orderBy('ordinal')
        .execute();
      expect(ordinals.map((row) => row.ordinal)).toEqual(ordinals.map((_, index) => index));
      // The crashed job's late re-delivery finds the index complete and changes nothing.
      await waitFor(
        async () =>
          Number(
            (
              await sql<{
                n: number;
              }>`select count(*)::int as n from jobs where state in ('queued', 'running')`.execute(db.kysely)
            ).rows[0]?.n,
          ),
        (pending) => pending === 0,
      );
      const again = await documentRow(crashed);
      expect(await chunkCount(crashed)).toBe(again.chunk_count);
      expect((await getDocument(db, userId, crashed))?.status).toBe('DONE');
    } finally {
      await service.close(1000);
    }
  });
});
