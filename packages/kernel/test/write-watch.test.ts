import { type Kysely, sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Database, openDatabase } from '../src/db.js';
import { WatchedCache, WriteWatch } from '../src/write-watch.js';

interface Tables {
  users: { id: number; name: string };
  tokens: { jti: string };
  notes: { id: number; body: string };
}

/** An in-memory database with the three tables, and a handle on it whose writes a new WriteWatch counts. */
async function watchedDatabase() {
  const database = await openDatabase<Tables>({});
  await sql`create table users (id int primary key, name text not null);
    create table tokens (jti text primary key);
    create table notes (id int primary key, body text not null)`.execute(database.kysely);
  const watch = new WriteWatch();
  return { database, watch, db: database.kysely.withPlugin(watch) };
}

describe('WriteWatch', () => {
  let database: Database<Tables>;
  let watch: WriteWatch;
  let db: Kysely<Tables>;

  beforeAll(async () => {
    ({ database, watch, db } = await watchedDatabase());
  });
  afterAll(() => database.close());

  /** How much the generations of `users`, `tokens` and `notes` move while `action` runs. */
  async function moves(action: () => Promise<unknown>): Promise<[number, number, number]> {
    const before = [watch.generation(['users']), watch.generation(['tokens']), watch.generation(['notes'])];
    await action();
    return [
      watch.generation(['users']) - (before[0] as number),
      watch.generation(['tokens']) - (before[1] as number),
      watch.generation(['notes']) - (before[2] as number),
    ];
  }

  it('counts writes made with the query builder, per table, and never reads', async () => {
    expect(await moves(() => db.insertInto('users').values({ id: 1, name: 'ada' }).execute())).toEqual([
      2, 0, 0,
    ]);
    expect(
      await moves(() => db.updateTable('users').set({ name: 'Ada' }).where('id', '=', 1).execute()),
    ).toEqual([2, 0, 0]);
    expect(await moves(() => db.insertInto('tokens').values({ jti: 'a' }).execute())).toEqual([0, 2, 0]);
    expect(await moves(() => db.deleteFrom('tokens').where('jti', '=', 'a').execute())).toEqual([0, 2, 0]);
    expect(await moves(() => db.selectFrom('users').selectAll().execute())).toEqual([0, 0, 0]);
    expect(
      await moves(() =>
        db
          .selectFrom('users')
          .innerJoin('notes', 'notes.id', 'users.id')
          .where('users.id', 'in', db.selectFrom('tokens').select(sql<number>`1`.as('one')))
          .selectAll()
          .execute(),
      ),
    ).toEqual([0, 0, 0]);
  });

  it('counts raw SQL by the tables its text writes, and an unknown statement as a write of everything', async () => {
    expect(await moves(() => sql`insert into notes values (1, 'x')`.execute(db))).toEqual([0, 0, 2]);
    expect(
      await moves(() =>
        sql`with moved as (delete from notes returning id) update "users" set name = 'b' where id in (select id from moved)`.execute(
          db,
        ),
      ),
    ).toEqual([2, 0, 2]);
    expect(await moves(() => sql`select * from users where name = ${'update tokens'}`.execute(db))).toEqual([
      0, 0, 0,
    ]);
    expect(await moves(() => sql`truncate table tokens`.execute(db))).toEqual([0, 2, 0]);
    // A builder query inside raw SQL counts too (Kysely also shows the plugin the embedded query alone: more
    // counting than needed, which only drops a cache early).
    const inserted = db.insertInto('tokens').values({ jti: 'nested' }).returning('jti');
    expect(
      (await moves(() => sql`with added as (${inserted}) select jti from added`.execute(db))).map(Math.sign),
    ).toEqual([0, 1, 0]);
    expect(
      await moves(() => sql`do $$ begin perform 1; end $$`.execute(db)).then((moved) => moved.map(Math.sign)),
    ).toEqual([1, 1, 1]);
  });

  it('counts the writes of a transaction as they are made', async () => {
    expect(
      await moves(() =>
        db.transaction().execute(async (trx) => {
          await trx.insertInto('notes').values({ id: 2, body: 'in a transaction' }).execute();
          await trx.selectFrom('users').selectAll().execute();
        }),
      ),
    ).toEqual([0, 0, 2]);
  });

  it('a failed write still moves its table once: whatever read it raced is not kept', async () => {
    const moved = await moves(() =>
      db
        .insertInto('users')
        .values({ id: 1, name: 'duplicate' })
        .execute()
        .catch(() => undefined),
    );
    expect(moved).toEqual([1, 0, 0]);
  });
});

describe('WatchedCache', () => {
  let database: Database<Tables>;
  let watch: WriteWatch;
  let db: Kysely<Tables>;

  beforeAll(async () => {
    ({ database, watch, db } = await watchedDatabase());
    await db.insertInto('users').values({ id: 1, name: 'ada' }).execute();
  });
  afterAll(() => database.close());

  it('reads once until one of its tables is written, and only then reads again', async () => {
    const cache = new WatchedCache<string | undefined>(watch, ['users'], 10);
    let reads = 0;
    const name = () =>
      cache.get('1', async () => {
        reads++;
        return (await db.selectFrom('users').select('name').where('id', '=', 1).executeTakeFirst())?.name;
      });
    expect(await name()).toBe('ada');
    expect(await name()).toBe('ada');
    expect(reads).toBe(1);
    await db.insertInto('notes').values({ id: 1, body: 'another table' }).execute();
    expect(await name()).toBe('ada');
    expect(reads).toBe(1);
    await db.updateTable('users').set({ name: 'Ada' }).where('id', '=', 1).execute();
    expect(await name()).toBe('Ada');
    expect(reads).toBe(2);
  });

  it('does not keep a value read while its table was being written', async () => {
    const cache = new WatchedCache<string>(watch, ['users'], 10);
    let reads = 0;
    const racing = () =>
      cache.get('k', async () => {
        reads++;
        const value = `read ${reads}`;
        if (reads === 1) await db.updateTable('users').set({ name: 'during the read' }).execute();
        return value;
      });
    expect(await racing()).toBe('read 1');
    expect(await racing()).toBe('read 2');
    expect(await racing()).toBe('read 2');
  });

  it('keeps at most maxEntries, dropping the least recently used', async () => {
    const cache = new WatchedCache<string>(watch, ['users'], 2);
    const reads: string[] = [];
    const get = (key: string) =>
      cache.get(key, async () => {
        reads.push(key);
        return key;
      });
    await get('a');
    await get('b');
    await get('a'); // a is now the most recently used
    await get('c'); // drops b
    await get('a');
    await get('b');
    expect(reads).toEqual(['a', 'b', 'c', 'b']);
  });

  it('reads a long key every time instead of keeping it', async () => {
    const cache = new WatchedCache<number>(watch, ['users'], 10);
    let reads = 0;
    const key = '1,'.repeat(300);
    for (let i = 0; i < 3; i++) await cache.get(key, async () => ++reads);
    expect(reads).toBe(3);
  });

  it('without a watch, reads every time', async () => {
    const cache = new WatchedCache<number>(null, ['users'], 10);
    let reads = 0;
    for (let i = 0; i < 3; i++) await cache.get('k', async () => ++reads);
    expect(reads).toBe(3);
  });
});
