// The RAG Assistant data model (spec §3.12): Kysely table types and the forward-only migrations.
// Embeddings live in their own table, created only where pgvector exists (PGlite always; PostgreSQL when the
// extension is installed): without it the service keeps serving with lexical retrieval and says so clearly.
import type { Migration } from '@quintet/kernel/db';
import { jobTableSql } from '@quintet/kernel/queue';
import type { ColumnType, Generated } from 'kysely';

type Timestamp = ColumnType<Date, Date | string | undefined, Date | string>;
type NullableTimestamp = ColumnType<Date | null, Date | string | null | undefined, Date | string | null>;

export type DocumentStatus = 'PENDING' | 'RUNNING' | 'DONE' | 'ERROR';
export type RagBackend = 'gemini_hosted' | 'local_openai';

export interface UsersTable {
  id: Generated<number>;
  email: string;
  hashed_password: ColumnType<string, string | undefined, string>;
  is_active: ColumnType<boolean, boolean | undefined, boolean>;
  email_verified: ColumnType<boolean, boolean | undefined, boolean>;
  is_admin: ColumnType<boolean, boolean | undefined, boolean>;
  admin_notes: string | null;
  created_at: Timestamp;
}

export interface StoresTable {
  id: Generated<number>;
  user_id: number;
  display_name: string;
  fs_name: string;
  backend: RagBackend;
  deleted_at: NullableTimestamp;
  deleted_by: number | null;
  created_at: Timestamp;
}

export interface DocumentsTable {
  id: Generated<number>;
  store_id: number;
  filename: string;
  display_name: string;
  mime_type: string;
  size_bytes: number;
  sha256: string;
  storage_path: string;
  status: DocumentStatus;
  status_updated_at: Timestamp;
  attempts: ColumnType<number, number | undefined, number>;
  page_count: number | null;
  chunk_count: number | null;
  /** the generation of chunks that is visible (migration 002_chunk_generations) */
  index_generation: ColumnType<number, number | undefined, number>;
  token_count: number | null;
  op_name: string | null;
  gcs_uri: string | null;
  gemini_file_id: string | null;
  last_error: string | null;
  deleted_at: NullableTimestamp;
  deleted_by: number | null;
  created_at: Timestamp;
}

export interface ChunksTable {
  id: Generated<number>;
  document_id: number;
  store_id: number;
  ordinal: number;
  page: number | null;
  text: string;
  token_count: number;
  /** lexical terms → term frequency (content terms, stemmed) */
  terms: ColumnType<Record<string, number>, string, string>;
  /** number of content terms in the chunk (BM25 document length) */
  term_count: number;
  /** visible when equal to the document's index_generation */
  generation: ColumnType<number, number | undefined, number>;
  created_at: Timestamp;
}

/** Only where pgvector exists; `embedding` is written as the pgvector text form `[0.1,0.2,…]`. */
export interface ChunkVectorsTable {
  chunk_id: number;
  store_id: number;
  embedding: string;
}

export interface QueryLogsTable {
  id: Generated<number>;
  user_id: number;
  store_id: number | null;
  prompt_tokens: number;
  completion_tokens: number;
  /** numeric(12,6), read back as a string so no binary floating point touches money */
  cost_usd: ColumnType<string, string, string>;
  model: string;
  project_id: number | null;
  tags: ColumnType<Record<string, unknown> | null, string | null, string | null>;
  created_at: Timestamp;
}

export interface BudgetsTable {
  user_id: number;
  /** numeric(10,2) as a string */
  monthly_limit_usd: ColumnType<string, string, string>;
  created_at: Timestamp;
  updated_at: Timestamp;
}

export interface AdminAuditLogsTable {
  id: Generated<number>;
  admin_user_id: number;
  action: string;
  target_type: string | null;
  target_id: string | null;
  metadata_json: string | null;
  created_at: Timestamp;
}

export interface ChatSessionsTable {
  id: string;
  user_id: number;
  store_id: number | null;
  title: string;
  updated_at: Timestamp;
}

export interface ChatHistoryTable {
  id: Generated<number>;
  user_id: number;
  store_id: number | null;
  session_id: string;
  role: 'user' | 'assistant';
  content: string;
  sources: ColumnType<unknown[], string, string>;
  created_at: Timestamp;
}

