// POST/GET /api/batches and report export (spec §3.5, §5 items 1 and 5, §7.1, §7.2; acceptance 7, 8, 28, 29, 36).
import { createHash } from 'node:crypto';
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { request as httpRequest } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PDFDocument } from 'pdf-lib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestDashboard, type TestDashboard, until } from './harness.js';

const EXAMPLE_CSV =
  'time,species,concentration\n0,SO4,200\n1,SO4,205\n2,SO4,210\n3,SO4,215\n4,SO4,220\n5,SO4,280\n6,SO4,300\n7,SO4,250\n8,SO4,240\n';

type Json = Record<string, unknown>;

function postCsv(base: string, csv: string, query = '', contentType = 'text/csv'): Promise<Response> {
  return fetch(`${base}/api/batches${query}`, {
    method: 'POST',
    headers: { 'content-type': contentType },
    body: csv,
  });
}

function postForm(
  base: string,
  parts: Record<string, string | Blob>,
  filename = 'readings.csv',
): Promise<Response> {
  const form = new FormData();
  for (const [name, value] of Object.entries(parts)) {
    if (typeof value === 'string') form.append(name, value);
    else form.append(name, value, name === 'file' ? filename : `${name}.json`);
  }
  return fetch(`${base}/api/batches`, { method: 'POST', body: form });
}

async function batchTotal(base: string): Promise<number> {
  const response = await fetch(`${base}/api/batches?limit=1`);
  return ((await response.json()) as { total: number }).total;
}

function uploadFiles(dashboard: TestDashboard): string[] {
  try {
    return readdirSync(dashboard.config.tmpDir).filter((name) => name.startsWith('owsc-upload-'));
  } catch {
    return [];
  }
}

