import { describe, expect, it } from 'vitest';
import { paragraphXml, runXml, tableXml } from '../../../src/domain/docx/build.js';
import {
  currentRunText,
  paragraphProperties,
  runProperties,
  scanDocument,
} from '../../../src/domain/docx/scan.js';
import { openBuilt } from './fixtures/helpers.js';

async function scanBody(body: string, extra: Parameters<typeof openBuilt>[0] = {}) {
  const pkg = await openBuilt({ ...extra, body });
  return { pkg, scan: scanDocument(pkg) };
}

const p = (...runs: string[]): string => `<w:p>${runs.join('')}</w:p>`;
const r = (text: string, rPr?: string): string => runXml(text, rPr);

describe('paragraph order and paths', () => {
  it('visits body paragraphs, then tables, then headers and footers by part name', async () => {
    const body = paragraphXml('first') + tableXml([['a', 'b']]) + paragraphXml('second') + tableXml([['c']]);
    const { scan } = await scanBody(body, {
      headers: { header2: paragraphXml('h2'), header10: paragraphXml('h10') },
      footers: { footer1: tableXml([['f']]) },
    });
    expect(scan.paragraphs.map((x) => [x.path, x.region, x.text, x.topTableIndex])).toEqual([
      ['p0', 'body', 'first', null],
      ['p1', 'body', 'second', null],
      ['t0.r0.c0.p0', 'table', 'a', 0],
      ['t0.r0.c1.p0', 'table', 'b', 0],
      ['t1.r0.c0.p0', 'table', 'c', 1],
      ['footer1.t0.r0.c0.p0', 'footer', 'f', null],
      ['header2.p0', 'header', 'h2', null],
      ['header10.p0', 'header', 'h10', null],
    ]);
    expect(scan.topLevelTables).toHaveLength(2);
    expect(scan.paragraphs[5]?.part).toBe('word/footer1.xml');
  });

  it('uses the grid column for cells after a gridSpan and visits merged cells once', async () => {
    const tc = (text: string, tcPr = ''): string =>
      `<w:tc>${tcPr ? `<w:tcPr>${tcPr}</w:tcPr>` : ''}${paragraphXml(text)}</w:tc>`;
    const body =
      '<w:tbl><w:tblGrid><w:gridCol/><w:gridCol/><w:gridCol/></w:tblGrid>' +
      `<w:tr>${tc('wide 【A】', '<w:gridSpan w:val="2"/>')}${tc('c2')}</w:tr>` +
      `<w:tr>${tc('top', '<w:vMerge w:val="restart"/>')}${tc('x')}${tc('y')}</w:tr>` +
      `<w:tr>${tc('', '<w:vMerge/>')}${tc('z')}${tc('w')}</w:tr>` +
      `<w:tr><w:trPr><w:gridBefore w:val="1"/></w:trPr>${tc('after gap')}</w:tr>` +
      '</w:tbl>';
    const { scan } = await scanBody(body);
    expect(scan.paragraphs.map((x) => x.path)).toEqual([
      't0.r0.c0.p0',
      't0.r0.c2.p0',
      't0.r1.c0.p0',
      't0.r1.c1.p0',
      't0.r1.c2.p0',
      't0.r2.c0.p0',
      't0.r2.c1.p0',
      't0.r2.c2.p0',
      't0.r3.c1.p0',
    ]);
    expect(scan.tokens.map((t) => t.runId)).toEqual(['t0.r0.c0.p0:r0']);
  });

  it('appends nested table paths to the cell path, after the cell paragraphs', async () => {
    const inner = tableXml([['inner 【B】']]);
    const body = `<w:tbl><w:tr><w:tc>${paragraphXml('outer')}${inner}${paragraphXml('outer 2')}</w:tc></w:tr></w:tbl>`;
    const { scan } = await scanBody(body);
    expect(scan.paragraphs.map((x) => [x.path, x.text, x.topTableIndex])).toEqual([
      ['t0.r0.c0.p0', 'outer', 0],
      ['t0.r0.c0.p1', 'outer 2', 0],
      ['t0.r0.c0.t0.r0.c0.p0', 'inner 【B】', 0],
    ]);
    expect(scan.tokens[0]?.runId).toBe('t0.r0.c0.t0.r0.c0.p0:r0');
    expect(scan.topLevelTables).toHaveLength(1);
  });

  it('scans each referenced header once, also when several sections reference it, and skips unreferenced parts', async () => {
    const pkgBody =
      '<w:p><w:pPr><w:sectPr><w:headerReference w:type="default" r:id="rId_header_1"/></w:sectPr></w:pPr>' +
      r('section 1') +
      '</w:p>';
    const { scan } = await scanBody(pkgBody, {
      headers: { header1: paragraphXml('H 【MEETING_DATE】') },
      extraParts: {
        'word/header9.xml': '<w:hdr xmlns:w="http://schemas.openxmlformats.org/wordprocessingml/2006/main"/>',
      },
    });
    // the builder appends a final sectPr referencing header1 as well
    expect(scan.paragraphs.map((x) => x.path)).toEqual(['p0', 'header1.p0']);
    expect(scan.tokens.map((t) => [t.fieldName, t.runId])).toEqual([['MEETING_DATE', 'header1.p0:r0']]);
  });
});

