import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ParseError, parseDocument } from '../../../src/domain/text/parse.js';
import { MIME } from '../../../src/domain/text/upload-checks.js';
import {
  docxBytes,
  odtBytes,
  pdfBytes,
  pptxBytes,
  wordParagraph,
  writeFixture,
  xlsxBytes,
  zipBytes,
} from './fixtures.js';

let dir: string;
const options = { pdfMaxPages: 2000 };

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'rag-parse-'));
});

afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

async function parse(name: string, content: string | Uint8Array, mimeType: string, extra = {}) {
  return parseDocument(await writeFixture(dir, name, content), mimeType, { ...options, ...extra });
}

describe('PDF', () => {
  it('gives one block per page with lines kept, page numbers 1-based', async () => {
    const bytes = await pdfBytes([
      ['Quarterly report', 'Revenue grew by 12 percent.'],
      ['Second page text', 'The warranty lasts 24 months.'],
      [],
    ]);
    const parsed = await parse('report.pdf', bytes, MIME.pdf);
    expect(parsed.pageCount).toBe(3);
    expect(parsed.blocks).toEqual([
      { page: 1, text: 'Quarterly report\nRevenue grew by 12 percent.' },
      { page: 2, text: 'Second page text\nThe warranty lasts 24 months.' },
    ]);
  });

  it('refuses a PDF without any text as scanned', async () => {
    const parsed = parse('scan.pdf', await pdfBytes([[], []]), MIME.pdf);
    await expect(parsed).rejects.toThrow(
      new ParseError('No extractable text (scanned PDF? OCR is not available)'),
    );
  });

  it('refuses an encrypted PDF', async () => {
    const parsed = parse('locked.pdf', await pdfBytes([['secret']], { encrypted: true }), MIME.pdf);
    await expect(parsed).rejects.toThrow(new ParseError('Encrypted PDF'));
  });

  it('refuses more pages than PDF_MAX_PAGES and damaged files', async () => {
    const bytes = await pdfBytes([['one'], ['two'], ['three']]);
    await expect(parse('long.pdf', bytes, MIME.pdf, { pdfMaxPages: 2 })).rejects.toThrow(
      new ParseError('PDF has 3 pages; the limit is 2'),
    );
    await expect(parse('bad.pdf', '%PDF-1.7 nonsense %%EOF', MIME.pdf)).rejects.toBeInstanceOf(ParseError);
  });
});

describe('Office and ODF', () => {
  it('DOCX: paragraphs as lines, table rows as cells joined by " | "', async () => {
    const table =
      '<w:tbl><w:tr><w:tc><w:p><w:r><w:t>Item</w:t></w:r></w:p></w:tc><w:tc><w:p><w:r><w:t>Price</w:t></w:r></w:p></w:tc></w:tr>' +
      '<w:tr><w:tc><w:p><w:r><w:t>Tea &amp; cake</w:t></w:r></w:p></w:tc><w:tc><w:p><w:r><w:t>4.50</w:t></w:r></w:p><w:p><w:r><w:t>EUR</w:t></w:r></w:p></w:tc></w:tr></w:tbl>';
    const body = `${wordParagraph('Title   of the memo')}${wordParagraph('Second paragraph.')}<w:p/>${table}<w:p><w:r><w:t>Split </w:t></w:r><w:r><w:t>run</w:t></w:r><w:del><w:r><w:delText>gone</w:delText></w:r></w:del></w:p>`;
    const parsed = await parse('memo.docx', docxBytes(body), MIME.docx);
    expect(parsed).toEqual({
      pageCount: null,
      blocks: [
        {
          page: null,
          text: 'Title of the memo\nSecond paragraph.\nItem | Price\nTea & cake | 4.50 EUR\nSplit run',
        },
      ],
    });
  });

  it('XLSX: per sheet, "Sheet <name>" then rows as CSV', async () => {
    const rows =
      '<row r="1"><c r="A1" t="s"><v>0</v></c><c r="B1" t="s"><v>1</v></c></row>' +
      '<row r="2"><c r="A2" t="s"><v>2</v></c><c r="C2"><v>42.5</v></c></row>' +
      '<row r="3"><c r="A3" t="inlineStr"><is><t>inline</t></is></c><c r="B3" t="b"><v>1</v></c></row><row r="4"/>';
    const bytes = xlsxBytes(
      [
        { name: 'Prices', rows },
        { name: 'Empty', rows: '' },
      ],
      ['Product', 'Note', 'Widget, large'],
    );
    const parsed = await parse('book.xlsx', bytes, MIME.xlsx);
    expect(parsed.blocks).toEqual([
      { page: null, text: 'Sheet Prices\nProduct,Note\n"Widget, large",,42.5\ninline,TRUE' },
    ]);
  });

  it('PPTX: one block per slide, page = slide number', async () => {
    const parsed = await parse(
      'deck.pptx',
      pptxBytes([['Welcome', 'Agenda today'], [], ['Results slide']]),
      MIME.pptx,
    );
    expect(parsed).toEqual({
      pageCount: 3,
      blocks: [
        { page: 1, text: 'Welcome\nAgenda today' },
        { page: 3, text: 'Results slide' },
      ],
    });
  });

  it('ODT: paragraphs and headings as lines, spaces and tables', async () => {
    const body =
      '<text:h>Heading</text:h><text:p>First<text:s text:c="3"/>para <text:span>with span</text:span></text:p>' +
      '<table:table><table:table-row><table:table-cell><text:p>a</text:p></table:table-cell><table:table-cell><text:p>b</text:p></table:table-cell></table:table-row></table:table>';
    const parsed = await parse('doc.odt', odtBytes(body), MIME.odt);
    expect(parsed.blocks).toEqual([{ page: null, text: 'Heading\nFirst para with span\na | b' }]);
  });

  it('refuses a zip bomb by its declared size', async () => {
    const bomb = docxBytes(wordParagraph('x'.repeat(3 * 1024 * 1024)));
    await expect(parse('bomb.docx', bomb, MIME.docx, { maxUncompressedBytes: 1024 * 1024 })).rejects.toThrow(
      new ParseError('Document too large when uncompressed (limit 1 MB)'),
    );
  });

  it('refuses a zip bomb that lies about its size while inflating', async () => {
    const bytes = docxBytes(wordParagraph('y'.repeat(3 * 1024 * 1024)));
    // rewrite the declared uncompressed size of word/document.xml in the central directory to 100 bytes
    const data = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    for (let offset = 0; offset + 46 < bytes.length; offset++) {
      if (data.getUint32(offset, true) !== 0x02014b50) continue;
      const nameLength = data.getUint16(offset + 28, true);
      const name = new TextDecoder().decode(bytes.subarray(offset + 46, offset + 46 + nameLength));
      if (name === 'word/document.xml') data.setUint32(offset + 24, 100, true);
    }
    await expect(parse('liar.docx', bytes, MIME.docx, { maxUncompressedBytes: 1024 * 1024 })).rejects.toThrow(
      new ParseError('Document too large when uncompressed (limit 1 MB)'),
    );
  });

  it('refuses archives without their main part or that are not archives', async () => {
    await expect(parse('empty.docx', zipBytes({ 'other.xml': '<a/>' }), MIME.docx)).rejects.toBeInstanceOf(
      ParseError,
    );
    await expect(parse('fake.xlsx', 'not a zip', MIME.xlsx)).rejects.toBeInstanceOf(ParseError);
  });
});

