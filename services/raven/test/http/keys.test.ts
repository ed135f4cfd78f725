// Key routes against the real bin: §8 cases 11, 13, 14, 29, 31, 32 and HEAD → 405.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PDF, type RunningRaven, rawRequest, startRaven, upload } from './harness.js';

async function uploadOne(raven: RunningRaven, uses = 2): Promise<string> {
  const response = await upload(raven.url, [
    { name: 'file', filename: 'doc.pdf', data: PDF },
    { name: 'uses', value: String(uses) },
  ]);
  expect(response.status).toBe(201);
  return ((await response.json()) as { key: string }).key;
}

describe('key routes', () => {
  let raven: RunningRaven;
  beforeAll(async () => {
    raven = await startRaven({ UPLOAD_RATE_LIMIT: '1000/hour' });
  });
  afterAll(async () => {
    await raven.stop();
  });

  it('answers 404 for the preview of an unknown well-formed key (case 11)', async () => {
    const response = await fetch(`${raven.url}/preview/abacus-abdomen-abide`);
    expect(response.status).toBe(404);
    expect(await response.json()).toEqual({ detail: 'Upload not found or link expired' });
  });

  it('refuses link-preview bots without consuming anything (case 29)', async () => {
    const key = await uploadOne(raven, 2);
    for (const agent of [
      'facebookexternalhit/1.1',
      'Slackbot-LinkExpanding 1.0 (+https://api.slack.com/robots)',
    ]) {
      for (const route of ['download', 'preview']) {
        const response = await fetch(`${raven.url}/${route}/${key}`, { headers: { 'user-agent': agent } });
        expect(response.status).toBe(403);
        expect(await response.json()).toEqual({
          detail: 'One-time links cannot be opened by link-preview bots',
        });
      }
    }
    const status = (await (await fetch(`${raven.url}/status/${key}`)).json()) as Record<string, unknown>;
    expect(status.remaining_uses).toBe(2);
    expect(status.previewed).toBe(false);
    const curl = await fetch(`${raven.url}/download/${key}`, { headers: { 'user-agent': 'curl/8.5.0' } });
    expect(curl.status).toBe(200);
    await curl.arrayBuffer();
  });

  it('burns an upload with DELETE /files/{key} (case 31)', async () => {
    const before = raven.storedFiles().length;
    const key = await uploadOne(raven, 3);
    expect(raven.storedFiles().length).toBe(before + 1);
    const removed = await fetch(`${raven.url}/files/${key}`, { method: 'DELETE' });
    expect(removed.status).toBe(204);
    const again = await fetch(`${raven.url}/files/${key}/`, { method: 'DELETE' });
    expect(again.status).toBe(204);
    const download = await fetch(`${raven.url}/download/${key}`);
    expect(download.status).toBe(410);
    const status = (await (await fetch(`${raven.url}/status/${key}/`)).json()) as Record<string, unknown>;
    expect(status.status).toBe('burned');
    expect(status.remaining_uses).toBe(0);
    const deadline = Date.now() + 2000;
    while (raven.storedFiles().length > before && Date.now() < deadline)
      await new Promise((r) => setTimeout(r, 50));
    expect(raven.storedFiles().length).toBe(before);
  });

  it('normalizes keys: case and separators are ignored (case 32)', async () => {
    const response = await fetch(`${raven.url}/status/ABACUS_ABDOMEN%20ABIDE`);
    expect(response.status).toBe(200);
    expect(await response.json()).toEqual({
      key: 'abacus-abdomen-abide',
      status: 'expired_or_burned',
      remaining_uses: 0,
      expires_at: null,
      is_accessible: false,
    });
    const key = await uploadOne(raven, 1);
    const shouted = key.toUpperCase().replaceAll('-', '_');
    const status = (await (await fetch(`${raven.url}/status/${shouted}`)).json()) as Record<string, unknown>;
    expect(status.key).toBe(key);
    expect(status.status).toBe('active');
  });

  it('answers HEAD on download with 405 Allow: GET and consumes nothing', async () => {
    const key = await uploadOne(raven, 1);
    const head = await fetch(`${raven.url}/download/${key}`, { method: 'HEAD' });
    expect(head.status).toBe(405);
    expect(head.headers.get('allow')).toBe('GET');
    const status = (await (await fetch(`${raven.url}/status/${key}`)).json()) as Record<string, unknown>;
    expect(status.remaining_uses).toBe(1);
  });
});

describe('brute-force blocking (cases 13, 14)', () => {
  it('blocks one IP after ten failures; XFF from an untrusted peer is ignored; another IP is unaffected', async () => {
    const raven = await startRaven();
    try {
      for (let attempt = 0; attempt < 10; attempt++) {
        const response = await fetch(`${raven.url}/download/not-a-key-${attempt}`);
        expect(response.status).toBe(404);
      }
      for (const route of ['download', 'preview', 'status']) {
        const blocked = await fetch(`${raven.url}/${route}/abacus-abdomen-abide`, {
          headers: { 'x-forwarded-for': `203.0.113.${route.length}` },
        });
        expect(blocked.status).toBe(429);
        const body = (await blocked.json()) as { detail: { error: string; retry_after_seconds: number } };
        expect(body.detail.error).toBe('Too many failed attempts. Temporarily blocked.');
        expect(body.detail.retry_after_seconds).toBeGreaterThan(0);
        expect(body.detail.retry_after_seconds).toBeLessThanOrEqual(1800);
        expect(Number(blocked.headers.get('retry-after'))).toBe(body.detail.retry_after_seconds);
      }
      const other = await rawRequest(`${raven.url}/status/abacus-abdomen-abide`, {
        localAddress: '127.0.0.2',
      });
      expect(other.status).toBe(200);
      expect(JSON.parse(other.body).status).toBe('expired_or_burned');
    } finally {
      await raven.stop();
    }
  });

  it('counts X-Forwarded-For clients separately behind a trusted proxy', async () => {
    const raven = await startRaven({ TRUSTED_PROXIES: '127.0.0.1' });
    try {
      for (let attempt = 0; attempt < 10; attempt++) {
        const response = await fetch(`${raven.url}/preview/nope${attempt}`, {
          headers: { 'x-forwarded-for': '198.51.100.7' },
        });
        expect(response.status).toBe(404);
      }
      const blocked = await fetch(`${raven.url}/preview/nope`, {
        headers: { 'x-forwarded-for': '198.51.100.7' },
      });
      expect(blocked.status).toBe(429);
      const other = await fetch(`${raven.url}/preview/nope`, {
        headers: { 'x-forwarded-for': '198.51.100.8' },
      });
      expect(other.status).toBe(404);
    } finally {
      await raven.stop();
    }
  });
});
