// The debug endpoints' toggles and basic auth, the metrics toggle and token, and CORS (spec S10, §3.8.1,
// §3.8.4, §3.8.7, §7 "Exposure"; acceptance cases 17, 18). Runs the compiled bin: `tsc -b` first.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildDocx } from '../../src/domain/docx/build.js';
import { expectError, startServers, stopServers } from '../helpers/contract.js';
import { postRun } from '../helpers/http.js';
import type { DocopsProcess } from '../helpers/server.js';

const CSP =
  "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'";
const TEMPLATE = buildDocx({ paragraphs: ['Title: 【MEETING_TITLE】'] });
const TASK = { task_type: 'meeting_notice', payload: { meeting_title: 'Kickoff' } };
const METRICS_TOKEN = 'm3trics-t0ken-value';
const CONSOLE_ORIGIN = 'http://console.example';

const basic = (credentials: string, scheme = 'Basic') =>
  `${scheme} ${Buffer.from(credentials).toString('base64')}`;

let disabled: DocopsProcess;
let guarded: DocopsProcess;
let colonPassword: DocopsProcess;
let secretDir: string;

beforeAll(async () => {
  secretDir = mkdtempSync(join(tmpdir(), 'docops-secret-'));
  writeFileSync(join(secretDir, 'basic-auth'), 'ops:pa:ss\n');
  ({ disabled, guarded, colonPassword } = await startServers({
    disabled: {
      env: {
        DOCOPS_ENABLE_WEB_CONSOLE: '0',
        DOCOPS_ENABLE_META: 'off',
        DOCOPS_WEB_BASIC_AUTH: 'u:p',
        DOCOPS_ENABLE_METRICS: 'false',
      },
    },
    guarded: {
      env: {
        DOCOPS_WEB_BASIC_AUTH: 'u:p',
        DOCOPS_METRICS_TOKEN: METRICS_TOKEN,
        DOCOPS_CORS_ORIGINS: `${CONSOLE_ORIGIN}, http://other.example`,
      },
    },
    colonPassword: { env: { DOCOPS_WEB_BASIC_AUTH_FILE: join(secretDir, 'basic-auth') } },
  }));
});

afterAll(async () => {
  await stopServers({ disabled, guarded, colonPassword });
  if (secretDir) rmSync(secretDir, { recursive: true, force: true });
});

describe('disabled endpoints (case 17)', () => {
  it('/web, its assets and /v1/meta are 404 NOT_FOUND, with or without credentials', async () => {
    for (const path of ['/web', '/web/', '/web/assets/app.js', '/v1/meta']) {
      for (const headers of [{}, { authorization: basic('u:p') }] as Record<string, string>[]) {
        const response = await fetch(`${disabled.baseUrl}${path}`, { headers });
        expect(response.headers.has('www-authenticate')).toBe(false);
        await expectError(response, 404, 'NOT_FOUND', { path });
      }
    }
  });

  it('DOCOPS_ENABLE_METRICS=0 → /metrics is 404', async () => {
    await expectError(await fetch(`${disabled.baseUrl}/metrics`), 404, 'NOT_FOUND', { path: '/metrics' });
  });

  it('the toggles do not change /v1/run', async () => {
    const response = await postRun(disabled.baseUrl, { template: TEMPLATE, task: TASK });
    expect(response.status).toBe(200);
    expect(response.headers.get('x-docops-exit-code')).toBe('0');
    await response.arrayBuffer();
  });

  it('without DOCOPS_CORS_ORIGINS no CORS header is sent', async () => {
    const response = await fetch(`${disabled.baseUrl}/healthz`, { headers: { origin: CONSOLE_ORIGIN } });
    expect(response.headers.has('access-control-allow-origin')).toBe(false);
    expect(response.headers.has('access-control-expose-headers')).toBe(false);
    const preflight = await fetch(`${disabled.baseUrl}/v1/run`, {
      method: 'OPTIONS',
      headers: { origin: CONSOLE_ORIGIN, 'access-control-request-method': 'POST' },
    });
    expect(preflight.headers.has('access-control-allow-origin')).toBe(false);
    await preflight.arrayBuffer();
  });
});