describe('considered runs and run text', () => {
  it('counts runs in hyperlinks, insertions, smart tags, custom XML, content controls and simple fields', async () => {
    const body = p(
      r('a'),
      `<w:hyperlink r:id="rIdX">${r('b')}</w:hyperlink>`,
      `<w:ins w:id="1" w:author="x">${r('c')}</w:ins>`,
      `<w:smartTag w:uri="u" w:element="e">${r('d')}</w:smartTag>`,
      `<w:customXml w:element="e">${r('e')}</w:customXml>`,
      `<w:sdt><w:sdtPr/><w:sdtContent>${r('f')}</w:sdtContent></w:sdt>`,
      `<w:fldSimple w:instr="PAGE">${r('g')}</w:fldSimple>`,
      `<w:del w:id="2" w:author="x"><w:r><w:delText>DELETED</w:delText></w:r></w:del>`,
      `<w:moveFrom w:id="3" w:author="x">${r('MOVED')}</w:moveFrom>`,
      r('h'),
    );
    const { scan } = await scanBody(body);
    const paragraph = scan.paragraphs[0];
    expect(paragraph?.text).toBe('abcdefgh');
    expect(paragraph?.runs.map((run) => [run.id, run.index, run.text])).toEqual(
      [...'abcdefgh'].map((ch, k) => [`p0:r${k}`, k, ch]),
    );
  });

  it('reads w:t, tabs, breaks and non-breaking hyphens as run text', async () => {
    const body = p(
      '<w:r><w:t>a</w:t><w:tab/><w:t>b</w:t><w:br/><w:cr/><w:ptab w:relativeTo="margin" w:alignment="right" w:leader="none"/><w:noBreakHyphen/><w:softHyphen/><w:instrText>X</w:instrText><w:t xml:space="preserve"> c </w:t></w:r>',
    );
    const { scan } = await scanBody(body);
    expect(scan.paragraphs[0]?.text).toBe('a\tb\n\n\t- c ');
    const run = scan.paragraphs[0]?.runs[0]?.element;
    expect(run && currentRunText(run)).toBe('a\tb\n\n\t- c ');
  });

  it('exposes run and paragraph properties', async () => {
    const { scan } = await scanBody(paragraphXml('x', { pPr: '<w:ind w:firstLine="480"/>', rPr: '<w:b/>' }));
    const paragraph = scan.paragraphs[0];
    expect(paragraph && paragraphProperties(paragraph.element)?.firstChild?.nodeName).toBe('w:ind');
    const run = paragraph?.runs[0]?.element;
    expect(run && runProperties(run)?.firstChild?.nodeName).toBe('w:b');
    expect(runProperties(scan.paragraphs[0]?.element ?? (undefined as never))).toBeNull();
  });
});

