// `openworld-chem process-chemistry` through the compiled bin (spec §3.6, §3.13; acceptance cases 9, 10, 11).
import { createHash } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { humanStderr, ledgerRecords, logLines, type Workspace, workspace } from './cli-harness.js';

let ws: Workspace;
beforeAll(() => {
  ws = workspace();
});
afterAll(() => ws.cleanup());

function series(times: number[], value: (t: number) => number, species = 'SO4'): string {
  return `time,species,concentration\n${times.map((t) => `${t},${species},${value(t)}`).join('\n')}\n`;
}
const TEN = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9];

describe('process-chemistry', () => {
  it('fits first-order decay exactly, writes fit.json, logs k/Kd, records provenance and lineage (case 9)', () => {
    const text = series(TEN, (t) => 50 * Math.exp(-0.3 * t));
    const csv = ws.input('decay.csv', text);
    const result = ws.run(['process-chemistry', '-i', csv, '-s', 'SO4']);
    expect(result.status).toBe(0);
    const out = join(ws.artifacts, 'fit.json');
    const fit = JSON.parse(readFileSync(out, 'utf8'));
    expect(JSON.parse(result.stdout)).toEqual(fit);
    expect(fit).toMatchObject({
      species: 'SO4',
      model: 'first_order_decay',
      Kd: null,
      n: 10,
      c0: 50,
      time_unit: 'input',
    });
    expect(Math.abs(fit.k - 0.3)).toBeLessThan(1e-9);
    expect(fit.r2).toBeCloseTo(1, 12);
    expect(fit.half_life).toBeCloseTo(Math.LN2 / 0.3, 9);

    const completed = logLines(result.stderr).find((line) => line.event === 'chemistry_fit_completed');
    expect(completed).toMatchObject({ level: 'info', Kd: null, species: 'SO4' });
    expect(Math.abs(Number(completed?.k) - 0.3)).toBeLessThan(1e-9);

    const sha256 = createHash('sha256').update(text).digest('hex');
    expect(ledgerRecords(ws.provenanceLedger).at(-1)).toMatchObject({
      step: 'process_chemistry',
      params: { species: 'SO4', model: 'decay', volume_l: null, solids_kg: null },
      inputs: [csv],
      outputs: [out],
      input_digests: { [csv]: sha256 },
    });
    expect(ledgerRecords(ws.lineageLedger).at(-1)).toMatchObject({
      sample_id: `SO4:${sha256.slice(0, 12)}`,
      source: 'lab_csv',
      species: 'SO4',
      method: 'fit_parameters',
      model: 'first_order_decay',
      calibration: fit,
      file: csv,
      file_sha256: sha256,
    });
  });

  it('fits sorption with and without --volume-l/--solids-kg; one alone or with decay is a usage error (case 10)', () => {
    const csv = ws.input(
      'sorption.csv',
      series(TEN, (t) => 10 + 40 * Math.exp(-0.5 * t), 'Ni'),
    );
    const out = join(ws.state, 'fits', 'sorption.json');
    const plain = ws.run([
      '-q',
      'process-chemistry',
      '-i',
      csv,
      '-s',
      'Ni',
      '--model',
      'sorption',
      '-o',
      out,
    ]);
    expect(plain.status).toBe(0);
    const withoutMass = JSON.parse(readFileSync(out, 'utf8'));
    expect(withoutMass).toMatchObject({
      model: 'pseudo_first_order_sorption',
      Kd: null,
      volume_l: null,
      solids_kg: null,
      C0: 50,
    });
    expect(withoutMass.k).toBeCloseTo(0.5, 6);
    expect(withoutMass.Ce).toBeCloseTo(10, 6);

    const withMass = ws.run([
      '-q',
      'process-chemistry',
      '-i',
      csv,
      '-s',
      'Ni',
      '--model',
      'sorption',
      '--volume-l',
      '2',
      '--solids-kg',
      '0.5',
      '-o',
      out,
    ]);
    expect(withMass.status).toBe(0);
    const fit = JSON.parse(withMass.stdout);
    expect(fit).toMatchObject({ volume_l: 2, solids_kg: 0.5 });
    expect(fit.Kd).toBeCloseTo(((50 - 10) / 10) * (2 / 0.5), 4);
    expect(fit.sorbed_fraction).toBeCloseTo(0.8, 6);

    const records = ledgerRecords(ws.provenanceLedger).length;
    for (const args of [
      ['--model', 'sorption', '--volume-l', '2'],
      ['--model', 'sorption', '--solids-kg', '1'],
      ['--volume-l', '2', '--solids-kg', '1'],
      ['--model', 'sorption', '--volume-l', '-2', '--solids-kg', '1'],
      ['--model', 'linear'],
    ]) {
      const result = ws.run([
        '-q',
        'process-chemistry',
        '-i',
        csv,
        '-s',
        'Ni',
        '-o',
        join(ws.state, 'no.json'),
        ...args,
      ]);
      expect(result.status, args.join(' ')).toBe(2);
      expect(result.stderr).toMatch(/^error: /);
    }
    expect(existsSync(join(ws.state, 'no.json'))).toBe(false);
    expect(ledgerRecords(ws.provenanceLedger)).toHaveLength(records);
  });

  it('exits 4 for one reading or an absent species, without output or records (case 11)', () => {
    const records = ledgerRecords(ws.provenanceLedger).length;
    const lineage = ledgerRecords(ws.lineageLedger).length;
    const out = join(ws.state, 'single.json');
    const single = ws.run([
      'process-chemistry',
      '-i',
      ws.input('one.csv', 'time,species,concentration\n0,SO4,5\n'),
      '-s',
      'SO4',
      '-o',
      out,
    ]);
    expect(single.status).toBe(4);
    expect(humanStderr(single.stderr)).toMatch(/^error: /);
    const csv = ws.input(
      'two.csv',
      series([0, 1, 2], (t) => 5 - t),
    );
    const absent = ws.run(['-q', 'process-chemistry', '-i', csv, '-s', 'As', '-o', out]);
    expect(absent.status).toBe(4);
    expect(absent.stderr).toContain('As');
    expect(existsSync(out)).toBe(false);
    expect(ledgerRecords(ws.provenanceLedger)).toHaveLength(records);
    expect(ledgerRecords(ws.lineageLedger)).toHaveLength(lineage);
  });

  it('turns ISO times into hours since the first reading', () => {
    const iso = `time,species,concentration\n${[0, 1, 2, 3]
      .map((h) => `2024-05-01T${String(h).padStart(2, '0')}:00:00Z,SO4,${100 * Math.exp(-0.2 * h)}`)
      .join('\n')}\n`;
    const result = ws.run([
      '-q',
      'process-chemistry',
      '-i',
      ws.input('iso.csv', iso),
      '-s',
      'SO4',
      '-o',
      join(ws.state, 'iso.json'),
    ]);
    expect(result.status).toBe(0);
    const fit = JSON.parse(result.stdout);
    expect(fit.time_unit).toBe('h');
    expect(fit.k).toBeCloseTo(0.2, 9);
  });
});