describe('DOCOPS_WEB_BASIC_AUTH=u:p (case 18)', () => {
  const unauthorized = (path: string) => ({ path, auth_enabled: true });

  it('/web and /v1/meta without credentials → 401 with a Basic challenge', async () => {
    for (const path of ['/web', '/web/assets/app.js', '/v1/meta']) {
      const response = await fetch(`${guarded.baseUrl}${path}`);
      expect(response.headers.get('www-authenticate')).toBe('Basic realm="docops"');
      await expectError(response, 401, 'UNAUTHORIZED', unauthorized(path));
    }
  });

  it('wrong, malformed or non-basic credentials → 401', async () => {
    for (const authorization of [
      basic('u:wrong'),
      basic('U:p'),
      basic('u'),
      basic('u:p', 'Bearer'),
      'Basic !!!not-base64!!!',
      'Basic',
      `Basic ${Buffer.from('u:p').toString('base64')} extra`,
    ]) {
      const response = await fetch(`${guarded.baseUrl}/v1/meta`, { headers: { authorization } });
      expect(response.headers.get('www-authenticate')).toBe('Basic realm="docops"');
      await expectError(response, 401, 'UNAUTHORIZED', unauthorized('/v1/meta'));
    }
  });

  it('with u:p → 200; the scheme name is case-insensitive', async () => {
    for (const authorization of [basic('u:p'), basic('u:p', 'basic'), basic('u:p', 'BASIC')]) {
      const meta = await fetch(`${guarded.baseUrl}/v1/meta`, { headers: { authorization } });
      expect(meta.status).toBe(200);
      expect(((await meta.json()) as { supported_skills: string[] }).supported_skills).toContain(
        'meeting_notice',
      );
    }
    const page = await fetch(`${guarded.baseUrl}/web`, { headers: { authorization: basic('u:p', 'basic') } });
    expect(page.status).toBe(200);
    expect(page.headers.get('content-type')).toMatch(/^text\/html/);
    expect(page.headers.get('content-security-policy')).toBe(CSP);
    expect(page.headers.get('x-frame-options')).toBe('DENY');
    expect(page.headers.get('referrer-policy')).toBe('no-referrer');
    expect(page.headers.get('x-content-type-options')).toBe('nosniff');
    const html = await page.text();
    expect(html).toContain('<title>DocOps Web Console</title>');
    expect(html).not.toMatch(/<script(?![^>]*\bsrc=)[^>]*>/);
    const asset = await fetch(`${guarded.baseUrl}/web/assets/app.js`, {
      headers: { authorization: basic('u:p') },
    });
    expect(asset.status).toBe(200);
    expect(asset.headers.get('content-type')).toMatch(/javascript/);
    await asset.arrayBuffer();
  });

  it('/v1/run, /v1/inspect and /healthz are never guarded', async () => {
    const run = await postRun(guarded.baseUrl, { template: TEMPLATE, task: TASK });
    expect(run.status).toBe(200);
    await run.arrayBuffer();
    const inspect = await postRun(guarded.baseUrl, { template: TEMPLATE }, '/v1/inspect');
    expect(inspect.status).toBe(200);
    await inspect.arrayBuffer();
    expect((await fetch(`${guarded.baseUrl}/healthz`)).status).toBe(200);
  });

  it('secrets never reach the logs', async () => {
    const stdout = JSON.stringify(guarded.logs()) + guarded.stderr();
    expect(stdout).not.toContain(Buffer.from('u:p').toString('base64'));
    expect(stdout).not.toContain(METRICS_TOKEN);
  });
});

describe('a password with colons, from DOCOPS_WEB_BASIC_AUTH_FILE', () => {
  it('splits at the first colon; the file content loses its trailing newline', async () => {
    expect(
      (await fetch(`${colonPassword.baseUrl}/v1/meta`, { headers: { authorization: basic('ops:pa:ss') } }))
        .status,
    ).toBe(200);
    for (const credentials of ['ops:pa', 'ops:pa:ss\n', 'ops:pa:']) {
      const response = await fetch(`${colonPassword.baseUrl}/v1/meta`, {
        headers: { authorization: basic(credentials) },
      });
      await expectError(response, 401, 'UNAUTHORIZED', { path: '/v1/meta', auth_enabled: true });
    }
  });
});