export interface AppSettingsTable {
  key: string;
  value: string;
  updated_at: Timestamp;
}

export interface RevokedTokensTable {
  jti: string;
  expires_at: Timestamp;
}

/** Facts about the database itself, e.g. `embedding_dim`. */
export interface AppMetaTable {
  key: string;
  value: string;
}

/** The embedded (in-process) queue's durable job rows. */
export interface JobsTable {
  id: Generated<number>;
  kind: string;
  payload: ColumnType<Record<string, unknown>, string, string>;
  state: 'queued' | 'running' | 'done' | 'failed';
  attempts: ColumnType<number, number | undefined, number>;
  run_at: Timestamp;
  lease_until: NullableTimestamp;
  last_error: string | null;
  created_at: Timestamp;
  priority: ColumnType<number, number | undefined, number>;
  job_key: string | null;
  max_attempts: number | null;
  finished_at: NullableTimestamp;
}

export interface RagDatabase {
  users: UsersTable;
  stores: StoresTable;
  documents: DocumentsTable;
  chunks: ChunksTable;
  chunk_vectors: ChunkVectorsTable;
  query_logs: QueryLogsTable;
  budgets: BudgetsTable;
  admin_audit_logs: AdminAuditLogsTable;
  chat_sessions: ChatSessionsTable;
  chat_history: ChatHistoryTable;
  app_settings: AppSettingsTable;
  revoked_tokens: RevokedTokensTable;
  app_meta: AppMetaTable;
  jobs: JobsTable;
}

export const RAG_MIGRATION_NAMESPACE = 'rag';