describe('placeholder scans (acceptance case 35)', () => {
  it('finds single and multiple placeholders in a run with exact offsets', async () => {
    const { scan } = await scanBody(
      paragraphXml('Title: 【MEETING_TITLE】') + paragraphXml('【A】 and 【B_2】'),
    );
    expect(scan.tokens).toEqual([
      {
        fieldName: 'MEETING_TITLE',
        paragraphPath: 'p0',
        runId: 'p0:r0',
        start: 7,
        end: 22,
        paragraphStart: 7,
        paragraphEnd: 22,
        mergedRuns: null,
      },
      {
        fieldName: 'A',
        paragraphPath: 'p1',
        runId: 'p1:r0',
        start: 0,
        end: 3,
        paragraphStart: 0,
        paragraphEnd: 3,
        mergedRuns: null,
      },
      {
        fieldName: 'B_2',
        paragraphPath: 'p1',
        runId: 'p1:r0',
        start: 8,
        end: 13,
        paragraphStart: 8,
        paragraphEnd: 13,
        mergedRuns: null,
      },
    ]);
    expect(scan.unsupported).toEqual([]);
  });

  it('gives offsets relative to the run holding the token', async () => {
    const { scan } = await scanBody(p(r('Date: '), r('on 【D】')));
    expect(scan.tokens[0]).toMatchObject({
      runId: 'p0:r1',
      start: 3,
      end: 6,
      paragraphStart: 9,
      paragraphEnd: 12,
    });
  });

  it('reports invalid names, stray closes and unclosed brackets', async () => {
    const { scan } = await scanBody(
      paragraphXml('x【meeting_title】y') +
        paragraphXml('Hello【FIELD') +
        paragraphXml('Hello】World') +
        paragraphXml('【】【A-B】'),
    );
    expect(scan.tokens).toEqual([]);
    expect(scan.unsupported).toEqual([
      {
        kind: 'invalid_format',
        text: '【meeting_title】',
        runId: 'p0:r0',
        paragraphPath: 'p0',
        start: 1,
        end: 16,
      },
      { kind: 'unclosed_bracket', text: '【FIELD', runId: 'p1:r0', paragraphPath: 'p1', start: 5, end: 11 },
      { kind: 'stray_close', text: '】', runId: 'p2:r0', paragraphPath: 'p2', start: 5, end: 6 },
      { kind: 'invalid_format', text: '【】', runId: 'p3:r0', paragraphPath: 'p3', start: 0, end: 2 },
      { kind: 'invalid_format', text: '【A-B】', runId: 'p3:r0', paragraphPath: 'p3', start: 2, end: 7 },
    ]);
  });

  it('handles valid and invalid tokens mixed in one paragraph', async () => {
    const { scan } = await scanBody(paragraphXml('【OK】 【bad】 】 【NAME】 【open'));
    expect(scan.tokens.map((t) => [t.fieldName, t.start, t.end])).toEqual([
      ['OK', 0, 4],
      ['NAME', 13, 19],
    ]);
    expect(scan.unsupported.map((u) => [u.kind, u.text, u.start, u.end])).toEqual([
      ['invalid_format', '【bad】', 5, 10],
      ['stray_close', '】', 11, 12],
      ['unclosed_bracket', '【open', 20, 25],
    ]);
  });

  it('runs the three scans independently on nested brackets', async () => {
    const { scan } = await scanBody(paragraphXml('【a【B】'));
    expect(scan.tokens.map((t) => [t.fieldName, t.paragraphStart])).toEqual([['B', 2]]);
    expect(scan.unsupported.map((u) => [u.kind, u.text, u.start])).toEqual([
      ['invalid_format', '【a【B】', 0],
      ['unclosed_bracket', '【a【B】', 0],
    ]);
  });

  it('gives table cell run ids', async () => {
    const { scan } = await scanBody(tableXml([['【MEETING_TITLE】']]));
    expect(scan.tokens[0]?.runId).toBe('t0.r0.c0.p0:r0');
    expect(scan.tokens[0]?.paragraphPath).toBe('t0.r0.c0.p0');
  });
});

