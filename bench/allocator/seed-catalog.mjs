#!/usr/bin/env node
// Writes a generated media catalog straight into an embedded allocator database, for the search and similar
// benchmarks: `node seed-catalog.mjs <dataDir> <assets> <clusters>`. The catalog is created by the service's own
// migrations (dist/domain/database.js); the asset indexes are dropped during the bulk insert and re-created from
// the migration's own CREATE INDEX statements, so the result has exactly the service's schema. Every asset is a
// done image with labels (VLM-style category, tags, description), an original filename from a word list, a
// 512-d embedding near its cluster's centroid, owner, user tags and a spread of creation times; 2 % are exact
// duplicates. Prints one JSON line with counts and timings; writes <dataDir>/bench-seed.json (the parameters and
// sample asset ids for the similar benchmark).
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { sql } from 'kysely';
import { CATEGORIES, COLOURS, hex, pick, SCENE_TYPES, seededRandom, uuid, WORDS } from './words.mjs';

const root = fileURLToPath(new URL('../..', import.meta.url));
const dist = join(root, 'services/allocator/dist/domain');
const { openCatalog, migrateCatalog, toVectorLiteral } = await import(join(dist, 'database.js'));
const { tokenize } = await import(join(dist, 'tokens.js'));

const SEED_VERSION = 1;
const DIM = 512;
const BATCH = 2000;
const USER_TAGS = [
  'family',
  'work',
  'archive',
  'favorite',
  'shared',
  'edited',
  'raw',
  'print',
  'draft',
  'public',
];
const OWNERS = Array.from({ length: 20 }, (_, i) => `user${String(i + 1).padStart(2, '0')}`);

const [dataDir, assetsArg = '100000', clustersArg = '200'] = process.argv.slice(2);
if (!dataDir) {
  console.error('usage: seed-catalog.mjs <dataDir> [assets] [clusters]');
  process.exit(2);
}
const assetCount = Number(assetsArg);
const clusterCount = Number(clustersArg);
const random = seededRandom(20260101);

function normalise(vector) {
  let norm = 0;
  for (const value of vector) norm += value * value;
  norm = Math.sqrt(norm) || 1;
  for (let i = 0; i < vector.length; i++) vector[i] /= norm;
  return vector;
}

/** Unit vector with Gaussian-ish components (sum of uniforms). */
function randomDirection() {
  const vector = new Float32Array(DIM);
  for (let i = 0; i < DIM; i++) vector[i] = random() + random() + random() - 1.5;
  return normalise(vector);
}

/** The vector literal with 5 decimals (enough for cosine ranking, a third of the text of full floats). */
function literal(vector) {
  let text = '[';
  for (let i = 0; i < vector.length; i++) text += (i === 0 ? '' : ',') + vector[i].toFixed(5);
  return `${text}]`;
}

const capitalise = (word) => word[0].toUpperCase() + word.slice(1);

// ---- clusters: a colour, a theme of words and a centroid each
const clusters = [];
const clusterNames = new Set();
for (let c = 0; c < clusterCount; c++) {
  const colour = pick(random, COLOURS);
  const theme = Array.from({ length: 12 }, () => pick(random, WORDS));
  let name = `${capitalise(colour)} Images`;
  for (let suffix = 1; clusterNames.has(name); suffix++) name = `${capitalise(colour)} Images_${suffix}`;
  clusterNames.add(name);
  clusters.push({ id: uuid(random), name, colour, theme, centroid: randomDirection() });
}

function assetRow(index, previous) {
  const cluster = clusters[Math.floor(random() * clusters.length)];
  const id = uuid(random);
  const noise = randomDirection();
  const embedding = new Float32Array(DIM);
  // cosine to the centroid ≈ 0.85: members of a cluster are alike, not identical
  for (let i = 0; i < DIM; i++) embedding[i] = cluster.centroid[i] + 0.62 * noise[i];
  normalise(embedding);
  const category = pick(random, CATEGORIES);
  const scene = pick(random, SCENE_TYPES);
  const labelTags = [cluster.colour];
  while (labelTags.length < 5 + Math.floor(random() * 4)) {
    const word = random() < 0.7 ? pick(random, cluster.theme) : pick(random, WORDS);
    if (!labelTags.includes(word)) labelTags.push(word);
  }
  const userTags = [];
  for (let k = Math.floor(random() * 3); k > 0; k--) {
    const tag = pick(random, USER_TAGS);
    if (!userTags.includes(tag)) userTags.push(tag);
  }
  const filename =
    random() < 0.2
      ? `IMG_${String(Math.floor(random() * 10_000)).padStart(4, '0')}.jpg`
      : `${pick(random, cluster.theme)}_${pick(random, WORDS)}_${String(index % 10_000).padStart(4, '0')}.jpg`;
  const description = `${capitalise(pick(random, WORDS))} ${pick(random, cluster.theme)} with ${pick(random, WORDS)}, ${cluster.colour} tones`;
  const width = pick(random, [640, 800, 1024, 1280, 1920, 3024, 4032]);
  const height = Math.round(width * pick(random, [0.5625, 0.75, 1, 1.333]));
  const phash = hex(random, 16);
  const exact = previous !== null && index % 50 === 49;
  const metadata = {
    width,
    height,
    format: 'jpeg',
    exif: {},
    perceptual_hash: phash,
    dominant_colors: [`#${hex(random, 6)}`, `#${hex(random, 6)}`, `#${hex(random, 6)}`],
    original_filename: filename,
    vlm_primary_category: category,
    vlm_tags: labelTags,
    vlm_description: description,
    vlm_detected_objects: [{ name: pick(random, cluster.theme), confidence: 0.8 }],
    vlm_scene_type: scene,
    vlm_color_palette: [`#${hex(random, 6)}`, `#${hex(random, 6)}`, `#${hex(random, 6)}`],
    vlm_model: 'gemini-2.5-flash',
    vlm_fallback_used: false,
    vlm_processing_time_ms: 800 + Math.floor(random() * 900),
  };
  const tags = [...labelTags, ...userTags.filter((tag) => !labelTags.includes(tag))];
  const clusterId = exact ? previous.cluster_id : cluster.id;
  return {
    id,
    uri: exact ? previous.uri : `fs://media/clusters/${clusterId}/${id}.jpg`,
    sha256: exact ? previous.sha256 : hex(random, 64),
    size_bytes: 40_000 + Math.floor(random() * 3_000_000),
    owner: random() < 0.1 ? null : pick(random, OWNERS),
    comments: random() < 0.05 ? `${pick(random, WORDS)} ${pick(random, WORDS)} album` : null,
    cluster_id: clusterId,
    tags,
    user_tags: userTags,
    embedding: literal(exact ? previous.vector : embedding),
    vector: exact ? previous.vector : embedding,
    perceptual_hash: exact ? previous.perceptual_hash : phash,
    duplicate_of: exact ? previous.id : null,
    duplicate_type: exact ? 'exact' : null,
    thumbnail_uri: exact ? previous.thumbnail_uri : `fs://media/derived/${clusterId}/${id}/thumb.jpg`,
    metadata,
    search_tokens: [
      ...new Set(
        tokenize(`${filename.replace(/\.[^.]*$/, '')} ${tags.join(' ')} ${category} ${scene} ${description}`),
      ),
    ],
    created_at: new Date(Date.UTC(2026, 0, 1) + Math.floor(random() * 330 * 86_400_000)).toISOString(),
  };
}

