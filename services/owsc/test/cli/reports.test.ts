// `openworld-chem stats`, `cert` and `advise` through the compiled bin (spec §3.3, §3.6; acceptance cases 15,
// 16 and the CLI side of 19).
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { EXAMPLE_CSV, humanStderr, ledgerRecords, type Workspace, workspace } from './cli-harness.js';

let ws: Workspace;
beforeAll(() => {
  ws = workspace();
});
afterAll(() => ws.cleanup());

// Two months, flow rows; hand-computed below.
const TWO_MONTHS = `time,species,concentration
2024-01-01T06:00:00Z,SO4,200
2024-01-01T18:00:00Z,SO4,300
2024-01-01T12:00:00Z,flow_m3d,1000
2024-01-02T12:00:00Z,SO4,400
2024-01-02T00:00:00Z,flow_m3d,2000
2024-01-02T23:00:00Z,flow_m3d,1000
2024-02-10T10:00:00Z,SO4,100
`;
const STATS_PERMIT = JSON.stringify({
  limits_mgL: { SO4: 1000 },
  daily_max_limits_mgL: { SO4: 300 },
  monthly_average_limits_mgL: { SO4: 250 },
});

describe('stats', () => {
  it('prints daily values, monthly averages, loads and limit alerts as JSON, or CSV to --out (case 19)', () => {
    const csv = ws.input('two-months.csv', TWO_MONTHS);
    const permit = ws.input('stats-permit.json', STATS_PERMIT);
    const result = ws.run(['-q', 'stats', '-i', csv, '-p', permit]);
    expect(result.status).toBe(0);
    const statistics = JSON.parse(result.stdout);
    expect(statistics.timezone).toBe('UTC');
    expect(Object.keys(statistics.species)).toEqual(['SO4']);
    expect(statistics.species.SO4.daily).toEqual([
      { date: '2024-01-01', n: 2, mean: 250, max: 300, min: 200, flow_m3d: 1000, load_kg_d: 250 },
      { date: '2024-01-02', n: 1, mean: 400, max: 400, min: 400, flow_m3d: 1500, load_kg_d: 600 },
      { date: '2024-02-10', n: 1, mean: 100, max: 100, min: 100, flow_m3d: null, load_kg_d: null },
    ]);
    expect(statistics.species.SO4.monthly).toEqual([
      {
        month: '2024-01',
        days: 2,
        n: 3,
        average: 325,
        max_daily: 400,
        max_sample: 400,
        load_average_kg_d: 425,
        average_limit: 250,
        daily_limit: 300,
        compliant: false,
      },
      {
        month: '2024-02',
        days: 1,
        n: 1,
        average: 100,
        max_daily: 100,
        max_sample: 100,
        load_average_kg_d: null,
        average_limit: 250,
        daily_limit: 300,
        compliant: true,
      },
    ]);
    expect(statistics.alerts).toMatchObject([
      { type: 'daily_maximum', species: 'SO4', time: '2024-01-02', value: 400, limit: 300, level: 'watch' },
      { type: 'monthly_average', species: 'SO4', time: '2024-01', value: 325, limit: 250, level: 'watch' },
    ]);

    const out = join(ws.state, 'stats', 'monthly.csv');
    const asCsv = ws.run(['-q', 'stats', '-i', csv, '-p', permit, '--format', 'csv', '-o', out]);
    expect(asCsv.status).toBe(0);
    expect(asCsv.stdout).toBe('');
    expect(readFileSync(out, 'utf8')).toBe(
      'species,month,days,n,average,max_daily,max_sample,load_average_kg_d,average_limit,daily_limit,compliant\r\n' +
        'SO4,2024-01,2,3,325,400,400,425,250,300,false\r\n' +
        'SO4,2024-02,1,1,100,100,100,,250,300,true\r\n',
    );
    expect(ledgerRecords(ws.provenanceLedger).at(-1)).toMatchObject({ step: 'statistics', outputs: [out] });
  });

  it('exits 4 for numeric times', () => {
    const result = ws.run(['stats', '-i', ws.input('numeric.csv', EXAMPLE_CSV)]);
    expect(result.status).toBe(4);
    expect(humanStderr(result.stderr)).toContain('error: calendar statistics need ISO 8601 times');
    expect(result.stdout).toBe('');
  });
});

