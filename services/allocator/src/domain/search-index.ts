// The in-memory search index of one process (spec §3.9): every searchable entry — done media and JSON assets
// and the chunks of done documents — with its lexical fields (§3.9.2) as tokens in an inverted index, the
// filter fields in typed arrays, and what a result shows. Built from the catalog at start, kept fresh from
// this process's change events, by polling `asset.updated_at` / `cluster.updated_at` (other instances) and
// by periodic reconciliation of deletions.
//
// Layout, for a query over 100 000 entries in well under a millisecond: entries live in numbered slots;
// postings are packed numbers `slot · 256 + field mask`; per-slot scratch arrays are stamped per query instead
// of cleared. A removed entry leaves its slot empty and its postings dead until a compaction rebuilds them.
import { type Logger, namedLogger } from '@quintet/kernel/log';
import { type RawBuilder, sql } from 'kysely';
import type { CatalogChanges } from '../runtime.js';
import type { AssetKind, Catalog } from './database.js';
import { tokenize } from './tokens.js';

/** Lexical fields of §3.9.2, in the order `match_sources` lists them. */
export const LEXICAL_FIELDS = [
  'filename',
  'tags',
  'labels',
  'ocr',
  'comments',
  'cluster',
  'text',
  'json',
] as const;
export type LexicalField = (typeof LEXICAL_FIELDS)[number];

/** A posting packs `slot << FIELD_BITS | field mask` (slots below 2^23). */
const FIELD_BITS = 8;
const FIELD_MASK = (1 << FIELD_BITS) - 1;
const MAX_SLOTS = 1 << (31 - FIELD_BITS);
/** Bit layout of a touched slot's state during a query (see `#states`). */
const MATCH_SHIFT = 8;
const MATCH_ONE = 1 << MATCH_SHIFT;
const TERM_SHIFT = 16;
const TERM_MASK = 0xff << TERM_SHIFT;
/** Terms are counted in 8 bits; a query of at most 500 characters has fewer than 170. */
const MAX_TERMS = 255;
/** A one-term query merges its tokens' posting lists when a prefix expands to at most this many tokens. */
const MAX_MERGED_LISTS = 32;

const FIELD_BIT: Record<LexicalField, number> = Object.fromEntries(
  LEXICAL_FIELDS.map((field, index) => [field, 1 << index]),
) as Record<LexicalField, number>;

export type EntryKind = 'media' | 'json' | 'document_chunk';
const KIND_CODE: Record<EntryKind, number> = { media: 1, json: 2, document_chunk: 3 };

/** Prefix matching only for terms of at least this many code points (§3.9.2). */
const MIN_PREFIX_TERM_LENGTH = 3;
/** New tokens wait in a small sorted list; merged into the main sorted list when it grows past this. */
const RECENT_TOKENS_LIMIT = 2048;
/** Assets per catalog query while reloading. */
const RELOAD_BATCH = 500;

/** The asset-level values every result of an asset (or of one of a document's chunks) shows. */
export interface IndexedAsset {
  readonly id: string;
  readonly kind: AssetKind;
  readonly uri: string | null;
  readonly contentType: string;
  readonly sizeBytes: number;
  readonly owner: string | null;
  readonly tags: readonly string[];
  /** lower-cased tags, for the case-insensitive tag filter */
  readonly tagsLower: readonly string[];
  readonly clusterId: string | null;
  readonly clusterName: string | null;
  readonly thumbnailUri: string | null;
  readonly duplicateType: 'exact' | 'near' | null;
  readonly createdAt: Date;
  /**
   * the asset's metadata as JSON text (parsed only for the few results shown); null when it is large (long
   * OCR text and word boxes): then the catalog has it
   */
  readonly metadataJson: string | null;
  /** microseconds since the epoch of `updated_at` as loaded */
  readonly updatedUs: number;
}

export interface IndexedChunk {
  readonly chunkIndex: number;
  readonly text: string;
  readonly parentHeading: string | null;
  readonly pageNumber: number | null;
}

/** One searchable entry: a media or JSON asset, or a document chunk (`chunk` set, `id` = chunk id). */
export interface SearchEntry {
  readonly id: string;
  readonly kind: EntryKind;
  readonly asset: IndexedAsset;
  readonly chunk: IndexedChunk | null;
}

/** Which entries a query may return (§3.9.1 parameters). */
export interface EntryFilter {
  kind: EntryKind | null;
  owner: string | null;
  clusterId: string | null;
  /** lower-cased; an entry matches when it has any of them */
  tags: readonly string[] | null;
  includeDuplicates: boolean;
}

/** A vector-ranked entry: `score` = 1 − cosine distance / 2. */
export interface VectorHit {
  id: string;
  score: number;
}

export interface RankedHit {
  entry: SearchEntry;
  /** rounded to 4 decimals */
  score: number;
  /** matched lexical fields, then `vector` when the vector score was at least the lexical one */
  matchSources: string[];
}

export interface RankOptions {
  filter: EntryFilter;
  /** only scores (rounded) at least this */
  threshold: number;
  limit: number;
  vectorHits?: readonly VectorHit[];
}

export interface SearchIndexDependencies {
  catalog: Catalog;
  changes: CatalogChanges;
  logger: Logger;
}

export interface SearchIndexOptions {
  /** polling of asset/cluster updated_at (default 1000 ms) */
  pollIntervalMs?: number;
  /** reconciliation of deleted assets (default 30 000 ms) */
  reconcileIntervalMs?: number;
  /**
   * how far behind the newest seen `updated_at` each poll looks again (default 5000 ms): a transaction stamps
   * the row before it commits, so a row can become visible with a time older than one already seen
   */
  pollOverlapMs?: number;
}

/** An asset as read for indexing (decoded from the JSON tuple of ASSET_TUPLE). */
interface AssetRow {
  id: string;
  kind: AssetKind;
  uri: string | null;
  contentType: string;
  sizeBytes: number;
  owner: string | null;
  comments: string | null;
  tags: string[];
  clusterId: string | null;
  clusterName: string | null;
  thumbnailUri: string | null;
  duplicateType: 'exact' | 'near' | null;
  createdMs: number;
  updatedUs: number;
  status: string;
  metadata: Record<string, unknown>;
  /** a JSON asset's document (null for other kinds) */
  document: unknown;
}

type AssetTuple = [
  string,
  AssetKind,
  string | null,
  string,
  number,
  string | null,
  string | null,
  string[] | null,
  string | null,
  string | null,
  string | null,
  'exact' | 'near' | null,
  number,
  number,
  string,
  Record<string, unknown> | null,
  unknown,
];

