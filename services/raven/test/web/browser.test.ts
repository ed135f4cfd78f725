// The web UI end to end (spec §5 B1) in Debian's chromium (playwright-core) against the real compiled server:
// upload through `/`, open the share link `/d#<key>` (nothing requested before the click), download the exact
// bytes, then the exhausted state; HTML pages carry the self-only CSP and raise no console error or violation.
import { existsSync, readFileSync } from 'node:fs';
import { CHROMIUM_LAUNCH_OPTIONS, CHROMIUM_PATH } from '@quintet/kernel/testing';
import { type Browser, type BrowserContext, chromium, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PDF, type RunningRaven, startRaven } from '../http/harness.js';

const HAS_CHROMIUM = existsSync(CHROMIUM_PATH);
if (!HAS_CHROMIUM) console.warn(`raven browser end-to-end test skipped: ${CHROMIUM_PATH} is absent`);

const PAGE_CSP =
  "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'";
const API_CSP = "default-src 'none'; frame-ancestors 'none'; sandbox";

// Collects CSP violations reported to the page (injected by the browser driver, not subject to the page's CSP).
const VIOLATION_PROBE = `
  window.__violations = [];
  document.addEventListener('securitypolicyviolation', (event) => {
    window.__violations.push(event.violatedDirective + ' ' + event.blockedURI);
  });
`;

interface Watched {
  page: Page;
  problems: string[];
  requests: string[];
}

async function watch(context: BrowserContext): Promise<Watched> {
  const page = await context.newPage();
  await page.addInitScript({ content: VIOLATION_PROBE });
  const problems: string[] = [];
  const requests: string[] = [];
  page.on('console', (message) => {
    if (message.type() === 'error') problems.push(message.text());
  });
  page.on('pageerror', (error) => problems.push(error.message));
  page.on('request', (request) => requests.push(`${request.method()} ${new URL(request.url()).pathname}`));
  return { page, problems, requests };
}

async function violations(page: Page): Promise<string[]> {
  // null (a failed expectation) should the probe be missing
  return page.evaluate('window.__violations ?? null') as Promise<string[]>;
}

describe.skipIf(!HAS_CHROMIUM)('web UI against the real server', () => {
  let raven: RunningRaven;
  let browser: Browser;

  beforeAll(async () => {
    [raven, browser] = await Promise.all([startRaven(), chromium.launch(CHROMIUM_LAUNCH_OPTIONS)]);
  }, 30_000);

  afterAll(async () => {
    await browser?.close();
    await raven?.stop();
  });

  it('serves the pages with the self-only CSP and their assets with the API CSP', async () => {
    for (const path of ['/', '/d']) {
      const response = await fetch(`${raven.url}${path}`);
      expect(response.status, path).toBe(200);
      expect(response.headers.get('content-type')).toBe('text/html; charset=utf-8');
      expect(response.headers.get('content-security-policy')).toBe(PAGE_CSP);
      expect(response.headers.get('x-frame-options')).toBe('DENY');
      expect(response.headers.get('cache-control')).toBe('no-store, no-cache, must-revalidate, max-age=0');
    }
    const script = await fetch(`${raven.url}/static/share.js`);
    expect(script.headers.get('content-type')).toBe('text/javascript; charset=utf-8');
    expect(script.headers.get('content-security-policy')).toBe(API_CSP);
    const missing = await fetch(`${raven.url}/static/missing.js`);
    expect(missing.status).toBe(404);
    expect(await missing.json()).toEqual({ detail: 'Not Found' });
  });

  it('upload page → share link → one verified download → limit reached', async () => {
    const context = await browser.newContext({ acceptDownloads: true });
    try {
      // upload
      const uploader = await watch(context);
      const index = await uploader.page.goto(`${raven.url}/`, { waitUntil: 'load' });
      expect(index?.headers()['content-security-policy']).toBe(PAGE_CSP);
      await uploader.page.setInputFiles('#file', {
        name: 'report.pdf',
        mimeType: 'application/pdf',
        buffer: PDF,
      });
      await uploader.page.fill('#expiry', '5');
      await uploader.page.fill('#uses', '1');
      await uploader.page.click('#upload-button');
      await uploader.page.waitForSelector('#result', { state: 'visible', timeout: 15_000 });
      const key = (await uploader.page.textContent('#result-key'))?.trim() ?? '';
      const shareUrl = (await uploader.page.textContent('#result-share'))?.trim() ?? '';
      expect(key).toMatch(/^[a-z]+(-[a-z]+){2,}$/);
      expect(shareUrl).toBe(`${raven.url}/d#${key}`);
      expect(await uploader.page.textContent('#result-summary')).toContain('report.pdf');
      expect(uploader.requests).toContain('POST /upload/');
      expect(uploader.problems).toEqual([]);
      expect(await violations(uploader.page)).toEqual([]);

      // share page: nothing but the page and its assets before the click
      const sharer = await watch(context);
      const share = await sharer.page.goto(shareUrl, { waitUntil: 'load' });
      expect(share?.headers()['content-security-policy']).toBe(PAGE_CSP);
      await sharer.page.waitForTimeout(500);
      expect(await sharer.page.textContent('#key')).toBe(key);
      const api = (list: string[]) => list.filter((entry) => /\/(preview|download|status)\//.test(entry));
      expect(api(sharer.requests)).toEqual([]);
      expect(sharer.requests.every((entry) => /^GET \/(d|static\/[\w.-]+)$/.test(entry))).toBe(true);

      // first click: the exact bytes
      const [download] = await Promise.all([
        sharer.page.waitForEvent('download'),
        sharer.page.click('#download'),
      ]);
      expect(download.suggestedFilename()).toBe('report.pdf');
      expect(readFileSync(await download.path()).equals(PDF)).toBe(true);
      expect(api(sharer.requests)).toEqual([`GET /status/${key}`, `GET /download/${key}`]);
      await sharer.page.locator('#message', { hasText: /SHA-256 verified/ }).waitFor();

      // second click: the one allowed download is used up; no download is attempted
      await sharer.page.click('#download');
      await sharer.page.locator('#message', { hasText: /no longer available/ }).waitFor();
      expect(await sharer.page.textContent('#status-details')).toContain('burned');
      expect(api(sharer.requests)).toEqual([
        `GET /status/${key}`,
        `GET /download/${key}`,
        `GET /status/${key}`,
      ]);
      expect(sharer.problems).toEqual([]);
      expect(await violations(sharer.page)).toEqual([]);

      // the server agrees
      const status = (await (await fetch(`${raven.url}/status/${key}`)).json()) as Record<string, unknown>;
      expect(status).toMatchObject({ status: 'burned', remaining_uses: 0, is_accessible: false });
    } finally {
      await context.close();
    }
  }, 60_000);
});