describe('batches with the default permit', () => {
  let owsc: TestDashboard;
  let base: string;
  beforeAll(async () => {
    owsc = await startTestDashboard({ OW_SC_RL_PER_SEC: '0' });
    base = owsc.url;
  });
  afterAll(async () => {
    await owsc.close();
  });

  it('evaluates a text/csv upload, stores it and serves it again (cases 1, 28)', async () => {
    const response = await postCsv(base, EXAMPLE_CSV, '?site=Plant%20A&filename=example.csv');
    expect(response.status).toBe(201);
    expect(response.headers.get('content-type')).toBe('application/json; charset=utf-8');
    const body = (await response.json()) as Json;
    expect(response.headers.get('location')).toBe(`/api/batches/${body.id}`);
    expect(body).toMatchObject({
      count: 1,
      compliant: false,
      mode: 'latest',
      format: 'tidy',
      rows: 9,
      readings: 9,
      species: ['SO4'],
      time_kind: 'numeric',
      statistics: null,
      site: 'Plant A',
      filename: 'example.csv',
      sha256: createHash('sha256').update(EXAMPLE_CSV).digest('hex'),
    });
    const [alert] = body.alerts as Json[];
    expect(alert).toMatchObject({ type: 'trend', level: 'info', time: 8, window: 3, species: 'SO4' });
    expect(alert?.value).toBeCloseTo((300 + 250 + 240) / 3, 12);
    expect(Date.parse(String(body.created_at))).not.toBeNaN();

    const again = await fetch(`${base}${response.headers.get('location')}`);
    expect(again.status).toBe(200);
    expect(await again.json()).toEqual(body);

    const alerts = (await (await fetch(`${base}/api/alerts?batch_id=${body.id}`)).json()) as Json;
    expect(alerts.total).toBe(1);
    expect((alerts.items as Json[])[0]).toMatchObject({ source: 'batch', batch_id: body.id, type: 'trend' });
  });

  it('takes a multipart upload with a permit field, mode and site (case 28)', async () => {
    const permit = JSON.stringify({ limits: { SO4: 200 }, rolling_window: 2, actions: { SO4: 'Dose lime' } });
    const response = await postForm(base, {
      file: new Blob([EXAMPLE_CSV], { type: 'text/csv' }),
      permit,
      mode: 'all',
      site: 'Plant <B>',
    });
    expect(response.status).toBe(201);
    const body = (await response.json()) as Json;
    expect(body).toMatchObject({ mode: 'all', site: 'Plant <B>', filename: 'readings.csv' });
    expect((body.permit as Json).limits_mgL).toEqual({ SO4: 200 });
    const alerts = body.alerts as Json[];
    // every reading above 200 (t = 1…8) and every window of 2 above it (t = 1…8), in time order
    expect(alerts.filter((alert) => alert.type === 'exceedance').map((alert) => alert.time)).toEqual([
      1, 2, 3, 4, 5, 6, 7, 8,
    ]);
    expect(alerts.every((alert) => alert.action === 'Dose lime')).toBe(true);
  });

  it('takes the permit as a file part', async () => {
    const response = await postForm(base, {
      file: new Blob([EXAMPLE_CSV]),
      permit: new Blob([JSON.stringify({ limits_mgL: { SO4: 299 } })], { type: 'application/json' }),
    });
    expect(response.status).toBe(201);
    const body = (await response.json()) as Json;
    expect((body.permit as Json).limits_mgL).toEqual({ SO4: 299 });
    expect(body.count).toBe(0);
    expect(body.compliant).toBe(true);
  });

  it('lists batches newest first with paging and validates limit/offset (case 28)', async () => {
    const ids: string[] = [];
    for (const site of ['one', 'two', 'three']) {
      const response = await postCsv(base, EXAMPLE_CSV, `?site=${site}`);
      ids.push(String(((await response.json()) as Json).id));
    }
    const total = await batchTotal(base);
    const first = (await (await fetch(`${base}/api/batches?limit=2`)).json()) as {
      items: Json[];
      total: number;
    };
    expect(first.total).toBe(total);
    expect(first.items.map((item) => item.id)).toEqual([ids[2], ids[1]]);
    expect(Object.keys(first.items[0] ?? {}).sort()).toEqual(
      ['compliant', 'count', 'created_at', 'filename', 'id', 'mode', 'rows', 'site', 'species'].sort(),
    );
    const second = (await (await fetch(`${base}/api/batches?limit=1&offset=2`)).json()) as { items: Json[] };
    expect(second.items.map((item) => item.id)).toEqual([ids[0]]);
    expect((await fetch(`${base}/api/batches?limit=500`)).status).toBe(200);
    for (const query of ['limit=0', 'limit=501', 'limit=abc', 'offset=-1', 'limit=1.5']) {
      const response = await fetch(`${base}/api/batches?${query}`);
      expect(response.status, query).toBe(422);
      const body = (await response.json()) as { detail: Json[] };
      expect(body.detail[0]?.loc).toEqual(['query', query.split('=')[0]]);
    }
  });

  it('answers 404 for unknown and malformed ids', async () => {
    for (const id of ['00000000-0000-4000-8000-000000000000', 'not-a-uuid', '..%2F..%2Fetc']) {
      for (const path of [`/api/batches/${id}`, `/api/batches/${id}/report`]) {
        const response = await fetch(`${base}${path}`);
        expect(response.status, path).toBe(404);
        expect(await response.json()).toEqual({ detail: 'batch not found' });
      }
    }
  });

  it('refuses other media types with 415 and stores nothing', async () => {
    const before = await batchTotal(base);
    const response = await postCsv(base, '{"a":1}', '', 'application/json');
    expect(response.status).toBe(415);
    expect(await response.json()).toEqual({
      detail: 'Unsupported Media Type: send text/csv or multipart/form-data',
    });
    expect(await batchTotal(base)).toBe(before);
  });

  it('reports CSV errors as 422 with line and column, stores nothing, leaves no temp file (§7.1)', async () => {
    const before = await batchTotal(base);
    const bad = 'time,species,concentration\n0,SO4,abc\n1,SO4,-3\n2,SO4\n';
    const response = await postCsv(base, bad);
    expect(response.status).toBe(422);
    const body = (await response.json()) as { detail: Json[] };
    expect(body.detail.length).toBe(3);
    expect(body.detail[0]).toMatchObject({
      loc: ['body', 'file'],
      line: 2,
      column: 'concentration',
      type: 'value_error.csv',
    });
    expect(body.detail[1]).toMatchObject({ loc: ['body', 'file'], line: 3, column: 'concentration' });
    expect(body.detail[2]).toMatchObject({ loc: ['body', 'file'], line: 4 });
    for (const entry of body.detail) expect(typeof entry.msg).toBe('string');

    const headerOnly = await postCsv(base, 'time,species,concentration\n');
    expect(headerOnly.status).toBe(422);
    expect(((await headerOnly.json()) as { detail: Json[] }).detail[0]?.msg).toBe('no data rows');

    const missing = await postForm(base, { file: new Blob(['time,value\n1,2\n']) });
    expect(missing.status).toBe(422);
    expect(((await missing.json()) as { detail: Json[] }).detail[0]).toMatchObject({
      loc: ['body', 'file'],
      msg: 'missing required columns: concentration, species',
    });

    const noFile = await postForm(base, { site: 'x' });
    expect(noFile.status).toBe(422);
    expect(((await noFile.json()) as { detail: Json[] }).detail[0]).toMatchObject({
      loc: ['body', 'file'],
      type: 'value_error.missing',
    });
    expect(await batchTotal(base)).toBe(before);
    expect(uploadFiles(owsc)).toEqual([]);
  });

  it('reports permit errors at ["body","permit"] and invalid fields as 422', async () => {
    const cases: [string, string][] = [
      ['{not json', 'permit is not valid JSON'],
      ['{"limits_mgL": {"SO4": 0}}', 'limits_mgL'],
      ['{"limits_mgL": {"SO4": 1}, "rolling_window": 0}', 'rolling_window'],
      ['{"limits_mgL": {"SO4": 1}, "timezone": "Mars/Base"}', 'timezone'],
      ['[1]', 'permit'],
    ];
    for (const [permit, named] of cases) {
      const response = await postForm(base, { file: new Blob([EXAMPLE_CSV]), permit });
      expect(response.status, permit).toBe(422);
      const body = (await response.json()) as { detail: Json[] };
      expect(body.detail[0]?.loc).toEqual(['body', 'permit']);
      expect(String(body.detail[0]?.msg)).toContain(named);
    }
    const badMode = await postCsv(base, EXAMPLE_CSV, '?mode=every');
    expect(badMode.status).toBe(422);
    expect(((await badMode.json()) as { detail: Json[] }).detail[0]?.loc).toEqual(['query', 'mode']);
    const badFormMode = await postForm(base, { file: new Blob([EXAMPLE_CSV]), mode: 'x' });
    expect(((await badFormMode.json()) as { detail: Json[] }).detail[0]?.loc).toEqual(['body', 'mode']);
  });

  it('evaluates a large upload (temp file, job pool) and removes the temp file (§2.3)', async () => {
    const lines = ['time,species,concentration'];
    for (let i = 0; i < 60_000; i++) lines.push(`${i},${['SO4', 'As', 'Ni'][i % 3]},${(i % 7) * 0.001}`);
    const csv = `${lines.join('\n')}\n`;
    expect(csv.length).toBeGreaterThan(512 * 1024);
    const response = await postCsv(base, csv);
    expect(response.status).toBe(201);
    const body = (await response.json()) as Json;
    expect(body).toMatchObject({ rows: 60_000, readings: 60_000, species: ['As', 'Ni', 'SO4'] });
    expect(body.sha256).toBe(createHash('sha256').update(csv).digest('hex'));
    // As: last 0.006 > 0.01? no; the permit limits As at 0.01 so nothing; Ni limit 0.1: nothing either
    expect(body.compliant).toBe(true);
    const multipart = await postForm(base, { file: new Blob([csv]) });
    expect(multipart.status).toBe(201);
    expect(((await multipart.json()) as Json).rows).toBe(60_000);
    expect(uploadFiles(owsc)).toEqual([]);
    const metrics = await (await fetch(`${base}/metrics`)).text();
    expect(metrics).toMatch(/owsc_job_duration_seconds_count\{job="evaluate"\} [1-9]/);
  });

  it('exports the report as HTML, PDF and CSV (case 29)', async () => {
    const created = (await (await postCsv(base, EXAMPLE_CSV, '?site=%3Cscript%3EPlant')).json()) as Json;
    const id = String(created.id);

    const html = await fetch(`${base}/api/batches/${id}/report`);
    expect(html.status).toBe(200);
    expect(html.headers.get('content-type')).toBe('text/html; charset=utf-8');
    const page = await html.text();
    expect(page).toContain('Compliance Certificate');
    expect(page).toContain('NON-COMPLIANT');
    expect(page).toContain('&lt;script&gt;Plant');
    expect(page).not.toMatch(/<script/i);

    const pdf = await fetch(`${base}/api/batches/${id}/report?format=pdf&site=Other&period=2024-Q1`);
    expect(pdf.status).toBe(200);
    expect(pdf.headers.get('content-type')).toBe('application/pdf');
    expect(pdf.headers.get('content-disposition')).toBe(`attachment; filename="compliance-${id}.pdf"`);
    const bytes = new Uint8Array(await pdf.arrayBuffer());
    expect(Buffer.from(bytes.subarray(0, 5)).toString('latin1')).toBe('%PDF-');
    expect((await PDFDocument.load(bytes)).getTitle()).toBe('Compliance Certificate - Other');

    const csv = await fetch(`${base}/api/batches/${id}/report?format=csv`);
    expect(csv.status).toBe(200);
    expect(csv.headers.get('content-type')).toBe('text/csv; charset=utf-8');
    expect(csv.headers.get('content-disposition')).toBe(`attachment; filename="alerts-${id}.csv"`);
    const rows = (await csv.text()).split('\r\n');
    expect(rows[0]).toBe('time,species,type,level,value,limit,action,message');
    expect(rows[1]).toMatch(/^8,SO4,trend,info,263\.3333333333\d*,250,/);
    expect(rows.length).toBe(3); // header, one alert, final line end

    const bad = await fetch(`${base}/api/batches/${id}/report?format=docx`);
    expect(bad.status).toBe(422);
    expect(((await bad.json()) as { detail: Json[] }).detail[0]?.loc).toEqual(['query', 'format']);

    const unnamed = (await (await postCsv(base, EXAMPLE_CSV)).json()) as Json;
    const unknownSite = await (await fetch(`${base}/api/batches/${unnamed.id}/report`)).text();
    expect(unknownSite).toContain('Unknown site');
  });

  it('answers 507 when the disk is full while storing, and stores nothing (§7.2)', async () => {
    const store = owsc.context.store;
    const saveBatch = store.saveBatch;
    store.saveBatch = () =>
      Promise.reject(
        Object.assign(new Error('could not extend file: No space left on device'), { code: '53100' }),
      );
    try {
      const before = await batchTotal(base);
      const lines = ['time,species,concentration'];
      for (let i = 0; i < 30_000; i++) lines.push(`${i},SO4,${i % 300}`);
      const response = await postCsv(base, `${lines.join('\n')}\n`);
      expect(response.status).toBe(507);
      expect(await response.json()).toEqual({ detail: 'insufficient storage' });
      expect(await batchTotal(base)).toBe(before);
      expect(uploadFiles(owsc)).toEqual([]);
    } finally {
      store.saveBatch = saveBatch;
    }
  });

  it('counts stored and rejected batches in the metrics', async () => {
    const metrics = await (await fetch(`${base}/metrics`)).text();
    expect(metrics).toMatch(/owsc_batches_total\{outcome="stored"\} [1-9]/);
    expect(metrics).toMatch(/owsc_batches_total\{outcome="rejected"\} [1-9]/);
    expect(metrics).toMatch(/owsc_batches_total\{outcome="failed"\} 1/);
    expect(metrics).toMatch(/owsc_csv_rows_total [1-9]/);
    expect(metrics).toMatch(
      /owsc_alerts_total\{source="batch",species="SO4",type="trend",level="info"\} [1-9]/,
    );
  });
});

