// EPUB (spec §3.7): the XHTML documents of the spine in reading order, read like HTML; the package's
// `dc:title` is the title; manifest items of an image type are the embedded pictures. A book whose reading
// documents are encrypted (DRM) cannot be read.

import { localName, scanXml, xmlAttribute } from '@quintet/kernel/xml';
import { PermanentProcessingError } from '../../errors.js';
import type { DocumentBlock, EmbeddedImage, ExtractedDocument, ExtractLimits } from '../extract.js';
import { htmlContent } from './html.js';
import { packageImage } from './images.js';
import { folderOf, resolvePartName } from './part-names.js';
import { ZipArchive } from './zip.js';

interface ManifestItem {
  path: string;
  mediaType: string;
}

interface Package {
  title: string | null;
  manifest: ManifestItem[];
  spine: string[];
}

function unreadable(detail: string): PermanentProcessingError {
  return new PermanentProcessingError(`Unreadable document: ${detail}`);
}

/** The package document named by META-INF/container.xml. */
function packagePath(zip: ZipArchive): string {
  const xml = zip.text('META-INF/container.xml');
  if (xml === undefined) throw unreadable('the EPUB has no META-INF/container.xml');
  let path: string | null = null;
  scanXml(xml, {
    open(name, attributes) {
      if (path !== null || localName(name) !== 'rootfile') return;
      const mediaType = xmlAttribute(attributes, 'media-type');
      const fullPath = xmlAttribute(attributes, 'full-path');
      if (
        fullPath !== undefined &&
        (mediaType === undefined || mediaType === 'application/oebps-package+xml')
      ) {
        path = resolvePartName('', fullPath);
      }
    },
  });
  if (path === null || !zip.has(path)) throw unreadable('the EPUB names no package document');
  return path;
}

function readPackage(xml: string, folder: string): Package {
  const items = new Map<string, ManifestItem>();
  const manifest: ManifestItem[] = [];
  const spineIds: string[] = [];
  let title: string | null = null;
  let titleText: string | null = null;
  scanXml(
    xml,
    {
      open(name, attributes, selfClosing) {
        const local = localName(name);
        if (local === 'item') {
          const id = xmlAttribute(attributes, 'id');
          const href = xmlAttribute(attributes, 'href');
          if (id === undefined || href === undefined) return;
          const item = {
            path: resolvePartName(folder, href),
            mediaType: xmlAttribute(attributes, 'media-type') ?? '',
          };
          items.set(id, item);
          manifest.push(item);
        } else if (local === 'itemref') {
          const idref = xmlAttribute(attributes, 'idref');
          if (idref !== undefined) spineIds.push(idref);
        } else if (name === 'dc:title' && title === null && !selfClosing) {
          titleText = '';
        }
      },
      close(name) {
        if (name === 'dc:title' && titleText !== null) {
          title = titleText.trim() === '' ? null : titleText.trim();
          titleText = null;
        }
      },
      text(text) {
        if (titleText !== null) titleText += text;
      },
    },
    { decodeEntities: true },
  );
  const spine: string[] = [];
  for (const id of spineIds) {
    const item = items.get(id);
    if (item !== undefined) spine.push(item.path);
  }
  return { title, manifest, spine };
}

/** Parts listed as encrypted in META-INF/encryption.xml (obfuscated fonts included). */
function encryptedParts(zip: ZipArchive): Set<string> {
  const encrypted = new Set<string>();
  const xml = zip.text('META-INF/encryption.xml');
  if (xml === undefined) return encrypted;
  scanXml(xml, {
    open(name, attributes) {
      if (localName(name) !== 'CipherReference') return;
      const uri = xmlAttribute(attributes, 'URI');
      if (uri !== undefined) encrypted.add(resolvePartName('', uri));
    },
  });
  return encrypted;
}

/** Spine text and manifest pictures of an EPUB package. */
export function extractEpub(bytes: Buffer, limits: ExtractLimits): ExtractedDocument {
  const zip = ZipArchive.open(bytes, limits);
  const opfPath = packagePath(zip);
  const opf = readPackage(zip.text(opfPath) as string, folderOf(opfPath));
  if (opf.spine.length === 0) throw unreadable('the EPUB spine is empty');
  const encrypted = encryptedParts(zip);
  if (opf.spine.some((path) => encrypted.has(path))) throw new PermanentProcessingError('Encrypted document');
  const blocks: DocumentBlock[] = [];
  for (const path of opf.spine) {
    const html = zip.text(path);
    if (html !== undefined) blocks.push(...htmlContent(html, null).blocks);
  }
  const images: EmbeddedImage[] = [];
  for (const item of opf.manifest) {
    if (!item.mediaType.startsWith('image/') || encrypted.has(item.path)) continue;
    const data = zip.read(item.path);
    const image = data === undefined ? null : packageImage(data, item.path, null);
    if (image !== null) images.push(image);
  }
  return { title: opf.title, pageCount: null, blocks, images };
}
