import { describe, expect, it } from 'vitest';
import { PdfOpenError, pdfPageText, readPdf } from '../src/pdf.js';

/**
 * A PDF written object by object: one page per content stream, Helvetica as F1, and `trailer` appended to the
 * trailer dictionary. Small enough to read, and the byte offsets of the cross-reference table are exact.
 */
function rawPdf(pageContents: string[], trailer = ''): Buffer {
  const firstPage = 4;
  const pageIds = pageContents.map((_, index) => firstPage + index * 2);
  const objects = [
    '<< /Type /Catalog /Pages 2 0 R >>',
    `<< /Type /Pages /Kids [${pageIds.map((id) => `${id} 0 R`).join(' ')}] /Count ${pageIds.length} >>`,
    '<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>',
  ];
  pageContents.forEach((content, index) => {
    objects.push(
      `<< /Type /Page /Parent 2 0 R /MediaBox [0 0 400 400] /Resources << /Font << /F1 3 0 R >> >> ` +
        `/Contents ${(pageIds[index] as number) + 1} 0 R >>`,
      `<< /Length ${Buffer.byteLength(content, 'latin1')} >>\nstream\n${content}\nendstream`,
    );
  });
  let pdf = '%PDF-1.4\n';
  const offsets: number[] = [];
  objects.forEach((body, index) => {
    offsets.push(Buffer.byteLength(pdf, 'latin1'));
    pdf += `${index + 1} 0 obj\n${body}\nendobj\n`;
  });
  const xref = Buffer.byteLength(pdf, 'latin1');
  pdf += `xref\n0 ${objects.length + 1}\n0000000000 65535 f \n`;
  pdf += offsets.map((offset) => `${String(offset).padStart(10, '0')} 00000 n \n`).join('');
  pdf += `trailer\n<< /Size ${objects.length + 1} /Root 1 0 R${trailer} >>\nstartxref\n${xref}\n%%EOF\n`;
  return Buffer.from(pdf, 'latin1');
}

async function openFailure(bytes: Uint8Array): Promise<unknown> {
  return readPdf(bytes, async () => 'opened').catch((error: unknown) => error);
}

describe('readPdf', () => {
  it('reads each page of a PDF given as a Node Buffer, and leaves the caller’s bytes intact', async () => {
    const bytes = rawPdf([
      'BT /F1 12 Tf 20 360 Td (Hello) Tj 0 -20 Td (second line) Tj ET',
      'BT /F1 12 Tf 20 360 Td (Page) Tj 100 0 Td (two) Tj ET',
      '',
    ]);
    const copy = Buffer.from(bytes);
    const pages = await readPdf(bytes, async (document) => {
      const texts: string[] = [];
      for (let pageNumber = 1; pageNumber <= document.numPages; pageNumber++) {
        texts.push(await pdfPageText(await document.getPage(pageNumber)));
      }
      return texts;
    });
    expect(pages).toEqual(['Hello\nsecond line', 'Page two', '']);
    expect(bytes.equals(copy)).toBe(true);
  });

  it('passes on what the reader throws', async () => {
    const failure = new Error('reader failed');
    await expect(
      readPdf(rawPdf(['']), async () => {
        throw failure;
      }),
    ).rejects.toBe(failure);
  });

  it('refuses a PDF that needs a password as encrypted', async () => {
    // the standard security handler, whose empty user password does not match: a reader must ask for one
    const key = '(0123456789abcdef0123456789abcdef)';
    const bytes = rawPdf(
      ['BT /F1 12 Tf 20 360 Td (secret) Tj ET'],
      ` /Encrypt << /Filter /Standard /V 1 /R 2 /O ${key} /U ${key} /P -4 >> /ID [(id0) (id0)]`,
    );
    const error = await openFailure(bytes);
    expect(error).toBeInstanceOf(PdfOpenError);
    expect((error as PdfOpenError).encrypted).toBe(true);
    expect((error as PdfOpenError).message).toBe('the PDF needs a password');
  });

  it('refuses bytes that are not a PDF as invalid or damaged', async () => {
    for (const bytes of [Buffer.from('%PDF-1.7\nthis is not really a pdf'), new Uint8Array(0)]) {
      const error = await openFailure(bytes);
      expect(error).toBeInstanceOf(PdfOpenError);
      expect((error as PdfOpenError).encrypted).toBe(false);
      expect((error as PdfOpenError).message).toBe('invalid or damaged PDF');
    }
  });
});

describe('pdfPageText', () => {
  it('joins the items of a line with one space and ends a line where pdf.js reports one', async () => {
    // pdf.js reports the gap between "left" and "right" as an item " " of its own: no second space is added
    const bytes = rawPdf([
      'BT /F1 12 Tf 20 360 Td (left) Tj 150 0 Td (right) Tj -150 -20 Td (two words) Tj 0 -20 Td (last) Tj ET',
    ]);
    const text = await readPdf(bytes, async (document) => pdfPageText(await document.getPage(1)));
    expect(text).toBe('left right\ntwo words\nlast');
  });
});
