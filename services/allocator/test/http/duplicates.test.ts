// GET /api/v1/duplicates (spec §3.15) over real uploads: exact copies, a re-compressed copy (near, pHash
// distance 0), groups newest first, the type filter and the limits.
import { namedLogger } from '@quintet/kernel/log';
import { createHttpApp } from '@quintet/kernel/service';
import type { FastifyInstance, InjectOptions, LightMyRequestResponse } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { registerConventions, requestIdFor } from '../../src/http/conventions.js';
import { renderAllocatorError } from '../../src/http/errors.js';
import { registerObjectRoutes } from '../../src/http/object-routes.js';
import { solidPng, startTestAllocator, type TestAllocator } from '../harness.js';

type Inject = (options: InjectOptions) => Promise<LightMyRequestResponse>;

/** The allocator's own app when it serves the objects routes, else those routes mounted on the same runtime. */
async function objectsApi(t: TestAllocator): Promise<{ inject: Inject; close: () => Promise<void> }> {
  if (t.app.hasRoute({ method: 'GET', url: '/api/v1/duplicates' }))
    return { inject: (options) => t.app.inject(options), close: async () => {} };
  const app: FastifyInstance = createHttpApp({
    logger: namedLogger(t.runtime.logger, 'allocator.http'),
    renderError: renderAllocatorError,
    requestIdHeader: 'x-request-id',
    newRequestId: requestIdFor as () => string,
  });
  registerConventions(app, t.runtime.config);
  registerObjectRoutes(app, t.runtime);
  await app.ready();
  return { inject: (options) => app.inject(options), close: () => app.close() };
}

interface DuplicatesBody {
  groups: {
    asset_id: string;
    duplicates: { id: string; duplicate_type: string; phash_distance: number | null }[];
  }[];
  count: number;
}

let t: TestAllocator;
let api: Awaited<ReturnType<typeof objectsApi>>;
let first: string;
let firstExact: string;
let firstNear: string;
let second: string;
let secondExact: string;

const list = (query = '') => api.inject({ method: 'GET', url: `/api/v1/duplicates${query}` });

async function ingestPng(name: string, data: Buffer): Promise<string> {
  const response = await t.ingest([{ filename: name, data, contentType: 'image/png' }]);
  expect(response.statusCode).toBe(202);
  const body = response.json() as { job_id: string; system_ids: string[] };
  expect((await t.waitForJob(body.job_id)).status).toBe('done');
  return body.system_ids[0] as string;
}

beforeAll(async () => {
  t = await startTestAllocator();
  api = await objectsApi(t);
  const photo = await solidPng([40, 140, 90], {
    seed: 7,
    noise: 40,
    width: 96,
    height: 64,
    compressionLevel: 9,
  });
  const sameBytes = Buffer.from(photo);
  const recompressed = await solidPng([40, 140, 90], {
    seed: 7,
    noise: 40,
    width: 96,
    height: 64,
    compressionLevel: 1,
  });
  expect(recompressed.equals(photo)).toBe(false);
  first = await ingestPng('photo.png', photo);
  firstExact = await ingestPng('photo-copy.png', sameBytes);
  firstNear = await ingestPng('photo-recompressed.png', recompressed);
  // An unrelated original with no duplicates is never a group.
  await ingestPng('lone.png', await solidPng([230, 20, 40], { seed: 8, noise: 10 }));
  const other = await solidPng([20, 30, 200], { seed: 9, noise: 25 });
  second = await ingestPng('other.png', other);
  secondExact = await ingestPng('other-copy.png', Buffer.from(other));
});

afterAll(async () => {
  await api?.close();
  await t?.close();
});

describe('GET /api/v1/duplicates', () => {
  it('lists one group per original with duplicates, newest groups first', async () => {
    const response = await list();
    expect(response.statusCode).toBe(200);
    expect(response.headers['content-type']).toBe('application/json; charset=utf-8');
    expect(response.json()).toEqual({
      groups: [
        { asset_id: second, duplicates: [{ id: secondExact, duplicate_type: 'exact', phash_distance: 0 }] },
        {
          asset_id: first,
          duplicates: [
            { id: firstExact, duplicate_type: 'exact', phash_distance: 0 },
            { id: firstNear, duplicate_type: 'near', phash_distance: 0 },
          ],
        },
      ],
      count: 2,
    } satisfies DuplicatesBody);
  });

  it('filters the listed duplicates by type', async () => {
    const exact = (await list('?type=exact')).json() as DuplicatesBody;
    expect(exact).toEqual({
      groups: [
        { asset_id: second, duplicates: [{ id: secondExact, duplicate_type: 'exact', phash_distance: 0 }] },
        { asset_id: first, duplicates: [{ id: firstExact, duplicate_type: 'exact', phash_distance: 0 }] },
      ],
      count: 2,
    });
    const near = (await list('?type=near')).json() as DuplicatesBody;
    expect(near).toEqual({
      groups: [
        { asset_id: first, duplicates: [{ id: firstNear, duplicate_type: 'near', phash_distance: 0 }] },
      ],
      count: 1,
    });
  });

  it('limits the number of groups', async () => {
    const body = (await list('?limit=1')).json() as DuplicatesBody;
    expect(body.count).toBe(1);
    expect(body.groups.map((group) => group.asset_id)).toEqual([second]);
  });

  it('answers 400 for an unknown type and 422 for a limit outside 1..500', async () => {
    const badType = await list('?type=similar');
    expect(badType.statusCode).toBe(400);
    expect(badType.json()).toMatchObject({
      error: 'bad_request',
      request_id: badType.headers['x-request-id'],
    });
    for (const limit of ['0', '501', 'x']) {
      const response = await list(`?limit=${limit}`);
      expect(response.statusCode, limit).toBe(422);
      expect(response.json()).toMatchObject({ error: 'validation_error' });
      expect((response.json() as { details: { loc: string[] }[] }).details[0]?.loc).toEqual([
        'query',
        'limit',
      ]);
    }
    expect((await list('?limit=500')).statusCode).toBe(200);
  });

  it('follows deletion: the earliest exact duplicate becomes the original of the others', async () => {
    const deleted = await api.inject({ method: 'DELETE', url: `/api/v1/objects/${first}` });
    expect(deleted.statusCode).toBe(200);
    const body = (await list()).json() as DuplicatesBody;
    expect(body.groups).toEqual([
      { asset_id: second, duplicates: [{ id: secondExact, duplicate_type: 'exact', phash_distance: 0 }] },
      { asset_id: firstExact, duplicates: [{ id: firstNear, duplicate_type: 'near', phash_distance: 0 }] },
    ]);
  });
});