/**
 * Rows travel as one JSON text per page (json_agg of tuples): an embedded database hands over one big value
 * far faster than thousands of rows of many columns.
 */
const ASSET_TUPLE = sql`json_build_array(a.id, a.kind, a.uri, a.content_type, a.size_bytes, a.owner, a.comments,
  a.tags, a.cluster_id, c.name, a.thumbnail_uri, a.duplicate_type, floor(extract(epoch from a.created_at) * 1000),
  (extract(epoch from a.updated_at) * 1000000)::bigint, a.status, a.metadata,
  case when a.kind = 'json' then a.document end)`;

function decodeAsset(tuple: AssetTuple): AssetRow {
  const [id, kind, uri, contentType, sizeBytes, owner, comments, tags, clusterId, clusterName, thumbnailUri] =
    tuple;
  return {
    id,
    kind,
    uri,
    contentType,
    sizeBytes: Number(sizeBytes),
    owner,
    comments,
    tags: tags ?? [],
    clusterId,
    clusterName,
    thumbnailUri,
    duplicateType: tuple[11],
    createdMs: Number(tuple[12]),
    updatedUs: Number(tuple[13]),
    status: tuple[14],
    metadata: tuple[15] ?? {},
    document: tuple[16],
  };
}

/** Metadata larger than this is not kept in memory; the few results that show it read it from the catalog. */
const MAX_INLINE_METADATA_CHARS = 4096;

function textOf(value: unknown): string {
  return typeof value === 'string' ? value : '';
}

interface ChunkRow {
  id: string;
  assetId: string;
  chunkIndex: number;
  text: string;
  parentHeading: string | null;
  pageNumber: number | null;
}

type ChunkTuple = [string, string, number, string, string | null, number | null];

/** What the index holds per asset: its entries' slots (one, or one per chunk; none for an empty document). */
interface AssetSlots {
  asset: IndexedAsset;
  slots: number[];
}

/** The original filename without its extension (§3.9.2 `filename`). */
function filenameStem(name: string): string {
  return name.replace(/\.[^.]*$/, '');
}

/** Every string value of a JSON value, at any depth (§3.9.2 `json`). */
function collectJsonStrings(value: unknown, into: string[]): void {
  if (typeof value === 'string') into.push(value);
  else if (Array.isArray(value)) for (const item of value) collectJsonStrings(item, into);
  else if (value !== null && typeof value === 'object')
    for (const item of Object.values(value as Record<string, unknown>)) collectJsonStrings(item, into);
}

function codePointLength(text: string): number {
  let length = 0;
  for (const _ of text) length++;
  return length;
}

/** The first 12 hex digits of a UUID as a number; orders like the id string (lower-case hex). */
function idKey(id: string): number {
  const key = Number.parseInt(`${id.slice(0, 8)}${id.slice(9, 13)}`, 16);
  return Number.isNaN(key) ? 0 : key;
}

function round4(value: number): number {
  return Math.round(value * 10_000) / 10_000;
}

function asNumber(value: number | string): number {
  return typeof value === 'number' ? value : Number(value);
}

/** The in-memory index; create with `createSearchIndex`, or construct and `start()`. */
export class SearchIndex {
  readonly #catalog: Catalog;
  readonly #changes: CatalogChanges;
  readonly #logger: Logger;
  readonly #pollIntervalMs: number;
  readonly #reconcileIntervalMs: number;
  readonly #pollOverlapUs: number;

  // ---- entries by slot
  #entries: (SearchEntry | undefined)[] = [];
  #kindCodes = new Uint8Array(1024);
  #exactDuplicate = new Uint8Array(1024);
  #createdAt = new Float64Array(1024);
  /** the first 48 bits of the id as a number: ties on created_at compare ids without touching strings */
  #idKeys = new Float64Array(1024);
  /**
   * the slot among 0…s that comes first in result order (created_at desc, id): scanning slots downwards, a
   * query can stop once its k-th result comes before every slot left. Slots are assigned in result order at
   * build and compaction, and new assets are mostly the newest, so this bound is usually tight.
   */
  #bestUpTo = new Int32Array(1024);
  /** postings each slot owns, so removing it knows how many become dead */
  #postingCount = new Int32Array(1024);
  #slotById = new Map<string, number>();
  #assets = new Map<string, AssetSlots>();
  #clusterNames = new Map<string, string>();

  // ---- tokens and postings
  #tokenIds = new Map<string, number>();
  #tokenStrings: string[] = [];
  #postings: number[][] = [];
  /** token ids in token order; `#recentTokens` holds ids added since the last merge, also sorted */
  #sortedTokens: number[] = [];
  #recentTokens: number[] = [];
  #livePostings = 0;
  #deadPostings = 0;

  // ---- per-query scratch, valid during one synchronous rank()
  #stamp = 0;
  /** the query that last touched a slot; `#states` and `#touched` entries are valid for that query only */
  #stamps = new Int32Array(1024);
  /** per touched slot: field mask (bits 0–7), matched terms (8–15), number of the last term counted (16–23) */
  #states = new Int32Array(1024);
  #vectorStamps = new Int32Array(1024);
  #vectorScores = new Float64Array(1024);
  #touched = new Int32Array(1024);

  // ---- freshness
  #assetWatermarkUs = 0;
  #clusterWatermarkUs = 0;
  #pendingReload = new Set<string>();
  #deletedDuringLoad: Set<string> | null = null;
  #queue: Promise<unknown> = Promise.resolve();
  #ready: Promise<void> | null = null;
  #unsubscribe: (() => void) | null = null;
  #timers: NodeJS.Timeout[] = [];
  /** while building, new tokens are appended unsorted and sorted once at the end */
  #building = false;
  #polling = false;
  #reconciling = false;
  #closed = false;

  constructor(dependencies: SearchIndexDependencies, options: SearchIndexOptions = {}) {
    this.#catalog = dependencies.catalog;
    this.#changes = dependencies.changes;
    this.#logger = dependencies.logger;
    this.#pollIntervalMs = options.pollIntervalMs ?? 1000;
    this.#reconcileIntervalMs = options.reconcileIntervalMs ?? 30_000;
    this.#pollOverlapUs = (options.pollOverlapMs ?? 5000) * 1000;
  }

