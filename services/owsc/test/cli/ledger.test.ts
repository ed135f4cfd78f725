// Provenance through the CLI and `openworld-chem ledger verify` (spec §3.13; acceptance cases 13 and 14).
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { EXAMPLE_CSV, humanStderr, ledgerRecords, type Workspace, workspace } from './cli-harness.js';

let ws: Workspace;
beforeEach(() => {
  ws = workspace();
});
afterEach(() => ws.cleanup());

function decayCsv(): string {
  return `time,species,concentration\n${[0, 1, 2, 3, 4].map((t) => `${t},SO4,${50 * Math.exp(-0.3 * t)}`).join('\n')}\n`;
}

describe('ledgers', () => {
  it('three commands append three chained records; verify is ok; an edited byte is found by line (case 14)', () => {
    const csv = ws.input('example.csv', EXAMPLE_CSV);
    const alerts = join(ws.state, 'alerts.json');
    expect(ws.run(['-q', 'monitor-batch', '-i', csv, '-o', alerts]).status).toBe(0);
    expect(
      ws.run(['-q', 'process-chemistry', '-i', ws.input('decay.csv', decayCsv()), '-s', 'SO4']).status,
    ).toBe(0);
    expect(ws.run(['-q', 'cert', '-a', alerts, '-s', 'Plant']).status).toBe(0);

    const records = ledgerRecords(ws.provenanceLedger);
    expect(records.map((record) => record.step)).toEqual([
      'monitor_batch',
      'process_chemistry',
      'certificate',
    ]);
    expect(records[0]?.prev).toBeNull();
    expect(records[1]?.prev).toBe(records[0]?.digest);
    expect(records[2]?.prev).toBe(records[1]?.digest);

    const verified = ws.run(['ledger', 'verify']);
    expect(verified.status).toBe(0);
    expect(verified.stdout).toBe('ok: 3 records\n');
    const lineage = ws.run(['-q', 'ledger', 'verify', '--lineage']);
    expect(lineage.stdout).toBe('ok: 1 records\n');

    // One edited byte in the second record.
    const original = readFileSync(ws.provenanceLedger, 'utf8');
    const lines = original.split('\n');
    lines[1] = (lines[1] as string).replace('"process_chemistry"', '"process_chemistrY"');
    const tampered = join(ws.state, 'tampered.jsonl');
    writeFileSync(tampered, lines.join('\n'));
    expect(Buffer.byteLength(lines.join('\n'))).toBe(Buffer.byteLength(original));
    const mismatch = ws.run(['-q', 'ledger', 'verify', '--ledger', tampered]);
    expect(mismatch.status).toBe(4);
    expect(mismatch.stdout).toBe('line 2: digest mismatch\n');
    expect(mismatch.stderr).toBe('error: line 2: digest mismatch\n');

    // A removed record breaks the chain at the line that follows it.
    const shortened = join(ws.state, 'shortened.jsonl');
    writeFileSync(shortened, [lines[0], original.split('\n')[2], ''].join('\n'));
    const broken = ws.run(['-q', 'ledger', 'verify', '--ledger', shortened]);
    expect(broken.status).toBe(4);
    expect(broken.stdout).toBe('line 2: broken chain\n');

    const missing = ws.run(['-q', 'ledger', 'verify', '--ledger', join(ws.state, 'none.jsonl')]);
    expect(missing.status).toBe(3);
    expect(missing.stderr).toMatch(/^error: ledger not found: /);
  });

  it('--dry-run writes no output and no ledger line for any command, and says what it would do (case 13)', () => {
    const csv = ws.input('example.csv', EXAMPLE_CSV);
    const alerts = ws.input('alerts.json', '[{"species":"SO4","level":"info"}]');
    const runs: [string[], RegExp][] = [
      [['monitor-batch', '-i', csv], /dry run: would write .*alerts\.json/],
      [
        ['process-chemistry', '-i', ws.input('decay.csv', decayCsv()), '-s', 'SO4'],
        /dry run: would append a lineage record/,
      ],
      [
        [
          'stats',
          '-i',
          ws.input('iso.csv', 'time,species,concentration\n2024-01-01,SO4,1\n'),
          '-o',
          join(ws.state, 's.json'),
        ],
        /would write/,
      ],
      [['cert', '-a', alerts, '-s', 'Plant', '--format', 'pdf'], /dry run: would write .*compliance\.pdf/],
      [['simulate-stream', '-s', csv, '--out', join(ws.state, 'stream.jsonl')], /would write/],
      [
        ['simulate-stream', '-s', csv, '--publish-ws', 'ws://127.0.0.1:9/ws/effluent'],
        /dry run: would publish 9 record\(s\)/,
      ],
      [['dashboard', '--port', '0'], /dry run: would serve http:\/\/127\.0\.0\.1:0/],
    ];
    for (const [args, said] of runs) {
      const result = ws.run(['--dry-run', ...args]);
      expect(result.status, args.join(' ')).toBe(0);
      expect(humanStderr(result.stderr), args.join(' ')).toMatch(said);
    }
    // Results that go to stdout are still printed.
    expect(ws.run(['--dry-run', '-q', 'monitor-batch', '-i', csv]).stdout).toMatch(
      /^Non-compliant: 1 alert\(s\)/,
    );
    expect(readdirSync(ws.state)).toEqual([]);
    expect(existsSync(ws.provenanceLedger)).toBe(false);
  });
});
