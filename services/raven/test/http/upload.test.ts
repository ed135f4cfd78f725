// Upload routes against the real bin: §8 cases 2, 3, 5, 6, 7, 8, 9, 25, 26, 27, 30 and the §3.9 pre-checks.
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PDF, PNG, type RunningRaven, rawRequest, startRaven, upload, WORDLIST } from './harness.js';

const words = new Set(
  readFileSync(WORDLIST, 'utf8')
    .split('\n')
    .map((line) => line.trim().split(/\s+/).pop() ?? '')
    .filter((word) => word !== ''),
);

describe('uploads with default limits', () => {
  let raven: RunningRaven;
  beforeAll(async () => {
    raven = await startRaven({ UPLOAD_RATE_LIMIT: '1000/hour' });
  });
  afterAll(async () => {
    await raven.stop();
  });

  it('stores doc.pdf with every 201 field, and serves it three times then 410 (cases 2, 3)', async () => {
    const response = await upload(raven.url, [
      { name: 'file', filename: 'doc.pdf', contentType: 'application/pdf', data: PDF },
      { name: 'expiry', value: '10' },
      { name: 'uses', value: '3' },
    ]);
    expect(response.status).toBe(201);
    const body = (await response.json()) as Record<string, unknown>;
    for (const field of [
      'key',
      'preview_url',
      'download_url',
      'expiry',
      'uses',
      'filename',
      'size',
      'created_at',
      'sha256',
      'share_url',
      'status_url',
      'delete_url',
      'expires_in_seconds',
      'password_protected',
    ]) {
      expect(body).toHaveProperty(field);
    }
    const key = body.key as string;
    expect(Date.parse(body.expiry as string) - Date.parse(body.created_at as string)).toBe(600_000);
    expect(body.uses).toBe(3);
    expect(body.filename).toBe('doc.pdf');
    expect(body.size).toBe(PDF.length);
    expect(body.sha256).toBe(createHash('sha256').update(PDF).digest('hex'));
    const parts = key.split('-');
    expect(parts).toHaveLength(3);
    for (const part of parts) expect(words.has(part)).toBe(true);
    expect(response.headers.get('location')).toBe(body.status_url);
    expect(body.download_url).toBe(`${raven.url}/download/${key}`);
    expect(body.share_url).toBe(`${raven.url}/d#${key}`);

    for (let round = 0; round < 3; round++) {
      const download = await fetch(`${raven.url}/download/${key}`);
      expect(download.status).toBe(200);
      const bytes = Buffer.from(await download.arrayBuffer());
      expect(bytes.equals(PDF)).toBe(true);
      expect(download.headers.get('content-type')).toBe('application/pdf');
      expect(download.headers.get('content-disposition')).toBe('attachment; filename="doc.pdf"');
      expect(download.headers.get('x-sha256')).toBe(createHash('sha256').update(bytes).digest('hex'));
      expect(download.headers.get('repr-digest')).toBe(
        `sha-256=:${createHash('sha256').update(bytes).digest('base64')}:`,
      );
    }
    const fourth = await fetch(`${raven.url}/download/${key}`);
    expect(fourth.status).toBe(410);
    expect(await fourth.json()).toEqual({ detail: 'Download limit has been reached' });
  });

  it('applies the defaults: one use, ten minutes (case 5)', async () => {
    const response = await upload(raven.url, [{ name: 'file', filename: 'a.txt', data: 'hello' }]);
    expect(response.status).toBe(201);
    const body = (await response.json()) as Record<string, unknown>;
    expect(body.uses).toBe(1);
    expect(Date.parse(body.expiry as string) - Date.parse(body.created_at as string)).toBe(600_000);
    expect(body.expires_in_seconds).toBe(600);
  });

  it('validates fields with the FastAPI entries (case 6)', async () => {
    const file = { name: 'file', filename: 'a.txt', data: 'hello' };
    const tooLong = await upload(raven.url, [file, { name: 'expiry', value: '61' }]);
    expect(tooLong.status).toBe(422);
    expect(await tooLong.json()).toEqual({
      detail: [
        {
          type: 'less_than_equal',
          loc: ['body', 'expiry'],
          msg: 'Input should be less than or equal to 60',
          input: '61',
          ctx: { le: 60 },
        },
      ],
    });
    const zeroUses = await upload(raven.url, [file, { name: 'uses', value: '0' }]);
    expect(zeroUses.status).toBe(422);
    const zeroBody = (await zeroUses.json()) as { detail: { type: string; ctx: unknown }[] };
    expect(zeroBody.detail[0]?.type).toBe('greater_than_equal');
    expect(zeroBody.detail[0]?.ctx).toEqual({ ge: 1 });
    const fraction = await upload(raven.url, [file, { name: 'expiry', value: '1.5' }]);
    expect(fraction.status).toBe(422);
    expect(((await fraction.json()) as { detail: { type: string }[] }).detail[0]?.type).toBe('int_parsing');
    const plus = await upload(raven.url, [file, { name: 'expiry', value: '+5' }]);
    expect(plus.status).toBe(201);
    const plusBody = (await plus.json()) as Record<string, string>;
    expect(Date.parse(plusBody.expiry as string) - Date.parse(plusBody.created_at as string)).toBe(300_000);
  });

  it('lists every problem, fields before the file first checked, in field order', async () => {
    const response = await upload(raven.url, [
      { name: 'uses', value: '9' },
      { name: 'expiry', value: 'abc' },
      { name: 'file', filename: 'a.txt', data: 'hello' },
    ]);
    expect(response.status).toBe(422);
    const body = (await response.json()) as { detail: { type: string; loc: string[] }[] };
    expect(body.detail.map((entry) => [entry.loc[1], entry.type])).toEqual([
      ['expiry', 'int_parsing'],
      ['uses', 'less_than_equal'],
    ]);
    expect(raven.storedFiles()).toEqual(raven.storedFiles().filter((name) => !name.endsWith('.part')));
  });

  it('answers 422 missing file exactly (case 7), also for a non-multipart body', async () => {
    const expected = {
      detail: [{ type: 'missing', loc: ['body', 'file'], msg: 'Field required', input: null }],
    };
    const noFile = await upload(raven.url, [{ name: 'expiry', value: '5' }]);
    expect(noFile.status).toBe(422);
    expect(await noFile.json()).toEqual(expected);
    const json = await fetch(`${raven.url}/upload`, {
      method: 'POST',
      body: '{}',
      headers: { 'content-type': 'application/json' },
    });
    expect(json.status).toBe(422);
    expect(await json.json()).toEqual(expected);
  });

  it('refuses an empty file and stores nothing (case 27)', async () => {
    const before = raven.storedFiles().length;
    const response = await upload(raven.url, [{ name: 'file', filename: 'empty.txt', data: '' }]);
    expect(response.status).toBe(400);
    expect(await response.json()).toEqual({ detail: 'File is empty' });
    expect(raven.storedFiles().length).toBe(before);
  });

  it('encodes a non-ASCII filename with an ASCII fallback and filename* (case 25)', async () => {
    const response = await upload(raven.url, [{ name: 'file', filename: 'résumé.pdf', data: PDF }]);
    expect(response.status).toBe(201);
    const body = (await response.json()) as { key: string; filename: string };
    expect(body.filename).toBe('résumé.pdf');
    const download = await fetch(`${raven.url}/download/${body.key}`);
    expect(download.status).toBe(200);
    const disposition = download.headers.get('content-disposition') ?? '';
    expect(disposition).toContain('filename="r_sum_.pdf"');
    expect(disposition).toContain("filename*=UTF-8''r%C3%A9sum%C3%A9.pdf");
  });

  it('sanitizes filenames in the response, preview and header (case 26)', async () => {
    const response = await upload(raven.url, [
      { name: 'file', filename: 'C:\\Users\\me\\pa;ss|wd.txt', data: 'secret' },
      { name: 'uses', value: '2' },
    ]);
    expect(response.status).toBe(201);
    const body = (await response.json()) as { key: string; filename: string };
    expect(body.filename).toBe('passwd.txt');
    const preview = await fetch(`${raven.url}/preview/${body.key}`);
    expect(preview.status).toBe(200);
    expect(((await preview.json()) as { filename: string }).filename).toBe('passwd.txt');
    const download = await fetch(`${raven.url}/download/${body.key}`);
    expect(download.headers.get('content-disposition')).toBe('attachment; filename="passwd.txt"');
    const dots = await upload(raven.url, [{ name: 'file', filename: '...', data: 'x' }]);
    expect(((await dots.json()) as { filename: string }).filename).toBe('file');
  });

  it('accepts PUT /upload/{filename} with query options (case 30)', async () => {
    const response = await fetch(`${raven.url}/upload/notes.txt?expiry=5&uses=2`, {
      method: 'PUT',
      body: 'some notes\n',
    });
    expect(response.status).toBe(201);
    const body = (await response.json()) as Record<string, unknown>;
    expect(body.filename).toBe('notes.txt');
    expect(body.uses).toBe(2);
    expect(Date.parse(body.expiry as string) - Date.parse(body.created_at as string)).toBe(300_000);
    const bad = await fetch(`${raven.url}/upload/notes.txt?uses=7`, { method: 'PUT', body: 'x' });
    expect(bad.status).toBe(422);
    expect(((await bad.json()) as { detail: { loc: string[] }[] }).detail[0]?.loc).toEqual(['query', 'uses']);
  });

  it('rejects a declared Content-Length above the cap before reading the body', async () => {
    const declared = 10_485_760 + 1024 * 1024 + 1;
    const response = await rawRequest(`${raven.url}/upload/`, {
      method: 'POST',
      headers: { 'content-type': 'multipart/form-data; boundary=x', 'content-length': String(declared) },
    });
    expect(response.status).toBe(400);
    expect(JSON.parse(response.body)).toEqual({
      detail: 'File too large: 11,534,337 bytes (Max Size: 10,485,760 bytes)',
    });
  });

  it('answers 400 for a truncated multipart body', async () => {
    const response = await fetch(`${raven.url}/upload/`, {
      method: 'POST',
      body: '--x\r\nContent-Disposition: form-data; name="file"; filename="a.txt"\r\n\r\nhello',
      headers: { 'content-type': 'multipart/form-data; boundary=x' },
    });
    expect(response.status).toBe(400);
    expect(await response.json()).toEqual({ detail: 'There was an error parsing the body' });
  });
});

