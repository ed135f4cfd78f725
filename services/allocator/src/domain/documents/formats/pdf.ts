// PDF (spec §3.7): pdf.js gives the text of each page (page numbers kept) and the document title; the
// embedded pictures come from the PDF objects themselves (pdf-objects.ts). A PDF that needs a password, that
// pdf.js cannot open, or whose pages carry no text (a scan) cannot be indexed.
import { PermanentProcessingError } from '../../errors.js';
import type { DocumentBlock, ExtractedDocument, ExtractLimits } from '../extract.js';
import { pdfImages } from './pdf-objects.js';

interface PdfTextItem {
  str?: string;
  hasEOL?: boolean;
}

/** Items of one line joined by spaces; a line ends where pdf.js reports `hasEOL`. */
function pageText(items: readonly PdfTextItem[]): string {
  let text = '';
  let lineHasText = false;
  for (const item of items) {
    if (typeof item.str !== 'string') continue;
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

/** Text per page, title and embedded pictures of a PDF. */
export async function extractPdf(bytes: Buffer, limits: ExtractLimits): Promise<ExtractedDocument> {
  const pdfjs = await import('pdfjs-dist/legacy/build/pdf.mjs');
  const task = pdfjs.getDocument({
    // a copy: pdf.js may take ownership of the buffer it is given
    data: new Uint8Array(bytes),
    disableFontFace: true,
    useSystemFonts: false,
    stopAtErrors: false,
    verbosity: 0,
  });
  let document: Awaited<typeof task.promise>;
  try {
    document = await task.promise;
  } catch (error) {
    await task.destroy().catch(() => undefined);
    if ((error as { name?: unknown }).name === 'PasswordException')
      throw new PermanentProcessingError('Encrypted PDF');
    throw new PermanentProcessingError('Unreadable document: invalid or damaged PDF');
  }
  try {
    const metadata = await document.getMetadata().catch(() => null);
    const info = (metadata?.info ?? {}) as Record<string, unknown>;
    const blocks: DocumentBlock[] = [];
    const pageObjectNumbers: (number | null)[] = [];
    for (let pageNumber = 1; pageNumber <= document.numPages; pageNumber++) {
      try {
        const page = await document.getPage(pageNumber);
        pageObjectNumbers.push(page.ref?.num ?? null);
        const content = await page.getTextContent();
        blocks.push({ kind: 'text', text: pageText(content.items as PdfTextItem[]), page: pageNumber });
        page.cleanup();
      } catch {
        // a damaged page loses its text; the other pages are still read
        pageObjectNumbers.push(null);
      }
    }
    // a scan: no time spent on its pictures, since the document is refused for want of text anyway
    if (!blocks.some((block) => block.text.trim() !== '')) {
      return { title: null, pageCount: document.numPages, blocks: [], images: [] };
    }
    // with an owner password only, pdf.js decrypts the text, but the stored picture streams stay encrypted
    const encrypted = typeof info.EncryptFilterName === 'string';
    const images = encrypted
      ? []
      : await pdfImages(bytes, pageObjectNumbers, { remaining: limits.maxUncompressedBytes });
    return {
      title: typeof info.Title === 'string' ? info.Title : null,
      pageCount: document.numPages,
      blocks,
      images,
    };
  } finally {
    await task.destroy();
  }
}
