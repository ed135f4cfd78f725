import { describe, expect, it } from 'vitest';
import { runXml } from '../../../src/domain/docx/build.js';
import { debugStage, unicodeCategory } from '../../../src/domain/docx/debug-dump.js';
import { replacePlaceholders } from '../../../src/domain/docx/replace.js';
import { scanDocument } from '../../../src/domain/docx/scan.js';
import { openBuilt } from './fixtures/helpers.js';

describe('debugStage', () => {
  it('flags symbol fonts with the font information (acceptance case 27)', async () => {
    const pkg = await openBuilt({
      body: `<w:p>${runXml('plain')}${runXml('\uF0B7', '<w:rFonts w:ascii="Symbol" w:hAnsi="Symbol" w:eastAsia="宋体"/>')}</w:p>`,
    });
    const stage = debugStage(scanDocument(pkg), 'pre_pipeline', new Set());
    expect(stage.stage).toBe('pre_pipeline');
    expect(stage.scanned_runs).toBe(2);
    expect(stage.suspicious_runs).toEqual([
      {
        stage: 'pre_pipeline',
        run_id: 'p0:r1',
        paragraph_path: 'p0',
        touched: false,
        text_repr: '"\uF0B7"',
        codepoints: [{ index: 0, char: '\uF0B7', codepoint: 'U+F0B7', category: 'Co', unicode_name: null }],
        font_info: { name: 'Symbol', ascii: 'Symbol', hAnsi: 'Symbol', eastAsia: '宋体', cs: null },
        reasons: ['symbol_font', 'unicode_category:Co'],
      },
    ]);
  });

  it.each([
    ['Wingdings 2', 'wingdings 2'],
    ['Webdings', 'Webdings'],
    ['MT Extra', 'MT Extra'],
  ])('knows the symbol font %s', async (_name, font) => {
    const pkg = await openBuilt({ body: `<w:p>${runXml('x', `<w:rFonts w:cs="${font}"/>`)}</w:p>` });
    expect(debugStage(scanDocument(pkg), 'pre_pipeline', new Set()).suspicious_runs[0]?.reasons).toEqual([
      'symbol_font',
    ]);
  });

  it('flags format, symbol and control characters but not whitespace', async () => {
    const pkg = await openBuilt({
      paragraphs: [
        'zero\u200Bwidth',
        'smile 😀',
        'tab\tand\nbreak\u3000ideographic space',
        'ordinary 中文 text',
      ],
    });
    const runs = debugStage(scanDocument(pkg), 'pre_pipeline', new Set()).suspicious_runs;
    expect(runs.map((run) => [run.run_id, run.reasons])).toEqual([
      ['p0:r0', ['unicode_category:Cf']],
      ['p1:r0', ['unicode_category:So']],
    ]);
    const smile = runs[1];
    expect(smile?.text_repr).toBe(JSON.stringify('smile 😀'));
    // indices count code points, not UTF-16 units
    expect(smile?.codepoints.at(-1)).toEqual({
      index: 6,
      char: '😀',
      codepoint: 'U+1F600',
      category: 'So',
      unicode_name: null,
    });
  });

  it('reads run text afresh for the post-pipeline stage and marks touched runs', async () => {
    const pkg = await openBuilt({ paragraphs: ['【A】', 'x'] });
    const scan = scanDocument(pkg);
    const result = replacePlaceholders(pkg, scan, new Map([['A', 'tick \u2713']]));
    const stage = debugStage(scan, 'post_pipeline', new Set(result.touchedRunIds));
    expect(stage.suspicious_runs).toHaveLength(1);
    expect(stage.suspicious_runs[0]).toMatchObject({
      stage: 'post_pipeline',
      run_id: 'p0:r0',
      touched: true,
      text_repr: '"tick ✓"',
      reasons: ['unicode_category:So'],
    });
    expect(debugStage(scan, 'pre_pipeline', new Set()).suspicious_runs[0]?.touched).toBe(false);
  });

  it('names general categories', () => {
    expect(['A', 'a', '1', ' ', '\t', '\u00AD', '\uE000', '€', '+', '中'].map(unicodeCategory)).toEqual([
      'Lu',
      'Ll',
      'Nd',
      'Zs',
      'Cc',
      'Cf',
      'Co',
      'Sc',
      'Sm',
      'Lo',
    ]);
    expect(unicodeCategory('\u0378')).toBe('Cn');
  });
});