  /** Subscribes to change events, builds the index from the catalog and starts polling; resolves when built. */
  start(): Promise<void> {
    if (this.#ready !== null) return this.#ready;
    // Subscribed before the build: events that arrive meanwhile are applied after it.
    this.#unsubscribe = this.#changes.onChange((event) => {
      if (event.kind === 'deleted') this.removeAssets(event.assetIds);
      else this.#scheduleReload(event.assetIds);
    });
    this.#ready = this.#exclusive(() => this.#build()).then(() => {
      if (this.#closed) return;
      const poll = setInterval(
        () => void this.poll().catch((error) => this.#warn(error, 'poll')),
        this.#pollIntervalMs,
      );
      const reconcile = setInterval(
        () => void this.reconcile().catch((error) => this.#warn(error, 'reconciliation')),
        this.#reconcileIntervalMs,
      );
      poll.unref();
      reconcile.unref();
      this.#timers.push(poll, reconcile);
    });
    return this.#ready;
  }

  /** Resolves once the initial build has finished. */
  ready(): Promise<void> {
    return this.#ready ?? this.start();
  }

  /** Stops polling and event handling; waits for a reload in progress. */
  async close(): Promise<void> {
    this.#closed = true;
    for (const timer of this.#timers) clearInterval(timer);
    this.#timers = [];
    this.#unsubscribe?.();
    this.#unsubscribe = null;
    await this.#queue.catch(() => {});
  }

  /** Counts for health and tests: live entries, indexed assets (documents included), distinct tokens. */
  get stats(): { entries: number; assets: number; tokens: number } {
    return { entries: this.#slotById.size, assets: this.#assets.size, tokens: this.#tokenIds.size };
  }

  /** The entry with this id (asset id, or chunk id for document chunks). */
  entry(id: string): SearchEntry | undefined {
    const slot = this.#slotById.get(id);
    return slot === undefined ? undefined : this.#entries[slot];
  }

  /** Whether an asset (of any kind, documents included) is in the index. */
  hasAsset(assetId: string): boolean {
    return this.#assets.has(assetId);
  }

  // ------------------------------------------------------------------------------------------ querying

  /**
   * The best `limit` entries for these distinct query terms merged with vector hits (§3.9.2): lexical score
   * 0.5 + 0.5·m/T, final score max(lexical, vector) rounded to 4 decimals, at least `threshold`, ordered by
   * score desc, created_at desc, id. Synchronous: the scratch arrays are this call's alone.
   */
  rank(terms: readonly string[], options: RankOptions): RankedHit[] {
    if (terms.length > MAX_TERMS) throw new RangeError(`a query has at most ${MAX_TERMS} distinct terms`);
    if ((options.vectorHits ?? []).length === 0) {
      const termLists = terms.map((term) =>
        this.#matchingTokens(term).map((tokenId) => this.#postings[tokenId] as number[]),
      );
      if (termLists.length === 1 && (termLists[0] as number[][]).length <= MAX_MERGED_LISTS)
        return this.#rankOneTerm(termLists[0] as number[][], options);
      if (termLists.length > 1 && termLists.every((lists) => lists.length <= MAX_MERGED_LISTS))
        return this.#rankTerms(termLists, options);
    }
    const queryStamp = this.#nextStamp();
    let touchedCount = 0;
    const kindCodes = this.#kindCodes;
    const stamps = this.#stamps;
    const states = this.#states;
    let touched = this.#touched;

    for (let termNumber = 1; termNumber <= terms.length; termNumber++) {
      const termBits = termNumber << TERM_SHIFT;
      for (const tokenId of this.#matchingTokens(terms[termNumber - 1] as string)) {
        const postings = this.#postings[tokenId] as number[];
        for (let i = 0; i < postings.length; i++) {
          const packed = postings[i] as number;
          const slot = packed >>> FIELD_BITS;
          let state: number;
          if (stamps[slot] === queryStamp) state = states[slot] as number;
          else {
            if (kindCodes[slot] === 0) continue; // removed entry, dead posting
            stamps[slot] = queryStamp;
            if (touchedCount === touched.length) touched = this.#growTouched(touched);
            touched[touchedCount++] = slot;
            state = 0;
          }
          state |= packed & FIELD_MASK;
          // Count each term once per entry, however many of its tokens and fields matched.
          if ((state & TERM_MASK) !== termBits) state = ((state & ~TERM_MASK) | termBits) + MATCH_ONE;
          states[slot] = state;
        }
      }
    }

    const vectorHits = options.vectorHits ?? [];
    const vectorStamps = this.#vectorStamps;
    const vectorScores = this.#vectorScores;
    for (const hit of vectorHits) {
      const slot = this.#slotById.get(hit.id);
      if (slot === undefined) continue;
      if (stamps[slot] !== queryStamp) {
        stamps[slot] = queryStamp;
        states[slot] = 0;
        if (touchedCount === touched.length) touched = this.#growTouched(touched);
        touched[touchedCount++] = slot;
      }
      if (vectorStamps[slot] !== queryStamp || hit.score > (vectorScores[slot] as number)) {
        vectorStamps[slot] = queryStamp;
        vectorScores[slot] = hit.score;
      }
    }
    const vectorOf = (slot: number): number =>
      vectorStamps[slot] === queryStamp ? (vectorScores[slot] as number) : -1;

    const { filter, threshold, limit } = options;
    const termCount = terms.length;
    // Rounded lexical score by number of matched terms (index 0: no lexical match).
    const lexicalLevels = new Float64Array(termCount + 1);
    lexicalLevels[0] = -1;
    for (let m = 1; m <= termCount; m++) lexicalLevels[m] = round4(0.5 + (0.5 * m) / termCount);
    const withVectors = vectorHits.length > 0;
    const kindCode = filter.kind === null ? 0 : KIND_CODE[filter.kind];
    const needsEntryFilter = filter.owner !== null || filter.clusterId !== null || filter.tags !== null;
    const entries = this.#entries;
    const exact = this.#exactDuplicate;
    const createdAt = this.#createdAt;
    const idKeys = this.#idKeys;
    // The best so far, best first: a bounded insertion list (limit ≤ SEARCH_MAX_LIMIT, and most candidates
    // are rejected by one comparison with the current last).
    const bestSlots = new Int32Array(limit);
    const bestScores = new Float64Array(limit);
    let count = 0;
    const better = (score: number, slot: number, at: number): boolean => {
      const otherScore = bestScores[at] as number;
      if (score !== otherScore) return score > otherScore;
      const otherSlot = bestSlots[at] as number;
      const created = createdAt[slot] as number;
      const otherCreated = createdAt[otherSlot] as number;
      if (created !== otherCreated) return created > otherCreated;
      const key = idKeys[slot] as number;
      const otherKey = idKeys[otherSlot] as number;
      if (key !== otherKey) return key < otherKey;
      return (entries[slot] as SearchEntry).id < (entries[otherSlot] as SearchEntry).id;
    };
    for (let i = 0; i < touchedCount; i++) {
      const slot = touched[i] as number;
      if (kindCode !== 0 && kindCodes[slot] !== kindCode) continue;
      if (exact[slot] === 1 && !filter.includeDuplicates) continue;
      let score = lexicalLevels[((states[slot] as number) >>> MATCH_SHIFT) & 0xff] as number;
      if (withVectors) {
        const vector = vectorOf(slot);
        if (vector > score) score = round4(vector);
      }
      if (score < threshold) continue;
      if (count === limit && !better(score, slot, limit - 1)) continue;
      if (needsEntryFilter && !entryPasses(entries[slot] as SearchEntry, filter)) continue;
      let at = count < limit ? count++ : limit - 1;
      while (at > 0 && better(score, slot, at - 1)) {
        bestSlots[at] = bestSlots[at - 1] as number;
        bestScores[at] = bestScores[at - 1] as number;
        at--;
      }
      bestSlots[at] = slot;
      bestScores[at] = score;
    }

    const hits: RankedHit[] = [];
    for (let at = 0; at < count; at++) {
      const slot = bestSlots[at] as number;
      const state = states[slot] as number;
      const matched = (state >>> MATCH_SHIFT) & 0xff;
      const lexical = matched > 0 ? 0.5 + (0.5 * matched) / termCount : -1;
      const vector = vectorOf(slot);
      const mask = state & FIELD_MASK;
      const matchSources: string[] = LEXICAL_FIELDS.filter((field) => (mask & FIELD_BIT[field]) !== 0);
      if (vector >= 0 && vector >= lexical) matchSources.push('vector');
      hits.push({ entry: entries[slot] as SearchEntry, score: bestScores[at] as number, matchSources });
    }
    return hits;
  }

  /**
   * One term and no vectors: every match scores 1, so the results are the first `limit` matches in result
   * order. The term's posting lists are merged downwards by slot (slot order is nearly the reverse of result
   * order) until the k-th result comes before every slot not yet seen.
   */
  #rankOneTerm(lists: readonly (readonly number[])[], options: RankOptions): RankedHit[] {
    const { filter, threshold, limit } = options;
    if (threshold > 1) return [];
    const kindCode = filter.kind === null ? 0 : KIND_CODE[filter.kind];
    const needsEntryFilter = filter.owner !== null || filter.clusterId !== null || filter.tags !== null;
    const kindCodes = this.#kindCodes;
    const exact = this.#exactDuplicate;
    const bestUpTo = this.#bestUpTo;
    const entries = this.#entries;
    const cursors = lists.map((list) => list.length - 1);
    const bestSlots: number[] = [];
    const bestMasks: number[] = [];
    for (;;) {
      let slot = -1;
      for (const [index, list] of lists.entries()) {
        const cursor = cursors[index] as number;
        if (cursor >= 0) slot = Math.max(slot, (list[cursor] as number) >>> FIELD_BITS);
      }
      if (slot < 0) break;
      if (
        bestSlots.length === limit &&
        this.#comesBefore(bestSlots[limit - 1] as number, bestUpTo[slot] as number)
      )
        break;
      let mask = 0;
      for (const [index, list] of lists.entries()) {
        const cursor = cursors[index] as number;
        if (cursor >= 0 && (list[cursor] as number) >>> FIELD_BITS === slot) {
          mask |= (list[cursor] as number) & FIELD_MASK;
          cursors[index] = cursor - 1;
        }
      }
      if (kindCodes[slot] === 0) continue;
      if (kindCode !== 0 && kindCodes[slot] !== kindCode) continue;
      if (exact[slot] === 1 && !filter.includeDuplicates) continue;
      if (bestSlots.length === limit && !this.#comesBefore(slot, bestSlots[limit - 1] as number)) continue;
      if (needsEntryFilter && !entryPasses(entries[slot] as SearchEntry, filter)) continue;
      let at = bestSlots.length;
      while (at > 0 && this.#comesBefore(slot, bestSlots[at - 1] as number)) at--;
      bestSlots.splice(at, 0, slot);
      bestMasks.splice(at, 0, mask);
      if (bestSlots.length > limit) {
        bestSlots.pop();
        bestMasks.pop();
      }
    }
    return bestSlots.map((slot, index) => {
      const mask = bestMasks[index] as number;
      return {
        entry: entries[slot] as SearchEntry,
        score: 1,
        matchSources: LEXICAL_FIELDS.filter((field) => (mask & FIELD_BIT[field]) !== 0),
      };
    });
  }

  /**
   * Several terms and no vectors (MaxScore): entries are visited downwards by slot from the posting lists of
   * the "essential" terms only; the other terms — the largest lists — are looked up by binary search. Once
   * the k results are fixed at level L (and come before every slot left), an entry needs more than L
   * matched terms, so the L largest terms stop being walked; when no essential term is left, the scan ends.
   */
  #rankTerms(termLists: readonly (readonly (readonly number[])[])[], options: RankOptions): RankedHit[] {
    const { filter, threshold, limit } = options;
    const termCount = termLists.length;
    const levels = new Float64Array(termCount + 1);
    levels[0] = -1;
    for (let m = 1; m <= termCount; m++) levels[m] = round4(0.5 + (0.5 * m) / termCount);
    const kindCode = filter.kind === null ? 0 : KIND_CODE[filter.kind];
    const needsEntryFilter = filter.owner !== null || filter.clusterId !== null || filter.tags !== null;
    const kindCodes = this.#kindCodes;
    const exact = this.#exactDuplicate;
    const bestUpTo = this.#bestUpTo;
    const entries = this.#entries;
    // Terms by descending posting count: the first `nonEssential` are looked up, the rest walked.
    const order = termLists
      .map((lists) => ({ lists, size: lists.reduce((sum, list) => sum + list.length, 0) }))
      .sort((a, b) => b.size - a.size)
      .map(({ lists }) => lists);
    const cursors = order.map((lists) => lists.map((list) => list.length - 1));
    let nonEssential = 0;
    const bestSlots: number[] = [];
    const bestScores: number[] = [];
    const bestLevels: number[] = [];
    const bestMasks: number[] = [];
    const before = (score: number, slot: number, at: number): boolean => {
      const other = bestScores[at] as number;
      return score !== other ? score > other : this.#comesBefore(slot, bestSlots[at] as number);
    };
    for (;;) {
      let slot = -1;
      for (;;) {
        slot = -1;
        for (let t = nonEssential; t < order.length; t++) {
          const lists = order[t] as (typeof order)[number];
          const termCursors = cursors[t] as number[];
          for (const [index, list] of lists.entries()) {
            const cursor = termCursors[index] as number;
            if (cursor >= 0) slot = Math.max(slot, (list[cursor] as number) >>> FIELD_BITS);
          }
        }
        if (slot < 0 || bestSlots.length < limit) break;
        const kthLevel = bestLevels[limit - 1] as number;
        const settled = this.#comesBefore(bestSlots[limit - 1] as number, bestUpTo[slot] as number);
        const wanted = Math.min(order.length, settled ? kthLevel : kthLevel - 1);
        if (wanted <= nonEssential) break;
        nonEssential = wanted;
      }
      if (slot < 0) break;
      let level = 0;
      let mask = 0;
      for (let t = 0; t < order.length; t++) {
        const lists = order[t] as (typeof order)[number];
        const termCursors = cursors[t] as number[];
        let matched = false;
        for (const [index, list] of lists.entries()) {
          if (t < nonEssential) {
            const found = findSlot(list, slot);
            if (found >= 0) {
              matched = true;
              mask |= (list[found] as number) & FIELD_MASK;
            }
            continue;
          }
          const cursor = termCursors[index] as number;
          if (cursor >= 0 && (list[cursor] as number) >>> FIELD_BITS === slot) {
            matched = true;
            mask |= (list[cursor] as number) & FIELD_MASK;
            termCursors[index] = cursor - 1;
          }
        }
        if (matched) level++;
      }
      if (kindCodes[slot] === 0) continue;
      if (kindCode !== 0 && kindCodes[slot] !== kindCode) continue;
      if (exact[slot] === 1 && !filter.includeDuplicates) continue;
      const score = levels[level] as number;
      if (score < threshold) continue;
      if (bestSlots.length === limit && !before(score, slot, limit - 1)) continue;
      if (needsEntryFilter && !entryPasses(entries[slot] as SearchEntry, filter)) continue;
      let at = bestSlots.length;
      while (at > 0 && before(score, slot, at - 1)) at--;
      bestSlots.splice(at, 0, slot);
      bestScores.splice(at, 0, score);
      bestLevels.splice(at, 0, level);
      bestMasks.splice(at, 0, mask);
      if (bestSlots.length > limit) {
        bestSlots.pop();
        bestScores.pop();
        bestLevels.pop();
        bestMasks.pop();
      }
    }
    return bestSlots.map((slot, index) => {
      const mask = bestMasks[index] as number;
      return {
        entry: entries[slot] as SearchEntry,
        score: bestScores[index] as number,
        matchSources: LEXICAL_FIELDS.filter((field) => (mask & FIELD_BIT[field]) !== 0),
      };
    });
  }

  /** Whether entry `a` comes before entry `b` in result order at equal scores: created_at desc, then id. */
  #comesBefore(a: number, b: number): boolean {
    const createdA = this.#createdAt[a] as number;
    const createdB = this.#createdAt[b] as number;
    if (createdA !== createdB) return createdA > createdB;
    const keyA = this.#idKeys[a] as number;
    const keyB = this.#idKeys[b] as number;
    if (keyA !== keyB) return keyA < keyB;
    // A removed slot (still a bound in #bestUpTo) compares with an empty id: conservative either way.
    return (this.#entries[a]?.id ?? '') < (this.#entries[b]?.id ?? '');
  }

  /** A new query stamp; the stamp arrays are cleared before the counter could overflow. */
  #nextStamp(): number {
    if (this.#stamp >= 0x7fff_fff0) {
      this.#stamps.fill(0);
      this.#vectorStamps.fill(0);
      this.#stamp = 0;
    }
    return ++this.#stamp;
  }

  #growTouched(touched: Int32Array<ArrayBuffer>): Int32Array<ArrayBuffer> {
    const grown = new Int32Array(touched.length * 2);
    grown.set(touched);
    this.#touched = grown;
    return grown;
  }