describe('/metrics with DOCOPS_METRICS_TOKEN', () => {
  it('401 without or with a wrong bearer token, 200 with it', async () => {
    await expectError(await fetch(`${guarded.baseUrl}/metrics`), 401, 'UNAUTHORIZED', { path: '/metrics' });
    await expectError(
      await fetch(`${guarded.baseUrl}/metrics`, { headers: { authorization: 'Bearer nope' } }),
      401,
      'UNAUTHORIZED',
      {
        path: '/metrics',
      },
    );
    // Basic credentials of the debug endpoints do not open /metrics.
    await expectError(
      await fetch(`${guarded.baseUrl}/metrics`, { headers: { authorization: basic('u:p') } }),
      401,
      'UNAUTHORIZED',
      {
        path: '/metrics',
      },
    );
    const scrape = async () => {
      const response = await fetch(`${guarded.baseUrl}/metrics`, {
        headers: { authorization: `Bearer ${METRICS_TOKEN}` },
      });
      expect(response.status).toBe(200);
      expect(response.headers.get('content-type')).toMatch(/^text\/plain/);
      expect(response.headers.get('x-content-type-options')).toBe('nosniff');
      expect(response.headers.get('x-docops-request-id')).toMatch(/^[0-9a-f]{32}$/);
      return response.text();
    };
    const okRuns = (text: string) =>
      Number(/^docops_runs_total\{outcome="ok"\} (\d+)$/m.exec(text)?.[1] ?? 0);
    const before = okRuns(await scrape());
    const run = await postRun(guarded.baseUrl, { template: TEMPLATE, task: TASK });
    await run.arrayBuffer();
    const text = await scrape();
    expect(okRuns(text)).toBe(before + 1);
    for (const name of [
      'docops_runs_total',
      'docops_run_duration_seconds',
      'docops_queue_wait_seconds',
      'docops_inflight_jobs',
      'docops_idle_workers',
      'docops_worker_kills_total',
      'http_requests_total',
    ]) {
      expect(text).toContain(`# TYPE ${name} `);
    }
  });
});

describe('CORS with DOCOPS_CORS_ORIGINS', () => {
  it('a listed origin gets the allow header and the exposed headers; others get none', async () => {
    const response = await postRun(guarded.baseUrl, { template: TEMPLATE, task: TASK });
    await response.arrayBuffer();
    const listed = await fetch(`${guarded.baseUrl}/healthz`, { headers: { origin: CONSOLE_ORIGIN } });
    expect(listed.headers.get('access-control-allow-origin')).toBe(CONSOLE_ORIGIN);
    const exposed = (listed.headers.get('access-control-expose-headers') ?? '')
      .toLowerCase()
      .split(/\s*,\s*/);
    expect(exposed).toEqual(
      expect.arrayContaining(['x-docops-exit-code', 'x-docops-request-id', 'content-disposition']),
    );

    const other = await fetch(`${guarded.baseUrl}/healthz`, { headers: { origin: 'http://evil.example' } });
    expect(other.headers.get('access-control-allow-origin')).toBeNull();

    const preflight = await fetch(`${guarded.baseUrl}/v1/run`, {
      method: 'OPTIONS',
      headers: { origin: 'http://other.example', 'access-control-request-method': 'POST' },
    });
    expect(preflight.status).toBeLessThan(300);
    expect(preflight.headers.get('access-control-allow-origin')).toBe('http://other.example');
    expect(preflight.headers.get('x-docops-request-id')).toMatch(/^[0-9a-f]{32}$/);
    await preflight.arrayBuffer();
  });

  it('a zip response to a listed origin exposes the exit code', async () => {
    const body = new FormData();
    body.append('template', new Blob([TEMPLATE as BlobPart]), 'template.docx');
    body.append('task', new Blob([JSON.stringify(TASK)]), 'task.json');
    const response = await fetch(`${guarded.baseUrl}/v1/run`, {
      method: 'POST',
      body,
      headers: { origin: CONSOLE_ORIGIN },
    });
    expect(response.status).toBe(200);
    expect(response.headers.get('access-control-allow-origin')).toBe(CONSOLE_ORIGIN);
    expect((response.headers.get('access-control-expose-headers') ?? '').toLowerCase()).toContain(
      'x-docops-exit-code',
    );
    await response.arrayBuffer();
  });
});
