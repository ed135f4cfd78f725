// Caching reads of tables whose only writer is this process. An embedded database (PGlite) is opened by one
// process at a time (its lock file) over one connection, and a transaction holds that connection to its end: a
// statement never runs between another's write and its commit. So a process can count the writes to each table
// made through its Kysely handle and keep what it read until one of the tables it read from is written again.
// Never for PostgreSQL, which other processes write too.
import type {
  KyselyPlugin,
  OperationNode,
  PluginTransformQueryArgs,
  PluginTransformResultArgs,
  QueryResult,
  RootOperationNode,
  UnknownRow,
} from 'kysely';

const WRITE_NODES = new Set(['InsertQueryNode', 'UpdateQueryNode', 'DeleteQueryNode', 'MergeQueryNode']);
/** The table a raw statement writes: `insert into t`, `update t`, `delete from t`, `truncate t`, DDL. */
const RAW_WRITE =
  /\b(?:insert\s+into|update|delete\s+from|truncate(?:\s+table)?|merge\s+into|(?:alter|drop)\s+table(?:\s+if\s+exists)?)\s+(?:only\s+)?(?:"?[a-z_][a-z0-9_]*"?\.)?"?([a-z_][a-z0-9_]*)"?/gi;

/**
 * A Kysely plugin counting, per table, the writes made through the handle it is installed on: the count goes up
 * when a write is compiled and again when its result comes back, so a read that overlapped a write never
 * matches a count taken after it. Raw SQL counts by what its text names (a false alarm only drops a cache
 * early); a raw statement of unknown effect (`do`, a function call that writes) counts for every table.
 */
export class WriteWatch implements KyselyPlugin {
  private readonly counts = new Map<string, number>();
  /** writes of unknown tables: part of every generation */
  private everything = 0;
  private readonly inFlight = new WeakMap<object, readonly string[] | null>();

  /** A number that changes whenever one of `tables` is (or is being) written. */
  generation(tables: readonly string[]): number {
    let sum = this.everything;
    for (const table of tables) sum += this.counts.get(table) ?? 0;
    return sum;
  }

  transformQuery(args: PluginTransformQueryArgs): RootOperationNode {
    const written = writtenTables(args.node);
    if (written !== undefined) {
      this.bump(written);
      this.inFlight.set(args.queryId, written);
    }
    return args.node;
  }

  async transformResult(args: PluginTransformResultArgs): Promise<QueryResult<UnknownRow>> {
    const written = this.inFlight.get(args.queryId);
    if (written !== undefined) {
      this.inFlight.delete(args.queryId);
      this.bump(written);
    }
    return args.result;
  }

  private bump(tables: readonly string[] | null): void {
    if (tables === null) {
      this.everything++;
      return;
    }
    for (const table of tables) this.counts.set(table, (this.counts.get(table) ?? 0) + 1);
  }
}

/** A read starts with select / with … select / values / show / explain; any other raw statement may write. */
const RAW_READ = /^\s*(?:\(?\s*select|with|values|show|explain|begin|commit|rollback|savepoint|release)\b/i;

/**
 * The tables a statement writes; null when it may write any; undefined when it writes none. Builder queries
 * are read from their nodes (every table under an insert, update, delete or merge, wherever it is nested); raw
 * SQL from its text, and from the builder queries embedded in it.
 */
function writtenTables(node: RootOperationNode): readonly string[] | null | undefined {
  const tables = new Set<string>();
  let writes = false;
  const visit = (value: unknown, inWrite: boolean): void => {
    if (Array.isArray(value)) {
      for (const item of value) visit(item, inWrite);
      return;
    }
    if (value === null || typeof value !== 'object') return;
    const current = value as OperationNode & Record<string, unknown>;
    if (current.kind === 'RawNode') {
      const text = (current as unknown as { sqlFragments: readonly string[] }).sqlFragments.join(' ');
      for (const match of text.matchAll(RAW_WRITE)) {
        writes = true;
        tables.add((match[1] as string).toLowerCase());
      }
    }
    const write = inWrite || WRITE_NODES.has(current.kind);
    if (write && !inWrite) writes = true;
    if (write && current.kind === 'TableNode') {
      const { table } = current as unknown as { table: { identifier: { name: string } } };
      tables.add(table.identifier.name.toLowerCase());
    }
    for (const key in current) if (key !== 'kind') visit(current[key], write);
  };
  visit(node, false);
  if (!writes && node.kind === 'RawNode' && !RAW_READ.test(node.sqlFragments.join(' '))) return null;
  if (!writes) return undefined;
  return tables.size > 0 ? [...tables] : null;
}

/** Longer keys (a request naming thousands of ids, say) are read without being kept: bounded memory. */
const MAX_KEY_LENGTH = 512;

/**
 * Values read from `tables`, kept while none of them is written (WriteWatch) — at most `maxEntries`, least
 * recently used dropped first. Without a watch (a database other processes write) every get reads afresh.
 */
export class WatchedCache<V> {
  private readonly entries = new Map<string, { generation: number; value: V }>();

  constructor(
    private readonly watch: WriteWatch | null,
    private readonly tables: readonly string[],
    private readonly maxEntries: number,
  ) {}

  async get(key: string, read: () => Promise<V>): Promise<V> {
    if (this.watch === null || key.length > MAX_KEY_LENGTH) return read();
    const generation = this.watch.generation(this.tables);
    const hit = this.entries.get(key);
    if (hit !== undefined) {
      this.entries.delete(key);
      if (hit.generation === generation) {
        // Re-inserted: most recently used.
        this.entries.set(key, hit);
        return hit.value;
      }
    }
    const value = await read();
    // Kept only when nothing was written while it was read.
    if (this.watch.generation(this.tables) === generation) {
      this.entries.set(key, { generation, value });
      for (const oldest of this.entries.keys()) {
        if (this.entries.size <= this.maxEntries) break;
        this.entries.delete(oldest);
      }
    }
    return value;
  }
}
