/**
 * Opening a PDF with pdf.js and reading the text of its pages. pdf.js is loaded on first use, so services that
 * never read a PDF need not install it (it is an optional peer dependency of the kernel).
 */
import type { PDFDocumentProxy, PDFPageProxy } from 'pdfjs-dist/legacy/build/pdf.mjs';

export type PdfDocument = PDFDocumentProxy;
export type PdfPage = PDFPageProxy;

/** pdf.js could not open a PDF: it needs a password (`encrypted`), or it is invalid or damaged. */
export class PdfOpenError extends Error {
  readonly encrypted: boolean;

  constructor(encrypted: boolean, options?: ErrorOptions) {
    super(encrypted ? 'the PDF needs a password' : 'invalid or damaged PDF', options);
    this.name = 'PdfOpenError';
    this.encrypted = encrypted;
  }
}

/**
 * Opens a PDF (no fonts loaded, no worker, damaged objects tolerated), runs `read` on it and frees it
 * afterwards, whatever `read` does. Throws PdfOpenError when pdf.js cannot open the PDF.
 */
export async function readPdf<T>(bytes: Uint8Array, read: (document: PdfDocument) => Promise<T>): Promise<T> {
  const pdfjs = await import('pdfjs-dist/legacy/build/pdf.mjs');
  const task = pdfjs.getDocument({
    // a copy: pdf.js takes over (and may detach) the buffer it is given, and it refuses a Node Buffer
    data: new Uint8Array(bytes),
    disableFontFace: true,
    useSystemFonts: false,
    useWorkerFetch: false,
    stopAtErrors: false,
    verbosity: 0,
  });
  let document: PdfDocument;
  try {
    document = await task.promise;
  } catch (error) {
    await task.destroy().catch(() => undefined);
    throw new PdfOpenError((error as { name?: unknown } | null)?.name === 'PasswordException', {
      cause: error,
    });
  }
  try {
    return await read(document);
  } finally {
    await task.destroy();
  }
}

/**
 * The text of one page: the items of a line joined by single spaces, a line ending where pdf.js reports
 * `hasEOL`.
 */
export async function pdfPageText(page: PdfPage): Promise<string> {
  const content = await page.getTextContent();
  let text = '';
  let lineHasText = false;
  for (const item of content.items) {
    if (!('str' in item)) continue;
    if (item.str !== '') {
      if (lineHasText && !text.endsWith(' ') && !item.str.startsWith(' ')) text += ' ';
      text += item.str;
      lineHasText = true;
    }
    if (item.hasEOL) {
      text += '\n';
      lineHasText = false;
    }
  }
  return text;
}
