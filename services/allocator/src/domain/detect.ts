// Upload type detection (spec §3.4 step 4): magic bytes first, then a supported text-like declared type, then
// the filename extension. Anything else is unsupported and the ingest answers 415.
import { extname } from 'node:path';
import { fileTypeFromBuffer } from 'file-type';
import sharp from 'sharp';

export type AssetKind = 'media' | 'document' | 'json';
export type MediaType = 'image' | 'video' | 'audio';
export type DocumentFormat = 'pdf' | 'docx' | 'pptx' | 'epub' | 'txt' | 'md' | 'html';

export interface DetectedType {
  kind: AssetKind;
  mediaType: MediaType | null;
  documentFormat: DocumentFormat | null;
  mime: string;
  /** Canonical extension, with the dot. */
  ext: string;
}

/** How many leading bytes detection wants to see (file-type's own sample size). */
export const DETECTION_HEAD_BYTES = 4100;

function media(mediaType: MediaType, mime: string, ext: string): DetectedType {
  return { kind: 'media', mediaType, documentFormat: null, mime, ext };
}

function document(documentFormat: DocumentFormat, mime: string, ext: string): DetectedType {
  return { kind: 'document', mediaType: null, documentFormat, mime, ext };
}

const JSON_TYPE: DetectedType = {
  kind: 'json',
  mediaType: null,
  documentFormat: null,
  mime: 'application/json',
  ext: '.json',
};
const SVG_TYPE = media('image', 'image/svg+xml', '.svg');
const TXT_TYPE = document('txt', 'text/plain', '.txt');
const MD_TYPE = document('md', 'text/markdown', '.md');
const HTML_TYPE = document('html', 'text/html', '.html');
const WEBM_AUDIO = media('audio', 'audio/webm', '.webm');
const M4A_AUDIO = media('audio', 'audio/mp4', '.m4a');

/** file-type's `ext` → the supported type it stands for (everything it can report that is not here is unsupported). */
const MAGIC_TYPES: Readonly<Record<string, DetectedType>> = {
  jpg: media('image', 'image/jpeg', '.jpg'),
  png: media('image', 'image/png', '.png'),
  apng: media('image', 'image/png', '.png'),
  gif: media('image', 'image/gif', '.gif'),
  webp: media('image', 'image/webp', '.webp'),
  bmp: media('image', 'image/bmp', '.bmp'),
  tif: media('image', 'image/tiff', '.tif'),
  heic: media('image', 'image/heic', '.heic'),
  avif: media('image', 'image/avif', '.avif'),
  mp4: media('video', 'video/mp4', '.mp4'),
  m4v: media('video', 'video/mp4', '.m4v'),
  mov: media('video', 'video/quicktime', '.mov'),
  webm: media('video', 'video/webm', '.webm'),
  mkv: media('video', 'video/x-matroska', '.mkv'),
  avi: media('video', 'video/x-msvideo', '.avi'),
  mpg: media('video', 'video/mpeg', '.mpg'),
  mp3: media('audio', 'audio/mpeg', '.mp3'),
  wav: media('audio', 'audio/wav', '.wav'),
  ogg: media('audio', 'audio/ogg', '.ogg'),
  oga: media('audio', 'audio/ogg', '.ogg'),
  opus: media('audio', 'audio/ogg', '.opus'),
  flac: media('audio', 'audio/flac', '.flac'),
  aac: media('audio', 'audio/aac', '.aac'),
  m4a: M4A_AUDIO,
  pdf: document('pdf', 'application/pdf', '.pdf'),
  docx: document('docx', 'application/vnd.openxmlformats-officedocument.wordprocessingml.document', '.docx'),
  pptx: document(
    'pptx',
    'application/vnd.openxmlformats-officedocument.presentationml.presentation',
    '.pptx',
  ),
  epub: document('epub', 'application/epub+zip', '.epub'),
};

/** file-type results that only say "XML text" (an SVG with an `<?xml` prolog, XHTML): decided like unknown bytes. */
const TEXT_MAGIC = new Set(['xml']);

/** The text-like declared part types §3.4 accepts when the magic bytes say nothing. */
const TEXT_DECLARED_TYPES: Readonly<Record<string, DetectedType>> = {
  'text/plain': TXT_TYPE,
  'text/markdown': MD_TYPE,
  'text/html': HTML_TYPE,
  'application/json': JSON_TYPE,
  'image/svg+xml': SVG_TYPE,
};

