import { spawn, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import { hostname, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { appendLineage, appendProvenance, recordDigest, verifyLedger } from '../../src/domain/ledger.js';
import type { DecayFit } from '../../src/domain/types.js';

const scratch = mkdtempSync(join(tmpdir(), 'owsc-ledger-'));
afterAll(() => rmSync(scratch, { recursive: true, force: true }));

let counter = 0;
function ledgerPath(): string {
  counter += 1;
  return join(scratch, `case-${counter}`, 'nested', 'ledger.jsonl');
}

const sha256 = (text: string): string => createHash('sha256').update(text).digest('hex');

function step(name: string, outputs: string[] = []) {
  return { step: name, params: { mode: 'latest', permit: false }, inputs: [], outputs, codeVersion: '0.1.0' };
}

function lines(path: string): string[] {
  return readFileSync(path, 'utf8').split('\n').slice(0, -1);
}

describe('recordDigest', () => {
  it('is the sha256 of the RFC 8785 canonical JSON without the digest', () => {
    const record = { b: 1, a: [1, 'x', { d: 2.5, c: null }], digest: 'ignored', e: 1e21 };
    expect(recordDigest(record)).toBe(sha256('{"a":[1,"x",{"c":null,"d":2.5}],"b":1,"e":1e+21}'));
    expect(recordDigest({ e: 1e21, a: [1, 'x', { c: null, d: 2.5 }], b: 1 })).toBe(recordDigest(record));
  });
});

describe('appendProvenance', () => {
  it('writes chained records with input digests, creating the directories', async () => {
    const ledger = ledgerPath();
    const csv = join(scratch, `input-${counter}.csv`);
    writeFileSync(csv, 'time,species,concentration\n0,SO4,200\n');
    const first = await appendProvenance(ledger, { ...step('monitor_batch', ['out.json']), inputs: [csv] });
    const second = await appendProvenance(ledger, step('certificate'));
    expect(Object.keys(first)).toEqual([
      'timestamp',
      'actor',
      'host',
      'step',
      'params',
      'inputs',
      'outputs',
      'input_digests',
      'code_version',
      'prev',
      'digest',
    ]);
    expect(first).toMatchObject({
      host: hostname(),
      step: 'monitor_batch',
      params: { mode: 'latest', permit: false },
      inputs: [csv],
      outputs: ['out.json'],
      input_digests: { [csv]: sha256('time,species,concentration\n0,SO4,200\n') },
      code_version: '0.1.0',
      prev: null,
    });
    expect(typeof first.actor).toBe('string');
    expect(Math.abs((first.timestamp as number) - Date.now() / 1000)).toBeLessThan(5);
    expect(first.digest).toBe(recordDigest(first));
    expect(second.prev).toBe(first.digest);
    expect(lines(ledger).map((line) => JSON.parse(line))).toEqual([first, second]);
    expect(await verifyLedger(ledger)).toEqual({ ok: true, records: 2 });
    expect(existsSync(`${ledger}.lock`)).toBe(false);
  });

  it('fails when an input file is missing and records nothing', async () => {
    const ledger = ledgerPath();
    await expect(
      appendProvenance(ledger, { ...step('stats'), inputs: [join(scratch, 'absent.csv')] }),
    ).rejects.toMatchObject({ code: 'ENOENT' });
    expect(existsSync(ledger)).toBe(false);
  });
});

describe('appendLineage', () => {
  it('writes the lineage record of a fit', async () => {
    const ledger = ledgerPath();
    const fit: DecayFit = {
      species: 'SO4',
      model: 'first_order_decay',
      k: 0.3,
      Kd: null,
      n: 10,
      c0: 50,
      r2: 1,
      half_life: Math.LN2 / 0.3,
      time_unit: 'input',
    };
    const fileSha256 = sha256('csv bytes');
    const record = await appendLineage(ledger, {
      species: 'SO4',
      model: 'decay',
      calibration: fit,
      file: 'data/lab.csv',
      fileSha256,
    });
    expect(record).toMatchObject({
      sample_id: `SO4:${fileSha256.slice(0, 12)}`,
      source: 'lab_csv',
      species: 'SO4',
      method: 'fit_parameters',
      model: 'decay',
      calibration: fit,
      file: 'data/lab.csv',
      file_sha256: fileSha256,
      prev: null,
    });
    expect(Object.keys(record)).toEqual([
      'timestamp',
      'sample_id',
      'source',
      'species',
      'method',
      'model',
      'calibration',
      'file',
      'file_sha256',
      'prev',
      'digest',
    ]);
    expect(await verifyLedger(ledger)).toEqual({ ok: true, records: 1 });
  });
});

describe('concurrent appends', () => {
  it('keeps the chain intact for 20 concurrent appends in one process', async () => {
    const ledger = ledgerPath();
    await Promise.all(Array.from({ length: 20 }, (_, i) => appendProvenance(ledger, step(`step-${i}`))));
    expect(await verifyLedger(ledger)).toEqual({ ok: true, records: 20 });
    expect(new Set(lines(ledger).map((line) => JSON.parse(line).step)).size).toBe(20);
  });

  it('keeps the chain intact for 20 concurrent processes', async () => {
    const ledger = ledgerPath();
    const module = fileURLToPath(new URL('../../src/domain/ledger.ts', import.meta.url));
    const tsx = import.meta.resolve('tsx');
    const script = `const { appendProvenance } = await import(${JSON.stringify(module)});
await appendProvenance(process.argv[1], { step: 'process-' + process.argv[2], params: {}, inputs: [], outputs: [], codeVersion: null });`;
    const runs = Array.from(
      { length: 20 },
      (_, i) =>
        new Promise<number | null>((resolve, reject) => {
          const child = spawn(
            process.execPath,
            ['--import', tsx, '--input-type=module', '-e', script, ledger, String(i)],
            {
              stdio: ['ignore', 'ignore', 'inherit'],
            },
          );
          child.on('error', reject);
          child.on('exit', resolve);
        }),
    );
    expect(await Promise.all(runs)).toEqual(Array(20).fill(0));
    expect(await verifyLedger(ledger)).toEqual({ ok: true, records: 20 });
    expect(new Set(lines(ledger).map((line) => JSON.parse(line).step)).size).toBe(20);
  });
});

describe('verifyLedger', () => {
  async function ledgerOf(records: number): Promise<string> {
    const ledger = ledgerPath();
    for (let i = 0; i < records; i++) await appendProvenance(ledger, step(`step-${i}`, [`out-${i}.json`]));
    return ledger;
  }

  it('detects any edited byte of a line, with its line number', async () => {
    const ledger = await ledgerOf(6);
    const original = readFileSync(ledger);
    const lineStarts = [0];
    original.forEach((byte, index) => {
      if (byte === 0x0a) lineStarts.push(index + 1);
    });
    for (const lineIndex of [1, 5]) {
      const start = lineStarts[lineIndex] as number;
      const end = (lineStarts[lineIndex + 1] as number) - 1; // the newline itself is not part of the line
      for (let position = start; position < end; position++) {
        const edited = Buffer.from(original);
        edited[position] = (edited[position] as number) ^ 0x01;
        writeFileSync(ledger, edited);
        expect(await verifyLedger(ledger), `byte ${position - start} of line ${lineIndex + 1}`).toEqual({
          ok: false,
          line: lineIndex + 1,
          problem: 'digest mismatch',
        });
      }
    }
    writeFileSync(ledger, original);
    expect(await verifyLedger(ledger)).toEqual({ ok: true, records: 6 });
  });

  it('reports a broken chain when a record is removed or records are swapped', async () => {
    const ledger = await ledgerOf(4);
    const original = lines(ledger);
    writeFileSync(ledger, `${[original[0], original[2], original[3]].join('\n')}\n`);
    expect(await verifyLedger(ledger)).toEqual({ ok: false, line: 2, problem: 'broken chain' });
    writeFileSync(ledger, `${[original[1], original[0]].join('\n')}\n`);
    expect(await verifyLedger(ledger)).toEqual({ ok: false, line: 1, problem: 'broken chain' });
  });

  it('counts physical lines, skipping blank ones', async () => {
    const ledger = await ledgerOf(2);
    const [first, second] = lines(ledger);
    writeFileSync(ledger, `${first}\n\n${second?.replace('step-1', 'step-X')}\n`);
    expect(await verifyLedger(ledger)).toEqual({ ok: false, line: 3, problem: 'digest mismatch' });
  });

  it('rejects a missing ledger with ENOENT and accepts an empty one', async () => {
    const ledger = ledgerPath();
    await expect(verifyLedger(ledger)).rejects.toMatchObject({ code: 'ENOENT' });
    const empty = join(scratch, 'empty.jsonl');
    writeFileSync(empty, '');
    expect(await verifyLedger(empty)).toEqual({ ok: true, records: 0 });
  });

  it('starts a new line after a torn last line, which verification then reports', async () => {
    const ledger = await ledgerOf(2);
    writeFileSync(ledger, `${readFileSync(ledger, 'utf8')}{"timestamp":1,"ste`);
    const record = await appendProvenance(ledger, step('after-crash'));
    expect(lines(ledger)).toHaveLength(4);
    expect(JSON.parse(lines(ledger)[3] as string)).toEqual(record);
    expect(await verifyLedger(ledger)).toEqual({ ok: false, line: 3, problem: 'digest mismatch' });
  });
});

describe('ledger lock', () => {
  it('waits for a live holder', async () => {
    const ledger = await (async () => {
      const path = ledgerPath();
      await appendProvenance(path, step('first'));
      return path;
    })();
    writeFileSync(`${ledger}.lock`, JSON.stringify({ pid: process.pid, host: hostname(), token: 'held' }));
    const started = Date.now();
    setTimeout(() => rmSync(`${ledger}.lock`), 200);
    await appendProvenance(ledger, step('second'));
    expect(Date.now() - started).toBeGreaterThanOrEqual(190);
    expect(await verifyLedger(ledger)).toEqual({ ok: true, records: 2 });
  });

  it('takes over the lock of a dead process or an old lock', async () => {
    const dead = spawnSync(process.execPath, ['-e', 'console.log(process.pid)'], { encoding: 'utf8' });
    const deadPid = Number(dead.stdout.trim());
    const ledger = ledgerPath();
    await appendProvenance(ledger, step('first'));
    writeFileSync(`${ledger}.lock`, JSON.stringify({ pid: deadPid, host: hostname(), token: 'dead' }));
    let started = Date.now();
    await appendProvenance(ledger, step('second'));
    expect(Date.now() - started).toBeLessThan(1000);

    writeFileSync(`${ledger}.lock`, JSON.stringify({ pid: process.pid, host: 'another-host', token: 'old' }));
    const minuteAgo = new Date(Date.now() - 60_000);
    utimesSync(`${ledger}.lock`, minuteAgo, minuteAgo);
    started = Date.now();
    await appendProvenance(ledger, step('third'));
    expect(Date.now() - started).toBeLessThan(1000);
    expect(existsSync(`${ledger}.lock`)).toBe(false);
    expect(await verifyLedger(ledger)).toEqual({ ok: true, records: 3 });
  });
});
