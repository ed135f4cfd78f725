// The store check shared by uploads, search and chat (spec §3.4, §3.6, §3.7): every id must be a live store of
// the caller; unknown, deleted and foreign stores all read as "not found".
import { sql } from 'kysely';
import type { RagDb } from '../domain/database.js';
import { guardDatabase, watchedCache } from '../domain/database.js';
import type { RagBackend } from '../domain/schema.js';

/** (caller, store ids) combinations remembered between writes to `stores` (embedded database only) */
const OWNED_STORE_CACHE_ENTRIES = 10_000;

export interface OwnedStore {
  id: number;
  backend: RagBackend;
}

/** The caller's live stores among `ids` (in the order of `ids`); fewer than asked → some id is not theirs. */
export async function findOwnedStores(
  db: RagDb,
  userId: number,
  ids: readonly number[],
): Promise<OwnedStore[]> {
  const unique = [...new Set(ids)].filter((id) => Number.isSafeInteger(id));
  if (unique.length === 0) return [];
  const rows = await guardDatabase(() =>
    watchedCache<OwnedStore[]>(db, 'owned-stores', ['stores'], OWNED_STORE_CACHE_ENTRIES).get(
      `${userId}:${unique.join(',')}`,
      () =>
        db.kysely
          .selectFrom('stores')
          .select(['id', 'backend'])
          // one array parameter, however many ids the request names
          .where('id', '=', sql<number>`any(${unique}::int8[])`)
          .where('user_id', '=', userId)
          .where('deleted_at', 'is', null)
          .execute(),
    ),
  );
  const byId = new Map(rows.map((row) => [row.id, row]));
  return unique.flatMap((id) => {
    const row = byId.get(id);
    return row === undefined ? [] : [row];
  });
}
