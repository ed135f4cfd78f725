import { randomUUID } from 'node:crypto';
import { EventEmitter } from 'node:events';
import type { Database } from '@quintet/kernel/db';
import { createLogger } from '@quintet/kernel/log';
import { sql } from 'kysely';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { type CatalogDatabase, migrateCatalog, openCatalog } from '../src/domain/database.js';
import {
  type EntryFilter,
  type RankOptions,
  SearchIndex,
  type SearchIndexOptions,
} from '../src/domain/search-index.js';
import { lexicalScore, queryTerms, termMatches, tokenize } from '../src/domain/tokens.js';
import type { CatalogChanges } from '../src/runtime.js';

let database: Database<CatalogDatabase>;
let changes: CatalogChanges;
const logger = createLogger({ name: 'allocator.search', level: 'silent' });
const indexes: SearchIndex[] = [];

function createChanges(): CatalogChanges {
  const emitter = new EventEmitter();
  return {
    assetsChanged: (assetIds) => emitter.emit('change', { kind: 'changed', assetIds }),
    assetsDeleted: (assetIds) => emitter.emit('change', { kind: 'deleted', assetIds }),
    onChange: (listener) => {
      emitter.on('change', listener);
      return () => emitter.off('change', listener);
    },
  };
}

beforeAll(async () => {
  database = await openCatalog({
    databaseUrl: undefined,
    pgliteDir: undefined,
    poolSize: 1,
    embeddingDim: 4,
  });
  await migrateCatalog(database, 4);
});

afterAll(async () => {
  await database.close();
});

beforeEach(async () => {
  changes = createChanges();
  await sql`delete from document_chunk`.execute(database.kysely);
  await sql`delete from asset`.execute(database.kysely);
  await sql`delete from cluster`.execute(database.kysely);
});

afterEach(async () => {
  await Promise.all(indexes.splice(0).map((index) => index.close()));
});

async function openIndex(options: SearchIndexOptions = {}): Promise<SearchIndex> {
  const index = new SearchIndex({ catalog: database.kysely, changes, logger }, options);
  indexes.push(index);
  await index.start();
  return index;
}

interface AssetSpec {
  id?: string;
  kind?: 'media' | 'json' | 'document';
  status?: 'queued' | 'processing' | 'done' | 'failed' | 'pending_review';
  owner?: string | null;
  comments?: string | null;
  tags?: string[];
  clusterId?: string | null;
  duplicateType?: 'exact' | 'near' | null;
  metadata?: Record<string, unknown>;
  document?: Record<string, unknown> | null;
  createdAt?: Date;
}

async function insertAsset(spec: AssetSpec = {}): Promise<string> {
  const id = spec.id ?? randomUUID();
  const created = spec.createdAt ?? new Date();
  await database.kysely
    .insertInto('asset')
    .values({
      id,
      kind: spec.kind ?? 'media',
      uri: `fs://media/clusters/x/${id}.png`,
      sha256: randomUUID(),
      content_type:
        spec.kind === 'json' ? 'application/json' : spec.kind === 'document' ? 'text/markdown' : 'image/png',
      size_bytes: 100,
      owner: spec.owner ?? null,
      comments: spec.comments ?? null,
      status: spec.status ?? 'done',
      cluster_id: spec.clusterId ?? null,
      tags: spec.tags ?? [],
      duplicate_type: spec.duplicateType ?? null,
      metadata: JSON.stringify(spec.metadata ?? {}),
      document: spec.document === undefined || spec.document === null ? null : JSON.stringify(spec.document),
      created_at: created,
      updated_at: new Date(),
    })
    .execute();
  return id;
}

async function insertCluster(name: string): Promise<string> {
  const id = randomUUID();
  await database.kysely
    .insertInto('cluster')
    .values({ id, name, centroid: null, threshold: 0.72, metadata: '{}' })
    .execute();
  return id;
}

