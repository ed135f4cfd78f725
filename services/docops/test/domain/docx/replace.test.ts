import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { paragraphXml, runXml, tableXml } from '../../../src/domain/docx/build.js';
import { openDocxPackage } from '../../../src/domain/docx/package.js';
import { replacePlaceholders, unsupportedLogEntries } from '../../../src/domain/docx/replace.js';
import { currentRunText, scanDocument } from '../../../src/domain/docx/scan.js';
import type { ScanResult } from '../../../src/domain/types.js';
import { DEFAULT_LIMITS, openBuilt, tempDir } from './fixtures/helpers.js';

const p = (...runs: string[]): string => `<w:p>${runs.join('')}</w:p>`;
const r = (text: string, rPr?: string): string => runXml(text, rPr);

async function fill(
  body: string,
  values: Record<string, string>,
  extra: Parameters<typeof openBuilt>[0] = {},
) {
  const pkg = await openBuilt({ ...extra, body });
  const scan = scanDocument(pkg);
  const result = replacePlaceholders(pkg, scan, new Map(Object.entries(values)));
  // what the written document holds, scanned afresh
  const out = join(tempDir(), 'out.docx');
  await pkg.writeTo(out);
  const after = scanDocument(await openDocxPackage(out, DEFAULT_LIMITS));
  return { pkg, scan, result, after, out };
}

const texts = (scan: ScanResult): string[] => scan.paragraphs.map((paragraph) => paragraph.text);

