// Document text extraction (spec §3.7): headings, text with page numbers, and embedded pictures of every
// supported document format. Each format has its reader in formats/; this module picks it, cleans the text
// the same way for all of them and refuses documents without text.
import { readFile } from 'node:fs/promises';
import { PermanentProcessingError, TransientProcessingError } from '../errors.js';
import { extractDocx } from './formats/docx.js';
import { extractEpub } from './formats/epub.js';
import { extractHtml } from './formats/html.js';
import { extractMarkdown } from './formats/markdown.js';
import { extractPdf } from './formats/pdf.js';
import { extractPptx } from './formats/pptx.js';
import { extractPlainText } from './formats/text.js';

export type DocumentFormat = 'pdf' | 'docx' | 'pptx' | 'epub' | 'txt' | 'md' | 'html';

export interface DocumentBlock {
  kind: 'heading' | 'text';
  text: string;
  /** 1-based PDF page or PPTX slide; null for formats without pages */
  page: number | null;
  /** heading level 1..6 */
  level?: number;
}

export interface EmbeddedImage {
  /** the picture as embedded (JPEG streams and package parts untouched; raw PDF bitmaps as PNG) */
  bytes: Buffer;
  mime: string;
  /** file extension with its dot, e.g. `.jpg` */
  ext: string;
  page: number | null;
  name: string;
}

export interface ExtractedDocument {
  title: string | null;
  pageCount: number | null;
  blocks: DocumentBlock[];
  images: EmbeddedImage[];
}

export interface ExtractLimits {
  /** cap on the bytes a zip container may expand to, and on the raw PDF bitmaps decoded (200 MB) */
  maxUncompressedBytes: number;
  /** largest accepted uncompressed/compressed ratio of a sizeable zip entry (100) */
  maxCompressionRatio: number;
}

/** Spec §7: a container expanding beyond 200 MB or by a ratio above 100 is a bomb. */
export const DEFAULT_EXTRACT_LIMITS: Readonly<ExtractLimits> = {
  maxUncompressedBytes: 200 * 1024 * 1024,
  maxCompressionRatio: 100,
};

export const NO_TEXT_MESSAGE = 'Document has no extractable text';

/** Text (with headings and page numbers) and embedded images of a document; PermanentProcessingError for encrypted, unreadable, bomb, or text-less files. */
export async function extractDocument(
  path: string,
  format: DocumentFormat,
  limits: ExtractLimits = DEFAULT_EXTRACT_LIMITS,
): Promise<ExtractedDocument> {
  let bytes: Buffer;
  try {
    bytes = await readFile(path);
  } catch (error) {
    // the file is ours (spooled or stored), so failing to read it is an I/O fault, not a bad document
    const code = (error as { code?: unknown }).code;
    throw new TransientProcessingError(
      `Cannot read the document file${typeof code === 'string' ? ` (${code})` : ''}`,
    );
  }
  return finish(await extractByFormat(bytes, format, limits));
}

async function extractByFormat(
  bytes: Buffer,
  format: DocumentFormat,
  limits: ExtractLimits,
): Promise<ExtractedDocument> {
  switch (format) {
    case 'txt':
      return extractPlainText(bytes);
    case 'md':
      return extractMarkdown(bytes);
    case 'html':
      return extractHtml(bytes);
    case 'pdf':
      return extractPdf(bytes, limits);
    case 'docx':
      return extractDocx(bytes, limits);
    case 'pptx':
      return extractPptx(bytes, limits);
    case 'epub':
      return extractEpub(bytes, limits);
    default:
      throw new PermanentProcessingError(`Unsupported document format '${String(format)}'`);
  }
}

const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/g;
// biome-ignore lint/suspicious/noControlCharactersInRegex: removing control characters is the point
const CONTROL_CHARACTERS = /[\u0000-\u0008\u000e-\u001f\u007f\ufffe\uffff]/g;

/**
 * Text that every later stage (chunks, search tokens, database rows) can hold: one kind of line break, no
 * control characters (PostgreSQL TEXT refuses NUL), no lone surrogates, at most one blank line in a row.
 */
export function cleanText(text: string): string {
  return text
    .replace(LONE_SURROGATE, '\uFFFD')
    .replace(/\r\n?|[\v\f\u2028\u2029\u0085]/g, '\n')
    .replace(CONTROL_CHARACTERS, '')
    .replace(/[ \t]+\n/g, '\n')
    .replace(/\n{3,}/g, '\n\n')
    .trim();
}

function finish(document: ExtractedDocument): ExtractedDocument {
  const blocks: DocumentBlock[] = [];
  for (const block of document.blocks) {
    if (block.kind === 'heading') {
      const text = cleanText(block.text).replace(/\s+/g, ' ');
      if (text !== '') blocks.push({ ...block, text });
    } else {
      const text = cleanText(block.text);
      if (text !== '') blocks.push({ ...block, text });
    }
  }
  if (blocks.length === 0) throw new PermanentProcessingError(NO_TEXT_MESSAGE);
  const title = document.title === null ? '' : cleanText(document.title).replace(/\s+/g, ' ');
  return {
    title: title === '' ? null : title,
    pageCount: document.pageCount,
    // a document made only of headings keeps them as text, so its words still reach a chunk
    blocks: blocks.some((block) => block.kind === 'text')
      ? blocks
      : blocks.map((block) => ({ kind: 'text', text: block.text, page: block.page })),
    images: document.images,
  };
}
