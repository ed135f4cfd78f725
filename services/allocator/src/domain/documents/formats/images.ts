// Which embedded parts are pictures the media pipeline can take (spec §3.4 image kinds). The bytes decide,
// not the part name; SVG, which has no magic number, is recognised by its name and an <svg element.
import { basename } from 'node:path';
import type { EmbeddedImage } from '../extract.js';

interface ImageType {
  mime: string;
  ext: string;
}

function startsWith(bytes: Uint8Array, signature: readonly number[], offset = 0): boolean {
  if (bytes.length < offset + signature.length) return false;
  return signature.every((value, index) => bytes[offset + index] === value);
}

function ascii(bytes: Uint8Array, offset: number, length: number): string {
  return Buffer.from(bytes.subarray(offset, offset + length)).toString('latin1');
}

/** The image type of `bytes` (named `name`), or null for anything the media pipeline does not decode. */
export function embeddedImageType(bytes: Uint8Array, name: string): ImageType | null {
  if (startsWith(bytes, [0xff, 0xd8, 0xff])) return { mime: 'image/jpeg', ext: '.jpg' };
  if (startsWith(bytes, [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]))
    return { mime: 'image/png', ext: '.png' };
  if (ascii(bytes, 0, 6) === 'GIF87a' || ascii(bytes, 0, 6) === 'GIF89a')
    return { mime: 'image/gif', ext: '.gif' };
  if (ascii(bytes, 0, 4) === 'RIFF' && ascii(bytes, 8, 4) === 'WEBP')
    return { mime: 'image/webp', ext: '.webp' };
  if (ascii(bytes, 0, 2) === 'BM' && bytes.length > 26) return { mime: 'image/bmp', ext: '.bmp' };
  if (startsWith(bytes, [0x49, 0x49, 0x2a, 0x00]) || startsWith(bytes, [0x4d, 0x4d, 0x00, 0x2a])) {
    return { mime: 'image/tiff', ext: '.tiff' };
  }
  if (ascii(bytes, 4, 4) === 'ftyp') {
    const brand = ascii(bytes, 8, 4);
    if (brand === 'avif' || brand === 'avis') return { mime: 'image/avif', ext: '.avif' };
    if (['heic', 'heix', 'hevc', 'hevx', 'mif1', 'msf1'].includes(brand)) {
      return { mime: 'image/heic', ext: '.heic' };
    }
  }
  if (/\.svgz?$/i.test(name) && /<svg[\s>]/i.test(ascii(bytes, 0, Math.min(bytes.length, 4096)))) {
    return { mime: 'image/svg+xml', ext: '.svg' };
  }
  return null;
}

/** An EmbeddedImage for a package part, or null when it is not a usable picture. */
export function packageImage(bytes: Buffer, partName: string, page: number | null): EmbeddedImage | null {
  const type = embeddedImageType(bytes, partName);
  if (type === null) return null;
  return { bytes, mime: type.mime, ext: type.ext, page, name: basename(partName) };
}
