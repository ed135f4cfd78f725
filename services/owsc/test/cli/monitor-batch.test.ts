// `openworld-chem monitor-batch` through the compiled bin (spec §3.2, §3.6, §3.11, §3.13, §7.1; acceptance
// cases 1, 7, 8, 12 and --fail-on).
import { createHash } from 'node:crypto';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import {
  EXAMPLE_CSV,
  humanStderr,
  ledgerRecords,
  logLines,
  type Workspace,
  workspace,
} from './cli-harness.js';

let ws: Workspace;
beforeEach(() => {
  ws = workspace();
});
afterEach(() => ws.cleanup());

describe('monitor-batch', () => {
  it('evaluates the example series: one trend alert, summary on stdout, JSON logs on stderr, provenance (case 1)', () => {
    const csv = ws.input('example.csv', EXAMPLE_CSV);
    const result = ws.run(['monitor-batch', '-i', csv]);
    expect(result.status).toBe(0);
    expect(result.stdout).toBe(
      'Non-compliant: 1 alert(s)\n' +
        'critical: 0, warning: 0, watch: 0, info: 1\n' +
        '1. [INFO] 8 SO4 trend: SO4 rolling mean 263.333 mg/L over 3 readings exceeds limit 250.000 mg/L\n',
    );

    const out = join(ws.artifacts, 'alerts.json');
    const batch = JSON.parse(readFileSync(out, 'utf8'));
    expect(batch).toMatchObject({ count: 1, compliant: false, mode: 'latest', format: 'tidy', rows: 9 });
    expect(batch.alerts).toHaveLength(1);
    expect(batch.alerts[0]).toMatchObject({
      time: 8,
      species: 'SO4',
      type: 'trend',
      level: 'info',
      window: 3,
    });
    expect(batch.alerts[0].value).toBeCloseTo(263.333, 3);
    expect(batch.alerts[0].ratio).toBeCloseTo(1.053, 3);
    expect(readFileSync(out, 'utf8')).toContain('\n  "count": 1,'); // indented JSON

    const logs = logLines(result.stderr);
    expect(logs.map((line) => line.event)).toEqual([
      'monitor_batch_start',
      'monitor_batch_evaluated',
      'monitor_batch_end',
    ]);
    const corrId = logs[0]?.corr_id;
    expect(corrId).toMatch(/^[0-9a-f]{8}$/);
    for (const line of logs) {
      expect(line).toMatchObject({ level: 'info', service: 'owsc', corr_id: corrId });
      expect(new Date(String(line.time)).toISOString()).toBe(line.time);
      expect(typeof line.msg).toBe('string');
    }
    expect(logs[1]).toMatchObject({ alert_count: 1 });

    const [record, ...more] = ledgerRecords(ws.provenanceLedger);
    expect(more).toHaveLength(0);
    expect(record).toMatchObject({
      step: 'monitor_batch',
      params: { permit: false, mode: 'latest' },
      inputs: [csv],
      outputs: [out],
      input_digests: { [csv]: createHash('sha256').update(EXAMPLE_CSV).digest('hex') },
      code_version: '0.1.0',
      prev: null,
    });
    // A second run gets its own correlation id.
    const again = ws.run(['monitor-batch', '-i', csv]);
    expect(logLines(again.stderr)[0]?.corr_id).not.toBe(corrId);
  });

  it('--fail-on exits 9 after writing the output and the ledger record; below the level exits 0', () => {
    const csv = ws.input('example.csv', EXAMPLE_CSV);
    const permit = ws.input('permit.json', JSON.stringify({ limits_mgL: { SO4: 200 } }));
    const out = join(ws.state, 'nested', 'dir', 'all.json');
    const failing = ws.run([
      'monitor-batch',
      '-i',
      csv,
      '-p',
      permit,
      '-o',
      out,
      '--mode',
      'all',
      '--fail-on',
      'watch',
    ]);
    expect(failing.status).toBe(9);
    expect(failing.stderr).not.toContain('error:');
    const batch = JSON.parse(readFileSync(out, 'utf8'));
    expect(batch.mode).toBe('all');
    expect(batch.alerts.some((alert: { level: string }) => alert.level === 'watch')).toBe(true);
    expect(failing.stdout.split('\n')[0]).toBe(`Non-compliant: ${batch.count} alert(s)`);
    expect(ledgerRecords(ws.provenanceLedger)).toMatchObject([
      { step: 'monitor_batch', params: { permit: true, mode: 'all' }, inputs: [csv, permit], outputs: [out] },
    ]);

    const passing = ws.run(['monitor-batch', '-i', csv, '-p', permit, '-o', out, '--fail-on', 'critical']);
    expect(passing.status).toBe(0);
    expect(ledgerRecords(ws.provenanceLedger)).toHaveLength(2);
  });

  it('prints only the result with --quiet; --log-format text overrides LOG_FORMAT and the reverse', () => {
    const csv = ws.input('example.csv', EXAMPLE_CSV);
    const quiet = ws.run(['-q', 'monitor-batch', '-i', csv]);
    expect(quiet.status).toBe(0);
    expect(quiet.stderr).toBe('');
    expect(quiet.stdout.startsWith('Non-compliant: 1 alert(s)\n')).toBe(true);

    const text = ws.run(['--log-format', 'text', 'monitor-batch', '-i', csv], {
      env: { LOG_FORMAT: 'json' },
    });
    expect(text.status).toBe(0);
    const lines = text.stderr.split('\n').filter((line) => line.includes('event='));
    expect(lines).toHaveLength(3);
    expect(lines[0]).toMatch(
      /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z INFO {2}monitor batch started event=monitor_batch_start corr_id=[0-9a-f]{8} /,
    );
    expect(lines[1]).toContain('alert_count=1');

    const json = ws.run(['--log-format', 'json', 'monitor-batch', '-i', csv], {
      env: { LOG_FORMAT: 'text' },
    });
    expect(logLines(json.stderr)).toHaveLength(3);
    const warnOnly = ws.run(['monitor-batch', '-i', csv], { env: { LOG_LEVEL: 'WARNING' } });
    expect(logLines(warnOnly.stderr)).toHaveLength(0);
    const verbose = ws.run(['-v', 'monitor-batch', '-i', csv]);
    expect(
      logLines(verbose.stderr).some((line) => line.level === 'debug' && line.event === 'provenance_recorded'),
    ).toBe(true);
  });

  it('rejects bad CSV content with line and column, exit 4, no output and no ledger record (§7.1)', () => {
    const bad = ws.input(
      'bad.csv',
      'time,species,concentration\n0,SO4,200\n1,SO4,abc\n2,SO4,-5\n\n3,SO4,NaN\n4,SO4\n',
    );
    const result = ws.run(['monitor-batch', '-i', bad]);
    expect(result.status).toBe(4);
    const lines = humanStderr(result.stderr).trim().split('\n');
    expect(lines[0]).toMatch(/^error: invalid CSV .*bad\.csv: 4 problems$/);
    expect(lines.slice(1).map((line) => line.replace(/: .*$/, ''))).toEqual([
      'line 3, column concentration',
      'line 4, column concentration',
      'line 6, column concentration',
      'line 7, column concentration',
    ]);
    expect(result.stdout).toBe('');

    const missing = ws.run(['monitor-batch', '-i', ws.input('cols.csv', 'time,value\n1,2\n')]);
    expect(missing.status).toBe(4);
    expect(missing.stderr).toContain('missing required columns: concentration, species');
    const empty = ws.run(['monitor-batch', '-i', ws.input('empty.csv', 'time,species,concentration\n')]);
    expect(empty.status).toBe(4);
    expect(empty.stderr).toContain('no data rows');

    expect(existsSync(ws.artifacts)).toBe(false);
    expect(existsSync(ws.provenanceLedger)).toBe(false);
  });

  it('accepts a CSV of exactly OW_SC_MAX_CSV_BYTES / _ROWS and rejects one byte or row more (cases 7, 8)', () => {
    const csv = ws.input('example.csv', EXAMPLE_CSV);
    const size = Buffer.byteLength(EXAMPLE_CSV);
    expect(
      ws.run(['-q', 'monitor-batch', '-i', csv], { env: { OW_SC_MAX_CSV_BYTES: String(size) } }).status,
    ).toBe(0);
    const overBytes = ws.run(['monitor-batch', '-i', csv], {
      env: { OW_SC_MAX_CSV_BYTES: String(size - 1) },
    });
    expect(overBytes.status).toBe(4);
    expect(overBytes.stderr).toContain(`CSV too large: more than ${size - 1} bytes (OW_SC_MAX_CSV_BYTES)`);

    expect(ws.run(['-q', 'monitor-batch', '-i', csv], { env: { OW_SC_MAX_CSV_ROWS: '9' } }).status).toBe(0);
    const overRows = ws.run(['monitor-batch', '-i', csv], { env: { OW_SC_MAX_CSV_ROWS: '8' } });
    expect(overRows.status).toBe(4);
    expect(overRows.stderr).toContain('CSV has more than 8 data rows (OW_SC_MAX_CSV_ROWS)');
    expect(ledgerRecords(ws.provenanceLedger)).toHaveLength(2);
  });

  it('maps usage, missing and invalid inputs to exit codes 2, 3 and 4 (case 12)', () => {
    const csv = ws.input('example.csv', EXAMPLE_CSV);
    const unknownOption = ws.run(['monitor-batch', '-i', csv, '--bogus']);
    expect(unknownOption.status).toBe(2);
    expect(unknownOption.stderr).toContain("error: unknown option '--bogus'");
    expect(unknownOption.stderr).toContain('usage: openworld-chem monitor-batch [options]');
    expect(ws.run(['monitor-batch']).status).toBe(2);
    expect(ws.run(['monitor-batch', '-i', csv, '--mode', 'sometimes']).status).toBe(2);
    expect(ws.run(['monitor-batch', '-i', csv, '--fail-on', 'severe']).status).toBe(2);
    expect(ws.run(['no-such-command']).status).toBe(2);
    expect(ws.run(['--log-format', 'xml', 'version']).status).toBe(2);

    const badJson = ws.run(['monitor-batch', '-i', csv, '-p', ws.input('bad.json', '{"limits_mgL": ')]);
    expect(badJson.status).toBe(4);
    expect(humanStderr(badJson.stderr)).toMatch(/^error: permit file .*bad\.json is not valid JSON/);
    const badLimit = ws.run([
      'monitor-batch',
      '-i',
      csv,
      '-p',
      ws.input('zero.json', '{"limits_mgL":{"SO4":0}}'),
    ]);
    expect(badLimit.status).toBe(4);
    expect(badLimit.stderr).toContain('limits_mgL.SO4');
    const missingPermit = ws.run(['monitor-batch', '-i', csv, '-p', join(ws.inputs, 'none.json')]);
    expect(missingPermit.status).toBe(3);
    expect(humanStderr(missingPermit.stderr)).toMatch(/^error: permit file not found: .*none\.json\n$/);
    const missingInput = ws.run(['-q', 'monitor-batch', '-i', join(ws.inputs, 'none.csv')]);
    expect(missingInput.status).toBe(3);
    expect(missingInput.stderr).toMatch(/^error: input file not found: .*none\.csv\n$/); // one line, no stack
    const withStack = ws.run(['-v', 'monitor-batch', '-i', join(ws.inputs, 'none.csv')]);
    expect(withStack.stderr).toMatch(/error: input file not found: .*\n.*ENOENT[\s\S]*\n\s+at /);
    expect(existsSync(ws.provenanceLedger)).toBe(false);
  });

  it('reads --config (JSON or KEY=VALUE) under the environment; missing exits 3, invalid exits 4 (§3.12)', () => {
    const csv = ws.input('example.csv', EXAMPLE_CSV);
    const jsonConfig = ws.input('config.json', JSON.stringify({ OW_SC_MAX_CSV_ROWS: 5 }));
    const limited = ws.run(['--config', jsonConfig, 'monitor-batch', '-i', csv]);
    expect(limited.status).toBe(4);
    expect(limited.stderr).toContain('more than 5 data rows');
    // The environment wins over the file.
    expect(
      ws.run(['-q', '--config', jsonConfig, 'monitor-batch', '-i', csv], { env: { OW_SC_MAX_CSV_ROWS: '9' } })
        .status,
    ).toBe(0);

    const artifacts = join(ws.state, 'from-dotenv');
    const dotenv = ws.input('owsc.env', `# settings\nOW_SC_ARTIFACTS_DIR=${artifacts}\n`);
    expect(
      ws.run(['-q', '--config', dotenv, 'monitor-batch', '-i', csv], { unset: ['OW_SC_ARTIFACTS_DIR'] })
        .status,
    ).toBe(0);
    expect(readdirSync(artifacts)).toEqual(['alerts.json']);

    const missing = ws.run(['--config', join(ws.inputs, 'absent.json'), 'monitor-batch', '-i', csv]);
    expect(missing.status).toBe(3);
    expect(missing.stderr).toContain('config file not found');
    const invalid = ws.run(['--config', ws.input('broken.json', '{nope'), 'monitor-batch', '-i', csv]);
    expect(invalid.status).toBe(4);
    const badValue = ws.run([
      '--config',
      ws.input('rows.json', '{"OW_SC_MAX_CSV_ROWS":"many"}'),
      'monitor-batch',
      '-i',
      csv,
    ]);
    expect(badValue.status).toBe(4);
    expect(humanStderr(badValue.stderr)).toMatch(/^error: configuration error: OW_SC_MAX_CSV_ROWS: /);
  });
});
