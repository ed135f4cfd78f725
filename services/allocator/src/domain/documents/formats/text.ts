// Plain text (spec §3.7): UTF-8 with the BOM dropped and invalid bytes replaced by U+FFFD. A UTF-16 BOM is
// honoured too, since editors on some systems save "Unicode" text that way.
import type { ExtractedDocument } from '../extract.js';

/** Decodes text bytes: UTF-16 when a BOM says so, else UTF-8 (BOM dropped, invalid bytes replaced). */
export function decodeText(bytes: Uint8Array): string {
  if (bytes[0] === 0xff && bytes[1] === 0xfe) return new TextDecoder('utf-16le').decode(bytes);
  if (bytes[0] === 0xfe && bytes[1] === 0xff) return new TextDecoder('utf-16be').decode(bytes);
  return new TextDecoder('utf-8').decode(bytes);
}

/** The whole file as one text block; paragraphs are left to the chunker's blank-line separator. */
export function extractPlainText(bytes: Uint8Array): ExtractedDocument {
  return {
    title: null,
    pageCount: null,
    blocks: [{ kind: 'text', text: decodeText(bytes), page: null }],
    images: [],
  };
}
