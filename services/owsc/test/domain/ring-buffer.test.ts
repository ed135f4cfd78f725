// The stream ring buffer (spec §3.7 `OW_SC_STREAM_BUFFER`, §3.5 `/api/streams`).
import { describe, expect, it } from 'vitest';
import { RingBuffer } from '../../src/domain/ring-buffer.js';

describe('RingBuffer', () => {
  it('keeps the newest items up to its capacity, oldest first', () => {
    const buffer = new RingBuffer<number>(3);
    expect(buffer.last(10)).toEqual([]);
    buffer.push(1);
    buffer.push(2);
    expect(buffer.size).toBe(2);
    expect(buffer.last(10)).toEqual([1, 2]);
    for (const value of [3, 4, 5]) buffer.push(value);
    expect(buffer.size).toBe(3);
    expect(buffer.capacity).toBe(3);
    expect(buffer.last(10)).toEqual([3, 4, 5]);
    expect(buffer.last(2)).toEqual([4, 5]);
    expect(buffer.last(0)).toEqual([]);
  });

  it('filters and counts', () => {
    const buffer = new RingBuffer<{ species: string; n: number }>(5);
    for (let n = 0; n < 8; n++) buffer.push({ species: n % 2 === 0 ? 'SO4' : 'As', n });
    const so4 = (item: { species: string }) => item.species === 'SO4';
    expect(buffer.count()).toBe(5);
    expect(buffer.count(so4)).toBe(2);
    expect(buffer.last(5, so4).map((item) => item.n)).toEqual([4, 6]);
    expect(buffer.last(1, so4).map((item) => item.n)).toEqual([6]);
  });

  it('refuses a capacity below 1', () => {
    expect(() => new RingBuffer(0)).toThrow(RangeError);
    expect(() => new RingBuffer(1.5)).toThrow(RangeError);
  });
});