describe('uploads with MAX_FILE_SIZE=100 and ALLOWED_MIME_TYPES=image/*', () => {
  let raven: RunningRaven;
  beforeAll(async () => {
    raven = await startRaven({ MAX_FILE_SIZE: '100', ALLOWED_MIME_TYPES: 'image/*' });
  });
  afterAll(async () => {
    await raven.stop();
  });

  it('caps the size at MAX_FILE_SIZE (case 8)', async () => {
    const png100 = Buffer.concat([PNG, Buffer.alloc(100 - PNG.length, 1)]);
    const ok = await upload(raven.url, [{ name: 'file', filename: 'a.png', data: png100 }]);
    expect(ok.status).toBe(201);
    const big = await upload(raven.url, [
      { name: 'file', filename: 'b.png', data: Buffer.concat([png100, Buffer.from([1])]) },
    ]);
    expect(big.status).toBe(400);
    expect(await big.json()).toEqual({ detail: 'File too large: 101 bytes (Max Size: 100 bytes)' });
  });

  it('checks the sniffed type, not the declared one (case 9)', async () => {
    const png = await upload(raven.url, [
      { name: 'file', filename: 'a.png', contentType: 'image/png', data: PNG },
    ]);
    expect(png.status).toBe(201);
    const text = await upload(raven.url, [
      { name: 'file', filename: 'fake.png', contentType: 'image/png', data: 'just some text' },
    ]);
    expect(text.status).toBe(400);
    expect(await text.json()).toEqual({ detail: 'File type not supported: text/plain' });
    expect(raven.storedFiles().filter((name) => name.endsWith('.part'))).toEqual([]);
  });
});
