// Upload checks of spec §3.4: the safe stored name, MIME inference from extensions, the profile allow-lists and
// the content check (step 7) that the bytes really are what the declared type says.
import { open } from 'node:fs/promises';
import { readZipDirectory } from './zip.js';

export const MIME = {
  pdf: 'application/pdf',
  text: 'text/plain',
  markdown: 'text/markdown',
  csv: 'text/csv',
  tsv: 'text/tab-separated-values',
  docx: 'application/vnd.openxmlformats-officedocument.wordprocessingml.document',
  dotx: 'application/vnd.openxmlformats-officedocument.wordprocessingml.template',
  xlsx: 'application/vnd.openxmlformats-officedocument.spreadsheetml.sheet',
  pptx: 'application/vnd.openxmlformats-officedocument.presentationml.presentation',
  odt: 'application/vnd.oasis.opendocument.text',
  html: 'text/html',
  json: 'application/json',
  xml: 'application/xml',
  textXml: 'text/xml',
  rtf: 'text/rtf',
  python: 'text/x-python',
  shell: 'application/x-sh',
  javascript: 'text/javascript',
  typescript: 'application/typescript',
  java: 'text/x-java',
  c: 'text/x-c',
  go: 'text/x-go',
  rust: 'text/x-rust',
  yaml: 'text/yaml',
  sql: 'application/sql',
  doc: 'application/msword',
  xls: 'application/vnd.ms-excel',
} as const;

const SAFE = [MIME.pdf, MIME.text, MIME.markdown, MIME.csv, MIME.tsv];
const OFFICE = [...SAFE, MIME.docx, MIME.dotx, MIME.xlsx, MIME.pptx, MIME.odt];
const ALL_SUPPORTED = [
  ...OFFICE,
  MIME.html,
  MIME.json,
  MIME.xml,
  MIME.textXml,
  MIME.rtf,
  MIME.python,
  MIME.shell,
  MIME.javascript,
  MIME.typescript,
  MIME.java,
  MIME.c,
  MIME.go,
  MIME.rust,
  MIME.yaml,
  MIME.sql,
];

/** The MIME allow-list of each named upload profile (sorted, as the 415 message lists them). */
export const PROFILE_MIMES: Record<'safe' | 'office' | 'all-supported', readonly string[]> = {
  safe: [...SAFE].sort(),
  office: [...OFFICE].sort(),
  'all-supported': [...ALL_SUPPORTED].sort(),
};

/** Every type that can be indexed (the bound for `ALLOWED_UPLOAD_MIMES`). */
export const SUPPORTED_MIMES: ReadonlySet<string> = new Set(ALL_SUPPORTED);

/** Legacy binary Office types: refused under every profile with `LEGACY_OFFICE_MESSAGE`. */
export const LEGACY_OFFICE_MIMES: ReadonlySet<string> = new Set([MIME.doc, MIME.xls]);
export const LEGACY_OFFICE_MESSAGE =
  'Legacy binary Office formats (.doc/.xls) are not supported; save as .docx/.xlsx';

/** OOXML/ODF types and the part that must be in the archive. */
export const ZIP_MAIN_PARTS: Readonly<Record<string, string>> = {
  [MIME.docx]: 'word/document.xml',
  [MIME.dotx]: 'word/document.xml',
  [MIME.xlsx]: 'xl/workbook.xml',
  [MIME.pptx]: 'ppt/presentation.xml',
  [MIME.odt]: 'content.xml',
};

const EXTENSION_MIMES: Readonly<Record<string, string>> = {
  pdf: MIME.pdf,
  txt: MIME.text,
  text: MIME.text,
  log: MIME.text,
  md: MIME.markdown,
  markdown: MIME.markdown,
  csv: MIME.csv,
  tsv: MIME.tsv,
  tab: MIME.tsv,
  docx: MIME.docx,
  dotx: MIME.dotx,
  xlsx: MIME.xlsx,
  pptx: MIME.pptx,
  odt: MIME.odt,
  json: MIME.json,
  xml: MIME.xml,
  html: MIME.html,
  htm: MIME.html,
  rtf: MIME.rtf,
  py: MIME.python,
  sh: MIME.shell,
  bash: MIME.shell,
  js: MIME.javascript,
  mjs: MIME.javascript,
  cjs: MIME.javascript,
  jsx: MIME.javascript,
  ts: MIME.typescript,
  mts: MIME.typescript,
  cts: MIME.typescript,
  tsx: MIME.typescript,
  java: MIME.java,
  c: MIME.c,
  h: MIME.c,
  cc: MIME.c,
  cpp: MIME.c,
  cxx: MIME.c,
  hpp: MIME.c,
  go: MIME.go,
  rs: MIME.rust,
  yaml: MIME.yaml,
  yml: MIME.yaml,
  sql: MIME.sql,
  doc: MIME.doc,
  xls: MIME.xls,
};

const SAFE_NAME_LIMIT = 128;

