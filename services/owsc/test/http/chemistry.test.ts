// POST /api/chemistry/fit (spec §3.5, §3.6) and how job failures become HTTP answers (spec §7.2).
import { readdirSync } from 'node:fs';
import { JobFailedError, JobTimeoutError, PoolClosedError } from '@quintet/kernel/workers';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { StoreUnavailableError } from '../../src/domain/store.js';
import { storageFailure } from '../../src/http/api-params.js';
import type { OwscContext } from '../../src/http/context.js';
import { HttpError, renderOwscError } from '../../src/http/conventions.js';
import { createOwscMetrics } from '../../src/http/metrics.js';
import { jobErrorToHttp, runJob } from '../../src/jobs/run-job.js';
import { startTestDashboard, type TestDashboard } from './harness.js';

type Json = Record<string, unknown>;

const decayCsv = (() => {
  const lines = ['time,species,concentration'];
  for (let t = 0; t < 10; t++) lines.push(`${t},SO4,${50 * Math.exp(-0.3 * t)}`);
  return `${lines.join('\n')}\n`;
})();

const sorptionCsv = (() => {
  const lines = ['time,Ni_mgL'];
  for (let t = 0; t < 10; t++) lines.push(`${t},${20 + 80 * Math.exp(-0.5 * t)}`);
  return `${lines.join('\n')}\n`;
})();

function fitText(base: string, csv: string, query: string, contentType = 'text/csv'): Promise<Response> {
  return fetch(`${base}/api/chemistry/fit${query}`, {
    method: 'POST',
    headers: { 'content-type': contentType },
    body: csv,
  });
}

function fitForm(base: string, csv: string, fields: Record<string, string>): Promise<Response> {
  const form = new FormData();
  form.append('file', new Blob([csv], { type: 'text/csv' }), 'lab.csv');
  for (const [name, value] of Object.entries(fields)) form.append(name, value);
  return fetch(`${base}/api/chemistry/fit`, { method: 'POST', body: form });
}

async function firstIssue(response: Response): Promise<Json | undefined> {
  return ((await response.json()) as { detail: Json[] }).detail[0];
}

describe('POST /api/chemistry/fit', () => {
  let owsc: TestDashboard;
  beforeAll(async () => {
    owsc = await startTestDashboard({ OW_SC_RL_PER_SEC: '0', OW_SC_MAX_CSV_BYTES: '100000' });
  });
  afterAll(async () => {
    await owsc.close();
  });

  it('fits first-order decay from a text/csv body (case 9)', async () => {
    const response = await fitText(owsc.url, decayCsv, '?species=SO4');
    expect(response.status).toBe(200);
    const fit = (await response.json()) as Json;
    expect(fit).toMatchObject({
      species: 'SO4',
      model: 'first_order_decay',
      Kd: null,
      n: 10,
      time_unit: 'input',
    });
    expect(fit.k as number).toBeCloseTo(0.3, 9);
    expect(fit.r2 as number).toBeCloseTo(1, 9);
    expect(fit.half_life as number).toBeCloseTo(Math.LN2 / 0.3, 9);
    expect(fit.c0).toBe(50);
  });

  it('fits sorption with Kd from a multipart body (case 10)', async () => {
    const response = await fitForm(owsc.url, sorptionCsv, {
      species: 'Ni',
      model: 'sorption',
      volume_l: '2',
      solids_kg: '0.5',
    });
    expect(response.status).toBe(200);
    const fit = (await response.json()) as Json;
    expect(fit).toMatchObject({
      species: 'Ni',
      model: 'pseudo_first_order_sorption',
      volume_l: 2,
      solids_kg: 0.5,
    });
    expect(fit.k as number).toBeCloseTo(0.5, 6);
    expect(fit.Ce as number).toBeCloseTo(20, 6);
    expect(fit.Kd as number).toBeCloseTo((80 / 20) * (2 / 0.5), 5);
    const without = (await (
      await fitForm(owsc.url, sorptionCsv, { species: 'Ni', model: 'sorption' })
    ).json()) as Json;
    expect(without.Kd).toBeNull();
  });

  it('validates the fields with 422 naming each one', async () => {
    const missing = await fitText(owsc.url, decayCsv, '');
    expect(missing.status).toBe(422);
    expect(await firstIssue(missing)).toMatchObject({
      loc: ['query', 'species'],
      type: 'value_error.missing',
    });

    const badModel = await fitForm(owsc.url, decayCsv, { species: 'SO4', model: 'linear' });
    expect(badModel.status).toBe(422);
    expect((await firstIssue(badModel))?.loc).toEqual(['body', 'model']);

    const half = await fitForm(owsc.url, sorptionCsv, { species: 'Ni', model: 'sorption', volume_l: '2' });
    expect(half.status).toBe(422);
    expect(await firstIssue(half)).toMatchObject({
      loc: ['body', 'solids_kg'],
      msg: 'volume_l and solids_kg must be given together',
    });

    const withDecay = await fitText(owsc.url, decayCsv, '?species=SO4&volume_l=1&solids_kg=1');
    expect(withDecay.status).toBe(422);
    expect((await firstIssue(withDecay))?.loc).toEqual(['query', 'model']);

    const negative = await fitForm(owsc.url, sorptionCsv, {
      species: 'Ni',
      model: 'sorption',
      volume_l: '-1',
      solids_kg: '1',
    });
    expect(negative.status).toBe(422);
    expect((await firstIssue(negative))?.loc).toEqual(['body', 'volume_l']);
  });

  it('reports fit and CSV problems as 422 (case 11)', async () => {
    const one = await fitText(owsc.url, 'time,species,concentration\n0,SO4,5\n', '?species=SO4');
    expect(one.status).toBe(422);
    expect(await firstIssue(one)).toMatchObject({ loc: ['body', 'file'], type: 'value_error.fit' });

    const absent = await fitText(owsc.url, decayCsv, '?species=As');
    expect(absent.status).toBe(422);
    expect(String((await firstIssue(absent))?.msg)).toContain('As');

    const bad = await fitText(owsc.url, 'time,species,concentration\n0,SO4,x\n', '?species=SO4');
    expect(bad.status).toBe(422);
    expect(await firstIssue(bad)).toMatchObject({ loc: ['body', 'file'], line: 2, column: 'concentration' });
  });

  it('applies the media type and size rules of the batches route', async () => {
    const json = await fitText(owsc.url, '{}', '?species=SO4', 'application/json');
    expect(json.status).toBe(415);
    const big = await fitText(
      owsc.url,
      `time,species,concentration\n${'0,SO4,1\n'.repeat(20_000)}`,
      '?species=SO4',
    );
    expect(big.status).toBe(413);
    expect(await big.json()).toEqual({
      detail: 'CSV too large: more than 100000 bytes (OW_SC_MAX_CSV_BYTES)',
    });
    expect(readdirSync(owsc.config.tmpDir).filter((name) => name.startsWith('owsc-upload-'))).toEqual([]);
  });

  it('answers 504 when a job runs out of time, and the next job runs again (§7.2)', async () => {
    const config = owsc.context.config as { jobTimeoutSeconds: number };
    const configured = config.jobTimeoutSeconds;
    config.jobTimeoutSeconds = 0.001;
    try {
      const response = await fitText(owsc.url, decayCsv, '?species=SO4');
      expect(response.status).toBe(504);
      expect(await response.json()).toEqual({ detail: 'processing timed out' });
    } finally {
      config.jobTimeoutSeconds = configured;
    }
    expect((await fitText(owsc.url, decayCsv, '?species=SO4')).status).toBe(200);
  });

  it('runs fits in the job pool (owsc_job_duration_seconds{job="fit"})', async () => {
    const metrics = await (await fetch(`${owsc.url}/metrics`)).text();
    expect(metrics).toMatch(/owsc_job_duration_seconds_count\{job="fit"\} [1-9]/);
  });
});

