import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parse } from 'csv-parse/sync';
import { afterAll, describe, expect, it } from 'vitest';
import {
  alertsCsv,
  type CertificateInput,
  certificateHtml,
  certificatePdf,
  parseAlertsDocument,
} from '../../src/domain/certificate.js';
import type { Alert, Statistics } from '../../src/domain/types.js';

const scratch = mkdtempSync(join(tmpdir(), 'owsc-cert-'));
afterAll(() => rmSync(scratch, { recursive: true, force: true }));

const SHA = 'ab'.repeat(32);
const generatedAt = new Date('2024-05-01T12:00:00.000Z');

function alert(overrides: Partial<Alert>): Alert {
  return {
    time: 8,
    species: 'SO4',
    type: 'trend',
    level: 'info',
    value: 263.3333333333333,
    limit: 250,
    action: 'Increase lime dosing; verify gypsum precipitation; reduce discharge rate.',
    message: 'SO4 rolling mean 263.333 mg/L over 3 readings exceeds limit 250.000 mg/L',
    ratio: 1.0533333333333332,
    window: 3,
    ...overrides,
  };
}

const alerts: Alert[] = [
  alert({}),
  alert({
    time: '2024-04-02T10:00:00Z',
    species: 'As',
    type: 'exceedance',
    level: 'critical',
    value: 0.05,
    limit: 0.01,
    action: 'Adjust pH to 7-8; add ferric coagulant; check filter performance.',
    message: 'As concentration 0.050 mg/L exceeds limit 0.010 mg/L',
    ratio: 5,
  }),
];

const statistics: Statistics = {
  timezone: 'UTC',
  species: {
    SO4: {
      daily: [
        { date: '2024-04-01', n: 2, mean: 210.5, max: 230, min: 191, flow_m3d: 1200, load_kg_d: 252.6 },
      ],
      monthly: [
        {
          month: '2024-04',
          days: 1,
          n: 2,
          average: 210.5,
          max_daily: 210.5,
          max_sample: 230,
          load_average_kg_d: 252.6,
          average_limit: 200,
          daily_limit: null,
          compliant: false,
        },
      ],
    },
  },
  alerts: [],
};

function input(overrides: Partial<CertificateInput> = {}): CertificateInput {
  return { alerts, site: 'North Plant', generatedAt, alertsSha256: SHA, ...overrides };
}

