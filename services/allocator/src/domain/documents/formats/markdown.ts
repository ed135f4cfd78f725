// Markdown (spec §3.7): ATX lines (`#` … `######`) are headings, everything else is text as written. Lines
// inside fenced code blocks are text even when they start with `#` (a shell comment is not a heading).
import type { DocumentBlock, ExtractedDocument } from '../extract.js';
import { decodeText } from './text.js';

/** Up to three spaces, 1–6 `#`, then a space/tab or the end of the line (CommonMark ATX heading). */
const ATX_HEADING = /^ {0,3}(#{1,6})(?:[ \t]+(.*))?$/;
/** An optional closing sequence: spaces then only `#`s. */
const CLOSING_HASHES = /(?:^|[ \t]+)#+[ \t]*$/;
const FENCE = /^ {0,3}(`{3,}|~{3,})/;

/** Headings and the text between them of a Markdown file; the first level-1 heading is the title. */
export function extractMarkdown(bytes: Uint8Array): ExtractedDocument {
  const lines = decodeText(bytes).split(/\r\n?|\n/);
  const blocks: DocumentBlock[] = [];
  let title: string | null = null;
  let text: string[] = [];
  let fence: string | null = null;
  const flushText = () => {
    if (text.some((line) => line.trim() !== ''))
      blocks.push({ kind: 'text', text: text.join('\n'), page: null });
    text = [];
  };
  for (const line of lines) {
    const fenceMatch = FENCE.exec(line);
    if (fence !== null) {
      // a fence closes with the same character, at least as long, and nothing else on the line
      const marker = fenceMatch?.[1];
      if (
        marker !== undefined &&
        marker[0] === fence[0] &&
        marker.length >= fence.length &&
        line.trim() === marker
      ) {
        fence = null;
      }
      text.push(line);
      continue;
    }
    if (fenceMatch !== null) {
      fence = fenceMatch[1] as string;
      text.push(line);
      continue;
    }
    const heading = ATX_HEADING.exec(line);
    if (heading === null) {
      text.push(line);
      continue;
    }
    const headingText = (heading[2] ?? '').replace(CLOSING_HASHES, '').trim();
    if (headingText === '') continue;
    flushText();
    const level = (heading[1] as string).length;
    if (level === 1 && title === null) title = headingText;
    blocks.push({ kind: 'heading', text: headingText, page: null, level });
  }
  flushText();
  return { title, pageCount: null, blocks, images: [] };
}