async function insertChunk(
  assetId: string,
  chunkIndex: number,
  text: string,
  heading: string | null = null,
): Promise<string> {
  const id = randomUUID();
  await database.kysely
    .insertInto('document_chunk')
    .values({
      id,
      asset_id: assetId,
      chunk_index: chunkIndex,
      text,
      parent_heading: heading,
      page_number: chunkIndex + 1,
      embedding: null,
      embedding_model: null,
    })
    .execute();
  return id;
}

const NO_FILTER: EntryFilter = {
  kind: null,
  owner: null,
  clusterId: null,
  tags: null,
  includeDuplicates: false,
};

function search(
  index: SearchIndex,
  query: string,
  options: Partial<Omit<RankOptions, 'filter'>> & { filter?: Partial<EntryFilter> } = {},
) {
  return index.rank(queryTerms(query), {
    threshold: options.threshold ?? 0,
    limit: options.limit ?? 100,
    filter: { ...NO_FILTER, ...options.filter },
    ...(options.vectorHits === undefined ? {} : { vectorHits: options.vectorHits }),
  });
}

function ids(hits: ReturnType<typeof search>): string[] {
  return hits.map((hit) => hit.entry.id);
}

/** Polls `check` until it passes (the index refreshes asynchronously). */
async function eventually(check: () => void, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      check();
      return;
    } catch (error) {
      if (Date.now() > deadline) throw error;
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
  }
}

describe('lexical matching (§3.9.2)', () => {
  it('matches a term exactly, or as a prefix when it has at least 3 characters', async () => {
    const sunset = await insertAsset({ metadata: { original_filename: 'SunsetBeach.png' } });
    const sea = await insertAsset({ tags: ['su', 'sea'] });
    const index = await openIndex();

    expect(ids(search(index, 'sun'))).toEqual([sunset]);
    expect(ids(search(index, 'beac'))).toEqual([sunset]);
    // a 2-character term matches only the identical token
    expect(ids(search(index, 'su'))).toEqual([sea]);
    expect(ids(search(index, 'se'))).toEqual([]);
    // a term must be a prefix, not any substring
    expect(ids(search(index, 'each'))).toEqual([]);
    expect(ids(search(index, 'unset'))).toEqual([]);
    // the rule the index applies is the tokens module's own
    expect([termMatches('sun', 'sunset'), termMatches('su', 'sunset'), termMatches('su', 'su')]).toEqual([
      true,
      false,
      true,
    ]);
  });

  it('scores 0.5 + 0.5·m/T over the distinct query terms', async () => {
    const both = await insertAsset({ tags: ['sunset', 'beach'] });
    const one = await insertAsset({ tags: ['sunset'] });
    const index = await openIndex();

    const hits = search(index, 'sunset beach zebra');
    expect(hits.map((hit) => [hit.entry.id, hit.score])).toEqual([
      [both, 0.8333],
      [one, 0.6667],
    ]);
    expect(search(index, 'sunset beach').map((hit) => hit.score)).toEqual([1, 0.75]);
    // repeated terms count once
    expect(search(index, 'beach BEACH beach').map((hit) => hit.score)).toEqual([1]);
    expect(search(index, 'nothing here')).toEqual([]);
  });

  it('reports which fields matched, in the fixed field order', async () => {
    const cluster = await insertCluster('Red Images');
    const media = await insertAsset({
      clusterId: cluster,
      tags: ['red', 'square'],
      comments: 'holiday trip',
      metadata: {
        original_filename: 'red_car.final.png',
        vlm_primary_category: 'vehicle',
        vlm_scene_type: 'street',
        vlm_description: 'A red car parked',
        ocr_text: 'STOP sign',
      },
    });
    const json = await insertAsset({
      kind: 'json',
      document: { title: 7, nested: { deep: ['Deeply buried value', { leaf: 'emerald' }] }, flag: true },
      metadata: { original_filename: 'orders.json' },
    });
    const document = await insertAsset({ kind: 'document', metadata: { original_filename: 'handbook.md' } });
    const chunk = await insertChunk(document, 0, 'Brakes need checking every spring.', 'Maintenance');
    const index = await openIndex();

    const sources = (query: string) => search(index, query).map((hit) => [hit.entry.id, hit.matchSources]);
    expect(sources('red')).toEqual([[media, ['filename', 'tags', 'labels', 'cluster']]]);
    expect(sources('final')).toEqual([[media, ['filename']]]);
    expect(sources('street')).toEqual([[media, ['labels']]]);
    expect(sources('vehicle')).toEqual([[media, ['labels']]]);
    expect(sources('stop')).toEqual([[media, ['ocr']]]);
    expect(sources('holiday')).toEqual([[media, ['comments']]]);
    expect(sources('images')).toEqual([[media, ['cluster']]]);
    expect(sources('emerald deeply')).toEqual([[json, ['json']]]);
    expect(sources('orders')).toEqual([[json, ['filename']]]);
    // only string values of a JSON document are searchable, not its keys or numbers
    expect(sources('nested')).toEqual([]);
    expect(sources('title')).toEqual([]);
    // documents are searched through their chunks (text and heading), not their own fields
    expect(sources('maintenance brakes')).toEqual([[chunk, ['text']]]);
    expect(sources('handbook')).toEqual([]);
    const [hit] = search(index, 'brakes');
    expect(hit?.entry.kind).toBe('document_chunk');
    expect(hit?.entry.asset.id).toBe(document);
    expect(hit?.entry.chunk).toEqual({
      chunkIndex: 0,
      text: 'Brakes need checking every spring.',
      parentHeading: 'Maintenance',
      pageNumber: 1,
    });
  });

  it('indexes only done assets', async () => {
    await insertAsset({ tags: ['queued'], status: 'queued' });
    await insertAsset({ tags: ['queued'], status: 'failed' });
    await insertAsset({ kind: 'json', tags: ['queued'], status: 'pending_review' });
    const done = await insertAsset({ tags: ['queued'] });
    const index = await openIndex();
    expect(ids(search(index, 'queued'))).toEqual([done]);
  });
});