/** Tables every database gets (no extension needed). */
export const RAG_MIGRATIONS: readonly Migration[] = [
  {
    name: '001_core',
    sql: `
CREATE TABLE users (
  id serial PRIMARY KEY,
  email text NOT NULL,
  hashed_password text NOT NULL DEFAULT '',
  is_active boolean NOT NULL DEFAULT true,
  email_verified boolean NOT NULL DEFAULT false,
  is_admin boolean NOT NULL DEFAULT false,
  admin_notes text,
  created_at timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX users_email_lower ON users (lower(email));

CREATE TABLE stores (
  id serial PRIMARY KEY,
  user_id integer NOT NULL REFERENCES users(id) ON DELETE CASCADE,
  display_name varchar(100) NOT NULL,
  fs_name text NOT NULL UNIQUE,
  backend text NOT NULL,
  deleted_at timestamptz,
  deleted_by integer REFERENCES users(id) ON DELETE SET NULL,
  created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX stores_user ON stores (user_id, deleted_at);

CREATE TABLE documents (
  id serial PRIMARY KEY,
  store_id integer NOT NULL REFERENCES stores(id) ON DELETE CASCADE,
  filename varchar(255) NOT NULL,
  display_name varchar(255) NOT NULL,
  mime_type text NOT NULL,
  size_bytes bigint NOT NULL,
  sha256 text NOT NULL,
  storage_path text NOT NULL,
  status text NOT NULL CHECK (status IN ('PENDING', 'RUNNING', 'DONE', 'ERROR')),
  status_updated_at timestamptz NOT NULL DEFAULT now(),
  attempts integer NOT NULL DEFAULT 0,
  page_count integer,
  chunk_count integer,
  token_count integer,
  op_name text,
  gcs_uri text,
  gemini_file_id text,
  last_error text,
  deleted_at timestamptz,
  deleted_by integer REFERENCES users(id) ON DELETE SET NULL,
  created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX documents_store ON documents (store_id, deleted_at);
CREATE INDEX documents_status ON documents (status, status_updated_at);

CREATE TABLE chunks (
  id serial PRIMARY KEY,
  document_id integer NOT NULL REFERENCES documents(id) ON DELETE CASCADE,
  store_id integer NOT NULL,
  ordinal integer NOT NULL,
  page integer,
  text text NOT NULL,
  token_count integer NOT NULL,
  terms jsonb NOT NULL,
  term_count integer NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX chunks_store ON chunks (store_id);
CREATE INDEX chunks_document ON chunks (document_id, ordinal);
CREATE INDEX chunks_terms ON chunks USING gin (terms);

CREATE TABLE query_logs (
  id serial PRIMARY KEY,
  user_id integer NOT NULL REFERENCES users(id) ON DELETE CASCADE,
  store_id integer,
  prompt_tokens integer NOT NULL DEFAULT 0,
  completion_tokens integer NOT NULL DEFAULT 0,
  cost_usd numeric(12, 6) NOT NULL DEFAULT 0,
  model varchar(100) NOT NULL,
  project_id integer,
  tags jsonb,
  created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX query_logs_user ON query_logs (user_id, created_at);

CREATE TABLE budgets (
  user_id integer PRIMARY KEY REFERENCES users(id) ON DELETE CASCADE,
  monthly_limit_usd numeric(10, 2) NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE admin_audit_logs (
  id serial PRIMARY KEY,
  admin_user_id integer NOT NULL,
  action text NOT NULL,
  target_type text,
  target_id text,
  metadata_json text,
  created_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE chat_sessions (
  id varchar(64) PRIMARY KEY,
  user_id integer NOT NULL REFERENCES users(id) ON DELETE CASCADE,
  store_id integer,
  title text NOT NULL DEFAULT '',
  updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX chat_sessions_user ON chat_sessions (user_id, updated_at);

CREATE TABLE chat_history (
  id serial PRIMARY KEY,
  user_id integer NOT NULL,
  store_id integer,
  session_id varchar(64) NOT NULL REFERENCES chat_sessions(id) ON DELETE CASCADE,
  role text NOT NULL CHECK (role IN ('user', 'assistant')),
  content text NOT NULL,
  sources jsonb NOT NULL DEFAULT '[]',
  created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX chat_history_session ON chat_history (session_id, id);

CREATE TABLE app_settings (
  key text PRIMARY KEY,
  value text NOT NULL,
  updated_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE revoked_tokens (
  jti text PRIMARY KEY,
  expires_at timestamptz NOT NULL
);

CREATE TABLE app_meta (
  key text PRIMARY KEY,
  value text NOT NULL
);

${jobTableSql('jobs')}
`,
  },
  {
    // Index generations: a document's visible chunks are those of its current generation. Ingestion writes a
    // new generation in short transactions (PGlite has one connection: one long swap would stall every
    // request for seconds) and makes it visible in one small transaction that also sets DONE and writes the
    // cost row; older generations are deleted afterwards. Readers filter chunks.generation = index_generation.
    name: '002_chunk_generations',
    sql: `
ALTER TABLE chunks ADD COLUMN generation integer NOT NULL DEFAULT 0;
ALTER TABLE documents ADD COLUMN index_generation integer NOT NULL DEFAULT 0;
CREATE SEQUENCE chunk_generations START 1;
DROP INDEX chunks_document;
CREATE INDEX chunks_document ON chunks (document_id, generation, ordinal);
`,
  },
  {
    // Lexical retrieval reads each document's postings into memory (retrieval.ts) and no query filters on
    // `terms`, so the GIN index only cost writes: about a quarter of every chunk insert and delete.
    name: '003_drop_terms_index',
    sql: `
DROP INDEX IF EXISTS chunks_terms;
`,
  },
];

/**
 * The vector table, applied only where pgvector is available (namespace `rag_vector`). `dim` is the
 * configured EMBEDDING_DIM at the time the table is first created; it is recorded in app_meta.
 */
export function vectorMigrations(dim: number, hnsw: boolean): Migration[] {
  return [
    {
      name: '001_chunk_vectors',
      sql: `
CREATE TABLE chunk_vectors (
  chunk_id integer PRIMARY KEY REFERENCES chunks(id) ON DELETE CASCADE,
  store_id integer NOT NULL,
  embedding vector(${dim}) NOT NULL
);
CREATE INDEX chunk_vectors_store ON chunk_vectors (store_id);
INSERT INTO app_meta (key, value) VALUES ('embedding_dim', '${dim}')
  ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value;
${hnsw ? 'CREATE INDEX chunk_vectors_hnsw ON chunk_vectors USING hnsw (embedding vector_cosine_ops);' : ''}
`,
    },
  ];
}

export const RAG_VECTOR_MIGRATION_NAMESPACE = 'rag_vector';
