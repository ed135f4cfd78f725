-- The File Allocator catalog (spec §3.18). {{EMBEDDING_DIM}} is replaced by EMBEDDING_DIM when the catalog
-- is first created; a later mismatch stops start-up (see `file-allocator reembed`).
CREATE TABLE cluster (
  id uuid PRIMARY KEY,
  name text NOT NULL UNIQUE,
  centroid vector({{EMBEDDING_DIM}}),
  threshold double precision NOT NULL,
  provisional boolean NOT NULL DEFAULT true,
  metadata jsonb NOT NULL DEFAULT '{}'::jsonb,
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE schema_def (
  id uuid PRIMARY KEY,
  name text NOT NULL UNIQUE,
  structure_hash text NOT NULL UNIQUE,
  storage_choice text NOT NULL CHECK (storage_choice IN ('sql', 'jsonb')),
  version integer NOT NULL DEFAULT 1,
  ddl text NOT NULL,
  status text NOT NULL CHECK (status IN ('provisional', 'active', 'rejected')),
  confidence double precision NOT NULL,
  sample_size integer NOT NULL,
  field_stability double precision NOT NULL,
  type_stability double precision NOT NULL,
  max_depth integer NOT NULL,
  top_level_keys integer NOT NULL,
  has_array_of_objects boolean NOT NULL,
  fields jsonb NOT NULL,
  table_plan jsonb NOT NULL,
  decision_reason text NOT NULL,
  reviewed_by text,
  reviewed_at timestamptz,
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE asset_raw (
  id uuid PRIMARY KEY,
  request_id text NOT NULL,
  part_id text NOT NULL,
  uri text NOT NULL,
  size_bytes bigint NOT NULL,
  content_type text NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now(),
  UNIQUE (request_id, part_id)
);

CREATE TABLE asset (
  id uuid PRIMARY KEY,
  kind text NOT NULL CHECK (kind IN ('media', 'json', 'document')),
  uri text,
  sha256 text NOT NULL,
  content_type text NOT NULL,
  size_bytes bigint NOT NULL,
  owner text,
  comments text,
  status text NOT NULL CHECK (status IN ('queued', 'processing', 'done', 'failed', 'pending_review')),
  error_message text,
  cluster_id uuid REFERENCES cluster (id) ON DELETE SET NULL,
  schema_id uuid REFERENCES schema_def (id) ON DELETE SET NULL,
  parent_asset_id uuid REFERENCES asset (id) ON DELETE CASCADE,
  raw_asset_id uuid REFERENCES asset_raw (id) ON DELETE SET NULL,
  job_id uuid,
  position integer NOT NULL DEFAULT 0,
  tags text[] NOT NULL DEFAULT '{}',
  user_tags text[] NOT NULL DEFAULT '{}',
  embedding vector({{EMBEDDING_DIM}}),
  embedding_model text,
  perceptual_hash text,
  duplicate_of uuid REFERENCES asset (id) ON DELETE SET NULL,
  duplicate_type text CHECK (duplicate_type IN ('exact', 'near')),
  storage_id uuid,
  thumbnail_uri text,
  document jsonb,
  json_batch text,
  metadata jsonb NOT NULL DEFAULT '{}'::jsonb,
  search_tokens text[] NOT NULL DEFAULT '{}',
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX asset_kind_idx ON asset (kind);
CREATE INDEX asset_status_idx ON asset (status);
CREATE INDEX asset_owner_idx ON asset (owner);
CREATE INDEX asset_sha256_idx ON asset (sha256);
CREATE INDEX asset_cluster_idx ON asset (cluster_id);
CREATE INDEX asset_schema_idx ON asset (schema_id);
CREATE INDEX asset_parent_idx ON asset (parent_asset_id);
CREATE INDEX asset_job_idx ON asset (job_id, position);
CREATE INDEX asset_duplicate_of_idx ON asset (duplicate_of);
CREATE INDEX asset_updated_idx ON asset (updated_at);
CREATE INDEX asset_tags_idx ON asset USING gin (tags);
CREATE INDEX asset_search_tokens_idx ON asset USING gin (search_tokens);
CREATE INDEX asset_embedding_idx ON asset USING hnsw (embedding vector_cosine_ops);
-- No HNSW index on cluster.centroid: every processed image rewrites its cluster's centroid, and each rewrite
-- would leave a dead entry in the graph for later searches to walk; clusters are few, an exact scan is faster.

CREATE TABLE json_staging (
  asset_id uuid PRIMARY KEY REFERENCES asset (id) ON DELETE CASCADE,
  schema_id uuid NOT NULL REFERENCES schema_def (id) ON DELETE CASCADE,
  doc jsonb NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX json_staging_schema_idx ON json_staging (schema_id, created_at);

CREATE TABLE lineage (
  id uuid PRIMARY KEY,
  request_id text,
  asset_id uuid,
  schema_id uuid,
  stage text NOT NULL,
  detail jsonb NOT NULL DEFAULT '{}'::jsonb,
  success boolean NOT NULL DEFAULT true,
  error_message text,
  created_at timestamptz NOT NULL DEFAULT clock_timestamp(),
  seq bigserial
);
CREATE INDEX lineage_request_idx ON lineage (request_id);
CREATE INDEX lineage_asset_idx ON lineage (asset_id, seq);
CREATE INDEX lineage_stage_idx ON lineage (stage);
CREATE INDEX lineage_created_idx ON lineage (created_at);

CREATE TABLE video_frame (
  id uuid PRIMARY KEY,
  asset_id uuid NOT NULL REFERENCES asset (id) ON DELETE CASCADE,
  frame_idx integer NOT NULL,
  timestamp_ms integer NOT NULL,
  embedding vector({{EMBEDDING_DIM}}),
  UNIQUE (asset_id, frame_idx)
);
CREATE INDEX video_frame_embedding_idx ON video_frame USING hnsw (embedding vector_cosine_ops);

CREATE TABLE document_chunk (
  id uuid PRIMARY KEY,
  asset_id uuid NOT NULL REFERENCES asset (id) ON DELETE CASCADE,
  chunk_index integer NOT NULL,
  text text NOT NULL,
  parent_heading text,
  page_number integer,
  element_type text NOT NULL DEFAULT 'text',
  embedding vector(768),
  embedding_model text,
  search_tokens text[] NOT NULL DEFAULT '{}',
  UNIQUE (asset_id, chunk_index)
);
CREATE INDEX document_chunk_embedding_idx ON document_chunk USING hnsw (embedding vector_cosine_ops);
CREATE INDEX document_chunk_tokens_idx ON document_chunk USING gin (search_tokens);

CREATE TABLE ingestion_batch (
  id uuid PRIMARY KEY,
  request_id text NOT NULL UNIQUE,
  status text NOT NULL CHECK (status IN ('pending', 'processing', 'completed', 'failed')),
  total_files integer NOT NULL DEFAULT 0,
  processed_files integer NOT NULL DEFAULT 0,
  failed_files integer NOT NULL DEFAULT 0,
  metadata jsonb NOT NULL DEFAULT '{}'::jsonb,
  job_ids uuid[] NOT NULL DEFAULT '{}',
  callback_url text,
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now(),
  started_at timestamptz,
  completed_at timestamptz
);
CREATE INDEX ingestion_batch_created_idx ON ingestion_batch (created_at DESC);

CREATE TABLE job (
  id uuid PRIMARY KEY,
  request_id text NOT NULL UNIQUE,
  fingerprint text NOT NULL,
  job_type text NOT NULL CHECK (job_type IN ('media', 'json', 'mixed')),
  status text NOT NULL CHECK (status IN ('queued', 'processing', 'done', 'failed')),
  priority integer NOT NULL DEFAULT 0,
  job_data jsonb NOT NULL DEFAULT '{}'::jsonb,
  asset_ids uuid[] NOT NULL DEFAULT '{}',
  owner text,
  retry_count integer NOT NULL DEFAULT 0,
  max_retries integer NOT NULL,
  next_retry_at timestamptz,
  lease_until timestamptz,
  dead_letter boolean NOT NULL DEFAULT false,
  dead_lettered_at timestamptz,
  discarded_at timestamptz,
  error_message text,
  callback_url text,
  batch_id uuid REFERENCES ingestion_batch (id) ON DELETE SET NULL,
  created_at timestamptz NOT NULL DEFAULT clock_timestamp(),
  updated_at timestamptz NOT NULL DEFAULT clock_timestamp(),
  started_at timestamptz,
  completed_at timestamptz
);
CREATE INDEX job_status_idx ON job (status, priority DESC, created_at);
CREATE INDEX job_dead_letter_idx ON job (dead_letter, dead_lettered_at DESC);
CREATE INDEX job_batch_idx ON job (batch_id);

CREATE SCHEMA IF NOT EXISTS json_data;
