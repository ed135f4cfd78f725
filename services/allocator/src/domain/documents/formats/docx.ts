// DOCX (spec §3.7): the paragraphs of the main document part; paragraphs in a `Heading N` style (or with an
// outline level 0–5) are headings. Pictures are the parts under word/media, kept byte for byte.

import { scanXml, xmlAttribute } from '@quintet/kernel/xml';
import { PermanentProcessingError } from '../../errors.js';
import type { DocumentBlock, ExtractedDocument, ExtractLimits } from '../extract.js';
import { coreTitle, mainPartName, mediaImages, relationshipsOf } from './ooxml.js';
import { folderOf } from './part-names.js';
import { ZipArchive } from './zip.js';

interface StyleInfo {
  headingLevel: number | null;
  isTitle: boolean;
}

/** `heading 1` (the built-in name, whatever the display language) or a style id such as `Heading1`. */
const HEADING_NAME = /^heading\s*([1-9])$/i;
const MAX_HEADING_LEVEL = 6;
/** Subtrees without visible text of their own: fallback copies, deleted runs, tab stop definitions. */
const SKIPPED = new Set(['mc:Fallback', 'w:del', 'w:moveFrom', 'w:tabs']);

/** Outline level `w:val` (0-based) as a heading level, or null beyond h6. */
function outlineHeadingLevel(value: string | undefined): number | null {
  const level = Number(value) + 1;
  return Number.isInteger(level) && level >= 1 && level <= MAX_HEADING_LEVEL ? level : null;
}

function readStyles(xml: string | undefined): Map<string, StyleInfo> {
  const styles = new Map<string, StyleInfo>();
  if (xml === undefined) return styles;
  let current: { id: string; name: string | null; outline: number | null } | null = null;
  scanXml(xml, {
    open(name, attributes) {
      if (name === 'w:style') {
        const id = xmlAttribute(attributes, 'w:styleId');
        current = id === undefined ? null : { id, name: null, outline: null };
      } else if (current !== null && name === 'w:name') {
        current.name = xmlAttribute(attributes, 'w:val') ?? null;
      } else if (current !== null && name === 'w:outlineLvl') {
        current.outline = outlineHeadingLevel(xmlAttribute(attributes, 'w:val'));
      }
    },
    close(name) {
      if (name !== 'w:style' || current === null) return;
      const byName = HEADING_NAME.exec(current.name ?? '');
      const level = byName !== null ? Number(byName[1]) : current.outline;
      styles.set(current.id, {
        headingLevel: level !== null && level <= MAX_HEADING_LEVEL ? level : null,
        isTitle: (current.name ?? current.id).toLowerCase() === 'title',
      });
      current = null;
    },
  });
  return styles;
}

interface Paragraph {
  text: string;
  styleId: string | null;
  outline: number | null;
}

/** Paragraph texts and styles in document order (a text box's paragraphs come before the one holding it). */
function readParagraphs(xml: string): Paragraph[] {
  const paragraphs: Paragraph[] = [];
  const open: Paragraph[] = [];
  let textDepth = 0;
  let skipDepth = 0;
  const append = (text: string) => {
    const paragraph = open.at(-1);
    if (paragraph !== undefined) paragraph.text += text;
  };
  scanXml(
    xml,
    {
      open(name, attributes) {
        // self-closing tags are reported as open + close, so every open is balanced
        if (SKIPPED.has(name)) {
          skipDepth++;
          return;
        }
        if (skipDepth > 0) return;
        switch (name) {
          case 'w:p':
            open.push({ text: '', styleId: null, outline: null });
            break;
          case 'w:pStyle': {
            const paragraph = open.at(-1);
            if (paragraph !== undefined) paragraph.styleId = xmlAttribute(attributes, 'w:val') ?? null;
            break;
          }
          case 'w:outlineLvl': {
            const paragraph = open.at(-1);
            if (paragraph !== undefined)
              paragraph.outline = outlineHeadingLevel(xmlAttribute(attributes, 'w:val'));
            break;
          }
          case 'w:t':
            textDepth++;
            break;
          case 'w:tab':
            append('\t');
            break;
          case 'w:br':
          case 'w:cr':
            append('\n');
            break;
          case 'w:noBreakHyphen':
            append('-');
            break;
        }
      },
      close(name) {
        if (SKIPPED.has(name)) {
          skipDepth = Math.max(0, skipDepth - 1);
          return;
        }
        if (skipDepth > 0) return;
        if (name === 'w:t') textDepth = Math.max(0, textDepth - 1);
        else if (name === 'w:p') {
          const paragraph = open.pop();
          if (paragraph !== undefined) paragraphs.push(paragraph);
        }
      },
      text(text) {
        if (skipDepth === 0 && textDepth > 0) append(text);
      },
    },
    { decodeEntities: true },
  );
  return paragraphs;
}

/** Headings, text and media pictures of a DOCX package. */
export function extractDocx(bytes: Buffer, limits: ExtractLimits): ExtractedDocument {
  const zip = ZipArchive.open(bytes, limits);
  const documentPart = mainPartName(zip, 'word/document.xml');
  const xml = zip.text(documentPart);
  if (xml === undefined)
    throw new PermanentProcessingError('Unreadable document: the DOCX has no document part');
  const stylesPart =
    relationshipsOf(zip, documentPart).find((relationship) => relationship.type.endsWith('/styles'))
      ?.target ?? `${folderOf(documentPart)}/styles.xml`;
  const styles = readStyles(zip.text(stylesPart));
  const blocks: DocumentBlock[] = [];
  let section: string[] = [];
  let styledTitle: string | null = null;
  const flushSection = () => {
    if (section.length > 0) blocks.push({ kind: 'text', text: section.join('\n\n'), page: null });
    section = [];
  };
  for (const paragraph of readParagraphs(xml)) {
    if (paragraph.text.trim() === '') continue;
    const style = paragraph.styleId === null ? undefined : styles.get(paragraph.styleId);
    const idLevel = HEADING_NAME.exec(paragraph.styleId ?? '');
    const level = paragraph.outline ?? style?.headingLevel ?? (idLevel !== null ? Number(idLevel[1]) : null);
    if (level !== null && level <= MAX_HEADING_LEVEL) {
      flushSection();
      blocks.push({ kind: 'heading', text: paragraph.text, page: null, level });
      continue;
    }
    if (styledTitle === null && (style?.isTitle || paragraph.styleId === 'Title'))
      styledTitle = paragraph.text;
    section.push(paragraph.text);
  }
  flushSection();
  return {
    title: coreTitle(zip) ?? styledTitle,
    pageCount: null,
    blocks,
    images: mediaImages(zip, `${folderOf(documentPart)}/media`),
  };
}