describe('text formats', () => {
  it('CSV: each data row becomes "h1: v1; h2: v2", empty cells skipped', async () => {
    const csv = 'name,city,amount\r\nAlice,"Oslo, NO",10\r\nBob,,20\r\n\r\n';
    const parsed = await parse('people.csv', csv, MIME.csv);
    expect(parsed.blocks).toEqual([
      { page: null, text: 'name: Alice; city: Oslo, NO; amount: 10\nname: Bob; amount: 20' },
    ]);
  });

  it('CSV/TSV: the delimiter is sniffed', async () => {
    const parsed = await parse('semi.csv', 'a;b\n1;2\n', MIME.csv);
    expect(parsed.blocks[0]?.text).toBe('a: 1; b: 2');
    const tsv = await parse('data.tsv', 'key\tvalue\nspeed\t42 km/h\n', MIME.tsv);
    expect(tsv.blocks[0]?.text).toBe('key: speed; value: 42 km/h');
  });

  it('Markdown keeps headings as lines; text is normalised; UTF-16 with BOM is decoded', async () => {
    const markdown = await parse('notes.md', '# Heading\r\n\r\nSome   *bold*  text.\r\n', MIME.markdown);
    expect(markdown.blocks).toEqual([{ page: null, text: '# Heading\n\nSome *bold* text.' }]);
    const utf16 = Buffer.concat([Buffer.from([0xff, 0xfe]), Buffer.from('Grüße aus Köln', 'utf16le')]);
    expect((await parse('de.txt', utf16, MIME.text)).blocks[0]?.text).toBe('Grüße aus Köln');
  });

  it('HTML is stripped to visible text', async () => {
    const html =
      '<!DOCTYPE html><html><head><title>Page</title><style>p{color:red}</style><script>alert("x<p>")</script></head>' +
      '<body><h1>Big &amp; bold</h1><p>First <b>para</b>&nbsp;here.</p><!-- hidden --><ul><li>one</li><li>two</li></ul></body></html>';
    const parsed = await parse('page.html', html, MIME.html);
    expect(parsed.blocks).toEqual([
      { page: null, text: 'Page\n\nBig & bold\n\nFirst para here.\n\none\n\ntwo' },
    ]);
  });

  it('refuses empty text, legacy Office and unknown types', async () => {
    await expect(parse('blank.txt', '  \n ', MIME.text)).rejects.toThrow(
      new ParseError('No extractable text'),
    );
    await expect(parse('old.doc', 'x', MIME.doc)).rejects.toThrow(
      'Legacy binary Office formats (.doc/.xls) are not supported; save as .docx/.xlsx',
    );
    await expect(parse('x.bin', 'x', 'application/zip')).rejects.toBeInstanceOf(ParseError);
  });
});