describe('cert', () => {
  it('certifies a monitor-batch result: NON-COMPLIANT with one row per alert, escaped, sha256 of the file (case 15)', () => {
    const permit = ws.input(
      'tight.json',
      JSON.stringify({ limits_mgL: { SO4: 210 }, actions: { SO4: 'Dose <lime> & "check"' } }),
    );
    const alerts = join(ws.state, 'batch.json');
    expect(
      ws.run([
        '-q',
        'monitor-batch',
        '-i',
        ws.input('example.csv', EXAMPLE_CSV),
        '-p',
        permit,
        '--mode',
        'all',
        '-o',
        alerts,
      ]).status,
    ).toBe(0);
    const batch = JSON.parse(readFileSync(alerts, 'utf8'));
    expect(batch.count).toBeGreaterThan(1);

    const result = ws.run(['cert', '-a', alerts, '-s', 'Plant <One> & Co', '--period', '2024-Q1']);
    expect(result.status).toBe(0);
    expect(result.stdout).toBe(`NON-COMPLIANT: ${batch.count} alert(s)\n`);
    const out = join(ws.reports, 'compliance.html');
    const html = readFileSync(out, 'utf8');
    expect(html).toContain('Compliance Certificate');
    expect(html).toContain('NON-COMPLIANT');
    expect(html).toContain('Plant &lt;One&gt; &amp; Co');
    expect(html).toContain('2024-Q1');
    expect(html).toContain('Dose &lt;lime&gt; &amp; &quot;check&quot;');
    expect(html).not.toContain('<lime>');
    expect(html).not.toMatch(/<script|<link|src=/i);
    expect(html.match(/<tr class="level-/g)).toHaveLength(batch.count);
    expect(html).toContain(createHash('sha256').update(readFileSync(alerts)).digest('hex'));
    expect(ledgerRecords(ws.provenanceLedger).at(-1)).toMatchObject({
      step: 'certificate',
      params: { site: 'Plant <One> & Co', period: '2024-Q1', format: 'html' },
      inputs: [alerts],
      outputs: [out],
    });
  });

  it('says COMPLIANT for [], writes PDF by extension or --format, and rejects bad alerts files', () => {
    const empty = ws.input('empty.json', '[]');
    const html = join(ws.state, 'empty.html');
    const compliant = ws.run(['-q', 'cert', '-a', empty, '-s', 'Plant', '-o', html]);
    expect(compliant.status).toBe(0);
    expect(compliant.stdout).toBe('COMPLIANT\n');
    expect(readFileSync(html, 'utf8')).toMatch(/COMPLIANT/);
    expect(readFileSync(html, 'utf8')).not.toContain('NON-COMPLIANT');
    expect(readFileSync(html, 'utf8')).toContain('Current');

    const pdf = join(ws.state, 'cert.pdf');
    expect(ws.run(['-q', 'cert', '-a', empty, '-s', 'Plant', '-o', pdf]).status).toBe(0);
    expect(readFileSync(pdf).subarray(0, 5).toString('latin1')).toBe('%PDF-');
    expect(ws.run(['-q', 'cert', '-a', empty, '-s', 'Plant', '--format', 'pdf']).status).toBe(0);
    expect(readFileSync(join(ws.reports, 'compliance.pdf')).subarray(0, 5).toString('latin1')).toBe('%PDF-');

    expect(ws.run(['-q', 'cert', '-a', join(ws.inputs, 'missing.json'), '-s', 'Plant']).status).toBe(3);
    expect(ws.run(['-q', 'cert', '-a', ws.input('num.json', '{"alerts": 5}'), '-s', 'Plant']).status).toBe(4);
    expect(ws.run(['-q', 'cert', '-a', ws.input('nojson.json', 'alerts!'), '-s', 'Plant']).status).toBe(4);
    expect(ws.run(['-q', 'cert', '-a', empty]).status).toBe(2);
    expect(ws.run(['-q', 'cert', '-a', empty, '-s', 'Plant', '--format', 'docx']).status).toBe(2);
  });
});

describe('advise', () => {
  const alerts = JSON.stringify([
    { species: 'SO4', level: 'critical' },
    { species: 'Co' },
    { level: 'warning' },
  ]);

  it('prints the exact text lines, parseable JSON and a table (case 16)', () => {
    const file = ws.input('advise.json', alerts);
    const text = ws.run(['advise', '-a', file, '-s', 'Plant A', '-f', 'text']);
    expect(text.status).toBe(0);
    expect(text.stdout).toBe(
      [
        'REMEDIATION RECOMMENDATIONS FOR PLANT A',
        '='.repeat(50),
        'Alerts processed: 3',
        'Recommendations: 3',
        '',
        '1. SO4: Increase lime dosing; verify gypsum precipitation; reduce discharge rate',
        '2. Co: Review Co treatment process and verify setpoints',
        '3. : Increase treatment intensity',
        '',
      ].join('\n'),
    );
    expect(ws.run(['-q', 'advise', '-a', file, '-f', 'text']).stdout.split('\n')[0]).toBe(
      'REMEDIATION RECOMMENDATIONS',
    );

    const json = ws.run(['advise', '-a', file, '--format', 'json']);
    expect(json.status).toBe(0);
    const body = JSON.parse(json.stdout);
    expect(body).toMatchObject({
      site: 'Unknown',
      alert_count: 3,
      actions: [
        'Increase lime dosing; verify gypsum precipitation; reduce discharge rate',
        'Review Co treatment process and verify setpoints',
        'Increase treatment intensity',
      ],
      detailed_recommendations: [
        {
          species: 'SO4',
          suggestion: 'Increase lime dosing; verify gypsum precipitation; reduce discharge rate',
        },
        { species: 'Co', suggestion: 'Review Co treatment process and verify setpoints' },
        { species: '', suggestion: 'Increase treatment intensity' },
      ],
    });
    expect(body.by_species.map((entry: { species: string }) => entry.species)).toEqual(['SO4', '', 'Co']);

    const table = ws.run(['advise', '-a', file]);
    expect(table.status).toBe(0);
    expect(table.stdout.split('\n')[0]).toMatch(/^SPECIES\s+ACTION\s+PRIORITY$/);
    expect(table.stdout).toContain('Total: 3 alerts, 3 species');

    // Permit actions come first.
    const permit = ws.input(
      'actions.json',
      JSON.stringify({ limits_mgL: { SO4: 250 }, actions: { SO4: 'Call the shift lead.' } }),
    );
    const fromPermit = JSON.parse(ws.run(['advise', '-a', file, '-f', 'json', '-p', permit]).stdout);
    expect(fromPermit.actions[0]).toBe('Call the shift lead');
  });

  it('handles no alerts and rejects invalid input with exit 4, a missing file with 3', () => {
    const empty = ws.input('none.json', '{"alerts": []}');
    expect(ws.run(['advise', '-a', empty, '-f', 'text']).stdout).toBe(
      'No alerts detected - no remediation required\n',
    );
    expect(ws.run(['advise', '-a', empty]).stdout).toBe('No alerts detected - no remediation required\n');
    expect(JSON.parse(ws.run(['advise', '-a', empty, '-f', 'json']).stdout)).toMatchObject({
      alert_count: 0,
      actions: [],
      detailed_recommendations: [],
      by_species: [],
    });
    const invalid = ws.run(['advise', '-a', ws.input('scalar.json', '[1, 2]')]);
    expect(invalid.status).toBe(4);
    expect(invalid.stdout).toBe('');
    expect(ws.run(['advise', '-a', join(ws.inputs, 'absent.json')]).status).toBe(3);
    expect(ws.run(['advise', '-a', empty, '-f', 'yaml']).status).toBe(2);
  });
});
