// The web console in a real browser (spec §5 item 5, §8 case 47): Debian's chromium driven by
// playwright-core against the compiled server.
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CHROMIUM_LAUNCH_OPTIONS, CHROMIUM_PATH } from '@quintet/kernel/testing';
import { type Browser, type BrowserContext, chromium, type Page, type Response } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildDocx, paragraphXml, tableXml } from '../../src/domain/docx/build.js';
import { documentParagraphTexts } from '../helpers/http.js';
import { type DocopsProcess, startDocops } from '../helpers/server.js';

const HAS_CHROMIUM = existsSync(CHROMIUM_PATH);
if (!HAS_CHROMIUM) console.warn(`web console browser tests skipped: ${CHROMIUM_PATH} is absent`);

const EXPECTED_CSP =
  "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'";

const MEETING_TASK = { task_type: 'meeting_notice', payload: { meeting_title: 'Kickoff' } };

interface ConsolePage {
  page: Page;
  /** the response to GET /web */
  response: Response;
  /** console errors, page errors and CSP violations seen since the page was opened */
  problems: string[];
}

declare global {
  interface Window {
    cspViolations: string[];
    /** parts of each multipart body the page posted: names, with the filename for file parts */
    sentParts: string[][];
  }
}

describe.skipIf(!HAS_CHROMIUM)('web console in chromium', () => {
  let server: DocopsProcess;
  let browser: Browser;
  let context: BrowserContext;
  let page: Page;
  let dir: string;
  const problems: string[] = [];
  const templates = { title: '', table: '', notDocx: '' };

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'docops-web-test-'));
    const write = (name: string, bytes: Uint8Array | string) => {
      const path = join(dir, name);
      writeFileSync(path, bytes);
      return path;
    };
    templates.title = write('title.docx', buildDocx({ paragraphs: ['Title: 【MEETING_TITLE】'] }));
    templates.table = write(
      'table.docx',
      buildDocx({ body: paragraphXml('Title: 【MEETING_TITLE】') + tableXml([['Item', 'Owner']]) }),
    );
    templates.notDocx = write('renamed.docx', 'not-a-docx');
    [server, browser] = await Promise.all([startDocops(), chromium.launch(CHROMIUM_LAUNCH_OPTIONS)]);
    // One page for all cases (a new page costs seconds here); each case navigates afresh.
    context = await browser.newContext({ viewport: { width: 1024, height: 800 }, acceptDownloads: true });
    // Runs before the page's own script: records CSP violations and the part names of posted forms.
    await context.addInitScript(() => {
      window.cspViolations = [];
      window.sentParts = [];
      document.addEventListener('securitypolicyviolation', (event) => {
        window.cspViolations.push(`${event.violatedDirective} ${event.blockedURI}`);
      });
      const originalFetch = window.fetch.bind(window);
      window.fetch = (input, init) => {
        if (init?.body instanceof FormData) {
          const parts = [...init.body.entries()];
          window.sentParts.push(
            parts.map(([name, value]) => (value instanceof File ? `${name}:${value.name}` : name)),
          );
        }
        return originalFetch(input, init);
      };
    });
    page = await context.newPage();
    page.on('console', (message) => {
      if (message.type() === 'error' || /Content Security Policy/i.test(message.text())) {
        problems.push(`console ${message.type()}: ${message.text()}`);
      }
    });
    page.on('pageerror', (error) => problems.push(`pageerror: ${error.message}`));
  });

  afterAll(async () => {
    await context?.close();
    await browser?.close();
    await server?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  /** Opens /web afresh and waits until /v1/meta has been applied. */
  async function openConsole(): Promise<ConsolePage> {
    problems.length = 0;
    const response = await page.goto(`${server.baseUrl}/web`);
    if (!response) throw new Error('no response for /web');
    expect(response.status()).toBe(200);
    await page.locator('#meta-status[data-state="ready"]').waitFor({ state: 'attached' });
    return { page, response, problems };
  }

  async function cspViolations(page: Page): Promise<string[]> {
    return page.evaluate(() => window.cspViolations);
  }

  async function sentParts(page: Page): Promise<string[][]> {
    return page.evaluate(() => window.sentParts);
  }

  /** Submits the form and waits for that run to finish; says which panel it showed. */
  async function submit(page: Page): Promise<'result' | 'error'> {
    const before = Number((await page.getAttribute('#run-form', 'data-run-count')) ?? '0');
    await page.click('#submit');
    await page.locator(`#run-form[data-run-count="${before + 1}"]`).waitFor({ state: 'attached' });
    return (await page.locator('#result').isVisible()) ? 'result' : 'error';
  }

  async function runTemplate(page: Page, template: string, task: unknown): Promise<'result' | 'error'> {
    await page.setInputFiles('#template', template);
    await page.fill('#task', typeof task === 'string' ? task : JSON.stringify(task));
    return submit(page);
  }

  async function noHorizontalScroll(page: Page): Promise<boolean> {
    return page.evaluate(() => document.documentElement.scrollWidth <= window.innerWidth);
  }

  it('loads with its title, the CSP header and the pickers from /v1/meta, without console errors', async () => {
    const { page, response, problems } = await openConsole();
    expect(response.headers()['content-security-policy']).toBe(EXPECTED_CSP);
    expect(response.headers()['x-frame-options']).toBe('DENY');
    expect(await page.title()).toBe('DocOps Web Console');
    const meta = (await (await fetch(`${server.baseUrl}/v1/meta`)).json()) as {
      version: string;
      features: { pdf_export: boolean };
    };

    const skills = await page
      .locator('#skill option')
      .evaluateAll((options) => options.map((option) => (option as HTMLOptionElement).value));
    expect(skills).toEqual(
      expect.arrayContaining(['meeting_notice', 'training_notice', 'inspection_record']),
    );
    expect(await page.inputValue('#skill')).toBe('meeting_notice');
    const presets = await page
      .locator('#preset option')
      .evaluateAll((options) =>
        options.map((option) => [(option as HTMLOptionElement).value, option.textContent]),
      );
    expect(presets).toEqual([
      ['', '(default: quick)'],
      ['quick', 'quick'],
      ['template', 'template'],
      ['strict', 'strict'],
    ]);
    expect(await page.textContent('#meta-version')).toBe(meta.version);
    expect(await page.isEnabled('#pdf')).toBe(meta.features.pdf_export);

    // The task editor holds a skeleton of the selected skill's fields.
    expect(JSON.parse(await page.inputValue('#task'))).toEqual({
      task_type: 'meeting_notice',
      payload: {
        attendees: [],
        meeting_date: '',
        meeting_location: '',
        meeting_time: '',
        meeting_title: '',
        organizer: '',
      },
    });
    // An untouched skeleton follows the skill picker ...
    await page.selectOption('#skill', 'inspection_record');
    const inspection = JSON.parse(await page.inputValue('#task')) as { task_type: string; payload: object };
    expect(inspection.task_type).toBe('inspection_record');
    expect(Object.keys(inspection.payload)).toContain('issue_summary');
    // ... an edited task is kept, and the page offers the skeleton instead of overwriting.
    await page.fill('#task', JSON.stringify(MEETING_TASK));
    await page.selectOption('#skill', 'training_notice');
    expect(JSON.parse(await page.inputValue('#task'))).toEqual(MEETING_TASK);
    expect(await page.isVisible('#task-notice')).toBe(true);
    await page.click('#task-notice-replace');
    expect((JSON.parse(await page.inputValue('#task')) as { task_type: string }).task_type).toBe(
      'training_notice',
    );

    // Every form control has a label.
    const unlabelled = await page.evaluate(() =>
      [...document.querySelectorAll('input, select, textarea')]
        .filter((element) => (element as HTMLInputElement).labels?.length === 0)
        .map((element) => element.id),
    );
    expect(unlabelled).toEqual([]);
    expect(await noHorizontalScroll(page)).toBe(true);
    expect(await cspViolations(page)).toEqual([]);
    expect(problems).toEqual([]);
  });

  it('runs a template, shows exit 0 and the replace log, and downloads out.docx and the zip', async () => {
    const { page, problems } = await openConsole();
    expect(await runTemplate(page, templates.title, MEETING_TASK)).toBe('result');

    expect(await page.textContent('#exit-code')).toBe('0');
    expect(await page.textContent('#exit-message')).toBe('success');
    expect(await page.textContent('#request-id')).toMatch(/^[0-9a-f]{32}$/);
    const row = page.locator('#replace-log tbody tr[data-status="replaced"]');
    expect(await row.count()).toBe(1);
    expect(await row.getAttribute('data-field')).toBe('MEETING_TITLE');
    expect(await row.textContent()).toContain('Kickoff');
    expect(await row.textContent()).toContain('p0:r0');
    expect(await page.textContent('#missing-required')).toBe('none');
    expect(await page.textContent('#format-passed')).toBe('passed');
    expect(await page.textContent('#timings')).toContain('server total');

    // Only what the user set is sent: no preset, no strict=false, no empty options.
    expect(await sentParts(page)).toEqual([['template:title.docx', 'task:task.json', 'skill']]);

    const [docxDownload] = await Promise.all([page.waitForEvent('download'), page.click('#download-docx')]);
    expect(docxDownload.suggestedFilename()).toBe('out.docx');
    const docx = readFileSync((await docxDownload.path()) as string);
    expect(docx.subarray(0, 2).toString('latin1')).toBe('PK');
    expect(documentParagraphTexts(new Uint8Array(docx))).toContain('Title: Kickoff');

    const [zipDownload] = await Promise.all([page.waitForEvent('download'), page.click('#download-zip')]);
    expect(zipDownload.suggestedFilename()).toBe('docops_outputs.zip');
    const zip = readFileSync((await zipDownload.path()) as string);
    expect(zip.subarray(0, 4).toString('latin1')).toBe('PK\x03\x04');
    expect(await page.textContent('#zip-entries')).toBe(
      'out.docx, out.replace_log.json, out.missing_fields.json, out.format_report.json, api_result.json',
    );

    expect(await noHorizontalScroll(page)).toBe(true);
    expect(await cspViolations(page)).toEqual([]);
    expect(problems).toEqual([]);
  });

  it('shows exit 2 and MEETING_TITLE as missing for an empty payload, driven from the keyboard', async () => {
    const { page, problems } = await openConsole();
    await page.setInputFiles('#template', templates.title);
    await page.fill('#task', JSON.stringify({ task_type: 'meeting_notice', payload: {} }));
    // From the task editor, Tab reaches the Run button and Enter submits; focus then moves to the result.
    await page.focus('#task');
    for (
      let step = 0;
      step < 20 && (await page.evaluate(() => document.activeElement?.id)) !== 'submit';
      step++
    ) {
      await page.keyboard.press('Tab');
    }
    expect(await page.evaluate(() => document.activeElement?.id)).toBe('submit');
    await page.keyboard.press('Enter');
    await page.locator('#run-form[data-run-count="1"]').waitFor({ state: 'attached' });
    expect(await page.evaluate(() => document.activeElement?.id)).toBe('result-heading');

    expect(await page.textContent('#exit-code')).toBe('2');
    expect(await page.textContent('#exit-message')).toBe('missing required fields');
    expect(await page.locator('#missing-required code').allTextContents()).toEqual(['MEETING_TITLE']);
    expect(await page.getAttribute('#replace-log tbody tr', 'data-status')).toBe('missing');
    expect(problems).toEqual([]);
  });

  it('shows exit 4 and the TABLE_FORBIDDEN issue with preset strict; a policy_yaml with the preset is accepted', async () => {
    const { page, problems } = await openConsole();
    await page.selectOption('#preset', 'strict');
    expect(await runTemplate(page, templates.table, MEETING_TASK)).toBe('result');
    expect(await page.textContent('#exit-code')).toBe('4');
    expect(await page.textContent('#exit-message')).toBe('format validation failed');
    expect(await page.textContent('#format-passed')).toBe('failed');
    const issue = page.locator('#format-issues tbody tr[data-code="TABLE_FORBIDDEN"]');
    expect(await issue.count()).toBe(1);
    expect(await issue.getAttribute('data-severity')).toBe('error');
    expect(await issue.textContent()).toContain('t0');
    expect(await page.textContent('#format-suggestions')).toContain('TABLE_FORBIDDEN');

    // The same run with a partial policy that allows tables: the preset and policy_yaml go together.
    await page.click('#advanced > summary');
    await page.fill('#policy_yaml', 'forbid_tables: false\n');
    expect(await submit(page)).toBe('result');
    expect(await page.textContent('#exit-code')).toBe('0');
    expect(await page.locator('#format-issues tbody tr[data-code="TABLE_FORBIDDEN"]').count()).toBe(0);
    expect(await page.textContent('#effective')).toContain('preset strict');
    expect(await sentParts(page)).toEqual([
      ['template:table.docx', 'task:task.json', 'skill', 'preset'],
      ['template:table.docx', 'task:task.json', 'skill', 'preset', 'policy_yaml'],
    ]);
    expect(problems).toEqual([]);
  });

  it('exports a PDF and offers out.pdf as its own download when the server can', { timeout: 90_000 }, async ({
    skip,
  }) => {
    const meta = (await (await fetch(`${server.baseUrl}/v1/meta`)).json()) as {
      features: { pdf_export: boolean };
    };
    if (!meta.features.pdf_export) skip('PDF export unavailable on this machine (no LibreOffice)');
    const { page, problems } = await openConsole();
    await page.check('#pdf');
    expect(await runTemplate(page, templates.title, MEETING_TASK)).toBe('result');
    expect(await page.textContent('#exit-code')).toBe('0');
    expect(await page.textContent('#pdf-status')).toBe('ok');
    expect(await sentParts(page)).toEqual([['template:title.docx', 'task:task.json', 'skill', 'pdf']]);
    const [download] = await Promise.all([page.waitForEvent('download'), page.click('#download-pdf')]);
    expect(download.suggestedFilename()).toBe('out.pdf');
    expect(
      readFileSync((await download.path()) as string)
        .subarray(0, 4)
        .toString('latin1'),
    ).toBe('%PDF');
    expect(problems).toEqual([]);
  });

  it('shows error_code, message and request id for a non-docx template', async () => {
    const { page, problems } = await openConsole();
    const responsePromise = page.waitForResponse((response) => response.url().endsWith('/v1/run'));
    expect(await runTemplate(page, templates.notDocx, MEETING_TASK)).toBe('error');
    const response = await responsePromise;
    expect(response.status()).toBe(415);
    expect(await page.textContent('#error-code')).toBe('INVALID_MEDIA_TYPE');
    expect(await page.textContent('#error-status')).toBe('415');
    expect((await page.textContent('#error-message'))?.length).toBeGreaterThan(0);
    expect(await page.textContent('#error-request-id')).toBe(response.headers()['x-docops-request-id']);
    expect(await page.textContent('#error-detail [data-detail-key="reason"] dd')).toBe('not_a_zip');
    expect(await page.isVisible('#result')).toBe(false);
    // The browser logs the failed request itself; nothing else may appear.
    expect(problems.filter((problem) => !/status of 415/.test(problem))).toEqual([]);
  });

  it('shows INVALID_ARGUMENT_CONFLICT with the conflicting fields for a preset with format_mode', async () => {
    const { page, problems } = await openConsole();
    await page.selectOption('#preset', 'strict');
    await page.click('#advanced > summary');
    await page.selectOption('#format_mode', 'report');
    expect(await page.isVisible('#option-conflict')).toBe(true);
    expect(await runTemplate(page, templates.title, MEETING_TASK)).toBe('error');
    expect(await page.textContent('#error-code')).toBe('INVALID_ARGUMENT_CONFLICT');
    expect(await page.textContent('#error-request-id')).toMatch(/^[0-9a-f]{32}$/);
    expect(await page.textContent('#error-detail [data-detail-key="conflicting_fields"] dd')).toBe(
      'format_mode',
    );
    expect(problems.filter((problem) => !/status of 400/.test(problem))).toEqual([]);
  });
});
