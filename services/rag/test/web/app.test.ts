// The web UI (spec §3.10) in Debian's chromium (playwright-core) against a real server in mock mode with dev
// login: sign-in, stores, upload with live indexing status, the chunk viewer, a streamed cited answer with
// "Source N" chips, the citation panel and the original file, sessions, costs, HTML-like names shown as text,
// and the admin flow (budgets, audit, branding applied live).
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { CHROMIUM_LAUNCH_OPTIONS, CHROMIUM_PATH } from '@quintet/kernel/testing';
import { type Browser, type BrowserContext, chromium, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { contentSecurityPolicy } from '../../src/http/conventions.js';
import { startTestServer, type TestServer } from '../http/harness.js';

const HAS_CHROMIUM = existsSync(CHROMIUM_PATH);
// In CI a missing browser is a failure, not a skip.
const SKIP = !HAS_CHROMIUM && process.env.CI !== 'true';
if (SKIP) console.warn(`rag web UI browser tests skipped: ${CHROMIUM_PATH} is absent`);

const WEB_DIR = fileURLToPath(new URL('../../web/', import.meta.url));
const ASSETS_DIR = join(WEB_DIR, 'assets');

const USER_EMAIL = 'reader@example.com';
const ADMIN_EMAIL = 'chief@example.com';
const FACT = 'The Zephyr turbine produces 42 megawatts at full load.';
const HANDBOOK = `# Turbine handbook\n\n${FACT}\n\nMaintenance happens every spring in the northern hall.\n`;
const QUESTION = 'How much power does the Zephyr turbine produce?';
// The test server allows inline code (development/test); the page is held to the production policy instead.
const PRODUCTION_CSP = contentSecurityPolicy({ environment: 'production' });
// Collects CSP violations (injected by the driver, not subject to the page's CSP).
const VIOLATION_PROBE = `
  window.__violations = [];
  document.addEventListener('securitypolicyviolation', (event) => {
    window.__violations.push(event.violatedDirective + ' ' + event.blockedURI);
  });
`;
const REJECTED_NAME = '<img src=x onerror=alert(1)>';
// Passes the server's pattern check (a space before `=`) yet is still live HTML if a page ever parsed it.
const HTML_NAME = '<b>R&D</b> <img src=x onerror =window.__injected=1>';

describe('web UI files', () => {
  const html = readFileSync(join(WEB_DIR, 'index.html'), 'utf8');
  const modules = readdirSync(ASSETS_DIR).filter((name) => name.endsWith('.js'));

  it('has no inline script, style or handler and only same-origin assets that exist', () => {
    const scripts = [...html.matchAll(/<script\b([^>]*)>([\s\S]*?)<\/script\s*>/gi)];
    expect(scripts.map(([, attributes, body]) => [attributes?.trim(), body?.trim()])).toEqual([
      ['type="module" src="/assets/app.js"', ''],
    ]);
    expect(html).not.toMatch(/<style\b|\sstyle\s*=|\son[a-z]+\s*=|javascript:|https?:\/\//i);
    const references = [...html.matchAll(/\s(?:src|href)\s*=\s*"([^"]*)"/gi)].map((match) => match[1] ?? '');
    expect(references).toEqual(['data:,', '/assets/style.css', '/assets/app.js']);
    for (const reference of references.filter((entry) => entry.startsWith('/assets/'))) {
      expect(existsSync(join(WEB_DIR, reference)), reference).toBe(true);
    }
  });

  it('builds every dynamic text with textContent and imports only modules that exist', () => {
    expect(modules).toContain('app.js');
    for (const name of modules) {
      const source = readFileSync(join(ASSETS_DIR, name), 'utf8');
      expect(source, name).not.toMatch(
        /innerHTML|outerHTML|insertAdjacentHTML|document\.write|eval\(|new Function|setAttribute\('style'/,
      );
      for (const [, target] of source.matchAll(/from '([^']+)';$/gm)) {
        expect(existsSync(join(ASSETS_DIR, target ?? '')), `${name} imports ${target}`).toBe(true);
      }
    }
  });
});

describe.skipIf(SKIP)('web UI in Chromium', () => {
  let app: TestServer;
  let browser: Browser;
  let context: BrowserContext;
  let page: Page;
  const pageErrors: string[] = [];
  const dialogs: string[] = [];

  /** A JSON API call with a token taken from the page (what the browser itself holds). */
  async function api(path: string, init: { method?: string; body?: unknown; token?: string } = {}) {
    const token =
      init.token ?? ((await page.evaluate(() => sessionStorage.getItem('rag.accessToken'))) as string);
    const response = await fetch(`${app.url}${path}`, {
      method: init.method ?? 'GET',
      headers: {
        Authorization: `Bearer ${token}`,
        'X-Requested-With': 'XMLHttpRequest',
        ...(init.body === undefined ? {} : { 'Content-Type': 'application/json' }),
      },
      body: init.body === undefined ? undefined : JSON.stringify(init.body),
    });
    const text = await response.text();
    return { status: response.status, body: text === '' ? null : (JSON.parse(text) as unknown) };
  }

  async function devLogin(email: string) {
    await page.locator('#dev-login-form').waitFor({ state: 'visible' });
    await page.fill('#dev-email', email);
    await page.click('#dev-login');
    await page.locator('#user-email', { hasText: email }).waitFor({ timeout: 5000 });
  }

  async function openTab(name: string) {
    await page.click(`.tabs [data-tab="${name}"]`);
    await page.locator(`#tab-${name}`).waitFor({ state: 'visible' });
  }

  beforeAll(async () => {
    [app, browser] = await Promise.all([
      startTestServer({ ALLOW_DEV_LOGIN: 'true' }),
      chromium.launch(CHROMIUM_LAUNCH_OPTIONS),
    ]);
    context = await browser.newContext({ viewport: { width: 1400, height: 1000 }, acceptDownloads: true });
    await context.route(
      (url) =>
        url.origin === app.url && !url.pathname.startsWith('/api/') && !url.pathname.startsWith('/assets/'),
      async (route) => {
        const response = await route.fetch();
        await route.fulfill({
          response,
          headers: { ...response.headers(), 'content-security-policy': PRODUCTION_CSP },
        });
      },
    );
    await context.addInitScript({ content: VIOLATION_PROBE });
    page = await context.newPage();
    page.on('pageerror', (error) => pageErrors.push(error.message));
    page.on('dialog', (dialog) => {
      dialogs.push(dialog.message());
      void dialog.dismiss();
    });
  }, 60_000);

  afterAll(async () => {
    await browser?.close();
    await app?.close();
  });

  it('shows the sign-in page with the dev login the server has enabled and signs in with it', async () => {
    const response = await page.goto(`${app.url}/`, { waitUntil: 'load' });
    expect(response?.status()).toBe(200);
    expect(response?.headers()['content-security-policy']).toBe(PRODUCTION_CSP);
    expect(PRODUCTION_CSP).not.toContain('unsafe-inline');
    await page.locator('body[data-ready="true"]').waitFor();
    expect(await page.isVisible('#login-form')).toBe(true);
    expect(await page.isVisible('#app-view')).toBe(false);
    expect(await page.textContent('#brand-name')).toBe('RAG Assistant');
    await devLogin(USER_EMAIL);
    expect(await page.isVisible('#login-view')).toBe(false);
    // a plain user sees no admin or branding tab
    expect(await page.isHidden('.tabs [data-tab="admin"]')).toBe(true);
    expect(await page.isHidden('.tabs [data-tab="branding"]')).toBe(true);
    expect(await page.isHidden('#user-role')).toBe(true);
  });

  it('creates a store and selects it', async () => {
    await page.fill('#store-name', 'Turbines');
    await page.click('#store-form button[type="submit"]');
    const store = page.locator('#store-list li.store.selected', { hasText: 'Turbines' });
    await store.waitFor({ timeout: 5000 });
    expect(await store.locator('.store-count').textContent()).toBe('0 documents');
    await page.locator('#documents-title', { hasText: 'Documents — Turbines' }).waitFor();
    expect(await page.textContent('#drop-store-name')).toBe('Turbines');
  });

  it('uploads a Markdown file with progress and shows it indexed live, then its chunks', async () => {
    await page.setInputFiles('#file-input', {
      name: 'turbine-handbook.md',
      mimeType: 'text/markdown',
      buffer: Buffer.from(HANDBOOK),
    });
    const upload = page.locator('#upload-list li.upload', { hasText: 'turbine-handbook.md' });
    await upload.waitFor({ timeout: 5000 });
    await page.locator('#upload-list li.upload[data-status="DONE"]').waitFor({ timeout: 15_000 });
    expect(await upload.locator('progress').getAttribute('value')).toBe('100');
    expect(await upload.locator('.upload-state').textContent()).toMatch(/^DONE Indexed: \d+ chunks?$/);

    const row = page.locator('#document-table tbody tr[data-status="DONE"]', {
      hasText: 'turbine-handbook.md',
    });
    await row.waitFor({ timeout: 5000 });
    expect(Number(await row.locator('.doc-chunks').textContent())).toBeGreaterThanOrEqual(1);
    await page.locator('#store-list li.store.selected .store-count', { hasText: '1 document' }).waitFor();

    await row.locator('button', { hasText: 'Chunks' }).click();
    await page.locator('#chunk-viewer').waitFor({ state: 'visible' });
    expect(await page.locator('#chunk-list .chunk-text').first().textContent()).toContain(FACT);
    expect(await page.textContent('#chunk-range')).toMatch(/^Chunks 1–\d+ of \d+$/);
  });

  it('shows an indexing error with its text and retries it', async () => {
    // a failed ingestion, as the pipeline leaves it (status ERROR with a sanitized message)
    await app.context.db.kysely
      .updateTable('documents')
      .set({ status: 'ERROR', last_error: 'Simulated parser crash' })
      .where('filename', '=', 'turbine-handbook.md')
      .execute();
    await page.reload();
    const failed = page.locator('#document-table tbody tr[data-status="ERROR"]', {
      hasText: 'turbine-handbook.md',
    });
    await failed.waitFor({ timeout: 5000 });
    expect(await failed.locator('.doc-error').textContent()).toBe('Simulated parser crash');
    await failed.locator('button.retry', { hasText: 'Retry' }).click();
    await page
      .locator('#document-table tbody tr[data-status="DONE"]', { hasText: 'turbine-handbook.md' })
      .waitFor({ timeout: 10_000 });
    expect(await page.locator('#document-table .doc-error').count()).toBe(0);
  });

  it('uploads by drag and drop and shows a refused file with the server message', async () => {
    await page.evaluate(() => {
      const transfer = new DataTransfer();
      transfer.items.add(
        new File(['%PDF-1.4 but really plain text'], 'fake.pdf', { type: 'application/pdf' }),
      );
      const zone = document.getElementById('drop-zone');
      zone?.dispatchEvent(
        new DragEvent('dragover', { dataTransfer: transfer, bubbles: true, cancelable: true }),
      );
      zone?.dispatchEvent(new DragEvent('drop', { dataTransfer: transfer, bubbles: true, cancelable: true }));
    });
    const failed = page.locator('#upload-list li.upload[data-status="FAILED"]', { hasText: 'fake.pdf' });
    await failed.waitFor({ timeout: 5000 });
    expect(await failed.locator('.upload-error').textContent()).toBe(
      'File content does not match declared type',
    );
  });

  it('streams an answer with the fact and a "Source 1" chip, and shows the citation with highlights', async () => {
    await openTab('chat');
    // the default welcome text and suggested prompts come from GET /api/settings
    expect(await page.textContent('#welcome-text')).toBe(
      "Hi! I'm your RAG assistant. Ask me anything about your documents.",
    );
    expect(await page.locator('#suggested-prompts button').allTextContents()).toEqual([
      'Summarize the key findings from my uploads.',
      'What are the main risks or open questions?',
      'Create an outline using the latest documents.',
    ]);

    const chatResponse = page.waitForResponse((response) => response.url().endsWith('/api/chat'));
    await page.fill('#question', QUESTION);
    await page.click('#send');
    const response = await chatResponse;
    expect(response.headers()['content-type']).toMatch(/^text\/event-stream/);
    expect(await response.request().headerValue('x-requested-with')).toBe('XMLHttpRequest');

    const answer = page.locator('#messages li.message.assistant').last();
    await answer.locator('.message-text', { hasText: '42 megawatts' }).waitFor({ timeout: 10_000 });
    await page.locator('#messages li.message.assistant:not(.streaming)').waitFor();
    expect(await answer.locator('.message-text').textContent()).toContain(FACT.replace(/\.$/, ''));
    expect(await answer.getAttribute('data-grounded')).toBe('true');
    expect(await answer.locator('.message-meta').textContent()).toMatch(/^offline · gemini-2\.5-flash · \$/);
    // the [1] marker is a chip, not text
    expect(await answer.locator('.message-text').textContent()).not.toContain('[1]');
    const chip = answer.locator('button.source-chip', { hasText: 'Source 1' });
    expect(await chip.count()).toBeGreaterThanOrEqual(1);
    expect(await page.locator('#messages li.message.user .message-text').textContent()).toBe(QUESTION);

    await chip.first().click();
    const citation = page.locator('#citation-list li.citation[data-source="1"]');
    await citation.waitFor();
    expect(await citation.getAttribute('class')).toContain('active');
    expect(await citation.locator('.citation-number').textContent()).toBe('Source 1');
    expect(await citation.locator('.citation-title').textContent()).toBe('turbine-handbook.md');
    // Markdown has no pages: no page line
    expect(await citation.locator('.citation-page').count()).toBe(0);
    const snippet = (await citation.locator('.citation-snippet').textContent()) ?? '';
    expect(snippet).toContain(FACT);
    const highlighted = (await citation.locator('.citation-snippet mark').allTextContents()).map((text) =>
      text.toLowerCase(),
    );
    expect(highlighted).toEqual(expect.arrayContaining(['zephyr', 'turbine']));
  });

  it('downloads the original file of a citation with the token', async () => {
    const downloadEvent = page.waitForEvent('download');
    await page.click('#citation-list li.citation[data-source="1"] .citation-file');
    const download = await downloadEvent;
    expect(download.suggestedFilename()).toBe('turbine-handbook.md');
    const path = await download.path();
    expect(readFileSync(path, 'utf8')).toBe(HANDBOOK);
  });

  it('lists the session, renames it, and restores it with its sources after a reload', async () => {
    const session = page.locator('#session-list li.session', { hasText: QUESTION });
    await session.waitFor({ timeout: 5000 });
    await session.locator('.session-rename').click();
    const input = page.locator('#session-list .session-title-input');
    await input.fill('Turbine output');
    await page.click('#session-list .session-rename-form button[type="submit"]');
    await page.locator('#session-list li.session .session-open', { hasText: 'Turbine output' }).waitFor();

    const stores = await api('/api/stores');
    const storeId = (stores.body as { id: number; display_name: string }[]).find(
      (store) => store.display_name === 'Turbines',
    )?.id;
    const sessions = await api(`/api/chat/sessions?storeId=${storeId}`);
    expect((sessions.body as { title: string }[]).map((entry) => entry.title)).toEqual(['Turbine output']);

    await page.reload();
    await page.locator('#user-email', { hasText: USER_EMAIL }).waitFor({ timeout: 5000 });
    await openTab('chat');
    await page.click('#session-list li.session .session-open');
    await page
      .locator('#messages li.message.assistant button.source-chip', { hasText: 'Source 1' })
      .first()
      .waitFor();
    expect(await page.locator('#messages li.message').count()).toBe(2);
    expect(await page.locator('#citation-list li.citation .citation-title').first().textContent()).toBe(
      'turbine-handbook.md',
    );
  });

  it('shows store names as text: a refused HTML name gives the message, an accepted one stays text', async () => {
    await page.fill('#store-name', REJECTED_NAME);
    await page.click('#store-form button[type="submit"]');
    const message = page.locator('#store-message');
    await message.waitFor({ state: 'visible' });
    expect(await message.textContent()).not.toBe('');

    await page.fill('#store-name', HTML_NAME);
    await page.click('#store-form button[type="submit"]');
    const store = page.locator('#store-list li.store.selected .store-name');
    await page.locator('#store-list li.store.selected', { hasText: 'R&D' }).waitFor({ timeout: 5000 });
    expect(await store.textContent()).toBe(HTML_NAME);
    expect(await page.textContent('#drop-store-name')).toBe(HTML_NAME);
    expect(await page.locator('#store-list img, #store-list b, #documents-title b').count()).toBe(0);
    expect(await page.evaluate('window.__injected ?? null')).toBeNull();
    expect(dialogs).toEqual([]);

    // deleting needs a second click
    const remove = page.locator('#store-list li.store.selected .store-delete');
    await remove.click();
    expect(await remove.textContent()).toBe('Confirm delete?');
    await remove.click();
    await page.locator('#store-list li.store', { hasText: 'R&D' }).waitFor({ state: 'detached' });
  });

  it('shows the month figures without a budget', async () => {
    await openTab('costs');
    await page.locator('#cost-figures .figure').first().waitFor();
    const labels = await page.locator('#cost-figures dt').allTextContents();
    expect(labels).toEqual([
      'Queries',
      'Indexing',
      'Total',
      'Prompt tokens',
      'Completion tokens',
      'Index tokens',
    ]);
    expect(await page.textContent('#budget-text')).toBe('No monthly budget: spending is unlimited.');
    expect(await page.isHidden('#budget-alert')).toBe(true);
    expect(await page.locator('#cost-history tbody tr').count()).toBe(6);
  });

  it('gives an admin the admin panel: budgets, audit, and branding applied live', async () => {
    await page.click('#logout');
    await page.locator('#login-view').waitFor({ state: 'visible' });
    await devLogin(ADMIN_EMAIL);
    // promoted in the database, as create-first-admin would have made it
    await app.context.db.kysely
      .updateTable('users')
      .set({ is_admin: true })
      .where('email', '=', ADMIN_EMAIL)
      .execute();
    await page.reload();
    await page.locator('#user-role').waitFor({ state: 'visible', timeout: 5000 });

    await openTab('admin');
    const userRow = page.locator(`#user-table tbody tr[data-email="${USER_EMAIL}"]`);
    await userRow.waitFor({ timeout: 5000 });
    expect(await page.locator('#system-cards [data-stat="users"] .stat-value').textContent()).toBe('2');
    // admins cannot demote or deactivate themselves from the table
    expect(
      await page.locator(`#user-table tbody tr[data-email="${ADMIN_EMAIL}"] .user-admin`).isDisabled(),
    ).toBe(true);

    await userRow.locator('.budget-input').fill('0');
    await userRow.locator('.budget-save').click();
    await page.locator('#admin-message', { hasText: `Budget of ${USER_EMAIL} set to $0.00.` }).waitFor();
    await page.locator('#audit-table tbody tr[data-action="set_budget"]').waitFor({ timeout: 5000 });
    const users = await api('/api/admin/users');
    const reader = (users.body as { email: string; monthly_limit_usd: number | null }[]).find(
      (user) => user.email === USER_EMAIL,
    );
    expect(reader?.monthly_limit_usd).toBe(0);
    await page.locator(`#usage-table tbody tr`, { hasText: USER_EMAIL }).waitFor();

    // the ingestion overview lists failed documents of every user, with a retry
    await app.context.db.kysely
      .updateTable('documents')
      .set({ status: 'ERROR', last_error: 'Simulated embedding outage' })
      .where('filename', '=', 'turbine-handbook.md')
      .execute();
    await page.selectOption('#ingestion-status', 'ERROR');
    const failed = page.locator('#ingestion-table tbody tr[data-status="ERROR"]', { hasText: USER_EMAIL });
    await failed.waitFor({ timeout: 5000 });
    expect(await failed.locator('.doc-error').textContent()).toBe('Simulated embedding outage');
    await failed.locator('button.retry').click();
    await page
      .locator('#admin-message', { hasText: 'Document turbine-handbook.md queued for indexing.' })
      .waitFor();
    await page.locator('#audit-table tbody tr[data-action="retry_document"]').waitFor({ timeout: 5000 });

    const watchdog = page.locator('#watchdog-result');
    await page.click('#watchdog-run');
    await watchdog.waitFor({ state: 'visible' });
    expect(await watchdog.textContent()).toBe('Watchdog reset 0 stuck document(s).');

    await openTab('branding');
    expect(await page.inputValue('#setting-app_name')).toBe('RAG Assistant');
    await page.fill('#setting-app_name', 'Acme <Knowledge>');
    await page.selectOption('#setting-app_icon', 'book');
    await page.selectOption('#setting-theme_preset', 'gradient');
    await page.fill('#setting-welcome_message', 'Welcome to Acme.');
    await page.click('#branding-save');
    await page.locator('#brand-name', { hasText: 'Acme <Knowledge>' }).waitFor({ timeout: 5000 });
    expect(await page.title()).toBe('Acme <Knowledge>');
    expect(await page.textContent('#brand-icon')).toBe('📖');
    expect(await page.getAttribute('html', 'data-theme')).toBe('gradient');
    expect(await page.textContent('#branding-message')).toBe('Branding saved.');

    // a new visitor gets the branding from GET /api/settings before signing in
    const visitor = await context.browser()?.newPage();
    try {
      await visitor?.goto(`${app.url}/`);
      await visitor?.locator('body[data-ready="true"]').waitFor();
      expect(await visitor?.textContent('#brand-name')).toBe('Acme <Knowledge>');
      expect(await visitor?.getAttribute('html', 'data-theme')).toBe('gradient');
    } finally {
      await visitor?.close();
    }
    await openTab('chat');
    expect(await page.textContent('#welcome-text')).toBe('Welcome to Acme.');
    expect(pageErrors).toEqual([]);
    expect(await page.evaluate('window.__violations')).toEqual([]);
  });

  it('shows a user over budget the full bar, the alert, and the chat refusal', async () => {
    await page.click('#logout');
    await devLogin(USER_EMAIL);
    await openTab('costs');
    const budget = page.locator('#budget-text', { hasText: /of \$0\.00 used \(100\.0 %\)/ });
    await budget.waitFor({ timeout: 5000 });
    expect(await budget.textContent()).toMatch(/^\$0\.\d+ of \$0\.00 used \(100\.0 %\), \$0\.00 left$/);
    expect(await page.textContent('#budget-alert')).toBe(
      "Budget alert: 100.0 % of this month's budget is used.",
    );
    expect(await page.getAttribute('#budget-bar', 'aria-valuenow')).toBe('100');
    expect(await page.evaluate(() => document.getElementById('budget-fill')?.style.width)).toBe('100%');

    await openTab('chat');
    await page.fill('#question', QUESTION);
    await page.click('#send');
    await page.locator('#chat-message', { hasText: 'Monthly budget exhausted' }).waitFor({ timeout: 5000 });
    expect(await page.locator('#messages li.message.assistant').count()).toBe(0);
    expect(await page.evaluate('window.__violations')).toEqual([]);
  });

  it('registers with the password policy and signs in with a password', async () => {
    await page.click('#logout');
    await page.locator('#login-view').waitFor({ state: 'visible' });
    await page.click('#register-section summary');
    await page.fill('#register-email', 'writer@example.com');
    await page.fill('#register-password', 'abcdef1!');
    await page.click('#register-form button[type="submit"]');
    await page
      .locator('#register-message', { hasText: 'Weak password: require upper, lower, digit' })
      .waitFor();
    await page.fill('#register-password', 'Abcdef1!');
    await page.click('#register-form button[type="submit"]');
    await page.locator('#register-message', { hasText: 'Account created. You can sign in now.' }).waitFor();
    expect(await page.inputValue('#login-email')).toBe('writer@example.com');

    await page.fill('#login-password', 'Wrong-pass1');
    await page.click('#login-form button[type="submit"]');
    await page.locator('#login-message', { hasText: 'Invalid credentials' }).waitFor();
    await page.fill('#login-password', 'Abcdef1!');
    await page.click('#login-form button[type="submit"]');
    await page.locator('#user-email', { hasText: 'writer@example.com' }).waitFor({ timeout: 5000 });
    await page.locator('#store-empty').waitFor({ state: 'visible' });
    expect(await page.locator('#store-list li').count()).toBe(0);
    expect(pageErrors).toEqual([]);
  });

  it('offers no dev login when the server has it disabled', async () => {
    const plain = await startTestServer();
    const visitor = await context.newPage();
    try {
      await visitor.goto(`${plain.url}/`);
      await visitor.locator('body[data-ready="true"]').waitFor();
      expect(await visitor.isVisible('#login-form')).toBe(true);
      expect(await visitor.isHidden('#dev-login-form')).toBe(true);
    } finally {
      await visitor.close();
      await plain.close();
    }
  });
});
