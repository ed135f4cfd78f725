// VersionedCache: what a search finds while a document's index is being provided from what this process wrote.
import { describe, expect, it } from 'vitest';
import { VersionedCache } from '../../src/domain/retrieval-index.js';

function deferred<T>() {
  let resolve: (value: T) => void = () => {};
  let reject: (error: Error) => void = () => {};
  const promise = new Promise<T>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { promise, resolve, reject };
}

describe('VersionedCache.provide', () => {
  it('makes a get of the entry wait for the provided value instead of loading it', async () => {
    const cache = new VersionedCache<string>(10, () => 1);
    const value = deferred<string>();
    const provided = cache.provide(7, 'v1', value.promise);
    let loads = 0;
    const got = cache.get(7, 'v1', async () => {
      loads++;
      return 'loaded';
    });
    value.resolve('written');
    expect(await got).toBe('written');
    expect(await provided).toBe('written');
    expect(loads).toBe(0);
    expect(cache.cached(7, 'v1')).toBe('written');
  });

  it('lets a get load the entry itself when providing it failed, and the provider sees the failure', async () => {
    const cache = new VersionedCache<string>(10, () => 1);
    const value = deferred<string>();
    const provided = cache.provide(7, 'v1', value.promise);
    const got = cache.get(7, 'v1', async () => 'loaded');
    value.reject(new Error('bad row'));
    await expect(provided).rejects.toThrow('bad row');
    expect(await got).toBe('loaded');
    expect(cache.cached(7, 'v1')).toBe('loaded');
  });

  it('is keyed by version: another version of the document is loaded, and replaces it', async () => {
    const cache = new VersionedCache<string>(10, () => 1);
    await cache.provide(7, 'v1', Promise.resolve('first'));
    expect(await cache.get(7, 'v2', async () => 'second')).toBe('second');
    expect(cache.cached(7, 'v1')).toBeUndefined();
  });
});
