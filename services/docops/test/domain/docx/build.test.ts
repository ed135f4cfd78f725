import { spawnSync } from 'node:child_process';
import { unzipSync } from 'fflate';
import { describe, expect, it } from 'vitest';
import { buildDocx, paragraphXml, runXml, tableXml, W_NS } from '../../../src/domain/docx/build.js';
import { parseXml } from '../../../src/domain/docx/dom.js';
import { headerFooterParts, scanDocument, W } from '../../../src/domain/docx/scan.js';
import { openBytes, tempFile } from './fixtures/helpers.js';

const text = (bytes: Uint8Array | undefined): string => Buffer.from(bytes ?? []).toString('utf8');

describe('buildDocx', () => {
  it('writes the package parts in a fixed order, deterministically', () => {
    const options = {
      paragraphs: ['a'],
      headers: { header1: paragraphXml('h') },
      extraParts: { 'word/media/image1.png': new Uint8Array([1, 2]) },
    };
    const bytes = buildDocx(options);
    expect(Buffer.from(buildDocx(options)).equals(Buffer.from(bytes))).toBe(true);
    expect(Object.keys(unzipSync(bytes))).toEqual([
      '[Content_Types].xml',
      '_rels/.rels',
      'word/document.xml',
      'word/_rels/document.xml.rels',
      'word/styles.xml',
      'word/header1.xml',
      'word/media/image1.png',
    ]);
    const types = text(unzipSync(bytes)['[Content_Types].xml']);
    expect(types).toContain('<Default Extension="png" ContentType="image/png"/>');
    expect(types).toContain('PartName="/word/header1.xml"');
    expect(W_NS).toBe(W);
  });

  it('escapes paragraph text and turns tabs and line breaks into w:tab and w:br', async () => {
    const pkg = await openBytes(buildDocx({ paragraphs: ['a & <b> "c"', 'x\ty\nz', ''] }));
    expect(scanDocument(pkg).paragraphs.map((p) => p.text)).toEqual(['a & <b> "c"', 'x\ty\nz', '']);
    expect(runXml('a\tb')).toBe(
      '<w:r><w:t xml:space="preserve">a</w:t><w:tab/><w:t xml:space="preserve">b</w:t></w:r>',
    );
    expect(paragraphXml('x')).toBe('<w:p><w:r><w:t xml:space="preserve">x</w:t></w:r></w:p>');
  });

  it('accepts properties as inner XML or as whole elements', () => {
    expect(paragraphXml('x', { pPr: '<w:ind w:firstLine="480"/>', rPr: '<w:b/>' })).toBe(
      '<w:p><w:pPr><w:ind w:firstLine="480"/></w:pPr><w:r><w:rPr><w:b/></w:rPr><w:t xml:space="preserve">x</w:t></w:r></w:p>',
    );
    expect(runXml('x', '<w:rPr><w:i/></w:rPr>')).toBe(
      '<w:r><w:rPr><w:i/></w:rPr><w:t xml:space="preserve">x</w:t></w:r>',
    );
  });

  it('builds tables with a grid and one paragraph per cell', async () => {
    const pkg = await openBytes(buildDocx({ body: tableXml([['a', 'b'], ['c']]) }));
    const scan = scanDocument(pkg);
    expect(scan.topLevelTables).toHaveLength(1);
    expect(scan.paragraphs.map((p) => [p.path, p.text])).toEqual([
      ['t0.r0.c0.p0', 'a'],
      ['t0.r0.c1.p0', 'b'],
      ['t0.r1.c0.p0', 'c'],
    ]);
  });

  it('references headers and footers from the final section', async () => {
    const pkg = await openBytes(
      buildDocx({
        paragraphs: ['body'],
        headers: { header1: paragraphXml('default'), header2: paragraphXml('first') },
        footers: { footer1: paragraphXml('foot') },
      }),
    );
    expect(headerFooterParts(pkg).map((part) => [part.partName, part.kind, part.prefix])).toEqual([
      ['word/footer1.xml', 'footer', 'footer1'],
      ['word/header1.xml', 'header', 'header1'],
      ['word/header2.xml', 'header', 'header2'],
    ]);
    expect(text(pkg.readPart('word/document.xml'))).toContain('<w:titlePg/>');
    expect(() => buildDocx({ headers: { header1: '', header2: '', header3: '', header4: '' } })).toThrow(
      /at most three/,
    );
  });

  it('keeps a body that ends with its own section properties', async () => {
    const body = `${paragraphXml('x')}<w:sectPr><w:pgSz w:w="100" w:h="200"/></w:sectPr>`;
    const xml = text(unzipSync(buildDocx({ body }))['word/document.xml']);
    expect(xml.match(/<w:sectPr>/g)).toHaveLength(1);
    expect(xml).toContain('<w:pgSz w:w="100" w:h="200"/>');
  });

  it('takes styles as a whole part or as the inner XML of w:styles', () => {
    const inner = '<w:style w:type="paragraph" w:styleId="Custom"><w:name w:val="Custom"/></w:style>';
    const fromInner = text(unzipSync(buildDocx({ styles: inner }))['word/styles.xml']);
    expect(parseXml(fromInner).documentElement?.localName).toBe('styles');
    expect(fromInner).toContain('w:styleId="Custom"');
    const whole = `<?xml version="1.0"?><w:styles xmlns:w="${W}">${inner}</w:styles>`;
    expect(text(unzipSync(buildDocx({ styles: whole }))['word/styles.xml'])).toBe(whole);
  });

  it('opens in python-docx', () => {
    const python = ['/usr/bin/python3', 'python3'].find(
      (candidate) => spawnSync(candidate, ['-c', 'import docx'], { stdio: 'ignore' }).status === 0,
    );
    if (python === undefined) {
      console.warn('python-docx not installed: skipping the python-docx check of built documents');
      return;
    }
    const path = tempFile(
      buildDocx({
        paragraphs: ['Title: 【MEETING_TITLE】', 'a & b'],
        body: undefined,
        headers: { header1: paragraphXml('head') },
        footers: { footer1: tableXml([['f']]) },
      }),
    );
    const script =
      'import docx, json, sys\nd = docx.Document(sys.argv[1])\n' +
      'print(json.dumps([[p.text for p in d.paragraphs], [p.text for p in d.sections[0].header.paragraphs]]))\n';
    const run = spawnSync(python, ['-c', script, path], { encoding: 'utf8' });
    expect(run.stderr).toBe('');
    expect(JSON.parse(run.stdout)).toEqual([['Title: 【MEETING_TITLE】', 'a & b'], ['head']]);
  });
});