/** Extensions that decide the type when neither the magic bytes nor the declared type do. */
const TEXT_EXTENSIONS: Readonly<Record<string, DetectedType>> = {
  '.txt': TXT_TYPE,
  '.md': MD_TYPE,
  '.markdown': MD_TYPE,
  '.html': HTML_TYPE,
  '.htm': HTML_TYPE,
  '.json': JSON_TYPE,
  '.svg': SVG_TYPE,
};

/** Extensions that mark a WebM or ISO-BMFF (mp4) container as audio. */
const AUDIO_CONTAINER_EXTENSIONS = new Set(['.weba', '.m4a']);

/** HEIC/AVIF count as images only when the installed libvips can decode them (spec §3.4). */
function sharpDecodesSuffix(suffix: string): boolean {
  return sharp.format.heif?.input.fileSuffix?.includes(suffix) ?? false;
}

function lowerExtension(filename: string | undefined): string {
  if (!filename) return '';
  const base = filename.split(/[\\/]/).pop() ?? '';
  return extname(base).toLowerCase();
}

function mimeEssence(declaredMime: string | undefined): string {
  return (declaredMime ?? '').split(';')[0]?.trim().toLowerCase() ?? '';
}

/**
 * True when `head` reads as UTF-8 text: valid UTF-8 (a character cut at the end of the sample is fine) and no
 * binary control bytes. Multipart parsers report `text/plain` for a part sent without a type, so a declared
 * text type alone must not turn random bytes into a text document.
 */
function looksLikeUtf8Text(head: Buffer): boolean {
  for (const byte of head) {
    // NUL and the C0 controls that never occur in text (TAB, LF, VT, FF, CR and ESC are allowed).
    if (byte < 0x09 || (byte > 0x0d && byte < 0x20 && byte !== 0x1b) || byte === 0x7f) return false;
  }
  try {
    new TextDecoder('utf-8', { fatal: true }).decode(head, { stream: true });
    return true;
  } catch {
    return false;
  }
}

function fromTextRules(head: Buffer, declared: string, extension: string): DetectedType | null {
  const declaredType = TEXT_DECLARED_TYPES[declared];
  const extensionType = TEXT_EXTENSIONS[extension];
  // `text/plain` is what a client sends (or a parser assumes) when it knows nothing better, so a more specific
  // text extension refines it: `notes.md` sent as text/plain is Markdown.
  const chosen = declared === 'text/plain' && extensionType ? extensionType : (declaredType ?? extensionType);
  if (!chosen || !looksLikeUtf8Text(head)) return null;
  return chosen;
}

function fromMagic(ext: string, declared: string, extension: string): DetectedType | null {
  const saysAudio = declared.startsWith('audio/') || AUDIO_CONTAINER_EXTENSIONS.has(extension);
  if (ext === 'webm' && saysAudio) return WEBM_AUDIO;
  if (ext === 'mp4' && saysAudio) return M4A_AUDIO;
  if (ext === 'heic' && !sharpDecodesSuffix('.heic')) return null;
  if (ext === 'avif' && !sharpDecodesSuffix('.avif')) return null;
  return MAGIC_TYPES[ext] ?? null;
}

/** §3.4 step 4: magic bytes (file-type on the first 4100+ bytes) first; else a supported text-like declared type; else the extension; else null (unsupported). */
export async function detectFileType(
  head: Buffer,
  declaredMime: string | undefined,
  filename: string | undefined,
): Promise<DetectedType | null> {
  const declared = mimeEssence(declaredMime);
  const extension = lowerExtension(filename);
  const magic = head.length > 0 ? await fileTypeFromBuffer(head) : undefined;
  if (magic && !TEXT_MAGIC.has(magic.ext)) return fromMagic(magic.ext, declared, extension);
  return fromTextRules(head, declared, extension);
}

/** The extension of §3.6.10: lower-cased extension of the original filename, else the detected canonical one. */
export function storedExtension(filename: string | undefined, detected: DetectedType): string {
  const extension = lowerExtension(filename);
  // Only plain ASCII extensions become part of a storage path; anything odd falls back to the canonical one.
  return /^\.[a-z0-9]{1,16}$/.test(extension) ? extension : detected.ext;
}

/** The MAX_*_BYTES class of a detected type: 'image'|'video'|'audio'|'document'|'json'. */
export function sizeClass(detected: DetectedType): 'image' | 'video' | 'audio' | 'document' | 'json' {
  if (detected.kind === 'media') return detected.mediaType ?? 'image';
  return detected.kind;
}