const started = performance.now();
const database = await openCatalog({
  databaseUrl: undefined,
  pgliteDir: join(dataDir, 'pglite'),
  poolSize: 1,
  embeddingDim: DIM,
});
const db = database.kysely;
try {
  await migrateCatalog(database, DIM);
  const migration = readFileSync(join(root, 'services/allocator/migrations/001_catalog.sql'), 'utf8');
  const assetIndexes = [...migration.matchAll(/^CREATE INDEX (\w+) ON asset\b[^;]*;/gm)];
  for (const [, name] of assetIndexes) await sql.raw(`DROP INDEX IF EXISTS ${name}`).execute(db);

  for (const cluster of clusters)
    await db
      .insertInto('cluster')
      .values({
        id: cluster.id,
        name: cluster.name,
        centroid: toVectorLiteral(cluster.centroid),
        threshold: 0.72,
        provisional: random() < 0.5,
        metadata: '{}',
        created_at: new Date(Date.UTC(2026, 0, 1)).toISOString(),
        updated_at: new Date(Date.UTC(2026, 0, 1)).toISOString(),
      })
      .execute();

  const sampleIds = [];
  let previous = null;
  const insertStarted = performance.now();
  for (let offset = 0; offset < assetCount; offset += BATCH) {
    const rows = [];
    for (let index = offset; index < Math.min(assetCount, offset + BATCH); index++) {
      const row = assetRow(index, previous);
      rows.push(row);
      if (row.duplicate_of === null && index % Math.max(1, Math.floor(assetCount / 2000)) === 0)
        sampleIds.push(row.id);
      previous = row;
    }
    const json = JSON.stringify(rows, (key, value) => (key === 'vector' ? undefined : value));
    await sql`
      insert into asset (id, kind, uri, sha256, content_type, size_bytes, owner, comments, status, cluster_id,
        tags, user_tags, embedding, embedding_model, perceptual_hash, duplicate_of, duplicate_type, thumbnail_uri,
        metadata, search_tokens, created_at, updated_at)
      select id, 'media', uri, sha256, 'image/jpeg', size_bytes, owner, comments, 'done', cluster_id,
        tags, user_tags, embedding::vector, 'builtin-visual-v1', perceptual_hash, duplicate_of, duplicate_type,
        thumbnail_uri, metadata, search_tokens, created_at, created_at
      from json_to_recordset(${json}::json) as r(id uuid, uri text, sha256 text, size_bytes bigint, owner text,
        comments text, cluster_id uuid, tags text[], user_tags text[], embedding text, perceptual_hash text,
        duplicate_of uuid, duplicate_type text, thumbnail_uri text, metadata jsonb, search_tokens text[],
        created_at timestamptz)`.execute(db);
  }
  const insertSeconds = (performance.now() - insertStarted) / 1000;

  // The HNSW graph of 100 000 vectors does not fit the default 64 MB: building it in memory is many times faster.
  const indexStarted = performance.now();
  await sql.raw(`SET maintenance_work_mem = '1GB'`).execute(db);
  const indexSeconds = {};
  for (const [statement, name] of assetIndexes) {
    const at = performance.now();
    await sql.raw(statement).execute(db);
    indexSeconds[name] = Math.round(performance.now() - at) / 1000;
  }
  await sql`ANALYZE`.execute(db);
  const seed = {
    version: SEED_VERSION,
    assets: assetCount,
    clusters: clusterCount,
    owners: OWNERS,
    user_tags: USER_TAGS,
    sample_ids: sampleIds,
    seconds: {
      insert: Math.round(insertSeconds * 10) / 10,
      indexes: Math.round((performance.now() - indexStarted) / 100) / 10,
      total: Math.round((performance.now() - started) / 100) / 10,
    },
    index_seconds: indexSeconds,
  };
  writeFileSync(join(dataDir, 'bench-seed.json'), `${JSON.stringify(seed)}\n`);
  console.log(JSON.stringify({ ...seed, sample_ids: sampleIds.length }));
} finally {
  await database.close();
}
