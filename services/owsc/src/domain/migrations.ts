// The owsc schema (spec §3.14), applied at start-up by the kernel's migrate() under the namespace `owsc`.
// Applied migrations are never edited: a schema change is a new entry at the end of the list.
import type { Migration } from '@quintet/kernel/db';

export const OWSC_MIGRATION_NAMESPACE = 'owsc';

// Notes on the column types:
// - `seq` (identity) orders rows created in the same instant: the alerts of one batch or of one reading keep
//   their evaluation order, and incident events their happening order.
// - batches.permit and batches.result are `json`, not `jsonb`: jsonb reorders object keys, and the key order of a
//   permit's limits (and so of a result's summary) is meaningful (spec §3.1). The text is kept as written.
// - alerts.time_text keeps the reading time as text; time_numeric says whether it was a number.
const INITIAL_SCHEMA = `
create table if not exists batches (
  id uuid primary key,
  seq bigint generated always as identity,
  created_at timestamptz not null,
  filename text,
  site text,
  sha256 text not null,
  format text not null,
  rows integer not null,
  mode text not null,
  permit json not null,
  result json not null
);
create index if not exists batches_created_at_idx on batches (created_at desc, seq desc);

create table if not exists incidents (
  id uuid primary key,
  seq bigint generated always as identity,
  source text not null default 'stream',
  species text not null,
  state text not null check (state in ('open', 'closed')),
  opened_at timestamptz not null,
  closed_at timestamptz,
  peak_value double precision not null,
  peak_level text not null,
  "limit" double precision not null,
  alert_count integer not null default 0,
  acknowledged_at timestamptz,
  acknowledged_by text,
  ack_note text
);
-- At most one open incident per species, across every instance sharing the database.
create unique index if not exists incidents_one_open_per_species on incidents (species) where state = 'open';
create index if not exists incidents_opened_at_idx on incidents (opened_at desc, seq desc);
create index if not exists incidents_species_idx on incidents (species);

create table if not exists alerts (
  id uuid primary key,
  seq bigint generated always as identity,
  source text not null check (source in ('batch', 'stream')),
  batch_id uuid references batches (id) on delete cascade,
  incident_id uuid references incidents (id) on delete set null,
  time_text text not null,
  time_numeric boolean not null,
  species text not null,
  type text not null,
  level text not null,
  value double precision not null,
  "limit" double precision not null,
  ratio double precision not null,
  "window" integer,
  action text not null,
  message text not null,
  created_at timestamptz not null
);
create index if not exists alerts_created_at_idx on alerts (created_at desc, seq);
create index if not exists alerts_species_idx on alerts (species, created_at desc);
create index if not exists alerts_level_idx on alerts (level, created_at desc);
create index if not exists alerts_batch_id_idx on alerts (batch_id, seq);
create index if not exists alerts_incident_id_idx on alerts (incident_id, seq);

create table if not exists incident_events (
  seq bigint generated always as identity primary key,
  incident_id uuid not null references incidents (id) on delete cascade,
  at timestamptz not null,
  event text not null check (event in ('opened', 'alert', 'acknowledged', 'closed')),
  data jsonb not null default '{}'::jsonb
);
create index if not exists incident_events_incident_idx on incident_events (incident_id, seq);

create table if not exists advice_cache (
  key text primary key,
  value text not null,
  created_at timestamptz not null default now()
);
`;

export const OWSC_MIGRATIONS: readonly Migration[] = [{ name: '001_initial', sql: INITIAL_SCHEMA }];
