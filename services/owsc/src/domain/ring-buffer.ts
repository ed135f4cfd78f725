// The stream buffer of spec §3.7: the last `capacity` accepted messages, oldest dropped first. In memory only
// (lost on restart, by design).

/** A fixed-capacity ring buffer; pushing into a full buffer overwrites the oldest item. */
export class RingBuffer<T> {
  readonly capacity: number;
  readonly #items: (T | undefined)[];
  /** index of the next write */
  #head = 0;
  #size = 0;

  constructor(capacity: number) {
    if (!Number.isInteger(capacity) || capacity < 1) throw new RangeError('capacity must be an integer ≥ 1');
    this.capacity = capacity;
    this.#items = new Array<T | undefined>(capacity);
  }

  /** Items held now (≤ capacity). */
  get size(): number {
    return this.#size;
  }

  push(item: T): void {
    this.#items[this.#head] = item;
    this.#head = (this.#head + 1) % this.capacity;
    if (this.#size < this.capacity) this.#size += 1;
  }

  /** Number of held items that pass `filter` (all items without one). */
  count(filter?: (item: T) => boolean): number {
    if (filter === undefined) return this.#size;
    let matching = 0;
    this.#forEachNewestFirst((item) => {
      if (filter(item)) matching += 1;
      return true;
    });
    return matching;
  }

  /** The newest `limit` items that pass `filter`, oldest first. */
  last(limit: number, filter?: (item: T) => boolean): T[] {
    const picked: T[] = [];
    if (limit <= 0) return picked;
    this.#forEachNewestFirst((item) => {
      if (filter === undefined || filter(item)) picked.push(item);
      return picked.length < limit;
    });
    return picked.reverse();
  }

  /** Visits items from the newest back; stops when `visit` returns false. */
  #forEachNewestFirst(visit: (item: T) => boolean): void {
    for (let offset = 1; offset <= this.#size; offset++) {
      const index = (this.#head - offset + this.capacity) % this.capacity;
      if (!visit(this.#items[index] as T)) return;
    }
  }
}
