// Request context on log lines (spec §3.13): every line written while handling a request carries its
// `request_id`, `method` and route-template `path`; keys never appear in any line.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PDF, type RunningRaven, startRaven, upload } from './harness.js';

type Line = Record<string, unknown>;

let raven: RunningRaven;

beforeAll(async () => {
  raven = await startRaven();
});
afterAll(async () => {
  await raven?.stop();
});

function lines(): Line[] {
  return raven.stdout.flatMap((text) => {
    try {
      return [JSON.parse(text) as Line];
    } catch {
      return [];
    }
  });
}

async function waitForLine(match: (line: Line) => boolean): Promise<Line> {
  const deadline = Date.now() + 5000;
  for (;;) {
    const found = lines().find(match);
    if (found !== undefined) return found;
    if (Date.now() > deadline) throw new Error(`no matching log line in:\n${raven.stdout.join('\n')}`);
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
}

describe('request context on log lines', () => {
  it('upload and failed lookup lines carry the request id, method and route template; no key is logged', async () => {
    const uploaded = await upload(raven.url, [
      { name: 'file', filename: 'report.pdf', contentType: 'application/pdf', data: PDF },
      { name: 'uses', value: '2' },
    ]);
    expect(uploaded.status).toBe(201);
    const uploadId = uploaded.headers.get('x-request-id');
    expect(uploadId).toBeTruthy();
    const { key } = (await uploaded.json()) as { key: string };

    const lookup = await fetch(`${raven.url}/download/${key}-nope`, {
      headers: { 'x-request-id': 'lookup-req-1' },
    });
    expect(lookup.status).toBe(404);
    expect(lookup.headers.get('x-request-id')).toBe('lookup-req-1');

    // a real download, a preview and a status of the key: their lines must not carry it either
    expect((await fetch(`${raven.url}/preview/${key}`)).status).toBe(200);
    const downloaded = await fetch(`${raven.url}/download/${key}`, {
      headers: { 'x-request-id': 'dl-req-1' },
    });
    expect(Buffer.from(await downloaded.arrayBuffer()).equals(PDF)).toBe(true);
    expect((await fetch(`${raven.url}/status/${key}`)).status).toBe(200);

    const fileUploaded = await waitForLine((line) => line.event === 'file_uploaded');
    expect(fileUploaded).toMatchObject({
      request_id: uploadId,
      method: 'POST',
      path: '/upload',
      level: 'info',
    });
    expect(fileUploaded.upload_id).toMatch(/^[0-9a-f]{12}$/);

    const started = await waitForLine((line) => line.event === 'file_upload_started');
    expect(started.request_id).toBe(uploadId);

    const failed = await waitForLine((line) => line.event === 'lookup_failed');
    expect(failed).toMatchObject({ request_id: 'lookup-req-1', method: 'GET', path: '/download/{key}' });

    const success = await waitForLine((line) => line.event === 'file_download_success');
    expect(success).toMatchObject({ request_id: 'dl-req-1', method: 'GET', path: '/download/{key}' });

    const finished = await waitForLine(
      (line) => line.event === 'request_finished' && line.request_id === 'lookup-req-1',
    );
    expect(finished).toMatchObject({ method: 'GET', path: '/download/{key}', status_code: 404 });
    await waitForLine((line) => line.event === 'request_finished' && String(line.path).startsWith('/status'));

    // every request-scoped line has all three fields; nothing anywhere carries the key
    for (const line of lines()) {
      if (line.request_id !== undefined) {
        expect(line, JSON.stringify(line)).toHaveProperty('method');
        expect(line, JSON.stringify(line)).toHaveProperty('path');
      }
    }
    const words = key.split('-');
    for (const text of raven.stdout) {
      expect(text).not.toContain(key);
      expect(text).not.toContain(words.join('_'));
    }
  });
});
