// Package plumbing shared by DOCX and PPTX: relationship parts, the main part, core properties and the media
// folder.

import { localName, scanXml, xmlAttribute } from '@quintet/kernel/xml';
import type { EmbeddedImage } from '../extract.js';
import { packageImage } from './images.js';
import { folderOf, resolvePartName } from './part-names.js';
import type { ZipArchive } from './zip.js';

export interface Relationship {
  id: string;
  /** the relationship type URI */
  type: string;
  /** the target part name, resolved inside the package */
  target: string;
}

/** Relationships of `partName` (from `_rels/<name>.rels` beside it); external targets left out. */
export function relationshipsOf(zip: ZipArchive, partName: string): Relationship[] {
  const folder = folderOf(partName);
  const base = partName.slice(partName.lastIndexOf('/') + 1);
  const relsName = folder === '' ? `_rels/${base}.rels` : `${folder}/_rels/${base}.rels`;
  const xml = zip.text(relsName);
  const relationships: Relationship[] = [];
  if (xml === undefined) return relationships;
  scanXml(xml, {
    open(name, attributes) {
      if (localName(name) !== 'Relationship') return;
      if (xmlAttribute(attributes, 'TargetMode') === 'External') return;
      const id = xmlAttribute(attributes, 'Id');
      const type = xmlAttribute(attributes, 'Type');
      const target = xmlAttribute(attributes, 'Target');
      if (id === undefined || type === undefined || target === undefined) return;
      relationships.push({ id, type, target: resolvePartName(folder, target) });
    },
  });
  return relationships;
}

/** The package's main part (the `officeDocument` relationship of `_rels/.rels`), else `fallback`. */
export function mainPartName(zip: ZipArchive, fallback: string): string {
  const main = relationshipsOf(zip, '').find((relationship) => relationship.type.endsWith('/officeDocument'));
  return main !== undefined && zip.has(main.target) ? main.target : fallback;
}

/** `dc:title` of `docProps/core.xml`, or null. */
export function coreTitle(zip: ZipArchive): string | null {
  const xml = zip.text('docProps/core.xml');
  if (xml === undefined) return null;
  let inTitle = false;
  let title = '';
  scanXml(
    xml,
    {
      open(name, _attributes, selfClosing) {
        if (name === 'dc:title' && !selfClosing) inTitle = true;
      },
      close(name) {
        if (name === 'dc:title') inTitle = false;
      },
      text(text) {
        if (inTitle) title += text;
      },
    },
    { decodeEntities: true },
  );
  return title.trim() === '' ? null : title.trim();
}

/** Pictures stored under `<folder>/media/`, in name order (image2 before image10); page from `pageOf`. */
export function mediaImages(
  zip: ZipArchive,
  mediaFolder: string,
  pageOf: (partName: string) => number | null = () => null,
): EmbeddedImage[] {
  const names = zip
    .names()
    .filter((name) => name.startsWith(`${mediaFolder}/`))
    .sort((a, b) => a.localeCompare(b, 'en', { numeric: true }));
  const images: EmbeddedImage[] = [];
  for (const name of names) {
    const bytes = zip.read(name);
    if (bytes === undefined) continue;
    const image = packageImage(bytes, name, pageOf(name));
    if (image !== null) images.push(image);
  }
  return images;
}