describe('split placeholders (acceptance case 36, §5 item 1)', () => {
  it('merges a token split over two runs without properties', async () => {
    const { scan } = await scanBody(p(r('【MEETING_'), r('TITLE】')));
    expect(scan.unsupported).toEqual([]);
    expect(scan.tokens).toEqual([
      {
        fieldName: 'MEETING_TITLE',
        paragraphPath: 'p0',
        runId: 'p0:r0',
        start: 0,
        end: 15,
        paragraphStart: 0,
        paragraphEnd: 15,
        mergedRuns: ['p0:r0', 'p0:r1'],
      },
    ]);
  });

  it('reports cross_run when the second run is bold', async () => {
    const { scan } = await scanBody(p(r('Title: 【MEETING_'), r('TITLE】', '<w:b/>')));
    expect(scan.tokens).toEqual([]);
    expect(scan.unsupported).toEqual([
      {
        kind: 'cross_run',
        text: '【MEETING_TITLE】',
        runId: 'p0:r0',
        paragraphPath: 'p0',
        start: 7,
        end: 22,
      },
    ]);
  });

  it('merges runs that differ only by rsid attributes, w:lang and w:noProof', async () => {
    const body = p(
      `<w:r w:rsidR="00A1" w:rsidRPr="00B2"><w:rPr><w:rFonts w:ascii="Calibri" w:hAnsi="Calibri"/><w:sz w:val="24"/><w:lang w:val="en-US"/></w:rPr><w:t>【MEET</w:t></w:r>`,
      `<w:r w:rsidR="00C3"><w:rPr><w:rFonts w:hAnsi="Calibri" w:ascii="Calibri"/><w:noProof/><w:sz w:val="24"/><w:lang w:val="zh-CN" w:eastAsia="zh-CN"/></w:rPr><w:t>ING_</w:t></w:r>`,
      `<w:r><w:rPr><w:rFonts xmlns:x="urn:unused" w:ascii="Calibri" w:hAnsi="Calibri"/><w:sz w:val="24"/></w:rPr><w:lastRenderedPageBreak/><w:t>TITLE】 tail</w:t></w:r>`,
    );
    const { scan } = await scanBody(body);
    expect(scan.unsupported).toEqual([]);
    expect(scan.tokens[0]?.mergedRuns).toEqual(['p0:r0', 'p0:r1', 'p0:r2']);
  });

  it('merges across proofing and bookmark markers', async () => {
    const body = p(
      r('【MEE'),
      '<w:proofErr w:type="spellStart"/>',
      r('TING'),
      '<w:bookmarkStart w:id="0" w:name="x"/><w:bookmarkEnd w:id="0"/><w:permStart w:id="1"/><w:permEnd w:id="1"/>',
      '<w:commentRangeStart w:id="5"/>',
      r('_TITLE'),
      '<w:commentRangeEnd w:id="5"/><w:proofErr w:type="spellEnd"/>',
      r('】'),
    );
    const { scan } = await scanBody(body);
    expect(scan.unsupported).toEqual([]);
    expect(scan.tokens[0]?.mergedRuns).toEqual(['p0:r0', 'p0:r1', 'p0:r2', 'p0:r3']);
  });

  it('includes empty runs lying inside the token and ignores those outside', async () => {
    const { scan } = await scanBody(p(r(''), r('【A'), r(''), r('B】'), r('')));
    expect(scan.tokens[0]).toMatchObject({ runId: 'p0:r1', mergedRuns: ['p0:r1', 'p0:r2', 'p0:r3'] });
  });

  it('does not merge runs with different parents, other elements between them, or other run content', async () => {
    const { scan } = await scanBody(
      p(r('【A'), `<w:hyperlink r:id="x">${r('B】')}</w:hyperlink>`) +
        p(r('【C'), '<w:ins w:id="1" w:author="a"/>', r('D】')) +
        p('<w:r><w:t>【E</w:t><w:sym w:font="Wingdings" w:char="F0E0"/></w:r>', r('F】')) +
        p(r('【G'), r('H】', '<w:color w:val="FF0000"/>')) +
        p(r('【I', '<w:b/><w:i/>'), r('J】', '<w:i/><w:b/>')),
    );
    expect(scan.tokens).toEqual([]);
    expect(scan.unsupported.map((u) => [u.kind, u.text, u.runId])).toEqual([
      ['cross_run', '【AB】', 'p0:r0'],
      ['cross_run', '【CD】', 'p1:r0'],
      ['cross_run', '【EF】', 'p2:r0'],
      ['cross_run', '【GH】', 'p3:r0'],
      ['cross_run', '【IJ】', 'p4:r0'],
    ]);
  });

  it('merges runs inside the same wrapper element', async () => {
    const { scan } = await scanBody(p(r('x'), `<w:ins w:id="1" w:author="a">${r('【A')}${r('B】')}</w:ins>`));
    expect(scan.tokens[0]).toMatchObject({ fieldName: 'AB', runId: 'p0:r1', mergedRuns: ['p0:r1', 'p0:r2'] });
  });
});