describe('job and store failures as HTTP answers (spec §7.2)', () => {
  const config = { jobTimeoutSeconds: 1 } as OwscContext['config'];
  const metrics = createOwscMetrics(['SO4']);
  const payload = {
    kind: 'fit' as const,
    source: { data: new Uint8Array() },
    request: { species: 'SO4', model: 'decay' as const },
    nondetect: 'zero' as const,
    limits: { maxBytes: 10, maxRows: 10 },
  };
  const failingPool = (error: Error) =>
    ({ run: () => Promise.reject(error) }) as unknown as OwscContext['jobs'];

  async function answerOf(error: Error): Promise<{ status: number; body: unknown }> {
    try {
      await runJob({ config, metrics, jobs: failingPool(error) }, payload);
    } catch (thrown) {
      if (!(thrown instanceof HttpError)) throw thrown;
      const request = { id: 'req-1' } as Parameters<typeof renderOwscError>[1];
      return { status: thrown.status, body: renderOwscError(thrown, request) };
    }
    throw new Error('runJob did not fail');
  }

  it('a job timeout is 504 {"detail":"processing timed out"}', async () => {
    expect(await answerOf(new JobTimeoutError(123, true, 1000))).toEqual({
      status: 504,
      body: { detail: 'processing timed out' },
    });
    expect(await metrics.jobDuration.get()).toMatchObject({
      values: expect.arrayContaining([expect.objectContaining({ labels: { job: 'fit' }, value: 1 })]),
    });
  });

  it('a full disk in the job is 507 {"detail":"insufficient storage"}', async () => {
    const error = new JobFailedError(5, {
      name: 'Error',
      message: 'ENOSPC: no space left on device',
      code: 'ENOSPC',
    });
    expect(await answerOf(error)).toEqual({ status: 507, body: { detail: 'insufficient storage' } });
  });

  it('a closing pool is 503; a CSV limit in the job is 413 with its message', async () => {
    expect((await answerOf(new PoolClosedError())).status).toBe(503);
    const limit = new JobFailedError(5, {
      name: 'CsvLimitError',
      message: 'CSV has more than 10 data rows (OW_SC_MAX_CSV_ROWS)',
      kind: 'rows',
    });
    expect(await answerOf(limit)).toEqual({
      status: 413,
      body: { detail: 'CSV has more than 10 data rows (OW_SC_MAX_CSV_ROWS)' },
    });
  });

  it('an unreachable store is 503 {"detail":"store unavailable"}; a disk_full SQLSTATE is 507', () => {
    const unavailable = storageFailure(new StoreUnavailableError(new Error('ECONNREFUSED')));
    expect(unavailable).toBeInstanceOf(HttpError);
    expect((unavailable as HttpError).status).toBe(503);
    expect(
      renderOwscError(unavailable as HttpError, { id: 'x' } as Parameters<typeof renderOwscError>[1]),
    ).toEqual({
      detail: 'store unavailable',
    });
    const full = storageFailure(Object.assign(new Error('could not extend file'), { code: '53100' }));
    expect((full as HttpError).status).toBe(507);
    const other = new Error('other');
    expect(jobErrorToHttp(other)).toBe(other);
  });
});