/** Sends headers and part of a body, then (optionally) the rest; resolves with the status or null on reset. */
function rawUpload(
  url: string,
  options: { contentLength: number; body: Buffer; abortAfterSend?: boolean },
): Promise<{ status: number; body: string } | null> {
  return new Promise((resolve) => {
    const target = new URL(`${url}/api/batches`);
    const request = httpRequest(
      {
        host: target.hostname,
        port: target.port,
        path: target.pathname,
        method: 'POST',
        headers: { 'content-type': 'text/csv', 'content-length': String(options.contentLength) },
      },
      (response) => {
        let text = '';
        response.on('data', (chunk: Buffer) => {
          text += chunk.toString('utf8');
        });
        response.on('end', () => resolve({ status: response.statusCode ?? 0, body: text }));
        response.on('error', () => resolve(null));
      },
    );
    request.on('error', () => resolve(null));
    request.write(options.body, () => {
      if (options.abortAfterSend) setTimeout(() => request.destroy(), 100);
    });
  });
}

describe('upload limits, faults and a restart', () => {
  const dataDir = mkdtempSync(join(tmpdir(), 'owsc-batches-'));
  const env = {
    OW_SC_RL_PER_SEC: '0',
    OW_SC_MAX_CSV_BYTES: '1000000',
    OW_SC_MAX_CSV_ROWS: '100',
    OW_SC_DATA_DIR: dataDir,
  };
  const maxBytes = 1_000_000;
  let owsc: TestDashboard;
  // The embedded store: a restart must find its data in the data directory (case 36).
  beforeAll(async () => {
    owsc = await startTestDashboard(env, { store: 'embedded' });
  });
  afterAll(async () => {
    await owsc.close();
    rmSync(dataDir, { recursive: true, force: true });
  });

  /** A CSV of exactly `bytes` bytes (padding in an ignored extra column) with `rows` data rows. */
  function csvOf(bytes: number, rows: number): string {
    const header = 'time,species,concentration,note\n';
    const body: string[] = [];
    for (let i = 0; i < rows; i++) body.push(`${i},SO4,1,`);
    const text = `${header}${body.join('\n')}\n`;
    const padding = bytes - text.length;
    if (padding < 0) throw new Error('too small');
    body[0] = `0,SO4,1,${'x'.repeat(padding)}`;
    return `${header}${body.join('\n')}\n`;
  }

  it('accepts exactly OW_SC_MAX_CSV_BYTES and refuses one byte more (case 7)', async () => {
    const exact = csvOf(maxBytes, 10);
    expect(Buffer.byteLength(exact)).toBe(maxBytes);
    expect((await postCsv(owsc.url, exact)).status).toBe(201);
    const over = csvOf(maxBytes + 1, 10);
    const tooLarge = { detail: `CSV too large: more than ${maxBytes} bytes (OW_SC_MAX_CSV_BYTES)` };
    const response = await postCsv(owsc.url, over);
    expect(response.status).toBe(413);
    expect(await response.json()).toEqual(tooLarge);
    const multipart = await postForm(owsc.url, { file: new Blob([over]) });
    expect(multipart.status).toBe(413);
    expect(await multipart.json()).toEqual(tooLarge);
    expect((await postForm(owsc.url, { file: new Blob([exact]) })).status).toBe(201);
    expect(uploadFiles(owsc)).toEqual([]);
  });

  it('accepts exactly OW_SC_MAX_CSV_ROWS rows and refuses one more (case 8)', async () => {
    expect((await postCsv(owsc.url, csvOf(2000, 100))).status).toBe(201);
    const response = await postCsv(owsc.url, csvOf(2000, 101));
    expect(response.status).toBe(413);
    expect(await response.json()).toEqual({ detail: 'CSV has more than 100 data rows (OW_SC_MAX_CSV_ROWS)' });
  });

  it('refuses a larger Content-Length before reading the body (§5 item 1)', async () => {
    // Only 10 bytes of the announced 1 GB are ever sent: the answer cannot have waited for the body.
    const answer = await rawUpload(owsc.url, {
      contentLength: 1_000_000_000,
      body: Buffer.from('time,speci'),
    });
    expect(answer?.status).toBe(413);
    expect(JSON.parse(answer?.body ?? '{}')).toEqual({
      detail: `CSV too large: more than ${maxBytes} bytes (OW_SC_MAX_CSV_BYTES)`,
    });
  });

  it('stores nothing and leaves no temp file when the client disconnects mid-upload (§7.2)', async () => {
    const before = await batchTotal(owsc.url);
    const partial = Buffer.from('time,species,concentration\n0,SO4,1\n1,SO4,2\n');
    const answer = await rawUpload(owsc.url, { contentLength: 3000, body: partial, abortAfterSend: true });
    expect(answer).toBeNull();
    await new Promise((resolve) => setTimeout(resolve, 200));
    expect(await batchTotal(owsc.url)).toBe(before);
    expect(uploadFiles(owsc)).toEqual([]);
    const metrics = await (await fetch(`${owsc.url}/metrics`)).text();
    expect(metrics).toMatch(/owsc_batches_total\{outcome="failed"\} [1-9]/);
  });

  it('removes the temp file of an upload abandoned after it spilled to disk (§7.2)', async () => {
    const before = await batchTotal(owsc.url);
    const rows = Buffer.from('0,SO4,1\n'.repeat(90)); // within the row limit
    const padding = Buffer.from(`9,SO4,1,${'x'.repeat(800_000)}\n`); // past the in-memory size
    const sent = rawUpload(owsc.url, {
      contentLength: 950_000,
      body: Buffer.concat([Buffer.from('time,species,concentration,note\n'), rows, padding]),
      abortAfterSend: true,
    });
    expect(await until(() => uploadFiles(owsc).length === 1, 3000)).toBe(true);
    expect(await sent).toBeNull();
    expect(await until(() => uploadFiles(owsc).length === 0, 3000)).toBe(true);
    expect(await batchTotal(owsc.url)).toBe(before);
  });

  it('serves the batches and alerts stored before a restart with the same data directory (case 36)', async () => {
    const created = (await (await postCsv(owsc.url, EXAMPLE_CSV, '?site=kept')).json()) as Json;
    await owsc.close();
    owsc = await startTestDashboard(env, { store: 'embedded' });
    const again = await fetch(`${owsc.url}/api/batches/${created.id}`);
    expect(again.status).toBe(200);
    expect(await again.json()).toEqual(created);
    const alerts = (await (await fetch(`${owsc.url}/api/alerts?batch_id=${created.id}`)).json()) as Json;
    expect(alerts.total).toBe(1);
  });
});
