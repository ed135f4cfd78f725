import { spawn, spawnSync } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import { gunzipSync, gzipSync } from 'node:zlib';
import { type ColumnType, type Kysely, sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import {
  buildMigratedTemplate,
  chunkRowsByParameters,
  copyIntoEmbedded,
  type Database,
  encodeBinaryCopy,
  isDatabaseUnavailable,
  isUniqueViolation,
  MAX_STATEMENT_PARAMETERS,
  type Migration,
  type OpenDatabaseOptions,
  openDatabase,
  prepareEmbeddedDatabase,
  redactDatabaseUrl,
} from '../src/db.js';
import { createLogger } from '../src/log.js';
import { parseTarHeader, TAR_BLOCK, tarDataBlocks } from '../src/pglite-engine.js';
import { extractDataDirArchive, migratedTemplateName, tarDirectory } from '../src/pglite-template.js';
import { CuttableProxy, testDatabaseUrl } from '../src/testing.js';

const serverUrl = await testDatabaseUrl();
const REFUSED_URL = 'postgres://postgres@127.0.0.1:1/x';

interface Tables {
  notes: { id: number; body: string; created_at: ColumnType<Date, never, never> };
  counter: { id: number; value: number };
}

const NOTES: Migration[] = [
  {
    name: '001_notes',
    // Several statements in one migration; CREATE TABLE without IF NOT EXISTS fails when applied twice.
    sql: `create table notes (id integer primary key, body text not null unique);
          alter table notes add column created_at timestamptz not null default now();`,
  },
  { name: '002_counter', sql: 'create table counter (id integer primary key, value integer not null)' },
];

interface Backend {
  name: string;
  /** opens a handle on the backend's database (PostgreSQL: a new pool, like another process would) */
  open(extra?: Partial<OpenDatabaseOptions>): Promise<Database<Tables>>;
  cleanup(): Promise<void>;
  /** a second, independent handle on the same database, when the backend allows one */
  concurrentOpen: boolean;
}

function pgliteMemory(): Backend {
  return {
    name: 'PGlite in memory',
    // With pgvector loaded, which must leave everything else as it is.
    open: (extra) => openDatabase({ vector: true, ...extra }),
    cleanup: async () => {},
    concurrentOpen: false,
  };
}

/** `thread: false`: the engine in the calling thread (the default runs it in a worker thread of its own). */
function pgliteDirectory(thread: boolean): Backend {
  const root = mkdtempSync(join(tmpdir(), 'kernel-db-'));
  return {
    name: `PGlite on a data directory, ${thread ? 'in its own thread' : 'in the calling thread'}`,
    open: (extra) => openDatabase({ dataDir: join(root, `db-${randomUUID()}`), thread, ...extra }),
    cleanup: async () => rmSync(root, { recursive: true, force: true }),
    concurrentOpen: false,
  };
}

/** PostgreSQL, every table in a schema of its own (other test files share the server), dropped afterwards. */
function postgres(url: string): Backend {
  const schemas: string[] = [];
  return {
    name: 'PostgreSQL',
    async open(extra) {
      const schema = `kernel_db_${randomUUID().replaceAll('-', '')}`;
      schemas.push(schema);
      await withAdmin(url, (admin) => sql`create schema ${sql.id(schema)}`.execute(admin));
      return openDatabase({ url: urlWithSchema(url, schema), ...extra });
    },
    async cleanup() {
      await withAdmin(url, async (admin) => {
        for (const schema of schemas)
          await sql`drop schema if exists ${sql.id(schema)} cascade`.execute(admin);
      });
    },
    concurrentOpen: true,
  };
}

function urlWithSchema(url: string, schema: string): string {
  const parsed = new URL(url);
  parsed.searchParams.set('options', `-c search_path=${schema}`);
  return parsed.toString();
}

async function withAdmin<T>(url: string, work: (admin: Kysely<unknown>) => Promise<T>): Promise<T> {
  const admin = await openDatabase<unknown>({ url, poolSize: 1 });
  try {
    return await work(admin.kysely);
  } finally {
    await admin.close();
  }
}

/** A second handle on the same database: a new pool on PostgreSQL; on PGlite (one connection) the same one. */
async function secondHandle(backend: Backend, first: Database<Tables>): Promise<Database<Tables>> {
  if (!backend.concurrentOpen) return first;
  const { rows } = await sql<{ schema: string }>`select current_schema() as schema`.execute(first.kysely);
  const schema = rows[0]?.schema;
  if (!schema || !serverUrl) throw new Error('no schema');
  return openDatabase<Tables>({ url: urlWithSchema(serverUrl, schema) });
}

const backends: Backend[] = [pgliteMemory(), pgliteDirectory(true), pgliteDirectory(false)];
if (serverUrl) backends.push(postgres(serverUrl));
else it.skip('PostgreSQL contract (server not reachable)', () => {});

for (const backend of backends) {
  describe(`database contract: ${backend.name}`, () => {
    let db: Database<Tables>;

    beforeAll(async () => {
      db = await backend.open();
    });

    afterAll(async () => {
      await db?.close();
      await backend.cleanup();
    });

    it('answers ping and names its dialect', async () => {
      await expect(db.ping()).resolves.toBeUndefined();
      expect(db.dialect).toBe(backend.name === 'PostgreSQL' ? 'postgres' : 'pglite');
    });

    it('reports its connections: the pool on PostgreSQL, the one embedded connection on PGlite', async () => {
      await db.ping();
      const stats = db.connections();
      if (backend.name === 'PostgreSQL') {
        expect(stats.max).toBe(10);
        expect(stats.total).toBeGreaterThanOrEqual(1);
        expect(stats.idle).toBeLessThanOrEqual(stats.total);
        expect(stats.waiting).toBe(0);
      } else expect(stats).toEqual({ total: 1, idle: 1, waiting: 0, max: 1 });
    });

    it('tells onQuery the kind and duration of each query', async () => {
      const seen: [string, number][] = [];
      const timed = await backend.open({ onQuery: (operation, seconds) => seen.push([operation, seconds]) });
      try {
        await timed.ping();
        await sql`with one as (select 1) select * from one`.execute(timed.kysely);
      } finally {
        await timed.close();
      }
      expect(seen.map(([operation]) => operation).slice(-2)).toEqual(['select', 'other']);
      for (const [, seconds] of seen) expect(seconds).toBeGreaterThanOrEqual(0);
    });

    it('applies migrations once, in order, and records them per namespace', async () => {
      expect(await db.migrate('notes', NOTES)).toEqual(['001_notes', '002_counter']);
      expect(await db.migrate('notes', NOTES)).toEqual([]);
      const third: Migration = { name: '003_index', sql: 'create index notes_created on notes (created_at)' };
      expect(await db.migrate('notes', [...NOTES, third])).toEqual(['003_index']);
      // Another namespace has its own history.
      expect(
        await db.migrate('other', [{ name: '001_notes', sql: 'create table other_notes (id int)' }]),
      ).toEqual(['001_notes']);
      const recorded = await sql<{ namespace: string; name: string; applied_at: Date }>`
        select namespace, name, applied_at from quintet_migrations order by namespace, name`.execute(
        db.kysely,
      );
      expect(recorded.rows.map((row) => `${row.namespace}/${row.name}`)).toEqual([
        'notes/001_notes',
        'notes/002_counter',
        'notes/003_index',
        'other/001_notes',
      ]);
      expect(recorded.rows[0]?.applied_at).toBeInstanceOf(Date);
    });

    it('serialises concurrent migrate calls: each migration is applied exactly once', async () => {
      const other = await secondHandle(backend, db);
      try {
        const migrations: Migration[] = Array.from({ length: 4 }, (_, index) => ({
          name: `00${index}_race`,
          sql: `create table race_${index} (id int); insert into race_${index} values (${index});`,
        }));
        const [first, second] = await Promise.all([
          db.migrate('race', migrations),
          other.migrate('race', migrations),
        ]);
        expect([...first, ...second].sort()).toEqual(migrations.map((migration) => migration.name));
        const { rows } = await sql<{ n: number }>`select count(*) as n from race_3`.execute(db.kysely);
        expect(rows[0]?.n).toBe(1);
      } finally {
        if (other !== db) await other.close();
      }
    });

    it('rolls back a failing migration whole, keeps the earlier ones and names it in the error', async () => {
      const migrations: Migration[] = [
        { name: '001_ok', sql: 'create table kept (id int)' },
        { name: '002_broken', sql: 'create table half_done (id int); select * from no_such_table;' },
      ];
      await expect(db.migrate('broken', migrations)).rejects.toThrow(
        /^Migration broken\/002_broken failed: .*no_such_table/,
      );
      const tables = await sql<{ name: string }>`
        select table_name as name from information_schema.tables
        where table_schema = current_schema() and table_name in ('kept', 'half_done')`.execute(db.kysely);
      expect(tables.rows.map((row) => row.name)).toEqual(['kept']);
      expect(await db.migrate('broken', migrations.slice(0, 1))).toEqual([]);
    });

    it('refuses duplicate migration names', async () => {
      const twice: Migration[] = [
        { name: 'same', sql: 'select 1' },
        { name: 'same', sql: 'select 2' },
      ];
      await expect(db.migrate('dup', twice)).rejects.toThrow('Duplicate migration name dup/same');
    });

    it('commits a transaction and rolls one back on error', async () => {
      await db.kysely.transaction().execute(async (trx) => {
        await trx.insertInto('notes').values({ id: 1, body: 'kept' }).execute();
      });
      await expect(
        db.kysely.transaction().execute(async (trx) => {
          await trx.insertInto('notes').values({ id: 2, body: 'discarded' }).execute();
          throw new Error('abort');
        }),
      ).rejects.toThrow('abort');
      const rows = await db.kysely
        .selectFrom('notes')
        .select(['id', 'body', 'created_at'])
        .orderBy('id')
        .execute();
      expect(rows.map((row) => [row.id, row.body])).toEqual([[1, 'kept']]);
      expect(rows[0]?.created_at).toBeInstanceOf(Date);
    });

    it('reports unique violations and counts rows affected', async () => {
      const duplicate = await db.kysely
        .insertInto('notes')
        .values({ id: 1, body: 'again' })
        .execute()
        .catch((error: unknown) => error);
      expect(isUniqueViolation(duplicate)).toBe(true);
      expect(isDatabaseUnavailable(duplicate)).toBe(false);
      const other = await db.kysely
        .insertInto('notes')
        .values({ id: 3, body: null as unknown as string })
        .execute()
        .catch((error: unknown) => error);
      expect(other).toBeInstanceOf(Error);
      expect(isUniqueViolation(other)).toBe(false);

      const none = await db.kysely
        .updateTable('notes')
        .set({ body: 'x' })
        .where('id', '=', 999)
        .executeTakeFirst();
      expect(none.numUpdatedRows).toBe(0n);
      const one = await db.kysely
        .updateTable('notes')
        .set({ body: 'kept!' })
        .where('id', '=', 1)
        .executeTakeFirst();
      expect(one.numUpdatedRows).toBe(1n);
    });

    it('returns int8 and numeric as numbers, timestamps and dates as Dates', async () => {
      const { rows } = await sql<Record<string, unknown>>`
        select count(*) as count, 42::int8 as big, 9007199254740993::int8 as huge, 2.5::numeric as ratio,
               '2024-01-02T03:04:05Z'::timestamptz as at, '2024-01-02 03:04:05'::timestamp as local,
               '2024-01-02'::date as day
        from notes`.execute(db.kysely);
      expect(rows[0]).toEqual({
        count: 1,
        big: 42,
        huge: 9007199254740993n,
        ratio: 2.5,
        at: new Date('2024-01-02T03:04:05Z'),
        local: new Date('2024-01-02T03:04:05Z'),
        day: new Date('2024-01-02T00:00:00Z'),
      });
      // Same values through a parameterised query (another protocol path on PGlite).
      const counted = await db.kysely
        .selectFrom('notes')
        .select((eb) => eb.fn.countAll().as('n'))
        .where('id', '>', 0)
        .executeTakeFirst();
      expect(counted?.n).toBe(1);
    });

    it.runIf(!backend.concurrentOpen)(
      'never interleaves concurrent transactions on its single connection',
      async () => {
        await db.kysely.insertInto('counter').values({ id: 1, value: 0 }).execute();
        const events: string[] = [];
        // Read-modify-write with a pause in between: interleaving would lose increments.
        await Promise.all(
          Array.from({ length: 8 }, (_, index) =>
            db.kysely.transaction().execute(async (trx) => {
              events.push(`begin ${index}`);
              const row = await trx
                .selectFrom('counter')
                .select('value')
                .where('id', '=', 1)
                .executeTakeFirstOrThrow();
              await new Promise((resolve) => setTimeout(resolve, 5));
              await trx
                .updateTable('counter')
                .set({ value: row.value + 1 })
                .where('id', '=', 1)
                .execute();
              events.push(`end ${index}`);
            }),
          ),
        );
        const final = await db.kysely.selectFrom('counter').select('value').executeTakeFirstOrThrow();
        expect(final.value).toBe(8);
        expect(events).toEqual(
          Array.from({ length: 8 }, (_, index) => [`begin ${index}`, `end ${index}`]).flat(),
        );
      },
    );

    it.runIf(backend.name === 'PGlite in memory')(
      'loads pgvector: a vector(3) column orders by cosine distance',
      async () => {
        await db.migrate('vectors', [
          {
            name: '001_items',
            sql: `create table items (id int primary key, embedding vector(3) not null);
                insert into items values (1, '[1,0,0]'), (2, '[0,1,0]'), (3, '[0.9,0.1,0]');`,
          },
        ]);
        const { rows } = await sql<{ id: number }>`
        select id from items order by embedding <=> ${'[1,0,0]'}::vector limit 3`.execute(db.kysely);
        expect(rows.map((row) => row.id)).toEqual([1, 3, 2]);
      },
    );

    it('rejects with an "unavailable" error once closed (last: it closes the shared handle)', async () => {
      await db.close();
      await db.close(); // twice is harmless
      const error = await db.ping().catch((caught: unknown) => caught);
      expect(error).toBeInstanceOf(Error);
      expect(isDatabaseUnavailable(error)).toBe(true);
      const query = await db.kysely
        .selectFrom('notes')
        .selectAll()
        .execute()
        .catch((caught: unknown) => caught);
      expect(isDatabaseUnavailable(query)).toBe(true);
    });
  });
}

describe('PGlite specifics', () => {
  let root: string;
  beforeAll(() => {
    root = mkdtempSync(join(tmpdir(), 'kernel-pglite-'));
  });
  afterAll(() => rmSync(root, { recursive: true, force: true }));

  it('bounds shared_buffers (16MB by default, or the chosen size) and refuses a malformed size', async () => {
    const byDefault = await openDatabase({});
    const chosen = await openDatabase({ sharedBuffers: '8MB' });
    try {
      const shown = async (db: Database<unknown>) =>
        (await sql<{ shared_buffers: string }>`show shared_buffers`.execute(db.kysely)).rows[0]
          ?.shared_buffers;
      expect(await shown(byDefault)).toBe('16MB');
      expect(await shown(chosen)).toBe('8MB');
    } finally {
      await Promise.all([byDefault.close(), chosen.close()]);
    }
    await expect(openDatabase({ sharedBuffers: '16MB; drop' })).rejects.toThrow(/invalid shared_buffers/);
  });

  it('runs statements in a thread of its own unless told not to: the event loop stays free meanwhile', async () => {
    // pg_sleep runs inside the WebAssembly engine; in the calling thread it holds every timer back.
    const ticksDuringSleep = async (thread: boolean) => {
      const db = await openDatabase<unknown>({ thread });
      try {
        let ticks = 0;
        const timer = setInterval(() => ticks++, 20);
        await sql`select pg_sleep(0.4)`.execute(db.kysely);
        clearInterval(timer);
        return ticks;
      } finally {
        await db.close();
      }
    };
    expect(await ticksDuringSleep(true)).toBeGreaterThanOrEqual(5);
    expect(await ticksDuringSleep(false)).toBe(0);
  });

  it('turns statements into "unavailable" errors once its thread has stopped, pending ones included', async () => {
    // The thread is private to the module: its Worker is caught as it sends the first statement.
    let thread: Worker | undefined;
    const send = Worker.prototype.postMessage;
    const spy = vi.spyOn(Worker.prototype, 'postMessage').mockImplementation(function (
      this: Worker,
      ...args: Parameters<Worker['postMessage']>
    ) {
      thread = this;
      return send.apply(this, args);
    });
    const db = await openDatabase<unknown>({});
    try {
      await sql`select 1`.execute(db.kysely);
      spy.mockRestore();
      const pending = sql`select pg_sleep(5)`.execute(db.kysely).catch((error: unknown) => error);
      await thread?.terminate();
      const failure = await pending;
      expect(isDatabaseUnavailable(failure)).toBe(true);
      expect((failure as Error).message).toMatch(/^PGlite is closed: the database thread stopped/);
      const later = await sql`select 1`.execute(db.kysely).catch((error: unknown) => error);
      expect(isDatabaseUnavailable(later)).toBe(true);
    } finally {
      spy.mockRestore();
      await db.close();
    }
  });

  it('lets the thread of a closed database end by itself instead of terminating it', async () => {
    const terminate = vi.spyOn(Worker.prototype, 'terminate');
    try {
      const db = await openDatabase<unknown>({});
      await sql`select 1`.execute(db.kysely);
      await db.close();
      expect(terminate).not.toHaveBeenCalled();
    } finally {
      terminate.mockRestore();
    }
  });

  it('copies integer and vector rows in binary, in turn with other statements and inside transactions', async () => {
    const db = await openDatabase<unknown>({ vector: true });
    try {
      await sql`create table items (id int primary key, store int not null, embedding vector(3) not null)`.execute(
        db.kysely,
      );
      const copy = "copy items (id, store, embedding) from '/dev/blob' with (format binary)";
      const rows = [
        [1, 7, Float32Array.of(0.5, -0.25, 1e-7)],
        [2, 7, Float32Array.of(3, 4, 0)],
      ];
      const [copied] = await Promise.all([
        copyIntoEmbedded(db.kysely, copy, encodeBinaryCopy(rows)),
        sql`select 1`.execute(db.kysely),
      ]);
      expect(copied).toBe(2);
      const { rows: read } = await sql<{ id: number; store: number; embedding: string; norm: number }>`
        select id, store, embedding::text as embedding, vector_norm(embedding) as norm from items order by id`.execute(
        db.kysely,
      );
      expect(read).toEqual([
        {
          id: 1,
          store: 7,
          embedding: '[0.5,-0.25,1e-07]',
          norm: expect.closeTo(Math.hypot(0.5, 0.25, 1e-7), 6),
        },
        { id: 2, store: 7, embedding: '[3,4,0]', norm: 5 },
      ]);

      // Inside a transaction the copy is part of it.
      await db.kysely
        .transaction()
        .execute(async (trx) => {
          await copyIntoEmbedded(trx, copy, encodeBinaryCopy([[3, 8, Float32Array.of(1, 1, 1)]]));
          throw new Error('roll back');
        })
        .catch(() => {});
      const { rows: count } = await sql<{ n: number }>`select count(*)::int as n from items`.execute(
        db.kysely,
      );
      expect(count).toEqual([{ n: 2 }]);

      // A wrong dimension is PostgreSQL's error; anything but a copy from the blob is refused before it is sent.
      await expect(
        copyIntoEmbedded(db.kysely, copy, encodeBinaryCopy([[4, 8, Float32Array.of(1, 1)]])),
      ).rejects.toThrow('expected 3 dimensions, not 2');
      await expect(copyIntoEmbedded(db.kysely, 'delete from items', encodeBinaryCopy([]))).rejects.toThrow(
        "copyIntoEmbedded runs one `copy … from '/dev/blob'` statement",
      );
    } finally {
      await db.close();
    }
  });

  it('carries values and PostgreSQL error fields across the thread', async () => {
    const db = await openDatabase<unknown>({});
    try {
      await sql`create table items (id int8 primary key, body bytea, doc jsonb, at timestamptz,
        constraint items_doc_present check (doc is not null))`.execute(db.kysely);
      const bytes = Buffer.from([0, 1, 2, 255]);
      const at = new Date('2026-01-02T03:04:05.678Z');
      await sql`insert into items values (${1}, ${bytes}, ${JSON.stringify({ a: [1, 'two'] })}::jsonb, ${at})`.execute(
        db.kysely,
      );
      const { rows } = await sql<Record<string, unknown>>`select * from items`.execute(db.kysely);
      expect(rows).toEqual([{ id: 1, body: new Uint8Array(bytes), doc: { a: [1, 'two'] }, at }]);

      const duplicate = await sql`insert into items values (1, null, '{}', now())`
        .execute(db.kysely)
        .catch((error: unknown) => error as Error & Record<string, unknown>);
      expect(duplicate).toBeInstanceOf(Error);
      expect(duplicate).toMatchObject({
        message: 'duplicate key value violates unique constraint "items_pkey"',
        code: '23505',
        constraint: 'items_pkey',
        detail: 'Key (id)=(1) already exists.',
        table: 'items',
      });
      const missing = await sql`insert into items values (2, null, null, now())`
        .execute(db.kysely)
        .catch((error: unknown) => error);
      expect(missing).toMatchObject({ code: '23514', constraint: 'items_doc_present' });
    } finally {
      await db.close();
    }
  });

  it('refuses a statement with more bound parameters than the engine takes, with a clear error', async () => {
    const values = (count: number) => Array.from({ length: count }, (_, index) => index);
    for (const thread of [true, false]) {
      const db = await openDatabase<unknown>({ thread });
      try {
        const most = await sql<{ n: number }>`select cardinality(array[${sql.join(
          values(MAX_STATEMENT_PARAMETERS),
        )}]::int[]) as n`.execute(db.kysely);
        expect(most.rows).toEqual([{ n: MAX_STATEMENT_PARAMETERS }]);
        const failure = await sql`select array[${sql.join(values(MAX_STATEMENT_PARAMETERS + 1))}]::int[]`
          .execute(db.kysely)
          .catch((error: unknown) => error as Error & { code?: string });
        expect(failure).toBeInstanceOf(Error);
        expect(failure).toMatchObject({
          code: '54000',
          message: 'statement has 32768 bound parameters; the embedded database accepts at most 32767',
        });
        expect(isDatabaseUnavailable(failure)).toBe(false);
        // From the thread, the stack shows where the engine failed, then where the answer arrived.
        if (thread)
          expect((failure as Error).stack).toMatch(/pglite-engine[\s\S]*answered by the database thread/);
      } finally {
        await db.close();
      }
    }
  });

  it('prepareEmbeddedDatabase creates and migrates a database in a child process', async () => {
    const dataDir = join(root, 'prepared');
    const applied = await prepareEmbeddedDatabase({ dataDir }, [
      { namespace: 'notes', migrations: NOTES },
      {
        namespace: 'extra',
        migrations: [{ name: '001_tags', sql: 'create table tags (name text primary key)' }],
      },
    ]);
    expect(applied).toEqual(['001_notes', '002_counter', '001_tags']);
    // A database is there now: nothing to prepare, and no child is started for it.
    expect(await prepareEmbeddedDatabase({ dataDir }, [{ namespace: 'notes', migrations: NOTES }])).toEqual(
      [],
    );
    const db = await openDatabase<Tables>({ dataDir });
    try {
      expect(await db.migrate('notes', NOTES)).toEqual([]);
      await db.kysely.insertInto('notes').values({ id: 1, body: 'kept' }).execute();
    } finally {
      await db.close();
    }
    // Claimed by this process (its lock file): the child cannot have the directory, and says why.
    const claimed = join(root, 'prepared-locked');
    mkdirSync(claimed);
    writeFileSync(join(claimed, '.quintet.lock'), `${process.pid}\n`);
    await expect(prepareEmbeddedDatabase({ dataDir: claimed }, [])).rejects.toThrow(
      `Preparing the embedded database in ${claimed} failed: The database directory ${claimed} is already open in process ${process.pid}`,
    );
  });

  it('prepareEmbeddedDatabase names a failing migration; the earlier ones stay applied', async () => {
    const dataDir = join(root, 'prepared-failing');
    const broken = [...NOTES, { name: '003_broken', sql: 'create tabel nope ()' }];
    await expect(
      prepareEmbeddedDatabase({ dataDir }, [{ namespace: 'notes', migrations: broken }]),
    ).rejects.toThrow(/failed: Migration notes\/003_broken failed: syntax error at or near "tabel"/);
    const db = await openDatabase<Tables>({ dataDir });
    try {
      expect(await db.migrate('notes', NOTES)).toEqual([]);
    } finally {
      await db.close();
    }
  });

  it('keeps data across close and reopen, refuses a second opener, takes over the lock of a dead process', async () => {
    const dataDir = join(root, 'nested', 'persist');
    const lockFile = join(dataDir, '.quintet.lock');
    const first = await openDatabase<Tables>({ dataDir });
    try {
      expect(readFileSync(lockFile, 'utf8')).toBe(`${process.pid}\n`);
      await expect(openDatabase({ dataDir })).rejects.toThrow(
        `The database directory ${dataDir} is already open in this process (lock file ${lockFile})`,
      );
      await first.migrate('notes', NOTES);
      await first.kysely.insertInto('notes').values({ id: 7, body: 'survives' }).execute();
    } finally {
      await first.close();
    }
    expect(existsSync(lockFile)).toBe(false);

    const live = spawn(process.execPath, ['-e', 'setTimeout(() => {}, 60000)'], { stdio: 'ignore' });
    try {
      writeFileSync(lockFile, `${live.pid}\n`);
      await expect(openDatabase({ dataDir })).rejects.toThrow(`already open in process ${live.pid}`);
    } finally {
      live.kill();
    }

    const deadPid = spawnSync(process.execPath, ['-e', '']).pid;
    writeFileSync(lockFile, `${deadPid}\n`);
    const second = await openDatabase<Tables>({ dataDir });
    try {
      expect(readFileSync(lockFile, 'utf8')).toBe(`${process.pid}\n`);
      expect(await second.migrate('notes', NOTES)).toEqual([]);
      const rows = await second.kysely.selectFrom('notes').select(['id', 'body']).execute();
      expect(rows).toEqual([{ id: 7, body: 'survives' }]);
    } finally {
      await second.close();
    }
  });
});

describe('PGlite template', () => {
  const buildScript = fileURLToPath(new URL('../scripts/build-pglite-template.mjs', import.meta.url));
  let root: string;
  let templatePath: string;

  function runBuild(): string {
    const result = spawnSync(process.execPath, [buildScript, templatePath], { encoding: 'utf8' });
    expect(result.stderr).toBe('');
    expect(result.status).toBe(0);
    return result.stdout;
  }

  /** Opens with a debug logger and returns which way the database was created. */
  async function openLogged(options: OpenDatabaseOptions) {
    const messages: string[] = [];
    const logger = createLogger({
      name: 'test',
      level: 'debug',
      destination: { write: (line: string) => messages.push((JSON.parse(line) as { msg: string }).msg) },
    });
    const db = await openDatabase<Tables>({ ...options, logger });
    return { db, messages };
  }

  beforeAll(() => {
    root = mkdtempSync(join(tmpdir(), 'kernel-template-'));
    templatePath = join(root, 'template.tar.gz');
  });
  afterAll(() => rmSync(root, { recursive: true, force: true }));

  it('the build script writes a gzipped data directory once, then skips while it is newer than PGlite', () => {
    expect(runBuild()).toMatch(/^PGlite template written: .*template\.tar\.gz \(\d+ bytes, [\d.]+ s\)\n$/);
    expect(readdirSync(root)).toEqual(['template.tar.gz']); // no temporary file left behind
    expect(readFileSync(templatePath).subarray(0, 2)).toEqual(Buffer.from([0x1f, 0x8b]));
    const builtAt = readFileSync(templatePath);
    expect(runBuild()).toBe(`PGlite template up to date: ${templatePath}\n`);
    expect(readFileSync(templatePath).equals(builtAt)).toBe(true);
  });

  it('creates a new data directory from the template; the data survives close and reopen', async () => {
    const dataDir = join(root, 'from-template');
    const first = await openLogged({ dataDir, templatePath });
    try {
      expect(first.messages).toContain('created the PGlite database from the template');
      expect(existsSync(join(dataDir, 'PG_VERSION'))).toBe(true);
      // The lock, taken before the load, sits beside the loaded files.
      expect(readFileSync(join(dataDir, '.quintet.lock'), 'utf8')).toBe(`${process.pid}\n`);
      expect(await first.db.migrate('notes', NOTES)).toEqual(['001_notes', '002_counter']);
      await first.db.kysely.insertInto('notes').values({ id: 1, body: 'from the template' }).execute();
    } finally {
      await first.db.close();
    }
    const second = await openLogged({ dataDir, templatePath });
    try {
      expect(second.messages).toContain('opening the existing PGlite database');
      expect(second.messages).not.toContain('created the PGlite database from the template');
      expect(await second.db.migrate('notes', NOTES)).toEqual([]);
      expect(await second.db.kysely.selectFrom('notes').select(['id', 'body']).execute()).toEqual([
        { id: 1, body: 'from the template' },
      ]);
    } finally {
      await second.db.close();
    }
  });

  it('loads pgvector on an in-memory database made from the template', async () => {
    const { db, messages } = await openLogged({ vector: true, templatePath });
    try {
      expect(messages).toContain('created the PGlite database from the template');
      const { rows } = await sql<{
        distance: number;
      }>`select ${'[1,2,2]'}::vector <-> ${'[1,2,5]'}::vector as distance`.execute(db.kysely);
      expect(rows).toEqual([{ distance: 3 }]);
    } finally {
      await db.close();
    }
  });

  // The first two are rejected before any directory is touched, so memory stands for both; the third fails
  // inside PGlite after writing into the directory, which must be emptied again for initdb.
  const unusable: Array<[string, () => string, string, boolean]> = [
    ['absent', () => join(root, 'missing.tar.gz'), 'no PGlite template', false],
    [
      'a cut-short archive',
      () => writeTemplate('short.tar.gz', gzipSync(gunzipTemplate().subarray(0, 300_000))),
      'unreadable',
      false,
    ],
    [
      'an archive PostgreSQL cannot start from',
      () => writeTemplate('version-only.tar.gz', gzipSync(tarOf('PG_VERSION', '17\n'))),
      'did not load',
      true,
    ],
  ];
  for (const [what, makeTemplate, warning, onDisk] of unusable) {
    it(`falls back to initdb when the template is ${what}`, async () => {
      const dataDir = onDisk ? join(root, `fallback-${randomUUID()}`) : undefined;
      const { db, messages } = await openLogged({
        ...(dataDir === undefined ? {} : { dataDir }),
        templatePath: makeTemplate(),
      });
      try {
        expect(messages.some((message) => message.includes(warning))).toBe(true);
        expect(messages).toContain('creating the PGlite database with initdb');
        expect(await db.migrate('notes', NOTES)).toEqual(['001_notes', '002_counter']);
      } finally {
        await db.close();
      }
    });
  }

  it('runs initdb when templates are turned off', async () => {
    const { db, messages } = await openLogged({ templatePath: null });
    try {
      expect(messages).toEqual(['creating the PGlite database with initdb']);
      await db.ping();
    } finally {
      await db.close();
    }
  });

  function writeTemplate(name: string, content: Buffer): string {
    const path = join(root, name);
    writeFileSync(path, content);
    return path;
  }

  function gunzipTemplate(): Buffer {
    return gunzipSync(readFileSync(templatePath));
  }
});

describe('migrated PGlite template', () => {
  let root: string;
  const sets = [{ namespace: 'notes', migrations: NOTES }];
  const names = ['001_notes', '002_counter'];

  /** built once by beforeAll, for NOTES (the first test replaces the file: its bytes are kept here) */
  let built: { path: string; built: boolean };
  let builtArchive: Buffer;

  beforeAll(async () => {
    root = mkdtempSync(join(tmpdir(), 'kernel-migrated-template-'));
    built = await buildMigratedTemplate(join(root, 'build'), {}, sets);
    builtArchive = readFileSync(built.path);
  });
  afterAll(() => rmSync(root, { recursive: true, force: true }));

  function capturingLogger() {
    const messages: string[] = [];
    const logger = createLogger({
      name: 'test',
      level: 'debug',
      destination: { write: (line: string) => messages.push((JSON.parse(line) as { msg: string }).msg) },
    });
    return { logger, messages };
  }

  async function notesIn(dataDir: string) {
    const db = await openDatabase<Tables>({ dataDir });
    try {
      expect(await db.migrate('notes', NOTES)).toEqual([]);
      return await db.kysely.selectFrom('notes').select(['id', 'body']).orderBy('id').execute();
    } finally {
      await db.close();
    }
  }

  it('is built once per set of migrations, named by them; the build removes the ones of other migrations', async () => {
    const dir = join(root, 'build');
    const first = built;
    expect(first.built).toBe(true);
    expect(first.path).toBe(join(dir, migratedTemplateName(false, sets)));
    expect(readdirSync(dir)).toEqual([basename(first.path)]); // no scratch or partial file left
    const paths = tarEntries(gunzipSync(readFileSync(first.path))).map(([path]) => path);
    expect(paths).toContain('PG_VERSION');
    expect(paths).not.toContain('.quintet.lock');
    expect(await buildMigratedTemplate(dir, {}, sets)).toEqual({ path: first.path, built: false });

    // Any change to the migrations (or to pgvector) names another template.
    const changed = [{ namespace: 'notes', migrations: [...NOTES, { name: '003_x', sql: 'select 1' }] }];
    expect(migratedTemplateName(false, changed)).not.toBe(basename(first.path));
    expect(migratedTemplateName(true, sets)).not.toBe(basename(first.path));
    expect(migratedTemplateName(false, [{ namespace: 'notes', migrations: [...NOTES] }])).toBe(
      basename(first.path),
    );
    const next = await buildMigratedTemplate(dir, {}, changed);
    expect(readdirSync(dir)).toEqual([basename(next.path)]);
  });

  it('makes a new database by unpacking, without migrating it', async () => {
    const dir = join(root, 'marked');
    // A template holding a row the migrations never write: finding it proves the archive was unpacked.
    const source = join(root, 'marked-source');
    await prepareEmbeddedDatabase({ dataDir: source }, sets);
    const db = await openDatabase<Tables>({ dataDir: source });
    try {
      await db.kysely.insertInto('notes').values({ id: 1, body: 'from the template' }).execute();
    } finally {
      await db.close();
    }
    mkdirSync(dir);
    writeFileSync(join(dir, migratedTemplateName(false, sets)), gzipSync(tarDirectory(source)));

    const dataDir = join(root, 'unpacked', 'pglite');
    expect(await prepareEmbeddedDatabase({ dataDir, migratedTemplateDir: dir }, sets)).toEqual(names);
    expect(existsSync(join(dataDir, '.quintet.lock'))).toBe(false);
    expect(await notesIn(dataDir)).toEqual([{ id: 1, body: 'from the template' }]);
    // An existing database is left alone.
    expect(await prepareEmbeddedDatabase({ dataDir, migratedTemplateDir: dir }, sets)).toEqual([]);

    // Other migrations do not match it: the database is created and migrated the long way.
    const other = [{ namespace: 'notes', migrations: NOTES.slice(0, 1) }];
    const otherDir = join(root, 'other', 'pglite');
    expect(await prepareEmbeddedDatabase({ dataDir: otherDir, migratedTemplateDir: dir }, other)).toEqual([
      '001_notes',
    ]);
    const created = await openDatabase<Tables>({ dataDir: otherDir });
    try {
      expect(await created.kysely.selectFrom('notes').selectAll().execute()).toEqual([]);
    } finally {
      await created.close();
    }

    // A directory that holds something already is not unpacked into; a directory open elsewhere is refused.
    const busy = join(root, 'busy');
    mkdirSync(busy);
    writeFileSync(join(busy, '.quintet.lock'), `${process.pid}\n`);
    await expect(prepareEmbeddedDatabase({ dataDir: busy, migratedTemplateDir: dir }, sets)).rejects.toThrow(
      `Preparing the embedded database in ${busy} failed: The database directory ${busy} is already open in this process`,
    );
  });

  it('falls back to creating the database when the template is damaged, leaving nothing of it behind', async () => {
    const dir = join(root, 'damaged');
    mkdirSync(dir);
    const archive = builtArchive;
    const whole = gunzipSync(archive);
    const cases: [string, Buffer][] = [
      ['cut-short', archive.subarray(0, 10_000)],
      ['escaping', gzipSync(Buffer.concat([tarOf('../escaped', 'x').subarray(0, 1024), whole]))],
    ];
    for (const [name, archive] of cases) {
      writeFileSync(join(dir, migratedTemplateName(false, sets)), archive);
      const dataDir = join(root, `fallback-${name}`);
      const { logger, messages } = capturingLogger();
      expect(await prepareEmbeddedDatabase({ dataDir, migratedTemplateDir: dir, logger }, sets)).toEqual(
        names,
      );
      expect(messages).toContain(
        'the migrated database template is unusable; creating the database from the base template',
      );
      expect(existsSync(join(root, 'escaped'))).toBe(false);
      expect(await notesIn(dataDir)).toEqual([]);
    }
  });

  it('tars a tree and unpacks it again: files, modes, empty directories, long paths', async () => {
    const tree = join(root, 'tree');
    const deep = `${'d'.repeat(60)}/${'e'.repeat(60)}`;
    mkdirSync(join(tree, deep), { recursive: true });
    mkdirSync(join(tree, 'empty'));
    writeFileSync(join(tree, 'PG_VERSION'), '17\n', { mode: 0o600 });
    // Larger than a gunzip chunk, and not a whole number of blocks.
    const big = Buffer.from(Array.from({ length: 200_001 }, (_, index) => (index * 31) % 251));
    writeFileSync(join(tree, deep, 'f'.repeat(40)), big, { mode: 0o640 });
    writeFileSync(join(tree, 'skipped'), 'x');
    const tar = tarDirectory(tree, ['skipped']);
    expect(tarDirectory(tree, ['skipped']).equals(tar)).toBe(true);
    expect(tarEntries(tar)).toEqual([
      ['PG_VERSION', 'file'],
      ['d'.repeat(60), 'directory'],
      [deep, 'directory'],
      [`${deep}/${'f'.repeat(40)}`, 'file'],
      ['empty', 'directory'],
    ]);
    const archive = join(root, 'tree.tar.gz');
    writeFileSync(archive, gzipSync(tar));
    const copy = join(root, 'tree-copy');
    mkdirSync(copy);
    await extractDataDirArchive(archive, copy);
    expect(readFileSync(join(copy, deep, 'f'.repeat(40))).equals(big)).toBe(true);
    expect(statSync(join(copy, deep, 'f'.repeat(40))).mode & 0o777).toBe(0o640);
    expect(readFileSync(join(copy, 'PG_VERSION'), 'utf8')).toBe('17\n');
    expect(readdirSync(join(copy, 'empty'))).toEqual([]);
    expect(existsSync(join(copy, 'skipped'))).toBe(false);

    const refused = async (content: Buffer) => {
      writeFileSync(archive, content);
      const into = mkdtempSync(join(root, 'refused-'));
      return extractDataDirArchive(archive, into).then(
        () => 'unpacked',
        (error: Error) => error.message,
      );
    };
    expect(await refused(gzipSync(tarOf('x', 'y')))).toBe('the archive holds no PG_VERSION');
    expect(await refused(gzipSync(tar.subarray(0, tar.length - 2 * TAR_BLOCK - 1024)))).toBe(
      'the archive is cut short',
    );
    expect(await refused(gzipSync(tarOf('../escaped', 'y')))).toBe('unsafe path in the archive: ../escaped');
    // The whole tar, but the gzip trailer (its checksum) cut off.
    const gzipped = gzipSync(tar);
    expect(await refused(gzipped.subarray(0, gzipped.length - 6))).toBe('unexpected end of file');
  });
});

/** [path, type] of each entry of a tar archive. */
function tarEntries(tar: Buffer): [string, string][] {
  const entries: [string, string][] = [];
  for (let offset = 0; offset + TAR_BLOCK <= tar.length; ) {
    const header = parseTarHeader(tar.subarray(offset, offset + TAR_BLOCK), offset);
    if (header === null) break;
    entries.push([header.path, header.type]);
    offset += TAR_BLOCK + (header.type === 'file' ? tarDataBlocks(header.size) : 0);
  }
  return entries;
}

/** A one-file ustar archive. */
function tarOf(name: string, content: string): Buffer {
  const header = Buffer.alloc(512);
  header.write(name, 0);
  header.write('0000644\0', 100);
  header.write('0000000\0', 108);
  header.write('0000000\0', 116);
  header.write(`${Buffer.byteLength(content).toString(8).padStart(11, '0')}\0`, 124);
  header.write('00000000000\0', 136);
  header.write('        ', 148);
  header.write('0', 156);
  header.write('ustar\u000000', 257);
  const checksum = header.reduce((sum, byte) => sum + byte, 0);
  header.write(`${checksum.toString(8).padStart(6, '0')}\0 `, 148);
  const body = Buffer.alloc(Math.ceil(Buffer.byteLength(content) / 512) * 512);
  body.write(content);
  return Buffer.concat([header, body, Buffer.alloc(1024)]);
}

describe('PostgreSQL specifics', () => {
  it('reports a refused connection as unavailable', async () => {
    const db = await openDatabase({ url: REFUSED_URL });
    try {
      const error = await db.ping().catch((caught: unknown) => caught);
      expect(error).toBeInstanceOf(Error);
      expect(isDatabaseUnavailable(error)).toBe(true);
      expect(isUniqueViolation(error)).toBe(false);
    } finally {
      await db.close();
    }
  });

  it.skipIf(!serverUrl)(
    'survives the server vanishing during a query: the query rejects as unavailable',
    async () => {
      if (!serverUrl) return;
      const proxy = CuttableProxy.for(serverUrl, 5432);
      await proxy.start();
      const db = await openDatabase({ url: proxy.via(serverUrl) });
      try {
        await db.ping();
        const running = sql`select pg_sleep(2)`.execute(db.kysely).catch((caught: unknown) => caught);
        await new Promise((resolve) => setTimeout(resolve, 200));
        await proxy.cut();
        // Without a listener on the checked-out client, pg's 'error' event would end this test process.
        const error = await running;
        expect(isDatabaseUnavailable(error)).toBe(true);
        await proxy.restore();
        await db.ping();
      } finally {
        await db.close();
        await proxy.cut();
      }
    },
  );

  it('rejects a URL that is not postgres://', async () => {
    await expect(openDatabase({ url: 'mysql://localhost/x' })).rejects.toThrow(
      'DATABASE_URL: must be a postgres:// or postgresql:// URL, not mysql://',
    );
  });

  it.skipIf(!serverUrl)('says clearly that the server has no vector extension', async () => {
    if (!serverUrl) return;
    const available = await withAdmin(serverUrl, async (admin) => {
      const { rows } = await sql`select 1 from pg_available_extensions where name = 'vector'`.execute(admin);
      return rows.length > 0;
    });
    if (available) {
      const db = await openDatabase({ url: serverUrl, vector: true });
      await db.close();
      return;
    }
    await expect(openDatabase({ url: serverUrl, vector: true })).rejects.toThrow(
      /^the vector extension is not installed on this PostgreSQL server$/,
    );
  });
});

describe('chunkRowsByParameters', () => {
  it('splits rows in order so that no group carries more values than the limit', () => {
    const rows = Array.from({ length: 7 }, (_, index) => ({ a: index, b: null, c: 'x' }));
    expect(chunkRowsByParameters(rows, 9).map((group) => group.map((row) => row.a))).toEqual([
      [0, 1, 2],
      [3, 4, 5],
      [6],
    ]);
    expect(chunkRowsByParameters(rows, 10).map((group) => group.length)).toEqual([3, 3, 1]);
    // A row wider than the limit still goes alone; nothing is dropped.
    expect(chunkRowsByParameters(rows, 2).map((group) => group.length)).toEqual([1, 1, 1, 1, 1, 1, 1]);
    expect(chunkRowsByParameters([])).toEqual([]);
    const row27 = Object.fromEntries(Array.from({ length: 27 }, (_, index) => [`c${index}`, index]));
    const wide = Array.from({ length: 2_000 }, () => row27);
    const groups = chunkRowsByParameters(wide);
    expect(groups.map((group) => group.length)).toEqual([1_213, 787]);
    expect(Math.max(...groups.map((group) => group.length * 27))).toBeLessThanOrEqual(
      MAX_STATEMENT_PARAMETERS,
    );
  });
});

describe('isDatabaseUnavailable / redactDatabaseUrl', () => {
  it('recognises connection failures through causes and aggregate errors, and nothing else', () => {
    const refused = Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:1'), { code: 'ECONNREFUSED' });
    expect(isDatabaseUnavailable(new AggregateError([refused], ''))).toBe(true);
    expect(isDatabaseUnavailable(new Error('wrapped', { cause: refused }))).toBe(true);
    expect(isDatabaseUnavailable(Object.assign(new Error('terminating connection'), { code: '57P01' }))).toBe(
      true,
    );
    expect(isDatabaseUnavailable(Object.assign(new Error('connection failure'), { code: '08006' }))).toBe(
      true,
    );
    expect(isDatabaseUnavailable(new Error('Connection terminated unexpectedly'))).toBe(true);
    expect(isDatabaseUnavailable(Object.assign(new Error('syntax error'), { code: '42601' }))).toBe(false);
    // A protocol violation (class 08, but the connection is fine: e.g. too many bound parameters) is a fault.
    expect(isDatabaseUnavailable(Object.assign(new Error('bind message has …'), { code: '08P01' }))).toBe(
      false,
    );
    expect(isDatabaseUnavailable('ECONNREFUSED')).toBe(false);
    expect(isUniqueViolation(Object.assign(new Error('dup'), { code: '23505' }))).toBe(true);
  });

  it('hides passwords and nothing else', () => {
    expect(redactDatabaseUrl('postgres://app:s3cret@db:5432/owsc')).toBe('postgres://app:***@db:5432/owsc');
    expect(redactDatabaseUrl('postgresql://app@db/owsc?sslmode=require')).toBe(
      'postgresql://app@db/owsc?sslmode=require',
    );
    expect(redactDatabaseUrl('postgres://db/owsc?password=s3cret')).toBe('postgres://db/owsc?password=***');
    expect(redactDatabaseUrl('not a url //app:s3cret@db')).toBe('not a url //app:***@db');
  });
});

describe('close', () => {
  it('releases everything: a process that opened and closed databases exits by itself', async () => {
    const dataDir = mkdtempSync(join(tmpdir(), 'kernel-db-exit-'));
    const script = `
      const { openDatabase } = await import(${JSON.stringify(new URL('../src/db.ts', import.meta.url).href)});
      const embedded = await openDatabase({ dataDir: ${JSON.stringify(dataDir)} });
      await embedded.ping();
      await embedded.close();
      const url = ${JSON.stringify(serverUrl ?? REFUSED_URL)};
      const server = await openDatabase({ url });
      await server.ping().catch(() => {});
      await server.close();
      process.stdout.write('closed');
    `;
    try {
      const child = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], {
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      let output = '';
      child.stdout.on('data', (chunk: Buffer) => {
        output += chunk.toString();
      });
      child.stderr.on('data', (chunk: Buffer) => {
        output += chunk.toString();
      });
      const timer = setTimeout(() => child.kill('SIGKILL'), 15_000);
      const code = await new Promise<number | null>((resolve) => child.on('exit', resolve));
      clearTimeout(timer);
      expect(output).toBe('closed');
      expect(code).toBe(0);
    } finally {
      rmSync(dataDir, { recursive: true, force: true });
    }
  });
});