describe('certificate HTML', () => {
  it('states NON-COMPLIANT with one table row per alert', () => {
    const html = certificateHtml(input({ period: '2024-Q2' }));
    expect(html.startsWith('<!DOCTYPE html>')).toBe(true);
    expect(html).toContain('<h1>Compliance Certificate</h1>');
    expect(html).toContain('<dt>Site</dt><dd>North Plant</dd>');
    expect(html).toContain('<dt>Period</dt><dd>2024-Q2</dd>');
    expect(html).toContain('<dt>Generated at</dt><dd>2024-05-01T12:00:00.000Z</dd>');
    expect(html).toContain('NON-COMPLIANT');
    expect(html).toContain('critical 1, warning 0, watch 0, info 1');
    expect(html.match(/<tr class="level-/g)).toHaveLength(2);
    expect(html).toContain(
      '<tr class="level-critical"><td>2024-04-02T10:00:00Z</td><td>As</td><td>exceedance</td><td>critical</td><td>0.05</td><td>0.01</td><td>Adjust pH to 7-8; add ferric coagulant; check filter performance.</td></tr>',
    );
    expect(html).toContain('<td>263.333</td>');
    expect(html).toContain(SHA);
  });

  it('states COMPLIANT for no alerts, period Current', () => {
    const html = certificateHtml(input({ alerts: [] }));
    expect(html).toContain('<span class="status compliant">COMPLIANT</span>');
    expect(html).not.toContain('NON-COMPLIANT');
    expect(html).toContain('<dt>Period</dt><dd>Current</dd>');
    expect(html).toContain('<p>No alerts.</p>');
    expect(html).not.toContain('<tr class="level-');
  });

  it('escapes every interpolated text and stays self-contained', () => {
    const html = certificateHtml(
      input({
        site: '<script>alert("x")</script> & Co\'s',
        period: '<b>Q2</b>',
        alerts: [alert({ species: '<img src=x onerror=alert(1)>', action: '"><iframe src="http://evil">' })],
      }),
    );
    expect(html).not.toMatch(/<script|<img|<iframe/i);
    expect(html).toContain('&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; Co&#39;s');
    expect(html).toContain('&lt;b&gt;Q2&lt;/b&gt;');
    expect(html).toContain('&lt;img src=x onerror=alert(1)&gt;');
    expect(html).not.toMatch(/\b(src|href)=["']?(https?:)?\/\//i);
    expect(html).not.toMatch(/<link|@import|url\(/i);
  });

  it('adds the daily and monthly statistics tables when given', () => {
    const html = certificateHtml(input({ statistics }));
    expect(html).toContain('<h2>Daily values: SO4 (mg/L)</h2>');
    expect(html).toContain(
      '<tr><td>2024-04-01</td><td>2</td><td>210.5</td><td>230</td><td>191</td><td>1200</td><td>252.6</td></tr>',
    );
    expect(html).toContain('<h2>Monthly averages: SO4 (mg/L)</h2>');
    expect(html).toContain('<td>2024-04</td><td>1</td><td>2</td><td>210.5</td>');
    expect(html).toContain('<td>200</td><td>-</td><td>no</td>');
  });
});

const pdftotext = spawnSync('pdftotext', ['-v']);
const havePdftotext = !pdftotext.error;
if (!havePdftotext && process.env.CI !== 'true')
  process.stderr.write('pdftotext missing: skipping PDF text checks\n');

async function pdfText(bytes: Uint8Array, name: string): Promise<string> {
  const path = join(scratch, name);
  writeFileSync(path, bytes);
  const result = spawnSync('pdftotext', ['-layout', path, '-'], { encoding: 'utf8' });
  expect(result.status).toBe(0);
  return result.stdout;
}

describe('certificate PDF', () => {
  it('is a PDF', async () => {
    const bytes = await certificatePdf(input());
    expect(Buffer.from(bytes.subarray(0, 5)).toString('latin1')).toBe('%PDF-');
  });

  it.runIf(havePdftotext || process.env.CI === 'true')('carries site, status and alert rows', async () => {
    const text = await pdfText(await certificatePdf(input({ period: 'April 2024', statistics })), 'non.pdf');
    expect(text).toContain('Compliance Certificate');
    expect(text).toContain('Site: North Plant');
    expect(text).toContain('Period: April 2024');
    expect(text).toContain('Status: NON-COMPLIANT');
    expect(text).toContain('critical 1, warning 0, watch 0, info 1');
    expect(text).toMatch(/2024-04-02T10:00:00Z\s+As\s+exceedance\s+critical\s+0\.05\s+0\.01\s+Adjust pH/);
    expect(text).toMatch(/8\s+SO4\s+trend\s+info\s+263\.333\s+250\s+Increase lime dosing/);
    expect(text).toContain('Daily values: SO4 (mg/L)');
    expect(text).toContain(SHA);

    const compliant = await pdfText(await certificatePdf(input({ alerts: [] })), 'ok.pdf');
    expect(compliant).toContain('Status: COMPLIANT');
    expect(compliant).toContain('Period: Current');
    expect(compliant).toContain('No alerts.');
  });

  it.runIf(havePdftotext || process.env.CI === 'true')(
    'replaces characters Helvetica cannot encode and paginates long tables',
    async () => {
      const many = Array.from({ length: 150 }, (_, i) =>
        alert({ time: i, species: i === 0 ? 'Ni→✓ 日本' : 'Ni' }),
      );
      const bytes = await certificatePdf(input({ alerts: many, site: 'Zürich → Süd' }));
      const text = await pdfText(bytes, 'long.pdf');
      expect(text).toContain('Site: Zürich ? Süd');
      expect(text).toContain('Ni?? ??');
      const pages = text.split('\f').filter((page) => page.trim() !== '');
      expect(pages.length).toBeGreaterThan(2);
      // Every page of the alert table repeats its header; every row is there.
      for (const page of pages.slice(0, -1)) expect(page).toMatch(/time\s+species\s+type\s+level/);
      expect(text.match(/\s+trend\s+info\s+263\.333\s+250\s+/g)).toHaveLength(150);
    },
  );
});

describe('alerts CSV', () => {
  it('writes the header and one RFC 4180 line per alert, round-tripping', () => {
    const tricky = alert({ species: 'S,O"4', action: 'line one\nline two', message: 'a "quoted", b' });
    const csv = alertsCsv([alerts[0] as Alert, tricky]);
    expect(csv.split('\r\n')[0]).toBe('time,species,type,level,value,limit,action,message');
    expect(csv.split('\r\n')[1]).toBe(
      '8,SO4,trend,info,263.3333333333333,250,Increase lime dosing; verify gypsum precipitation; reduce discharge rate.,SO4 rolling mean 263.333 mg/L over 3 readings exceeds limit 250.000 mg/L',
    );
    expect(csv.endsWith('\r\n')).toBe(true);
    const rows = parse(csv, { columns: true }) as Record<string, string>[];
    expect(rows).toHaveLength(2);
    expect(rows[1]).toEqual({
      time: '8',
      species: 'S,O"4',
      type: 'trend',
      level: 'info',
      value: '263.3333333333333',
      limit: '250',
      action: 'line one\nline two',
      message: 'a "quoted", b',
    });
    expect(alertsCsv([])).toBe('time,species,type,level,value,limit,action,message\r\n');
  });
});

describe('parseAlertsDocument', () => {
  it('accepts a list or an object with an alerts list', () => {
    expect(parseAlertsDocument([{ species: 'As' }])).toEqual([{ species: 'As' }]);
    expect(parseAlertsDocument({ count: 1, alerts: [{ species: 'Ni' }] })).toEqual([{ species: 'Ni' }]);
    expect(parseAlertsDocument([])).toEqual([]);
  });

  it('rejects anything else with a message saying so', () => {
    for (const value of [null, 'x', 3, {}, { alerts: 'no' }]) {
      expect(() => parseAlertsDocument(value)).toThrow(
        'alerts must be a JSON list of alerts or an object with an "alerts" list',
      );
    }
    expect(() => parseAlertsDocument([{}, 5])).toThrow('alerts must be objects: item 2 is not');
  });
});