describe('filters, threshold, limit and order', () => {
  it('filters by kind, owner, cluster, tags (any, case-insensitive) and exact duplicates', async () => {
    const clusterA = await insertCluster('Alpha');
    const clusterB = await insertCluster('Beta');
    const t = (second: number) => new Date(Date.UTC(2026, 0, 1, 0, 0, second));
    const original = await insertAsset({
      tags: ['Kite'],
      owner: 'ann',
      clusterId: clusterA,
      createdAt: t(1),
    });
    const exact = await insertAsset({
      tags: ['kite'],
      owner: 'ann',
      clusterId: clusterA,
      duplicateType: 'exact',
      createdAt: t(2),
    });
    const near = await insertAsset({
      tags: ['kite', 'blue'],
      owner: 'bob',
      clusterId: clusterB,
      duplicateType: 'near',
      createdAt: t(3),
    });
    const json = await insertAsset({ kind: 'json', tags: ['kite'], owner: 'bob', createdAt: t(4) });
    const document = await insertAsset({ kind: 'document', owner: 'ann', tags: ['manual'], createdAt: t(5) });
    const chunk = await insertChunk(document, 0, 'How to fly a kite');
    const index = await openIndex();

    // created_at desc among equal scores; the exact duplicate is left out by default
    expect(ids(search(index, 'kite'))).toEqual([chunk, json, near, original]);
    expect(ids(search(index, 'kite', { filter: { includeDuplicates: true } }))).toEqual([
      chunk,
      json,
      near,
      exact,
      original,
    ]);
    expect(ids(search(index, 'kite', { filter: { kind: 'media' } }))).toEqual([near, original]);
    expect(ids(search(index, 'kite', { filter: { kind: 'json' } }))).toEqual([json]);
    expect(ids(search(index, 'kite', { filter: { kind: 'document_chunk' } }))).toEqual([chunk]);
    expect(ids(search(index, 'kite', { filter: { owner: 'ann' } }))).toEqual([chunk, original]);
    expect(ids(search(index, 'kite', { filter: { owner: 'an' } }))).toEqual([]);
    expect(ids(search(index, 'kite', { filter: { clusterId: clusterB } }))).toEqual([near]);
    expect(ids(search(index, 'kite', { filter: { tags: ['kite'] } }))).toEqual([json, near, original]);
    expect(ids(search(index, 'kite', { filter: { tags: ['blue', 'manual'] } }))).toEqual([chunk, near]);
  });

  it('keeps scores at least the threshold, at most limit results, ties by created_at desc then id', async () => {
    const when = new Date(Date.UTC(2026, 0, 1));
    const a = await insertAsset({
      id: '00000000-0000-4000-8000-00000000000a',
      tags: ['lake'],
      createdAt: when,
    });
    const b = await insertAsset({
      id: '00000000-0000-4000-8000-00000000000b',
      tags: ['lake'],
      createdAt: when,
    });
    const best = await insertAsset({ tags: ['lake', 'forest'], createdAt: new Date(Date.UTC(2025, 0, 1)) });
    const index = await openIndex();

    expect(search(index, 'lake forest').map((hit) => [hit.entry.id, hit.score])).toEqual([
      [best, 1],
      [a, 0.75],
      [b, 0.75],
    ]);
    expect(ids(search(index, 'lake forest', { threshold: 0.75 }))).toEqual([best, a, b]);
    expect(ids(search(index, 'lake forest', { threshold: 0.7501 }))).toEqual([best]);
    expect(ids(search(index, 'lake forest', { limit: 2 }))).toEqual([best, a]);
    expect(ids(search(index, 'lake forest', { limit: 1 }))).toEqual([best]);
  });

  it('merges vector scores: max(lexical, vector), `vector` listed when it is at least the lexical score', async () => {
    const lexicalOnly = await insertAsset({ tags: ['harbour', 'boats'] });
    const both = await insertAsset({ tags: ['harbour'] });
    const vectorOnly = await insertAsset({ tags: ['unrelated'] });
    const index = await openIndex();

    const hits = search(index, 'harbour boats', {
      vectorHits: [
        { id: both, score: 0.9 },
        { id: vectorOnly, score: 0.81234 },
        { id: lexicalOnly, score: 0.6 },
        { id: randomUUID(), score: 0.99 },
      ],
    });
    expect(hits.map((hit) => [hit.entry.id, hit.score, hit.matchSources])).toEqual([
      [lexicalOnly, 1, ['tags']],
      [both, 0.9, ['tags', 'vector']],
      [vectorOnly, 0.8123, ['vector']],
    ]);
    expect(
      ids(search(index, 'harbour boats', { threshold: 0.85, vectorHits: [{ id: vectorOnly, score: 0.8 }] })),
    ).toEqual([lexicalOnly]);
  });
});