describe('replacePlaceholders', () => {
  it('replaces a placeholder and logs it (acceptance case 2)', async () => {
    const { result, after } = await fill(paragraphXml('Title: 【MEETING_TITLE】'), {
      MEETING_TITLE: 'Kickoff',
    });
    expect(texts(after)).toEqual(['Title: Kickoff']);
    expect(result).toEqual({
      entries: [
        {
          status: 'replaced',
          field_name: 'MEETING_TITLE',
          run_id: 'p0:r0',
          paragraph_path: 'p0',
          start: 7,
          end: 22,
          original_text: '【MEETING_TITLE】',
          new_text: 'Kickoff',
          reason: null,
          merged_runs: null,
        },
      ],
      touchedRunIds: ['p0:r0'],
      replacedCount: 1,
      missingCount: 0,
    });
  });

  it('replaces two placeholders in one run offset-safely (acceptance case 38)', async () => {
    const { result, after } = await fill(paragraphXml('【A】【B】'), { A: 'LONGA', B: 'X' });
    expect(texts(after)).toEqual(['LONGAX']);
    expect(result.entries.map((e) => [e.field_name, e.start, e.end])).toEqual([
      ['B', 3, 6],
      ['A', 0, 3],
    ]);
    const shrink = await fill(paragraphXml('x【LONG_NAME】y【B】z'), { LONG_NAME: '', B: 'bee' });
    expect(texts(shrink.after)).toEqual(['xybeez']);
  });

  it('replaces a merged split placeholder into the first run and empties the rest (acceptance case 36)', async () => {
    const { result, after, pkg } = await fill(p(r('Title: 【MEETING_'), r('TITLE】 today')), {
      MEETING_TITLE: 'Kickoff',
    });
    expect(texts(after)).toEqual(['Title: Kickoff today']);
    expect(after.paragraphs[0]?.runs.map((run) => run.text)).toEqual(['Title: Kickoff', ' today']);
    expect(result.entries).toEqual([
      {
        status: 'replaced',
        field_name: 'MEETING_TITLE',
        run_id: 'p0:r0',
        paragraph_path: 'p0',
        start: 7,
        end: 22,
        original_text: '【MEETING_TITLE】',
        new_text: 'Kickoff',
        reason: null,
        merged_runs: ['p0:r0', 'p0:r1'],
      },
    ]);
    expect(result.touchedRunIds).toEqual(['p0:r0', 'p0:r1']);
    expect(pkg.changedParts()).toEqual(['word/document.xml']);
  });

  it('keeps emptied runs in place so run ids do not shift', async () => {
    const { after } = await fill(p(r('【A'), r('B'), r('C】'), r('tail 【D】')), { ABC: 'v', D: 'd' });
    expect(after.paragraphs[0]?.runs.map((run) => [run.id, run.text])).toEqual([
      ['p0:r0', 'v'],
      ['p0:r1', ''],
      ['p0:r2', ''],
      ['p0:r3', 'tail d'],
    ]);
  });

  it('handles a merged token followed by another token in its last run', async () => {
    const { after, result } = await fill(p(r('【A】 【B'), r('】 and 【C】')), { A: '1', B: '22', C: '333' });
    expect(texts(after)).toEqual(['1 22 and 333']);
    expect(result.entries.map((e) => [e.field_name, e.run_id, e.start])).toEqual([
      ['B', 'p0:r0', 4],
      ['A', 'p0:r0', 0],
      ['C', 'p0:r1', 6],
    ]);
  });

  it('logs missing values and leaves their placeholders unchanged', async () => {
    const { result, after } = await fill(paragraphXml('【A】 and 【B】') + p(r('【C'), r('D】')), { B: 'b' });
    expect(texts(after)).toEqual(['【A】 and b', '【CD】']);
    expect(result.replacedCount).toBe(1);
    expect(result.missingCount).toBe(2);
    expect(result.entries).toEqual([
      {
        status: 'replaced',
        field_name: 'B',
        run_id: 'p0:r0',
        paragraph_path: 'p0',
        start: 8,
        end: 11,
        original_text: '【B】',
        new_text: 'b',
        reason: null,
        merged_runs: null,
      },
      {
        status: 'missing',
        field_name: 'A',
        run_id: 'p0:r0',
        paragraph_path: 'p0',
        start: 0,
        end: 3,
        original_text: '【A】',
        new_text: null,
        reason: 'missing_field',
        merged_runs: null,
      },
      {
        status: 'missing',
        field_name: 'CD',
        run_id: 'p1:r0',
        paragraph_path: 'p1',
        start: 0,
        end: 4,
        original_text: '【CD】',
        new_text: null,
        reason: 'missing_field',
        merged_runs: ['p1:r0', 'p1:r1'],
      },
    ]);
    expect(result.touchedRunIds).toEqual(['p0:r0']);
  });

  it('treats an empty string as a value', async () => {
    const { result, after } = await fill(paragraphXml('a【A】b'), { A: '' });
    expect(texts(after)).toEqual(['ab']);
    expect(result.replacedCount).toBe(1);
  });

  it('orders entries: unsupported first, then runs in document order (p2 before p10), descending start', async () => {
    const paragraphs = Array.from({ length: 11 }, (_, i) =>
      paragraphXml(i === 2 || i === 10 ? `【A】 【B】 #${i}` : `x${i}`),
    );
    const { result } = await fill(paragraphs.join('') + paragraphXml('bad 【x】'), { A: 'a', B: 'b' });
    expect(result.entries.map((e) => [e.status, e.paragraph_path, e.field_name, e.start])).toEqual([
      ['unsupported', 'p11', null, 4],
      ['replaced', 'p2', 'B', 4],
      ['replaced', 'p2', 'A', 0],
      ['replaced', 'p10', 'B', 4],
      ['replaced', 'p10', 'A', 0],
    ]);
    expect(result.entries[0]).toEqual({
      status: 'unsupported',
      field_name: null,
      run_id: 'p11:r0',
      paragraph_path: 'p11',
      start: 4,
      end: 7,
      original_text: '【x】',
      new_text: null,
      reason: 'invalid_format',
      merged_runs: null,
    });
  });

  it('replaces in tables, nested tables, merged cells, hyperlinks, insertions and headers once each (acceptance case 37)', async () => {
    const nested = tableXml([['inner 【A】']]);
    const body =
      paragraphXml('body 【MEETING_TITLE】') +
      p(
        `<w:hyperlink r:id="rIdLink">${r('link 【A】')}</w:hyperlink>`,
        `<w:ins w:id="1" w:author="x">${r(' ins 【A】')}</w:ins>`,
      ) +
      p(r('kept '), '<w:del w:id="2" w:author="x"><w:r><w:delText>【A】</w:delText></w:r></w:del>') +
      `<w:tbl><w:tr><w:tc><w:tcPr><w:gridSpan w:val="2"/></w:tcPr>${paragraphXml('span 【A】')}${nested}</w:tc></w:tr></w:tbl>`;
    const { result, after, pkg } = await fill(
      body,
      { MEETING_TITLE: 'Kickoff', MEETING_DATE: 'Monday', A: 'a' },
      { headers: { header1: paragraphXml('Date: 【MEETING_DATE】') } },
    );
    expect(texts(after)).toEqual([
      'body Kickoff',
      'link a ins a',
      'kept ',
      'span a',
      'inner a',
      'Date: Monday',
    ]);
    expect(result.replacedCount).toBe(6);
    expect(result.touchedRunIds).toEqual([
      'p0:r0',
      'p1:r0',
      'p1:r1',
      't0.r0.c0.p0:r0',
      't0.r0.c0.t0.r0.c0.p0:r0',
      'header1.p0:r0',
    ]);
    expect(pkg.changedParts()).toEqual(['word/document.xml', 'word/header1.xml']);
    // the deleted text is untouched
    expect(Buffer.from(pkg.readPart('word/document.xml') ?? []).toString()).toContain(
      '<w:delText>【A】</w:delText>',
    );
  });

  it('writes into the w:t where the token starts and keeps tabs and breaks outside the token', async () => {
    const body = p(
      '<w:r><w:t>a</w:t><w:tab/><w:t xml:space="preserve">x 【NA</w:t><w:t>ME】 y</w:t><w:br/><w:t>z【B】</w:t></w:r>',
    );
    const { after, pkg } = await fill(body, { NAME: 'value', B: 'bee' });
    expect(texts(after)).toEqual(['a\tx value y\nzbee']);
    const xml = Buffer.from(pkg.readPart('word/document.xml') ?? []).toString();
    expect(xml).toContain(
      '<w:t>a</w:t><w:tab/><w:t xml:space="preserve">x value</w:t><w:t xml:space="preserve"> y</w:t><w:br/><w:t>zbee</w:t>',
    );
  });

  it('sets xml:space="preserve" when the new text has leading or trailing spaces', async () => {
    const { pkg } = await fill(p('<w:r><w:t>【A】</w:t></w:r>'), { A: '  padded  ' });
    const xml = Buffer.from(pkg.readPart('word/document.xml') ?? []).toString();
    expect(xml).toContain('<w:t xml:space="preserve">  padded  </w:t>');
  });

  it('turns tabs and line breaks of a value into w:tab and w:br and drops characters XML cannot hold', async () => {
    const { after, pkg, result } = await fill(
      p('<w:r><w:rPr><w:b/></w:rPr><w:t>before 【A】 after</w:t></w:r>'),
      {
        A: 'line1\r\nline2\tcol\u0001',
      },
    );
    expect(texts(after)).toEqual(['before line1\nline2\tcol after']);
    expect(result.entries[0]?.new_text).toBe('line1\nline2\tcol');
    const xml = Buffer.from(pkg.readPart('word/document.xml') ?? []).toString();
    expect(xml).toContain(
      '<w:r><w:rPr><w:b/></w:rPr><w:t>before line1</w:t><w:br/><w:t>line2</w:t><w:tab/><w:t>col after</w:t></w:r>',
    );
    const run = scanDocument(pkg).paragraphs[0]?.runs[0]?.element;
    expect(run && currentRunText(run)).toBe('before line1\nline2\tcol after');
  });

  it('escapes XML special characters in values', async () => {
    const { after } = await fill(paragraphXml('【A】'), { A: '<b>&"x"</b>' });
    expect(texts(after)).toEqual(['<b>&"x"</b>']);
  });

  it('does not change run or paragraph properties', async () => {
    const body = paragraphXml('【A】', {
      pPr: '<w:ind w:firstLine="480"/>',
      rPr: '<w:rFonts w:ascii="Arial"/><w:sz w:val="28"/>',
    });
    const { pkg } = await fill(body, { A: 'value' });
    const xml = Buffer.from(pkg.readPart('word/document.xml') ?? []).toString();
    expect(xml).toContain(
      '<w:p><w:pPr><w:ind w:firstLine="480"/></w:pPr><w:r><w:rPr><w:rFonts w:ascii="Arial"/><w:sz w:val="28"/></w:rPr><w:t xml:space="preserve">value</w:t></w:r></w:p>',
    );
  });

  it('leaves unsupported tokens and marks nothing when nothing is replaced', async () => {
    const { result, pkg, after } = await fill(p(r('【MEETING_'), r('TITLE】', '<w:b/>')), {
      MEETING_TITLE: 'x',
    });
    expect(texts(after)).toEqual(['【MEETING_TITLE】']);
    expect(result.replacedCount).toBe(0);
    expect(pkg.changedParts()).toEqual([]);
    expect(result.entries).toEqual([
      {
        status: 'unsupported',
        field_name: 'MEETING_TITLE',
        run_id: 'p0:r0',
        paragraph_path: 'p0',
        start: 0,
        end: 15,
        original_text: '【MEETING_TITLE】',
        new_text: null,
        reason: 'cross_run',
        merged_runs: null,
      },
    ]);
  });
});