  /** Token ids a term matches: itself, and (|t| ≥ 3) every token it is a prefix of. */
  #matchingTokens(term: string): number[] {
    if (codePointLength(term) < MIN_PREFIX_TERM_LENGTH) {
      const id = this.#tokenIds.get(term);
      return id === undefined ? [] : [id];
    }
    const ids: number[] = [];
    for (const sorted of [this.#sortedTokens, this.#recentTokens]) {
      for (let at = this.#lowerBound(sorted, term); at < sorted.length; at++) {
        const id = sorted[at] as number;
        if (!(this.#tokenStrings[id] as string).startsWith(term)) break;
        ids.push(id);
      }
    }
    return ids;
  }

  /** First position in `sorted` whose token is ≥ `text` (code-unit order, where a prefix's matches are contiguous). */
  #lowerBound(sorted: readonly number[], text: string): number {
    let low = 0;
    let high = sorted.length;
    while (low < high) {
      const middle = (low + high) >>> 1;
      if ((this.#tokenStrings[sorted[middle] as number] as string) < text) low = middle + 1;
      else high = middle;
    }
    return low;
  }

  // ------------------------------------------------------------------------------------------ indexing

  #tokenId(token: string): number {
    let id = this.#tokenIds.get(token);
    if (id === undefined) {
      id = this.#tokenStrings.length;
      this.#tokenIds.set(token, id);
      this.#tokenStrings.push(token);
      this.#postings.push([]);
      if (this.#building) {
        this.#sortedTokens.push(id);
        return id;
      }
      this.#recentTokens.splice(this.#lowerBound(this.#recentTokens, token), 0, id);
      if (this.#recentTokens.length > RECENT_TOKENS_LIMIT) this.#mergeRecentTokens();
    }
    return id;
  }

  #mergeRecentTokens(): void {
    const merged: number[] = new Array(this.#sortedTokens.length + this.#recentTokens.length);
    const strings = this.#tokenStrings;
    let a = 0;
    let b = 0;
    let out = 0;
    const main = this.#sortedTokens;
    const recent = this.#recentTokens;
    while (a < main.length && b < recent.length) {
      if ((strings[main[a] as number] as string) <= (strings[recent[b] as number] as string))
        merged[out++] = main[a++] as number;
      else merged[out++] = recent[b++] as number;
    }
    while (a < main.length) merged[out++] = main[a++] as number;
    while (b < recent.length) merged[out++] = recent[b++] as number;
    this.#sortedTokens = merged;
    this.#recentTokens = [];
  }

  #ensureCapacity(slots: number): void {
    if (slots <= this.#kindCodes.length) return;
    let capacity = this.#kindCodes.length;
    while (capacity < slots) capacity *= 2;
    const grow = <T extends Uint8Array | Float64Array | Int32Array>(array: T, make: (n: number) => T): T => {
      const grown = make(capacity);
      grown.set(array as never);
      return grown;
    };
    this.#kindCodes = grow(this.#kindCodes, (n) => new Uint8Array(n));
    this.#exactDuplicate = grow(this.#exactDuplicate, (n) => new Uint8Array(n));
    this.#createdAt = grow(this.#createdAt, (n) => new Float64Array(n));
    this.#idKeys = grow(this.#idKeys, (n) => new Float64Array(n));
    this.#bestUpTo = grow(this.#bestUpTo, (n) => new Int32Array(n));
    this.#postingCount = grow(this.#postingCount, (n) => new Int32Array(n));
    this.#stamps = grow(this.#stamps, (n) => new Int32Array(n));
    this.#states = grow(this.#states, (n) => new Int32Array(n));
    this.#vectorStamps = grow(this.#vectorStamps, (n) => new Int32Array(n));
    this.#vectorScores = grow(this.#vectorScores, (n) => new Float64Array(n));
  }

  /** Adds one entry with its fields' text; returns its slot. */
  #addEntry(entry: SearchEntry, fields: Partial<Record<LexicalField, string>>): number {
    if (this.#entries.length >= MAX_SLOTS) this.#compact();
    if (this.#entries.length >= MAX_SLOTS)
      throw new Error(`the search index holds at most ${MAX_SLOTS} entries`);
    const slot = this.#entries.length;
    this.#ensureCapacity(slot + 1);
    this.#entries.push(entry);
    this.#slotById.set(entry.id, slot);
    this.#kindCodes[slot] = KIND_CODE[entry.kind];
    this.#exactDuplicate[slot] = entry.asset.duplicateType === 'exact' ? 1 : 0;
    this.#createdAt[slot] = entry.asset.createdAt.getTime();
    this.#idKeys[slot] = idKey(entry.id);
    const previousBest = slot === 0 ? -1 : (this.#bestUpTo[slot - 1] as number);
    this.#bestUpTo[slot] = previousBest < 0 || this.#comesBefore(slot, previousBest) ? slot : previousBest;
    const masks = new Map<string, number>();
    for (const field of LEXICAL_FIELDS) {
      const text = fields[field];
      if (text === undefined || text === '') continue;
      const bit = FIELD_BIT[field];
      for (const token of tokenize(text)) masks.set(token, (masks.get(token) ?? 0) | bit);
    }
    for (const [token, mask] of masks)
      (this.#postings[this.#tokenId(token)] as number[]).push((slot << FIELD_BITS) | mask);
    this.#livePostings += masks.size;
    this.#postingCount[slot] = masks.size;
    return slot;
  }

  #removeSlot(slot: number): void {
    const entry = this.#entries[slot];
    if (entry === undefined) return;
    this.#entries[slot] = undefined;
    this.#kindCodes[slot] = 0;
    if (this.#slotById.get(entry.id) === slot) this.#slotById.delete(entry.id);
    const count = this.#postingCount[slot] as number;
    this.#postingCount[slot] = 0;
    this.#livePostings -= count;
    this.#deadPostings += count;
  }

  /** Replaces (or adds) an asset and its entries. */
  #putAsset(row: AssetRow, chunks: readonly ChunkRow[]): void {
    this.#dropAsset(row.id);
    const { tags, metadata } = row;
    const tagsLower = tags.map((tag) => tag.toLowerCase());
    const metadataJson = JSON.stringify(metadata);
    const asset: IndexedAsset = {
      id: row.id,
      kind: row.kind,
      uri: row.uri,
      contentType: row.contentType,
      sizeBytes: row.sizeBytes,
      owner: row.owner,
      tags,
      // most tags are stored lower-case already: share the array then
      tagsLower: tagsLower.every((tag, index) => tag === tags[index]) ? tags : tagsLower,
      clusterId: row.clusterId,
      clusterName: row.clusterName,
      thumbnailUri: row.thumbnailUri,
      duplicateType: row.duplicateType,
      createdAt: new Date(row.createdMs),
      metadataJson: metadataJson.length <= MAX_INLINE_METADATA_CHARS ? metadataJson : null,
      updatedUs: row.updatedUs,
    };
    if (row.clusterId !== null && row.clusterName !== null)
      this.#clusterNames.set(row.clusterId, row.clusterName);
    const slots: number[] = [];
    if (row.kind === 'document') {
      // Chunks share their document's created_at: ids decide, and slots run opposite to result order.
      for (const chunk of [...chunks].sort((a, b) => (a.id < b.id ? 1 : a.id > b.id ? -1 : 0))) {
        const entry: SearchEntry = {
          id: chunk.id,
          kind: 'document_chunk',
          asset,
          chunk: {
            chunkIndex: chunk.chunkIndex,
            text: chunk.text,
            parentHeading: chunk.parentHeading,
            pageNumber: chunk.pageNumber,
          },
        };
        slots.push(this.#addEntry(entry, { text: `${chunk.parentHeading ?? ''} ${chunk.text}` }));
      }
    } else {
      const jsonStrings: string[] = [];
      if (row.kind === 'json') collectJsonStrings(row.document, jsonStrings);
      const entry: SearchEntry = { id: row.id, kind: row.kind, asset, chunk: null };
      slots.push(
        this.#addEntry(entry, {
          filename: filenameStem(textOf(metadata.original_filename)),
          tags: tags.join(' '),
          labels: [metadata.vlm_primary_category, metadata.vlm_scene_type, metadata.vlm_description]
            .map(textOf)
            .join(' '),
          ocr: textOf(metadata.ocr_text),
          comments: row.comments ?? '',
          cluster: row.clusterName ?? '',
          json: jsonStrings.join(' '),
        }),
      );
    }
    this.#assets.set(row.id, { asset, slots });
  }

  #dropAsset(assetId: string): void {
    const held = this.#assets.get(assetId);
    if (held === undefined) return;
    for (const slot of held.slots) this.#removeSlot(slot);
    this.#assets.delete(assetId);
  }

  /** Rebuilds slots, postings and tokens without the dead ones once they outweigh the live ones. */
  #compactIfWorthwhile(): void {
    if (this.#deadPostings < 50_000 || this.#deadPostings < this.#livePostings) return;
    this.#compact();
  }

  #compact(): void {
    const newSlotOf = new Int32Array(this.#entries.length).fill(-1);
    const live: number[] = [];
    for (const [slot, entry] of this.#entries.entries()) if (entry !== undefined) live.push(slot);
    // Live entries in reverse result order again (see #bestUpTo).
    live.sort((a, b) => (this.#comesBefore(a, b) ? 1 : this.#comesBefore(b, a) ? -1 : 0));
    const entries: SearchEntry[] = [];
    for (const slot of live) {
      newSlotOf[slot] = entries.length;
      entries.push(this.#entries[slot] as SearchEntry);
    }
    const kindCodes = new Uint8Array(this.#kindCodes.length);
    const exact = new Uint8Array(this.#exactDuplicate.length);
    const createdAt = new Float64Array(this.#createdAt.length);
    const idKeys = new Float64Array(this.#idKeys.length);
    const postingCount = new Int32Array(this.#postingCount.length);
    for (const [slot, newSlot] of newSlotOf.entries()) {
      if (newSlot < 0) continue;
      kindCodes[newSlot] = this.#kindCodes[slot] as number;
      exact[newSlot] = this.#exactDuplicate[slot] as number;
      createdAt[newSlot] = this.#createdAt[slot] as number;
      idKeys[newSlot] = this.#idKeys[slot] as number;
      postingCount[newSlot] = this.#postingCount[slot] as number;
    }
    const tokenIds = new Map<string, number>();
    const tokenStrings: string[] = [];
    const postings: number[][] = [];
    for (const [tokenId, list] of this.#postings.entries()) {
      const kept: number[] = [];
      for (const packed of list) {
        const newSlot = newSlotOf[packed >>> FIELD_BITS] as number;
        if (newSlot >= 0) kept.push((newSlot << FIELD_BITS) | (packed & FIELD_MASK));
      }
      if (kept.length === 0) continue;
      kept.sort((a, b) => a - b);
      const token = this.#tokenStrings[tokenId] as string;
      tokenIds.set(token, tokenStrings.length);
      tokenStrings.push(token);
      postings.push(kept);
    }
    this.#entries = entries;
    this.#kindCodes = kindCodes;
    this.#exactDuplicate = exact;
    this.#createdAt = createdAt;
    this.#idKeys = idKeys;
    this.#postingCount = postingCount;
    const bestUpTo = new Int32Array(this.#bestUpTo.length);
    for (let slot = 0; slot < entries.length; slot++) bestUpTo[slot] = slot;
    this.#bestUpTo = bestUpTo;
    this.#slotById = new Map(entries.map((entry, slot) => [entry.id, slot]));
    for (const held of this.#assets.values())
      held.slots = held.slots.map((slot) => newSlotOf[slot] as number).filter((slot) => slot >= 0);
    this.#tokenIds = tokenIds;
    this.#tokenStrings = tokenStrings;
    this.#postings = postings;
    this.#sortedTokens = tokenStrings.map((_, id) => id).sort((a, b) => compareTokens(tokenStrings, a, b));
    this.#recentTokens = [];
    this.#deadPostings = 0;
  }

  // ------------------------------------------------------------------------------------------ loading

  /** Removes assets (and a document's chunks) at once, e.g. on a delete event. */
  removeAssets(assetIds: readonly string[]): void {
    for (const id of assetIds) {
      this.#dropAsset(id);
      this.#pendingReload.delete(id);
      this.#deletedDuringLoad?.add(id);
    }
    this.#compactIfWorthwhile();
  }

  /** Reloads these assets from the catalog (done → indexed with their current fields; otherwise removed). */
  refreshAssets(assetIds: readonly string[]): Promise<void> {
    this.#scheduleReload(assetIds);
    return this.#exclusive(() => this.#drainReloads());
  }

  #scheduleReload(assetIds: readonly string[]): void {
    if (this.#closed) return;
    for (const id of assetIds) this.#pendingReload.add(id);
    void this.#exclusive(() => this.#drainReloads()).catch((error) => this.#warn(error, 'reload'));
  }

  /** One polling round: assets and clusters whose updated_at moved since the last round. */
  async poll(): Promise<void> {
    if (this.#polling || this.#closed) return;
    this.#polling = true;
    try {
      await this.#exclusive(async () => {
        await this.#pollClusters();
        await this.#pollAssets();
        await this.#drainReloads();
      });
    } finally {
      this.#polling = false;
    }
  }

  /** Removes assets that are no longer done (or gone) and loads done ones the index missed. */
  async reconcile(): Promise<void> {
    if (this.#reconciling || this.#closed) return;
    this.#reconciling = true;
    try {
      await this.#exclusive(async () => {
        const result = await sql<{ ids: string | null }>`
          select string_agg(id::text, ',') as ids from asset where status = 'done'`.execute(this.#catalog);
        const present = new Set(result.rows[0]?.ids?.split(',') ?? []);
        const gone = [...this.#assets.keys()].filter((id) => !present.has(id));
        if (gone.length > 0) this.removeAssets(gone);
        for (const id of present) if (!this.#assets.has(id)) this.#pendingReload.add(id);
        await this.#drainReloads();
      });
    } finally {
      this.#reconciling = false;
    }
  }

  /** Runs index mutations one at a time, in call order. */
  #exclusive<T>(work: () => Promise<T>): Promise<T> {
    const run = this.#queue.then(work, work);
    this.#queue = run.catch(() => {});
    return run;
  }

  #warn(error: unknown, what: string): void {
    if (this.#closed) return;
    this.#logger.warn({ err: error }, `search index ${what} failed`);
  }

  async #build(): Promise<void> {
    const started = performance.now();
    const now = await sql<{ now_us: number | string }>`
      select (extract(epoch from clock_timestamp()) * 1000000)::bigint as now_us`.execute(this.#catalog);
    const startUs = asNumber(now.rows[0]?.now_us ?? 0);
    this.#assetWatermarkUs = startUs;
    this.#clusterWatermarkUs = startUs;
    const deleted = new Set<string>();
    this.#deletedDuringLoad = deleted;
    this.#building = true;
    try {
      // Sixteen slices by the id's first hex digit: bounded pages without sorting the whole table.
      const all: AssetRow[] = [];
      const chunksOf = new Map<string, ChunkRow[]>();
      for (let digit = 0; digit < 16; digit++) {
        const low = `${digit.toString(16)}0000000-0000-0000-0000-000000000000`;
        const high = digit === 15 ? null : `${(digit + 1).toString(16)}0000000-0000-0000-0000-000000000000`;
        const rows = await this.#selectAssets(
          high === null
            ? sql`a.status = 'done' and a.id >= ${low}::uuid`
            : sql`a.status = 'done' and a.id >= ${low}::uuid and a.id < ${high}::uuid`,
        );
        const documents = rows.filter((row) => row.kind === 'document').map((row) => row.id);
        for (const [id, chunks] of await this.#selectChunks(documents)) chunksOf.set(id, chunks);
        for (const row of rows) all.push(row);
      }
      // Oldest first, so that slot order is the reverse of result order (see #bestUpTo).
      all.sort((a, b) => a.createdMs - b.createdMs || (a.id < b.id ? 1 : a.id > b.id ? -1 : 0));
      for (const row of all) if (!deleted.has(row.id)) this.#putAsset(row, chunksOf.get(row.id) ?? []);
    } finally {
      this.#building = false;
      this.#deletedDuringLoad = null;
      const strings = this.#tokenStrings;
      this.#sortedTokens.sort((a, b) => compareTokens(strings, a, b));
    }
    this.#logger.info(
      {
        entries: this.#slotById.size,
        tokens: this.#tokenIds.size,
        duration_ms: Math.round(performance.now() - started),
      },
      'search index built',
    );
  }

  async #drainReloads(): Promise<void> {
    while (this.#pendingReload.size > 0 && !this.#closed) {
      const batch = [...this.#pendingReload].slice(0, RELOAD_BATCH);
      for (const id of batch) this.#pendingReload.delete(id);
      const deleted = new Set<string>();
      this.#deletedDuringLoad = deleted;
      try {
        const rows = await this.#selectAssets(sql`a.id in (${sql.join(batch)})`);
        const byId = new Map(rows.map((row) => [row.id, row]));
        const documents = rows
          .filter((row) => row.kind === 'document' && row.status === 'done')
          .map((row) => row.id);
        const chunks = await this.#selectChunks(documents);
        for (const id of batch) {
          const row = byId.get(id);
          if (row === undefined || row.status !== 'done' || deleted.has(id)) this.#dropAsset(id);
          else this.#putAsset(row, chunks.get(id) ?? []);
        }
      } finally {
        this.#deletedDuringLoad = null;
      }
      this.#compactIfWorthwhile();
    }
  }

  async #pollAssets(): Promise<void> {
    const since = this.#assetWatermarkUs - this.#pollOverlapUs;
    const result = await sql<{ id: string; status: string; updated_us: number | string }>`
      select id, status, (extract(epoch from updated_at) * 1000000)::bigint as updated_us
      from asset where updated_at > to_timestamp(${since / 1_000_000}::double precision)`.execute(
      this.#catalog,
    );
    for (const row of result.rows) {
      const updatedUs = asNumber(row.updated_us);
      if (updatedUs > this.#assetWatermarkUs) this.#assetWatermarkUs = updatedUs;
      const held = this.#assets.get(row.id);
      if (row.status !== 'done') {
        if (held !== undefined) this.#pendingReload.add(row.id);
      } else if (held === undefined || held.asset.updatedUs < updatedUs) this.#pendingReload.add(row.id);
    }
  }

  /** A renamed cluster changes the `cluster` field of its members. */
  async #pollClusters(): Promise<void> {
    const since = this.#clusterWatermarkUs - this.#pollOverlapUs;
    const result = await sql<{ id: string; name: string; updated_us: number | string }>`
      select id, name, (extract(epoch from updated_at) * 1000000)::bigint as updated_us
      from cluster where updated_at > to_timestamp(${since / 1_000_000}::double precision)`.execute(
      this.#catalog,
    );
    const renamed = new Set<string>();
    for (const row of result.rows) {
      const updatedUs = asNumber(row.updated_us);
      if (updatedUs > this.#clusterWatermarkUs) this.#clusterWatermarkUs = updatedUs;
      const known = this.#clusterNames.get(row.id);
      if (known !== undefined && known !== row.name) {
        renamed.add(row.id);
        this.#clusterNames.set(row.id, row.name);
      }
    }
    if (renamed.size === 0) return;
    for (const held of this.#assets.values())
      if (held.asset.clusterId !== null && renamed.has(held.asset.clusterId))
        this.#pendingReload.add(held.asset.id);
  }

  /** Assets matching `where`. */
  async #selectAssets(where: RawBuilder<unknown>): Promise<AssetRow[]> {
    const result = await sql<{ page: string | null }>`
      select json_agg(${ASSET_TUPLE})::text as page
      from asset a left join cluster c on c.id = a.cluster_id
      where ${where}`.execute(this.#catalog);
    const page = result.rows[0]?.page;
    return page === null || page === undefined ? [] : (JSON.parse(page) as AssetTuple[]).map(decodeAsset);
  }

  async #selectChunks(documentIds: readonly string[]): Promise<Map<string, ChunkRow[]>> {
    const byDocument = new Map<string, ChunkRow[]>();
    for (let start = 0; start < documentIds.length; start += RELOAD_BATCH) {
      const ids = documentIds.slice(start, start + RELOAD_BATCH);
      const result = await sql<{ page: string | null }>`
        select json_agg(json_build_array(id, asset_id, chunk_index, text, parent_heading, page_number)
          order by asset_id, chunk_index)::text as page
        from document_chunk where asset_id in (${sql.join(ids)})`.execute(this.#catalog);
      const page = result.rows[0]?.page;
      if (page === null || page === undefined) continue;
      for (const [id, assetId, chunkIndex, text, parentHeading, pageNumber] of JSON.parse(
        page,
      ) as ChunkTuple[]) {
        const chunk: ChunkRow = { id, assetId, chunkIndex, text, parentHeading, pageNumber };
        const list = byDocument.get(assetId);
        if (list === undefined) byDocument.set(assetId, [chunk]);
        else list.push(chunk);
      }
    }
    return byDocument;
  }
}

/** Position of `slot`'s posting in a list ascending by slot, or −1. */
function findSlot(list: readonly number[], slot: number): number {
  let low = 0;
  let high = list.length;
  const target = slot << FIELD_BITS;
  while (low < high) {
    const middle = (low + high) >>> 1;
    if ((list[middle] as number) < target) low = middle + 1;
    else high = middle;
  }
  return low < list.length && (list[low] as number) >>> FIELD_BITS === slot ? low : -1;
}

function compareTokens(strings: readonly string[], a: number, b: number): number {
  const left = strings[a] as string;
  const right = strings[b] as string;
  return left < right ? -1 : left > right ? 1 : 0;
}

/** Owner, cluster and tag filters (kind and duplicates are checked on the typed arrays). */
function entryPasses(entry: SearchEntry, filter: EntryFilter): boolean {
  const { asset } = entry;
  if (filter.owner !== null && asset.owner !== filter.owner) return false;
  if (filter.clusterId !== null && asset.clusterId !== filter.clusterId) return false;
  if (filter.tags !== null && !filter.tags.some((tag) => asset.tagsLower.includes(tag))) return false;
  return true;
}

/** Creates the process's index over the runtime's catalog and waits for the initial build. */
export async function createSearchIndex(
  runtime: SearchIndexDependencies,
  options: SearchIndexOptions = {},
): Promise<SearchIndex> {
  const index = new SearchIndex(
    {
      catalog: runtime.catalog,
      changes: runtime.changes,
      logger: namedLogger(runtime.logger, 'allocator.search'),
    },
    options,
  );
  await index.start();
  return index;
}
