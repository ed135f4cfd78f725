// The operator dashboard (spec §3.8, §5 item 8, acceptance case 39) in Debian's chromium (playwright-core)
// against a real dashboard with an API token: token prompt → live, a chart per species that draws its readings
// and the permit limit, an alert within 1 s of the exceeding reading, the acknowledgement flow, HTML-like
// names shown as text, the CSV upload with report links, and reconnection after a server restart.
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CHROMIUM_LAUNCH_OPTIONS, CHROMIUM_PATH } from '@quintet/kernel/testing';
import { type Browser, type BrowserContext, chromium, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { staticFilePath, WEB_DIR } from '../../src/http/web-routes.js';
import { openSocket, startTestDashboard, type TestDashboard, type TestSocket } from '../http/harness.js';

const HAS_CHROMIUM = existsSync(CHROMIUM_PATH);
// In CI a missing browser is a failure, not a skip.
const SKIP = !HAS_CHROMIUM && process.env.CI !== 'true';
if (SKIP) console.warn(`owsc dashboard browser tests skipped: ${CHROMIUM_PATH} is absent`);

const TOKEN = 'dashboard-test-token';
const OPERATOR = 'Dana Okafor';
const HTML_SPECIES = '<img src=x onerror=window.__injected=1>';
const PAGE_CSP =
  "default-src 'self'; img-src 'self' data:; script-src 'self'; style-src 'self' 'unsafe-inline'; connect-src 'self'; object-src 'none'; base-uri 'self'; frame-ancestors 'none'";

// The chart colours of web/charts.js (reading line, permit limit, points above the limit).
const READING_RGB = [0x1a, 0x73, 0xe8];
const LIMIT_RGB = [0xd9, 0x30, 0x25];
const ABOVE_RGB = [0xf2, 0x99, 0x00];

// Collects CSP violations reported to the page (injected by the driver, not subject to the page's CSP).
const VIOLATION_PROBE = `
  window.__violations = [];
  document.addEventListener('securitypolicyviolation', (event) => {
    window.__violations.push(event.violatedDirective + ' ' + event.blockedURI);
  });
`;

interface PixelCounts {
  total: number;
  drawn: number;
  reading: number;
  limit: number;
  above: number;
}

/**
 * Decodes a PNG screenshot in a blank page of the browser and counts its pixels: those that differ from the
 * background (the top-left pixel) and those close to each chart colour.
 */
async function countPixels(
  context: BrowserContext,
  png: Buffer,
  colours: Record<'reading' | 'limit' | 'above', number[]>,
): Promise<PixelCounts> {
  const blank = await context.newPage();
  try {
    return await blank.evaluate(
      async ({ base64, colours }) => {
        const image = new Image();
        image.src = `data:image/png;base64,${base64}`;
        await image.decode();
        const canvas = document.createElement('canvas');
        canvas.width = image.naturalWidth;
        canvas.height = image.naturalHeight;
        const context2d = canvas.getContext('2d');
        if (context2d === null) throw new Error('no 2d context');
        context2d.drawImage(image, 0, 0);
        const { data } = context2d.getImageData(0, 0, canvas.width, canvas.height);
        const near = (offset: number, rgb: number[]) =>
          rgb.every((channel, index) => Math.abs((data[offset + index] ?? 0) - channel) <= 40);
        const background = [data[0] ?? 0, data[1] ?? 0, data[2] ?? 0];
        const counts = { total: 0, drawn: 0, reading: 0, limit: 0, above: 0 };
        for (let offset = 0; offset < data.length; offset += 4) {
          counts.total++;
          if (!near(offset, background)) counts.drawn++;
          if (near(offset, colours.reading)) counts.reading++;
          if (near(offset, colours.limit)) counts.limit++;
          if (near(offset, colours.above)) counts.above++;
        }
        return counts;
      },
      { base64: png.toString('base64'), colours },
    );
  } finally {
    await blank.close();
  }
}

async function connectionState(page: Page, state: string, timeout: number): Promise<void> {
  await page.locator(`#connection-state[data-state="${state}"]`).waitFor({ timeout });
}

describe('dashboard page files', () => {
  const html = readFileSync(join(WEB_DIR, 'index.html'), 'utf8');
  const modules = readdirSync(WEB_DIR).filter((name) => name.endsWith('.js'));

  it('has no inline script, style or handler and only same-origin /static/ assets that are served', () => {
    const scripts = [...html.matchAll(/<script\b([^>]*)>([\s\S]*?)<\/script\s*>/gi)];
    expect(scripts.map(([, attributes, body]) => [attributes?.trim(), body?.trim()])).toEqual([
      ['type="module" src="/static/app.js"', ''],
    ]);
    expect(html).not.toMatch(/<style\b|\sstyle\s*=|\son[a-z]+\s*=|javascript:|https?:\/\//i);
    const references = [...html.matchAll(/\s(?:src|href)\s*=\s*"([^"]*)"/gi)].map((match) => match[1] ?? '');
    expect(references.filter((reference) => !reference.startsWith('data:'))).toEqual([
      '/static/vendor/uPlot.min.css',
      '/static/style.css',
      '/static/app.js',
    ]);
    for (const reference of references.filter((entry) => entry.startsWith('/static/'))) {
      const path = staticFilePath(reference.slice('/static/'.length));
      expect(path !== null && existsSync(path), reference).toBe(true);
    }
  });

  it('builds every dynamic text with textContent and imports only served modules', () => {
    expect(modules).toContain('app.js');
    for (const name of modules) {
      const source = readFileSync(join(WEB_DIR, name), 'utf8');
      expect(source, name).not.toMatch(
        /innerHTML|outerHTML|insertAdjacentHTML|document\.write|eval\(|new Function/,
      );
      for (const [, target] of source.matchAll(/^import [^;]+ from '([^']+)';$/gm)) {
        const path = staticFilePath((target ?? '').replace(/^\.\//, ''));
        expect(path !== null && existsSync(path), `${name} imports ${target}`).toBe(true);
      }
    }
  });
});

describe.skipIf(SKIP)('operator dashboard in Chromium', () => {
  const dataDir = mkdtempSync(join(tmpdir(), 'owsc-web-'));
  const env = { OW_SC_API_TOKEN: TOKEN, OW_SC_DATA_DIR: dataDir };
  let dashboard: TestDashboard;
  let browser: Browser;
  let context: BrowserContext;
  let page: Page;
  let analyser: TestSocket;
  const pageErrors: string[] = [];

  async function violations(): Promise<string[]> {
    return page.evaluate('window.__violations ?? null') as Promise<string[]>;
  }

  beforeAll(async () => {
    [dashboard, browser] = await Promise.all([
      startTestDashboard(env),
      chromium.launch(CHROMIUM_LAUNCH_OPTIONS),
    ]);
    context = await browser.newContext({ viewport: { width: 1024, height: 900 }, acceptDownloads: true });
    page = await context.newPage();
    await page.addInitScript({ content: VIOLATION_PROBE });
    page.on('pageerror', (error) => pageErrors.push(error.message));
  }, 60_000);

  afterAll(async () => {
    analyser?.close();
    await browser?.close();
    await dashboard?.close();
    rmSync(dataDir, { recursive: true, force: true });
  });

  it('asks for the token, keeps it in sessionStorage and goes live', async () => {
    const response = await page.goto(`${dashboard.url}/`, { waitUntil: 'load' });
    expect(response?.status()).toBe(200);
    expect(response?.headers()['content-security-policy']).toBe(PAGE_CSP);
    await connectionState(page, 'unauthorized', 5000);
    await page.locator('#token-form').waitFor({ state: 'visible' });
    expect(await page.textContent('#connection-state')).toBe('API token required');
    expect(await page.getAttribute('label[for="token"]', 'for')).toBe('token');

    await page.fill('#token', TOKEN);
    await page.click('#token-form button[type="submit"]');
    await connectionState(page, 'live', 5000);
    expect(await page.textContent('#connection-state')).toBe('Live');
    expect(await page.isHidden('#token-form')).toBe(true);
    expect(await page.evaluate(() => sessionStorage.getItem('owsc.apiToken'))).toBe(TOKEN);
    // the permit limits are loaded with the token
    await page.locator('#permit-summary', { hasText: 'SO4 250 mg/L' }).waitFor({ timeout: 2000 });
  });

  it('charts a species with its limit line and shows the alert within 1 s of the exceeding reading', async () => {
    analyser = await openSocket(`${dashboard.wsUrl}/ws/effluent`, {
      headers: { authorization: `Bearer ${TOKEN}` },
    });
    analyser.send({ time: 1, species: 'SO4', concentration: 200 });
    const chart = page.locator('#charts [data-species="SO4"]');
    await chart.waitFor({ timeout: 2000 });
    expect(await chart.getAttribute('data-limit')).toBe('250');
    expect(await page.locator('#alerts li').count()).toBe(0);

    analyser.send({ time: 2, species: 'SO4', concentration: 300 });
    const sentAt = Date.now();
    const alert = page.locator('#alerts li', {
      hasText: 'SO4 concentration 300.000 mg/L exceeds limit 250.000 mg/L',
    });
    await alert.waitFor({ timeout: 1000 });
    expect(Date.now() - sentAt).toBeLessThan(1000);
    expect(await alert.getAttribute('class')).toBe('alert level-info');
    expect(await alert.locator('.level-badge').textContent()).toBe('info');
    expect(await alert.locator('.alert-species').textContent()).toBe('SO4');
    expect(await alert.locator('.alert-time').textContent()).toBe('t = 2');

    await page.locator('#charts [data-species="SO4"] .chart-meta', { hasText: '1 above limit' }).waitFor();
    expect(await chart.locator('.chart-meta').textContent()).toContain('limit 250 mg/L');
    expect(await chart.locator('.u-legend').textContent()).toContain('Limit');
    // The canvas really drew: the reading line, the dashed limit line and the highlighted point.
    const png = await chart.locator('canvas').screenshot();
    const pixels = await countPixels(context, png, {
      reading: READING_RGB,
      limit: LIMIT_RGB,
      above: ABOVE_RGB,
    });
    expect(pixels.drawn).toBeGreaterThan(pixels.total * 0.01);
    expect(pixels.reading).toBeGreaterThan(200);
    expect(pixels.limit).toBeGreaterThan(200);
    expect(pixels.above).toBeGreaterThan(30);
  });

  it('acknowledges the open incident with the operator name', async () => {
    const incident = page.locator('#incidents li', { hasText: 'SO4' });
    await incident.waitFor({ timeout: 2000 });
    expect(await incident.locator('.ack-status').textContent()).toBe('Not acknowledged');
    await incident.locator('button.ack').click();
    const name = incident.locator('input.ack-name');
    await name.waitFor({ state: 'visible' });
    expect(await incident.locator(`label[for="${await name.getAttribute('id')}"]`).textContent()).toBe(
      'Operator name',
    );
    await name.fill(OPERATOR);
    await incident.locator('button.ack-confirm').click();
    await incident
      .locator('.ack-status', { hasText: `Acknowledged by ${OPERATOR} at ` })
      .waitFor({ timeout: 2000 });
    expect(await incident.locator('button.ack').isHidden()).toBe(true);

    const open = await fetch(`${dashboard.url}/api/incidents?state=open`, {
      headers: { authorization: `Bearer ${TOKEN}` },
    });
    const body = (await open.json()) as { items: { species: string; acknowledged_by: string | null }[] };
    expect(body.items).toEqual([expect.objectContaining({ species: 'SO4', acknowledged_by: OPERATOR })]);
  });

  it('shows an HTML-like species name as text', async () => {
    analyser.send({ time: 3, species: HTML_SPECIES, concentration: 5 });
    await page.waitForFunction(
      (species) =>
        [...document.querySelectorAll<HTMLElement>('#charts .chart')].some(
          (c) => c.dataset.species === species,
        ),
      HTML_SPECIES,
      { timeout: 2000 },
    );
    const names = await page.locator('#charts .chart-species').allTextContents();
    expect(names).toEqual(['SO4', HTML_SPECIES]);
    expect(await page.locator('#charts img').count()).toBe(0);
    expect(await page.evaluate('window.__injected ?? null')).toBeNull();
  });

  it('uploads a CSV with a permit and shows the result, the alerts table and the report links', async () => {
    const csv = `time,species,concentration\n0,SO4,200\n1,SO4,300\n0,${HTML_SPECIES},3\n`;
    await page.setInputFiles('#upload-file', {
      name: 'batch.csv',
      mimeType: 'text/csv',
      buffer: Buffer.from(csv),
    });
    await page.fill('#upload-permit', JSON.stringify({ limits_mgL: { SO4: 250, [HTML_SPECIES]: 1 } }));
    await page.selectOption('#upload-mode', 'all');
    await page.fill('#upload-site', 'Plant <b>7</b>');
    await page.click('#upload-button');
    await page.locator('#upload-result').waitFor({ state: 'visible', timeout: 10_000 });
    expect(await page.textContent('#upload-status')).toBe('Non-compliant: 2 alerts');
    expect(await page.textContent('#upload-summary')).toContain('site Plant <b>7</b>');
    const rows = page.locator('#upload-alerts tbody tr');
    expect(await rows.count()).toBe(2);
    expect(await rows.nth(0).locator('.alert-species').textContent()).toBe(HTML_SPECIES);
    expect(await rows.nth(0).locator('.level-cell').textContent()).toBe('critical');
    expect(await rows.nth(1).locator('.alert-species').textContent()).toBe('SO4');
    expect(await page.locator('#upload-result img, #upload-result b').count()).toBe(0);

    const href = (await page.getAttribute('#report-csv', 'href')) ?? '';
    const id = /^\/api\/batches\/([^/]+)\/report\?format=csv$/.exec(href)?.[1] ?? '';
    expect(id).not.toBe('');
    expect(await page.getAttribute('#report-html', 'href')).toBe(`/api/batches/${id}/report?format=html`);
    expect(await page.getAttribute('#report-pdf', 'href')).toBe(`/api/batches/${id}/report?format=pdf`);

    // With a token the link fetches the report with the Authorization header and saves it.
    const [download] = await Promise.all([page.waitForEvent('download'), page.click('#report-csv')]);
    expect(download.suggestedFilename()).toBe(`alerts-${id}.csv`);
    const lines = readFileSync(await download.path(), 'utf8')
      .trim()
      .split(/\r?\n/);
    expect(lines[0]).toBe('time,species,type,level,value,limit,action,message');
    expect(lines).toHaveLength(3);

    const stored = await fetch(`${dashboard.url}/api/batches/${id}`, {
      headers: { authorization: `Bearer ${TOKEN}` },
    });
    expect(stored.status).toBe(200);
  });

  it('asks for the token when a WebSocket closes with 1008, reconnects with ?token= and shows a 409 on ack', async () => {
    // The HTTP API is stubbed so that the only refusal comes from the real server's WebSockets.
    const stubContext = await browser.newContext({ viewport: { width: 390, height: 800 } });
    try {
      const stub = await stubContext.newPage();
      stub.on('pageerror', (error) => pageErrors.push(error.message));
      const ackedAt = '2026-03-01T08:30:00.000Z';
      const incident = {
        id: 'incident-1',
        source: 'stream',
        species: 'Ni',
        state: 'open',
        opened_at: '2026-03-01T08:00:00.000Z',
        closed_at: null,
        limit: 0.1,
        peak_value: 0.25,
        peak_level: 'critical',
        alert_count: 1,
        acknowledged: false,
        acknowledged_at: null,
        acknowledged_by: null,
        ack_note: null,
      };
      const conflict = `incident already acknowledged by Sam Lee at ${ackedAt}`;
      const stubbed: Record<string, [number, unknown]> = {
        '/api/permit': [200, { limits_mgL: { Ni: 0.1 }, source: 'default' }],
        '/api/streams': [200, { count: 0, data: [] }],
        '/api/alerts': [200, { items: [], total: 0 }],
        '/api/incidents': [200, { items: [incident], total: 1 }],
        '/api/incidents/incident-1/ack': [409, { detail: conflict }],
        '/api/incidents/incident-1': [
          200,
          { ...incident, acknowledged: true, acknowledged_at: ackedAt, acknowledged_by: 'Sam Lee' },
        ],
      };
      await stub.route('**/api/**', async (route) => {
        const [status, json] = stubbed[new URL(route.request().url()).pathname] ?? [
          404,
          { detail: 'Not Found' },
        ];
        await route.fulfill({ status, json });
      });
      const sockets: string[] = [];
      stub.on('websocket', (socket) => sockets.push(socket.url()));

      await stub.goto(`${dashboard.url}/`, { waitUntil: 'load' });
      await connectionState(stub, 'unauthorized', 5000);
      await stub.locator('#token-form').waitFor({ state: 'visible' });
      expect(sockets.length).toBeGreaterThan(0);
      expect(sockets.some((url) => url.includes('token='))).toBe(false);

      await stub.fill('#token', TOKEN);
      await stub.click('#token-form button[type="submit"]');
      await connectionState(stub, 'live', 5000);
      const withToken = sockets.filter((url) => new URL(url).searchParams.get('token') === TOKEN);
      expect(withToken.map((url) => new URL(url).pathname).sort()).toEqual(['/ws/alerts', '/ws/effluent']);

      const row = stub.locator('#incidents li', { hasText: 'Ni' });
      await row.locator('button.ack').click();
      await row.locator('input.ack-name').fill(OPERATOR);
      await row.locator('button.ack-confirm').click();
      await row.locator('.ack-error', { hasText: conflict }).waitFor({ timeout: 2000 });
      await row.locator('.ack-status', { hasText: 'Acknowledged by Sam Lee at ' }).waitFor({ timeout: 2000 });
    } finally {
      await stubContext.close();
    }
  });

  it('reconnects after a server restart on the same port with the same data', async () => {
    const port = dashboard.port;
    analyser.close();
    await dashboard.close();
    await connectionState(page, 'reconnecting', 5000);
    expect(await page.textContent('#connection-state')).toBe('Connection lost — reconnecting…');

    dashboard = await startTestDashboard({ ...env, PORT: String(port) });
    expect(dashboard.port).toBe(port);
    await connectionState(page, 'live', 20_000);
    // The acknowledged incident survived the restart and is shown again after the reload; the reloaded
    // alerts (stream alerts only) are merged with those already listed, not duplicated.
    const incident = page.locator('#incidents li', { hasText: 'SO4' });
    await incident
      .locator('.ack-status', { hasText: `Acknowledged by ${OPERATOR}` })
      .waitFor({ timeout: 2000 });
    expect(await page.locator('#alerts li .alert-message').allTextContents()).toEqual([
      'SO4 concentration 300.000 mg/L exceeds limit 250.000 mg/L',
    ]);

    // Live readings flow again: a compliant SO4 reading is charted and closes the incident.
    analyser = await openSocket(`${dashboard.wsUrl}/ws/effluent`, {
      headers: { authorization: `Bearer ${TOKEN}` },
    });
    analyser.send({ time: 4, species: 'SO4', concentration: 100 });
    await page
      .locator('#charts [data-species="SO4"] .chart-meta', { hasText: '3 points' })
      .waitFor({ timeout: 2000 });
    await incident.waitFor({ state: 'detached', timeout: 2000 });
    expect(await page.isVisible('#incidents-empty')).toBe(true);

    expect(pageErrors).toEqual([]);
    expect(await violations()).toEqual([]);
  }, 60_000);
});
