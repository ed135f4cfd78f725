// PPTX (spec §3.7): the text of each slide in presentation order, the slide number as page. Pictures are
// the parts under ppt/media, each on the first slide that shows it (null when only a layout or master does).

import { scanXml } from '@quintet/kernel/xml';
import { PermanentProcessingError } from '../../errors.js';
import type { DocumentBlock, ExtractedDocument, ExtractLimits } from '../extract.js';
import { coreTitle, mainPartName, mediaImages, relationshipsOf } from './ooxml.js';
import { folderOf } from './part-names.js';
import { ZipArchive } from './zip.js';

/** Slide part names in the order of the presentation's slide list (file-number order without one). */
function slideParts(zip: ZipArchive, presentationPart: string): string[] {
  const targets = new Map(
    relationshipsOf(zip, presentationPart).map((relationship) => [relationship.id, relationship.target]),
  );
  const parts: string[] = [];
  const xml = zip.text(presentationPart);
  if (xml !== undefined) {
    scanXml(xml, {
      open(name, attributes) {
        if (name !== 'p:sldId') return;
        // p:sldId has a numeric `id` and the relationship id `r:id` (whatever the prefix)
        const relationshipId = /(?:^|\s)[A-Za-z0-9]+:id\s*=\s*["']([^"']*)["']/.exec(attributes)?.[1];
        const part = relationshipId === undefined ? undefined : targets.get(relationshipId);
        if (part !== undefined && zip.has(part)) parts.push(part);
      },
    });
  }
  if (parts.length > 0) return parts;
  const folder = `${folderOf(presentationPart)}/slides/`;
  return zip
    .names()
    .filter((name) => name.startsWith(folder) && /^slide\d+\.xml$/.test(name.slice(folder.length)))
    .sort((a, b) => a.localeCompare(b, 'en', { numeric: true }));
}

/** The paragraphs (`a:p`) of one slide, one per line. */
function slideText(xml: string): string {
  const lines: string[] = [];
  let line: string | null = null;
  let textDepth = 0;
  let skipDepth = 0;
  scanXml(
    xml,
    {
      open(name) {
        if (name === 'mc:Fallback') skipDepth++;
        else if (skipDepth > 0) return;
        else if (name === 'a:p') line = '';
        else if (name === 'a:t') textDepth++;
        else if (name === 'a:br' && line !== null) line += '\n';
      },
      close(name) {
        if (name === 'mc:Fallback') skipDepth = Math.max(0, skipDepth - 1);
        else if (skipDepth > 0) return;
        else if (name === 'a:t') textDepth = Math.max(0, textDepth - 1);
        else if (name === 'a:p') {
          if (line !== null && line.trim() !== '') lines.push(line);
          line = null;
        }
      },
      text(text) {
        if (skipDepth === 0 && textDepth > 0 && line !== null) line += text;
      },
    },
    { decodeEntities: true },
  );
  return lines.join('\n');
}

/** Slide texts (page = slide number) and media pictures of a PPTX package. */
export function extractPptx(bytes: Buffer, limits: ExtractLimits): ExtractedDocument {
  const zip = ZipArchive.open(bytes, limits);
  const presentationPart = mainPartName(zip, 'ppt/presentation.xml');
  const slides = slideParts(zip, presentationPart);
  if (slides.length === 0) throw new PermanentProcessingError('Unreadable document: the PPTX has no slides');
  const blocks: DocumentBlock[] = [];
  const firstSlideOfPart = new Map<string, number>();
  slides.forEach((part, index) => {
    const page = index + 1;
    const xml = zip.text(part);
    if (xml !== undefined) blocks.push({ kind: 'text', text: slideText(xml), page });
    for (const relationship of relationshipsOf(zip, part)) {
      if (!firstSlideOfPart.has(relationship.target)) firstSlideOfPart.set(relationship.target, page);
    }
  });
  return {
    title: coreTitle(zip),
    pageCount: slides.length,
    blocks,
    images: mediaImages(
      zip,
      `${folderOf(presentationPart)}/media`,
      (name) => firstSlideOfPart.get(name) ?? null,
    ),
  };
}