/**
 * The stored name of an uploaded file: basename (`/` and `\` both separate), trimmed, spaces → `_`, every run
 * of characters outside `[A-Za-z0-9._-]` → one `_`, leading dots removed, at most 128 characters, `file` when
 * nothing is left. `../../My report (v2).pdf` → `My_report__v2_.pdf`.
 */
export function safeFilename(name: string): string {
  const base = name.split(/[/\\]/).pop() ?? '';
  const safe = base
    .trim()
    .replace(/ /g, '_')
    .replace(/[^A-Za-z0-9._-]+/g, '_')
    .replace(/^\.+/, '')
    .slice(0, SAFE_NAME_LIMIT);
  return safe === '' ? 'file' : safe;
}

/** The MIME type implied by the file extension (case-insensitive), or undefined for an unknown one. */
export function inferMimeType(filename: string): string | undefined {
  const base = filename.split(/[/\\]/).pop() ?? '';
  const dot = base.lastIndexOf('.');
  if (dot < 0) return undefined;
  return EXTENSION_MIMES[base.slice(dot + 1).toLowerCase()];
}

/**
 * Step 5 of spec §3.4: the part's `Content-Type` lower-cased without parameters; when it is missing or
 * `application/octet-stream`, the type inferred from the extension (else `application/octet-stream`).
 */
export function resolveUploadMime(contentType: string | undefined, filename: string): string {
  const declared = (contentType ?? '').split(';')[0]?.trim().toLowerCase() ?? '';
  if (declared !== '' && declared !== 'application/octet-stream') return declared;
  return inferMimeType(filename) ?? 'application/octet-stream';
}

/** The 415 message for a type outside the allow-list (the legacy Office types have their own message). */
export function unsupportedMimeMessage(
  mimeType: string,
  profile: string,
  allowed: readonly string[],
): string {
  if (LEGACY_OFFICE_MIMES.has(mimeType)) return LEGACY_OFFICE_MESSAGE;
  return `Unsupported media type '${mimeType}'. Allowed types (profile=${profile}): ${[...allowed].sort().join(', ')}`;
}

/** Types whose content is text (everything supported except PDF and the zip-based formats). */
export function isTextMime(mimeType: string): boolean {
  return SUPPORTED_MIMES.has(mimeType) && mimeType !== MIME.pdf && !(mimeType in ZIP_MAIN_PARTS);
}

const PDF_MAGIC = Buffer.from('%PDF-');
const PDF_END = Buffer.from('%%EOF');
const ZIP_MAGIC = Buffer.from([0x50, 0x4b, 0x03, 0x04]);
const PDF_TAIL_BYTES = 2048;

/** How a byte buffer is encoded, judging by its BOM. */
export function textEncodingOf(bytes: Uint8Array): 'utf-8' | 'utf-16le' | 'utf-16be' {
  if (bytes.length >= 2 && bytes[0] === 0xff && bytes[1] === 0xfe) return 'utf-16le';
  if (bytes.length >= 2 && bytes[0] === 0xfe && bytes[1] === 0xff) return 'utf-16be';
  return 'utf-8';
}

/** True when the bytes are valid UTF-8 (or UTF-16 with a BOM) and the decoded text has no NUL character. */
export function isCleanText(bytes: Uint8Array): boolean {
  const encoding = textEncodingOf(bytes);
  // A NUL byte in UTF-8 is always a NUL character, so no decoded copy is needed to look for one.
  if (encoding === 'utf-8' && bytes.indexOf(0) >= 0) return false;
  try {
    const text = new TextDecoder(encoding, { fatal: true }).decode(bytes);
    return encoding === 'utf-8' || !text.includes('\0');
  } catch {
    return false;
  }
}

/**
 * Step 7 of spec §3.4: PDF starts with `%PDF-` and has `%%EOF` in its last 2 048 bytes; OOXML/ODF starts with
 * `PK\x03\x04` and contains its main part; text decodes as UTF-8 (UTF-16 with a BOM) without NUL characters.
 * Other types never match.
 */
export async function checkFileContent(path: string, mimeType: string): Promise<boolean> {
  const file = await open(path, 'r');
  try {
    const { size } = await file.stat();
    if (mimeType === MIME.pdf) {
      const head = Buffer.alloc(PDF_MAGIC.length);
      await file.read(head, 0, head.length, 0);
      if (size < PDF_MAGIC.length || !head.equals(PDF_MAGIC)) return false;
      const tailLength = Math.min(size, PDF_TAIL_BYTES);
      const tail = Buffer.alloc(tailLength);
      await file.read(tail, 0, tailLength, size - tailLength);
      return tail.includes(PDF_END);
    }
    const mainPart = ZIP_MAIN_PARTS[mimeType];
    if (mainPart !== undefined) {
      const bytes = await file.readFile();
      if (bytes.length < ZIP_MAGIC.length || !bytes.subarray(0, ZIP_MAGIC.length).equals(ZIP_MAGIC))
        return false;
      try {
        return readZipDirectory(bytes).has(mainPart);
      } catch {
        return false;
      }
    }
    if (isTextMime(mimeType)) return isCleanText(await file.readFile());
    return false;
  } finally {
    await file.close();
  }
}