describe('unsupportedLogEntries', () => {
  it('lists the unsupported tokens in document order with the kind as reason', async () => {
    const pkg = await openBuilt({ paragraphs: ['Hello】World', 'Hello【FIELD', 'ok 【A】'] });
    expect(
      unsupportedLogEntries(scanDocument(pkg)).map((e) => [
        e.status,
        e.reason,
        e.paragraph_path,
        e.original_text,
      ]),
    ).toEqual([
      ['unsupported', 'stray_close', 'p0', '】'],
      ['unsupported', 'unclosed_bracket', 'p1', '【FIELD'],
    ]);
  });
});

describe('a 300-page template (P3)', () => {
  it('scans and replaces 10,000 paragraphs, 2,000 placeholders and 60 tables correctly', async () => {
    const parts: string[] = [];
    let placeholders = 0;
    for (let i = 0; i < 9_760; i += 1) {
      if (i % 5 === 0) {
        const field = `FIELD_${i % 40}`;
        // every tenth placeholder is split over two runs with equal formatting
        parts.push(
          i % 50 === 0
            ? p(
                r(`Paragraph ${i}: 【${field.slice(0, 3)}`, '<w:sz w:val="24"/>'),
                r(`${field.slice(3)}】 end`, '<w:sz w:val="24"/>'),
              )
            : paragraphXml(`Paragraph ${i}: 【${field}】 end`),
        );
        placeholders += 1;
      } else {
        parts.push(paragraphXml(`Paragraph ${i} with some ordinary text to make the document realistic.`));
      }
      if (i % 163 === 0 && i / 163 < 60)
        parts.push(
          tableXml([
            ['【TABLE_FIELD】', 'b'],
            ['c', 'd'],
          ]),
        );
    }
    expect(placeholders).toBe(1952);
    const values = new Map(Array.from({ length: 40 }, (_, k) => [`FIELD_${k}`, `value ${k}`]));
    values.set('TABLE_FIELD', 'in table');
    const pkg = await openBuilt({ body: parts.join('') });
    const scan = scanDocument(pkg);
    expect(scan.paragraphs).toHaveLength(9_760 + 60 * 4);
    expect(scan.topLevelTables).toHaveLength(60);
    expect(scan.tokens).toHaveLength(1952 + 60);
    expect(scan.tokens.filter((t) => t.mergedRuns !== null)).toHaveLength(196);
    const result = replacePlaceholders(pkg, scan, values);
    expect(result.replacedCount).toBe(2012);
    const out = join(tempDir(), 'big.docx');
    await pkg.writeTo(out);
    const after = scanDocument(await openDocxPackage(out, DEFAULT_LIMITS));
    expect(after.tokens).toHaveLength(0);
    expect(after.paragraphs[0]?.text).toBe('Paragraph 0: value 0 end');
    expect(after.paragraphs[9_755]?.text).toBe('Paragraph 9755: value 35 end');
    expect(after.paragraphs.filter((x) => x.text === 'in table')).toHaveLength(60);
  });
});