describe('freshness', () => {
  it('reloads assets named by change events and drops ones no longer done', async () => {
    const id = await insertAsset({ tags: ['before'] });
    const index = await openIndex();
    expect(ids(search(index, 'before'))).toEqual([id]);

    await database.kysely
      .updateTable('asset')
      .set({ tags: ['after'], updated_at: new Date() })
      .where('id', '=', id)
      .execute();
    changes.assetsChanged([id]);
    await eventually(() => expect(ids(search(index, 'after'))).toEqual([id]));
    expect(ids(search(index, 'before'))).toEqual([]);

    const added = await insertAsset({ tags: ['zephyrus'] });
    changes.assetsChanged([added]);
    // a token first seen after the build is found by prefix too
    await eventually(() => expect(ids(search(index, 'zeph'))).toEqual([added]));

    await database.kysely.updateTable('asset').set({ status: 'failed' }).where('id', '=', id).execute();
    await index.refreshAssets([id]);
    expect(ids(search(index, 'after'))).toEqual([]);
  });

  it('removes deleted assets at once, and a document with its chunks', async () => {
    const media = await insertAsset({ tags: ['gone'] });
    const document = await insertAsset({ kind: 'document' });
    await insertChunk(document, 0, 'gone with the wind');
    await insertChunk(document, 1, 'gone fishing');
    const index = await openIndex();
    expect(search(index, 'gone')).toHaveLength(3);

    changes.assetsDeleted([media, document]);
    expect(search(index, 'gone')).toEqual([]);
    expect(index.stats).toEqual({ entries: 0, assets: 0, tokens: expect.any(Number) });
  });

  it('picks up rows another instance wrote by polling updated_at, and cluster renames', async () => {
    const cluster = await insertCluster('Cluster 1a2b3c4d');
    const member = await insertAsset({ clusterId: cluster });
    const index = await openIndex({ pollIntervalMs: 25 });
    expect(ids(search(index, 'cluster'))).toEqual([member]);

    // written without any change event, as another process would
    const foreign = await insertAsset({ tags: ['elsewhere'] });
    await eventually(() => expect(ids(search(index, 'elsewhere'))).toEqual([foreign]));

    await database.kysely
      .updateTable('asset')
      .set({ tags: ['changed'], updated_at: sql`clock_timestamp()` as never })
      .where('id', '=', foreign)
      .execute();
    await eventually(() => expect(ids(search(index, 'changed'))).toEqual([foreign]));

    await database.kysely
      .updateTable('cluster')
      .set({ name: 'Sunny Meadows', updated_at: sql`clock_timestamp()` as never })
      .where('id', '=', cluster)
      .execute();
    await eventually(() =>
      expect(search(index, 'meadows').map((hit) => [hit.entry.id, hit.matchSources])).toEqual([
        [member, ['cluster']],
      ]),
    );
    expect(search(index, 'cluster')).toEqual([]);
    expect(index.entry(member)?.asset.clusterName).toBe('Sunny Meadows');
  });

  it('reconciles deletions it was not told about', async () => {
    const kept = await insertAsset({ tags: ['shared'] });
    const removed = await insertAsset({ tags: ['shared'] });
    const index = await openIndex();
    await sql`delete from asset where id = ${removed}`.execute(database.kysely);
    expect(ids(search(index, 'shared')).sort()).toEqual([kept, removed].sort());
    await index.reconcile();
    expect(ids(search(index, 'shared'))).toEqual([kept]);
  });

  it('stays correct after enough removals to compact its postings', async () => {
    const rows = Array.from({ length: 1500 }, (_, n) => ({
      id: randomUUID(),
      kind: 'media' as const,
      sha256: randomUUID(),
      content_type: 'image/png',
      size_bytes: 1,
      status: 'done' as const,
      tags: Array.from({ length: 40 }, (_, k) => `w${n}x${k}`),
      metadata: '{}',
    }));
    await database.kysely.insertInto('asset').values(rows).execute();
    const survivor = await insertAsset({ tags: ['survivor', 'w7x3'] });
    const index = await openIndex();
    const tokensBefore = index.stats.tokens;
    expect(ids(search(index, 'w7x3'))).toHaveLength(2);

    index.removeAssets(rows.map((row) => row.id));
    expect(index.stats).toEqual({ entries: 1, assets: 1, tokens: 2 });
    expect(tokensBefore).toBe(1500 * 40 + 1);
    expect(ids(search(index, 'w7x3'))).toEqual([survivor]);
    expect(ids(search(index, 'surv'))).toEqual([survivor]);

    const later = await insertAsset({ tags: ['survival'] });
    await index.refreshAssets([later]);
    expect(ids(search(index, 'surv')).sort()).toEqual([survivor, later].sort());
  });
});

