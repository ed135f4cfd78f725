// The web UI (spec §5 B1): static structure of the pages, share.js in a minimal DOM shim, and both pages in
// Debian's chromium (playwright-core) against a tiny static server with a fake API.
import { createHash } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { runInNewContext } from 'node:vm';
import { CHROMIUM_LAUNCH_OPTIONS, CHROMIUM_PATH } from '@quintet/kernel/testing';
import { type Browser, chromium } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const WEB = join(import.meta.dirname, '../../web');
const PAGES = ['index.html', 'd.html'];
const HAS_CHROMIUM = existsSync(CHROMIUM_PATH);
if (!HAS_CHROMIUM) console.warn(`raven web browser tests skipped: ${CHROMIUM_PATH} is absent`);

const PAGE_CSP =
  "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'";
const KEY = 'abacus-abdomen-abide';

function page(name: string): string {
  return readFileSync(join(WEB, name), 'utf8');
}

describe('page structure', () => {
  for (const name of PAGES) {
    it(`${name}: no inline script or style, no external resources, every asset exists`, () => {
      const html = page(name);
      const scripts = [...html.matchAll(/<script\b([^>]*)>([\s\S]*?)<\/script\s*>/gi)];
      expect(scripts.length).toBeGreaterThan(0);
      for (const [, attributes, body] of scripts) {
        expect(attributes).toMatch(/\ssrc="\/static\/[\w.-]+\.js"/);
        expect(body?.trim()).toBe('');
      }
      expect(html).not.toMatch(/<style\b/i);
      expect(html).not.toMatch(/\sstyle\s*=/i);
      expect(html).not.toMatch(/\son[a-z]+\s*=/i);
      expect(html).not.toMatch(/javascript:/i);
      const references = [...html.matchAll(/\s(?:src|href|action)\s*=\s*"([^"]*)"/gi)].map((m) => m[1] ?? '');
      for (const reference of references) {
        expect(reference, reference).not.toMatch(/^(?:[a-z]+:)?\/\//i);
        if (reference.startsWith('/static/')) expect(existsSync(join(WEB, reference))).toBe(true);
      }
    });
  }

  it('scripts and stylesheet do not load anything from elsewhere', () => {
    for (const asset of ['app.js', 'share.js', 'style.css']) {
      const text = readFileSync(join(WEB, 'static', asset), 'utf8');
      expect(text, asset).not.toMatch(/https?:\/\//);
      expect(text, asset).not.toMatch(/@import|url\(/);
      expect(text, asset).not.toMatch(/\beval\(|new Function\(|innerHTML/);
    }
  });
});

// ---------------------------------------------------------------------------------------------------------
// share.js in a minimal DOM shim

interface ShimElement {
  id: string;
  textContent: string;
  value: string;
  disabled: boolean;
  classes: Set<string>;
  classList: {
    toggle(name: string, on?: boolean): void;
    add(name: string): void;
    remove(name: string): void;
  };
  listeners: Map<string, ((event: unknown) => unknown)[]>;
  addEventListener(type: string, listener: (event: unknown) => unknown): void;
  replaceChildren(): void;
  append(...nodes: unknown[]): void;
  focus(): void;
}

function shimElement(id: string): ShimElement {
  const element: ShimElement = {
    id,
    textContent: '',
    value: '',
    disabled: false,
    classes: new Set(),
    classList: {
      toggle: (name, on) => {
        if (on ?? !element.classes.has(name)) element.classes.add(name);
        else element.classes.delete(name);
      },
      add: (name) => element.classes.add(name),
      remove: (name) => element.classes.delete(name),
    },
    listeners: new Map(),
    addEventListener(type, listener) {
      element.listeners.set(type, [...(element.listeners.get(type) ?? []), listener]);
    },
    replaceChildren() {},
    append() {},
    focus() {},
  };
  return element;
}

describe('share.js in a DOM shim', () => {
  it('issues no request on load; the Download click asks for status and then the file', async () => {
    const elements = new Map<string, ShimElement>();
    const requests: string[] = [];
    const saved: string[] = [];
    const content = 'shim body';
    const sha = createHash('sha256').update(content).digest('hex');
    const fetchSpy = async (url: string) => {
      requests.push(url);
      if (url.startsWith('/status/')) {
        return new Response(
          JSON.stringify({
            key: KEY,
            status: 'active',
            remaining_uses: 1,
            is_accessible: true,
            password_required: false,
          }),
          { headers: { 'content-type': 'application/json' } },
        );
      }
      return new Response(content, {
        headers: { 'x-sha256': sha, 'content-disposition': 'attachment; filename="notes.txt"' },
      });
    };
    const documentShim = {
      getElementById(id: string) {
        let element = elements.get(id);
        if (element === undefined) {
          element = shimElement(id);
          elements.set(id, element);
        }
        return element;
      },
      createElement(tag: string) {
        const element = { tag, textContent: '', href: '', download: '', rel: '', click() {}, remove() {} };
        element.click = () => saved.push(element.download);
        return element;
      },
      body: { append() {} },
    };
    const windowListeners = new Map<string, unknown>();
    const sandbox = {
      document: documentShim,
      fetch: fetchSpy,
      window: {
        location: { hash: `#${KEY.toUpperCase().replace(/-/g, '_')}` },
        addEventListener: (type: string, listener: unknown) => windowListeners.set(type, listener),
        crypto: globalThis.crypto,
      },
      URL: { createObjectURL: () => 'blob:x', revokeObjectURL() {} },
      TextEncoder,
      Uint8Array,
      Array,
      setTimeout: () => 0,
    };
    runInNewContext(readFileSync(join(WEB, 'static/share.js'), 'utf8'), sandbox);
    await new Promise((resolve) => setTimeout(resolve, 50));
    expect(requests).toEqual([]);
    expect(elements.get('key')?.textContent).toBe(KEY);

    const click = elements.get('download')?.listeners.get('click')?.[0];
    expect(click).toBeTypeOf('function');
    await click?.({});
    expect(requests).toEqual([`/status/${KEY}`, `/download/${KEY}`]);
    expect(saved).toEqual(['notes.txt']);
    expect(elements.get('error')?.textContent).toBe('');
  });
});

// ---------------------------------------------------------------------------------------------------------
// both pages in chromium

interface FakeApi {
  server: Server;
  base: string;
  /** every request the server saw, as "METHOD path" */
  seen: string[];
  password: string | undefined;
  content: Buffer;
}

async function startFakeApi(): Promise<FakeApi> {
  const api: FakeApi = {
    server: createServer(),
    base: '',
    seen: [],
    password: undefined,
    content: Buffer.from('hello from raven zero\n'),
  };
  const json = (res: ServerResponse, status: number, body: unknown) => {
    res.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify(body));
  };
  api.server.on('request', (req: IncomingMessage, res: ServerResponse) => {
    const path = new URL(req.url ?? '/', 'http://x').pathname;
    api.seen.push(`${req.method} ${path}`);
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => {
      const htmlPage = path === '/' ? 'index.html' : path === '/d' ? 'd.html' : undefined;
      if (htmlPage !== undefined) {
        res.writeHead(200, {
          'content-type': 'text/html; charset=utf-8',
          'content-security-policy': PAGE_CSP,
        });
        res.end(page(htmlPage));
        return;
      }
      const asset = /^\/static\/([\w.-]+)$/.exec(path)?.[1];
      if (asset !== undefined && existsSync(join(WEB, 'static', asset))) {
        const type = asset.endsWith('.js') ? 'text/javascript' : 'text/css';
        res
          .writeHead(200, { 'content-type': `${type}; charset=utf-8` })
          .end(readFileSync(join(WEB, 'static', asset)));
        return;
      }
      if (path === '/upload/' && req.method === 'POST') {
        const body = Buffer.concat(chunks).toString('latin1');
        const filename = /filename="([^"]*)"/.exec(body)?.[1] ?? '';
        json(res, 201, {
          key: KEY,
          share_url: `${api.base}/d#${KEY}`,
          download_url: `${api.base}/download/${KEY}`,
          expiry: new Date(Date.now() + 600_000).toISOString(),
          uses: 1,
          filename,
          size: 5,
          password_protected: false,
        });
        return;
      }
      if (path === `/status/${KEY}`) {
        json(res, 200, {
          key: KEY,
          status: 'active',
          remaining_uses: 1,
          expires_at: new Date(Date.now() + 600_000).toISOString(),
          is_accessible: true,
          uses_total: 1,
          previewed: false,
          password_required: api.password !== undefined,
          seconds_left: 600,
        });
        return;
      }
      if (path === `/download/${KEY}`) {
        if (api.password !== undefined && req.headers['x-password'] !== api.password) {
          json(res, 401, {
            detail: req.headers['x-password'] === undefined ? 'Password required' : 'Invalid password',
          });
          return;
        }
        res.writeHead(200, {
          'content-type': 'text/plain; charset=utf-8',
          'content-length': api.content.length,
          'content-disposition': 'attachment; filename="notes.txt"',
          'x-sha256': createHash('sha256').update(api.content).digest('hex'),
        });
        res.end(api.content);
        return;
      }
      json(res, 404, { detail: 'Not Found' });
    });
  });
  await new Promise<void>((resolve) => api.server.listen(0, '127.0.0.1', resolve));
  api.base = `http://127.0.0.1:${(api.server.address() as AddressInfo).port}`;
  return api;
}

describe.skipIf(!HAS_CHROMIUM)('pages in chromium', () => {
  let api: FakeApi;
  let browser: Browser;

  beforeAll(async () => {
    [api, browser] = await Promise.all([startFakeApi(), chromium.launch(CHROMIUM_LAUNCH_OPTIONS)]);
  });

  afterAll(async () => {
    await browser?.close();
    await new Promise((resolve) => api?.server.close(resolve));
  });

  async function openPage(path: string) {
    const context = await browser.newContext({ acceptDownloads: true });
    const page = await context.newPage();
    const problems: string[] = [];
    const requests: string[] = [];
    page.on('console', (message) => {
      if (message.type() === 'error') problems.push(message.text());
    });
    page.on('pageerror', (error) => problems.push(error.message));
    page.on('request', (request) => requests.push(`${request.method()} ${new URL(request.url()).pathname}`));
    await page.goto(`${api.base}${path}`, { waitUntil: 'load' });
    return { context, page, problems, requests };
  }

  it('share page: no request before the click; the click downloads the verified file', async () => {
    api.password = undefined;
    api.seen.length = 0;
    const { context, page, problems, requests } = await openPage(`/d#${KEY}`);
    await page.waitForTimeout(500);
    expect(await page.textContent('#key')).toBe(KEY);
    const nonAsset = (list: string[]) => list.filter((entry) => !/^GET \/(d|static\/[\w.-]+)$/.test(entry));
    expect(nonAsset(requests)).toEqual([]);
    expect(nonAsset(api.seen)).toEqual([]);

    const [download] = await Promise.all([page.waitForEvent('download'), page.click('#download')]);
    expect(download.suggestedFilename()).toBe('notes.txt');
    const file = await download.path();
    expect(readFileSync(file).equals(api.content)).toBe(true);
    expect(nonAsset(api.seen)).toEqual([`GET /status/${KEY}`, `GET /download/${KEY}`]);
    expect(await page.textContent('#message')).toMatch(/Saved notes\.txt .*SHA-256 verified/);
    expect(problems).toEqual([]);
    await context.close();
  });

  it('share page: asks for the password when status says it is required, then sends it', async () => {
    api.password = 'correct horse';
    api.seen.length = 0;
    const { context, page, problems } = await openPage(`/d#${KEY}`);
    expect(await page.isVisible('#password')).toBe(false);
    await page.click('#download');
    await page.waitForSelector('#password', { state: 'visible' });
    expect(api.seen.filter((entry) => entry.includes('/download/'))).toEqual([]);
    await page.fill('#password', 'correct horse');
    const [download] = await Promise.all([page.waitForEvent('download'), page.click('#download')]);
    expect(readFileSync(await download.path()).equals(api.content)).toBe(true);
    expect(problems).toEqual([]);
    await context.close();
  });

  it('upload page: sends the file and shows the key and share link', async () => {
    api.seen.length = 0;
    const { context, page, problems } = await openPage('/');
    expect(api.seen.filter((entry) => !/^GET \/(static\/[\w.-]+)?$/.test(entry))).toEqual([]);
    await page.setInputFiles('#file', {
      name: 'hello.txt',
      mimeType: 'text/plain',
      buffer: Buffer.from('hello'),
    });
    await page.fill('#uses', '1');
    await page.click('#upload-button');
    await page.waitForSelector('#result', { state: 'visible' });
    expect(await page.textContent('#result-key')).toBe(KEY);
    expect(await page.textContent('#result-share')).toBe(`${api.base}/d#${KEY}`);
    expect(await page.textContent('#result-summary')).toContain('hello.txt');
    expect(api.seen).toContain('POST /upload/');
    expect(problems).toEqual([]);
    await context.close();
  });
});