describe('python-docx reads the output', () => {
  const python = ['/usr/bin/python3', 'python3'].find(
    (candidate) => spawnSync(candidate, ['-c', 'import docx'], { stdio: 'ignore' }).status === 0,
  );
  if (python === undefined)
    console.warn('python-docx not installed: skipping the python-docx check of written documents');

  it.skipIf(python === undefined)(
    'opens a filled document with headers, tables and merged tokens',
    async () => {
      const { out } = await fill(
        paragraphXml('Title: 【MEETING_TITLE】') +
          p(r('【MEETING_'), r('DATE】')) +
          tableXml([['【A】', 'x']]),
        { MEETING_TITLE: 'Kickoff & <review>', MEETING_DATE: '2026-01-01', A: 'cell' },
        { headers: { header1: paragraphXml('Header 【A】') } },
      );
      const script =
        'import docx, json, sys\n' +
        'd = docx.Document(sys.argv[1])\n' +
        'print(json.dumps({"p": [p.text for p in d.paragraphs], "t": [c.text for c in d.tables[0].rows[0].cells],' +
        ' "h": [p.text for p in d.sections[0].header.paragraphs]}))\n';
      const run = spawnSync(python as string, ['-c', script, out], { encoding: 'utf8' });
      expect(run.stderr).toBe('');
      expect(JSON.parse(run.stdout)).toEqual({
        p: ['Title: Kickoff & <review>', '2026-01-01'],
        t: ['cell', 'x'],
        h: ['Header cell'],
      });
    },
  );
});