describe('ranking agrees with a direct computation of §3.9.2', () => {
  it('for one and several terms, prefixes, filters and limits, before and after entries move', async () => {
    let seed = 7;
    const random = () => {
      seed = (seed * 1_103_515_245 + 12_345) % 2_147_483_648;
      return seed / 2_147_483_648;
    };
    const pick = <T>(items: readonly T[]): T => items[Math.floor(random() * items.length)] as T;
    const vocabulary = [
      'amber',
      'ambient',
      'birch',
      'birds',
      'cedar',
      'coast',
      'dune',
      'dusk',
      'elm',
      'ember',
    ];
    const owners = ['ann', 'bob', null];
    const base = Date.UTC(2026, 0, 1);
    interface Spec {
      id: string;
      tags: string[];
      owner: string | null;
      createdAt: Date;
      kind: 'media' | 'json';
      duplicateType: 'exact' | null;
    }
    const specs: Spec[] = [];
    const rows = Array.from({ length: 400 }, () => {
      const spec: Spec = {
        id: randomUUID(),
        tags: Array.from({ length: 1 + Math.floor(random() * 3) }, () => pick(vocabulary)),
        owner: pick(owners),
        // few distinct times, so that ties on created_at are decided by id
        createdAt: new Date(base + Math.floor(random() * 40) * 1000),
        kind: random() < 0.8 ? 'media' : 'json',
        duplicateType: random() < 0.1 ? 'exact' : null,
      };
      specs.push(spec);
      return {
        id: spec.id,
        kind: spec.kind,
        sha256: randomUUID(),
        content_type: 'image/png',
        size_bytes: 1,
        status: 'done' as const,
        owner: spec.owner,
        tags: spec.tags,
        duplicate_type: spec.duplicateType,
        created_at: spec.createdAt,
        metadata: '{}',
      };
    });
    await database.kysely.insertInto('asset').values(rows).execute();
    const index = await openIndex();

    const queries = [
      'amber',
      'amb',
      'bir',
      'dusk',
      'zzz',
      'amber coast',
      'bir dune elm',
      'ember zzz',
      'co du',
      'cedar cedar birch ambient',
    ];
    const filters: Partial<EntryFilter>[] = [
      {},
      { owner: 'ann' },
      { kind: 'json' },
      { includeDuplicates: true },
      { tags: ['elm'] },
    ];
    const check = () => {
      for (const query of queries)
        for (const filter of filters)
          for (const [limit, threshold] of [
            [3, 0.5],
            [10, 0.7],
            [100, 0],
          ] as const) {
            const terms = queryTerms(query);
            const expected = specs
              .filter((spec) => filter.owner === undefined || spec.owner === filter.owner)
              .filter((spec) => filter.kind === undefined || spec.kind === filter.kind)
              .filter((spec) => filter.includeDuplicates === true || spec.duplicateType !== 'exact')
              .filter((spec) => !filter.tags || filter.tags.some((tag) => spec.tags.includes(tag)))
              .map((spec) => ({
                spec,
                lexical: lexicalScore(terms, { tags: tokenize(spec.tags.join(' ')) }),
              }))
              .filter(
                ({ lexical }) => lexical !== null && Math.round(lexical.score * 10_000) / 10_000 >= threshold,
              )
              .map(({ spec, lexical }) => ({
                id: spec.id,
                score: Math.round((lexical?.score ?? 0) * 10_000) / 10_000,
                created: spec.createdAt.getTime(),
                sources: lexical?.matchedFields ?? [],
              }))
              .sort((a, b) => b.score - a.score || b.created - a.created || (a.id < b.id ? -1 : 1))
              .slice(0, limit)
              .map(({ id, score, sources }) => [id, score, sources]);
            const actual = search(index, query, { limit, threshold, filter }).map((hit) => [
              hit.entry.id,
              hit.score,
              hit.matchSources,
            ]);
            expect({ query, filter, limit, actual }).toEqual({ query, filter, limit, actual: expected });
          }
    };
    check();

    // Reloaded entries take new slots out of result order; removed ones leave dead postings behind.
    const moved = specs.filter(() => random() < 0.2);
    for (const spec of moved) spec.tags = [pick(vocabulary), pick(vocabulary)];
    for (const spec of moved)
      await database.kysely.updateTable('asset').set({ tags: spec.tags }).where('id', '=', spec.id).execute();
    await index.refreshAssets(moved.map((spec) => spec.id));
    const removed = specs.splice(0, 30);
    index.removeAssets(removed.map((spec) => spec.id));
    check();
  });
});
