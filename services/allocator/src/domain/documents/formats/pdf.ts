// PDF (spec §3.7): pdf.js gives the text of each page (page numbers kept) and the document title; the
// embedded pictures come from the PDF objects themselves (pdf-objects.ts). A PDF that needs a password, that
// pdf.js cannot open, or whose pages carry no text (a scan) cannot be indexed.
import { type PdfDocument, PdfOpenError, pdfPageText, readPdf } from '@quintet/kernel/pdf';
import { PermanentProcessingError } from '../../errors.js';
import type { DocumentBlock, ExtractedDocument, ExtractLimits } from '../extract.js';
import { pdfImages } from './pdf-objects.js';

/** Text per page, title and embedded pictures of a PDF. */
export async function extractPdf(bytes: Buffer, limits: ExtractLimits): Promise<ExtractedDocument> {
  try {
    return await readPdf(bytes, (document) => readDocument(document, bytes, limits));
  } catch (error) {
    if (!(error instanceof PdfOpenError)) throw error;
    throw new PermanentProcessingError(
      error.encrypted ? 'Encrypted PDF' : 'Unreadable document: invalid or damaged PDF',
    );
  }
}

/** The text, title and pictures of an opened PDF. */
async function readDocument(
  document: PdfDocument,
  bytes: Buffer,
  limits: ExtractLimits,
): Promise<ExtractedDocument> {
  const metadata = await document.getMetadata().catch(() => null);
  const info = (metadata?.info ?? {}) as Record<string, unknown>;
  const blocks: DocumentBlock[] = [];
  const pageObjectNumbers: (number | null)[] = [];
  for (let pageNumber = 1; pageNumber <= document.numPages; pageNumber++) {
    try {
      const page = await document.getPage(pageNumber);
      pageObjectNumbers.push(page.ref?.num ?? null);
      blocks.push({ kind: 'text', text: await pdfPageText(page), page: pageNumber });
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
}
