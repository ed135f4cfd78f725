// The audit trail of spec §3.10 ("lineage"): one row per stage an asset, schema or request went through.
import { randomUUID } from 'node:crypto';
import { chunkRowsByParameters } from '@quintet/kernel/db';
import type { Insertable, Kysely, Transaction } from 'kysely';
import type { CatalogDatabase, LineageTable } from './database.js';

export interface LineageEntry {
  requestId?: string | null;
  assetId?: string | null;
  schemaId?: string | null;
  stage: string;
  detail?: Record<string, unknown>;
  success?: boolean;
  errorMessage?: string | null;
}

type Executor = Kysely<CatalogDatabase> | Transaction<CatalogDatabase>;

/** The rows of lineage entries, for callers that write them as part of a larger statement. */
export function lineageRows(entries: readonly LineageEntry[]): Insertable<LineageTable>[] {
  return entries.map((entry) => ({
    id: randomUUID(),
    request_id: entry.requestId ?? null,
    asset_id: entry.assetId ?? null,
    schema_id: entry.schemaId ?? null,
    stage: entry.stage,
    detail: JSON.stringify(entry.detail ?? {}),
    success: entry.success ?? true,
    error_message: entry.errorMessage ?? null,
  }));
}

/** Writes lineage rows (in the caller's transaction when given one). */
export async function recordLineage(db: Executor, ...entries: LineageEntry[]): Promise<void> {
  await recordLineageList(db, entries);
}

/** recordLineage for lists of any length (a batch may hold thousands of documents): statements of bounded size. */
export async function recordLineageList(db: Executor, entries: readonly LineageEntry[]): Promise<void> {
  for (const rows of chunkRowsByParameters(lineageRows(entries)))
    await db.insertInto('lineage').values(rows).execute();
}
