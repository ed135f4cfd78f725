// Document parsing (spec §3.5 step 2): every supported type becomes a list of (page | null, text) blocks of
// normalised text. Limits of spec §7 apply here: PDF_MAX_PAGES and the uncompressed budget of zip-based files.
import { readFile } from 'node:fs/promises';
import { type PdfDocument, PdfOpenError, pdfPageText, readPdf } from '@quintet/kernel/pdf';
import { decodeXmlEntities, scanXml, xmlAttribute } from '@quintet/kernel/xml';
import { parse as parseCsv } from 'csv-parse/sync';
import { normalizeText } from './analysis.js';
import {
  isTextMime,
  LEGACY_OFFICE_MESSAGE,
  LEGACY_OFFICE_MIMES,
  MIME,
  textEncodingOf,
  ZIP_MAIN_PARTS,
} from './upload-checks.js';
import {
  MAX_UNCOMPRESSED_BYTES,
  readZipDirectory,
  readZipEntry,
  UncompressedBudget,
  type ZipEntry,
  ZipFormatError,
  ZipTooLargeError,
} from './zip.js';

export interface TextBlock {
  /** 1-based PDF page or slide number; null for unpaged formats */
  page: number | null;
  text: string;
}

export interface ParseOptions {
  pdfMaxPages: number;
  /** cap on the uncompressed bytes read from a zip-based document (default 200 MB) */
  maxUncompressedBytes?: number;
}

export interface ParsedDocument {
  blocks: TextBlock[];
  /** PDF pages or slides; null for other formats */
  pageCount: number | null;
}

/** A document that cannot be indexed; the message is safe to show (no paths). */
export class ParseError extends Error {
  override name = 'ParseError';
}

export const ENCRYPTED_PDF_MESSAGE = 'Encrypted PDF';
export const SCANNED_PDF_MESSAGE = 'No extractable text (scanned PDF? OCR is not available)';
export const NO_TEXT_MESSAGE = 'No extractable text';

/** Parses the file at `path` as `mimeType` into normalised text blocks (empty blocks left out). */
export async function parseDocument(
  path: string,
  mimeType: string,
  options: ParseOptions,
): Promise<ParsedDocument> {
  if (LEGACY_OFFICE_MIMES.has(mimeType)) throw new ParseError(LEGACY_OFFICE_MESSAGE);
  const bytes = await readFile(path);
  if (mimeType === MIME.pdf) return parsePdf(bytes, options.pdfMaxPages);
  if (mimeType in ZIP_MAIN_PARTS) {
    return withZipErrors(() => parseZipDocument(bytes, mimeType, options.maxUncompressedBytes));
  }
  if (!isTextMime(mimeType) && !mimeType.startsWith('text/')) {
    throw new ParseError(`Unsupported document type '${mimeType}'`);
  }
  const text = decodeText(bytes);
  let raw: string;
  if (mimeType === MIME.csv || mimeType === MIME.tsv)
    raw = csvToText(text, mimeType === MIME.tsv ? '\t' : ',');
  else if (mimeType === MIME.html) raw = htmlToText(text);
  else raw = text;
  return { blocks: nonEmpty([{ page: null, text: normalizeText(raw) }]), pageCount: null };
}

function nonEmpty(blocks: TextBlock[]): TextBlock[] {
  const kept = blocks.filter((block) => block.text !== '');
  if (kept.length === 0) throw new ParseError(NO_TEXT_MESSAGE);
  return kept;
}

/** Decodes text bytes: UTF-16 when a BOM says so, UTF-8 otherwise (BOM dropped, invalid bytes replaced). */
export function decodeText(bytes: Uint8Array): string {
  return new TextDecoder(textEncodingOf(bytes)).decode(bytes);
}

// ---------------------------------------------------------------------------------------------------- PDF

async function parsePdf(bytes: Uint8Array, maxPages: number): Promise<ParsedDocument> {
  try {
    return await readPdf(bytes, (document) => pdfBlocks(document, maxPages));
  } catch (error) {
    if (!(error instanceof PdfOpenError)) throw error;
    throw new ParseError(error.encrypted ? ENCRYPTED_PDF_MESSAGE : 'Invalid or damaged PDF');
  }
}

async function pdfBlocks(document: PdfDocument, maxPages: number): Promise<ParsedDocument> {
  const pageCount = document.numPages;
  if (pageCount > maxPages) throw new ParseError(`PDF has ${pageCount} pages; the limit is ${maxPages}`);
  const blocks: TextBlock[] = [];
  for (let pageNumber = 1; pageNumber <= pageCount; pageNumber++) {
    const page = await document.getPage(pageNumber);
    const text = normalizeText(await pdfPageText(page));
    if (text !== '') blocks.push({ page: pageNumber, text });
    page.cleanup();
  }
  if (blocks.length === 0) throw new ParseError(SCANNED_PDF_MESSAGE);
  return { blocks, pageCount };
}

// ------------------------------------------------------------------------------------------- OOXML / ODF

function withZipErrors<T>(parse: () => T): T {
  try {
    return parse();
  } catch (error) {
    if (error instanceof ZipTooLargeError) throw new ParseError(error.message);
    if (error instanceof ZipFormatError) throw new ParseError(`Invalid archive: ${error.message}`);
    throw error;
  }
}

class ZipDocument {
  readonly entries: Map<string, ZipEntry>;
  readonly #budget: UncompressedBudget;
  readonly #decoder = new TextDecoder();

  constructor(
    readonly bytes: Uint8Array,
    limit: number,
  ) {
    this.entries = readZipDirectory(bytes);
    this.#budget = new UncompressedBudget(limit);
  }

  /** Refuses early when the declared sizes of the parts to be read already exceed the budget. */
  plan(names: readonly string[]): void {
    const entries: ZipEntry[] = [];
    for (const name of names) {
      const entry = this.entries.get(name);
      if (entry !== undefined) entries.push(entry);
    }
    this.#budget.checkDeclared(entries);
  }

  text(name: string): string | undefined {
    const entry = this.entries.get(name);
    if (entry === undefined) return undefined;
    return this.#decoder.decode(readZipEntry(this.bytes, entry, this.#budget));
  }

  required(name: string): string {
    const text = this.text(name);
    if (text === undefined) throw new ParseError(`Invalid document: ${name} is missing`);
    return text;
  }
}

function parseZipDocument(
  bytes: Uint8Array,
  mimeType: string,
  limit = MAX_UNCOMPRESSED_BYTES,
): ParsedDocument {
  const zip = new ZipDocument(bytes, limit);
  switch (mimeType) {
    case MIME.xlsx:
      return { blocks: nonEmpty(parseXlsx(zip)), pageCount: null };
    case MIME.pptx:
      return parsePptx(zip);
    case MIME.odt: {
      zip.plan(['content.xml']);
      return {
        blocks: nonEmpty([{ page: null, text: normalizeText(flowText(zip.required('content.xml'), ODF)) }]),
        pageCount: null,
      };
    }
    default: {
      zip.plan(['word/document.xml']);
      const xml = zip.required('word/document.xml');
      return {
        blocks: nonEmpty([{ page: null, text: normalizeText(flowText(xml, WORD)) }]),
        pageCount: null,
      };
    }
  }
}

/** Element names of one XML vocabulary for paragraphs and tables. */
interface FlowVocabulary {
  paragraphs: ReadonlySet<string>;
  /** text counts only inside these elements; null: all text inside a paragraph counts */
  textElements: ReadonlySet<string> | null;
  table: string;
  row: string;
  cell: string;
  tabs: ReadonlySet<string>;
  breaks: ReadonlySet<string>;
  /** ODF `<text:s text:c="n"/>`: n spaces */
  spaces?: string;
  /** subtrees whose text is ignored (duplicates, deleted text) */
  skipped: ReadonlySet<string>;
}

const WORD: FlowVocabulary = {
  paragraphs: new Set(['w:p']),
  textElements: new Set(['w:t']),
  table: 'w:tbl',
  row: 'w:tr',
  cell: 'w:tc',
  tabs: new Set(['w:tab']),
  breaks: new Set(['w:br', 'w:cr']),
  skipped: new Set(['mc:Fallback', 'w:del']),
};

const ODF: FlowVocabulary = {
  paragraphs: new Set(['text:p', 'text:h']),
  textElements: null,
  table: 'table:table',
  row: 'table:table-row',
  cell: 'table:table-cell',
  tabs: new Set(['text:tab']),
  breaks: new Set(['text:line-break']),
  spaces: 'text:s',
  skipped: new Set(['office:annotation', 'text:tracked-changes']),
};

const DRAWING: FlowVocabulary = {
  paragraphs: new Set(['a:p']),
  textElements: new Set(['a:t']),
  table: 'a:tbl',
  row: 'a:tr',
  cell: 'a:tc',
  tabs: new Set(),
  breaks: new Set(['a:br']),
  skipped: new Set(['mc:Fallback']),
};

/**
 * Paragraphs as lines; a table row as one line of its cells joined by ` | ` (paragraphs in a cell joined by a
 * space). Nested paragraphs (text boxes) become lines of their own.
 */
function flowText(xml: string, vocabulary: FlowVocabulary): string {
  const lines: string[] = [];
  const paragraphs: string[] = [];
  const cells: string[][] = []; // paragraphs of each open cell
  const rows: string[][] = []; // cells of each open row
  let textDepth = 0;
  let skipDepth = 0;
  const emit = (line: string) => {
    const trimmed = line.trim();
    if (trimmed === '') return;
    const cell = cells.at(-1);
    if (cell !== undefined) cell.push(trimmed);
    else lines.push(trimmed);
  };
  const append = (text: string) => {
    if (paragraphs.length > 0) paragraphs[paragraphs.length - 1] += text;
  };
  scanXml(xml, {
    open(name, attributes) {
      // the scanner closes self-closing tags too, so every open is counted
      if (vocabulary.skipped.has(name)) {
        skipDepth++;
        return;
      }
      if (skipDepth > 0) return;
      if (vocabulary.paragraphs.has(name)) paragraphs.push('');
      else if (vocabulary.textElements?.has(name)) textDepth++;
      else if (vocabulary.tabs.has(name)) append('\t');
      else if (vocabulary.breaks.has(name)) append('\n');
      else if (name === vocabulary.spaces)
        append(' '.repeat(Math.min(1000, Number(xmlAttribute(attributes, 'text:c') ?? 1) || 1)));
      else if (name === vocabulary.row) rows.push([]);
      else if (name === vocabulary.cell) cells.push([]);
    },
    close(name) {
      if (vocabulary.skipped.has(name)) {
        skipDepth = Math.max(0, skipDepth - 1);
        return;
      }
      if (skipDepth > 0) return;
      if (vocabulary.paragraphs.has(name)) emit(paragraphs.pop() ?? '');
      else if (vocabulary.textElements?.has(name)) textDepth = Math.max(0, textDepth - 1);
      else if (name === vocabulary.cell) {
        const cell = cells.pop() ?? [];
        rows.at(-1)?.push(cell.join(' '));
      } else if (name === vocabulary.row) {
        const row = rows.pop() ?? [];
        while (row.length > 0 && row.at(-1) === '') row.pop();
        emit(row.join(' | '));
      }
    },
    text(raw, isCData) {
      if (skipDepth > 0 || paragraphs.length === 0) return;
      if (vocabulary.textElements !== null && textDepth === 0) return;
      append(isCData ? raw : decodeXmlEntities(raw));
    },
  });
  return lines.join('\n');
}

/** Relationship id → part name, resolved against the folder of the part that owns the relationships. */
function relationships(zip: ZipDocument, relsName: string, baseFolder: string): Map<string, string> {
  const targets = new Map<string, string>();
  const xml = zip.text(relsName);
  if (xml === undefined) return targets;
  scanXml(xml, {
    open(name, attributes) {
      if (name !== 'Relationship') return;
      const id = xmlAttribute(attributes, 'Id');
      const target = xmlAttribute(attributes, 'Target');
      if (id === undefined || target === undefined) return;
      targets.set(id, resolvePartName(baseFolder, target));
    },
  });
  return targets;
}

function resolvePartName(baseFolder: string, target: string): string {
  const parts = target.startsWith('/') ? [] : baseFolder.split('/').filter((part) => part !== '');
  for (const part of target.split('/')) {
    if (part === '..') parts.pop();
    else if (part !== '.' && part !== '') parts.push(part);
  }
  return parts.join('/');
}

/** The relationship id attribute (`r:id`, whatever the prefix). */
function relationshipId(attributes: string): string | undefined {
  const match = /(?:^|\s)[A-Za-z0-9]+:id\s*=\s*("([^"]*)"|'([^']*)')/.exec(attributes);
  return match === null ? undefined : (match[2] ?? match[3]);
}

function parseXlsx(zip: ZipDocument): TextBlock[] {
  const sheets: { name: string; part: string }[] = [];
  const targets = relationships(zip, 'xl/_rels/workbook.xml.rels', 'xl');
  scanXml(zip.required('xl/workbook.xml'), {
    open(name, attributes) {
      if (name !== 'sheet') return;
      const id = relationshipId(attributes);
      const part = id === undefined ? undefined : targets.get(id);
      if (part !== undefined) sheets.push({ name: xmlAttribute(attributes, 'name') ?? part, part });
    },
  });
  zip.plan(['xl/sharedStrings.xml', ...sheets.map((sheet) => sheet.part)]);
  const sharedStrings = readSharedStrings(zip.text('xl/sharedStrings.xml'));
  const blocks: TextBlock[] = [];
  for (const sheet of sheets) {
    const xml = zip.text(sheet.part);
    if (xml === undefined) continue;
    const rows = sheetRows(xml, sharedStrings);
    if (rows.length === 0) continue;
    blocks.push({ page: null, text: normalizeText(`Sheet ${sheet.name}\n${rows.join('\n')}`) });
  }
  return blocks;
}

function readSharedStrings(xml: string | undefined): string[] {
  const strings: string[] = [];
  if (xml === undefined) return strings;
  let current: string | null = null;
  let inText = 0;
  let inPhonetic = 0;
  scanXml(xml, {
    open(name, _attributes, selfClosing) {
      if (name === 'si') current = '';
      else if (name === 't' && !selfClosing) inText++;
      else if (name === 'rPh' && !selfClosing) inPhonetic++;
    },
    close(name) {
      if (name === 'si') {
        strings.push(current ?? '');
        current = null;
      } else if (name === 't') inText = Math.max(0, inText - 1);
      else if (name === 'rPh') inPhonetic = Math.max(0, inPhonetic - 1);
    },
    text(raw, isCData) {
      if (current !== null && inText > 0 && inPhonetic === 0)
        current += isCData ? raw : decodeXmlEntities(raw);
    },
  });
  return strings;
}

/** Zero-based column of a cell reference such as `B7`, or -1. */
function columnIndex(reference: string | undefined): number {
  if (reference === undefined) return -1;
  let column = 0;
  let letters = 0;
  for (const character of reference) {
    const code = character.toUpperCase().charCodeAt(0);
    if (code < 65 || code > 90) break;
    column = column * 26 + (code - 64);
    letters++;
  }
  return letters === 0 ? -1 : column - 1;
}

function csvField(value: string): string {
  return /[",\n\r]/.test(value) ? `"${value.replace(/"/g, '""')}"` : value;
}

/** Rows of one worksheet as CSV lines (empty rows left out, trailing empty cells trimmed). */
function sheetRows(xml: string, sharedStrings: readonly string[]): string[] {
  const rows: string[] = [];
  let row: string[] | null = null;
  let cellType = '';
  let cellColumn = -1;
  let cellValue: string | null = null;
  let capture = false;
  scanXml(xml, {
    open(name, attributes, selfClosing) {
      if (name === 'row') row = [];
      else if (name === 'c' && row !== null) {
        cellType = xmlAttribute(attributes, 't') ?? 'n';
        const column = columnIndex(xmlAttribute(attributes, 'r'));
        cellColumn = column >= 0 ? column : row.length;
        cellValue = null;
      } else if ((name === 'v' || name === 't') && !selfClosing) {
        capture = true;
        cellValue ??= '';
      }
    },
    close(name) {
      if (name === 'v' || name === 't') capture = false;
      else if (name === 'c' && row !== null) {
        const value = cellText(cellType, cellValue, sharedStrings);
        if (value !== '') {
          while (row.length < cellColumn) row.push('');
          row[cellColumn] = value;
        }
      } else if (name === 'row' && row !== null) {
        if (row.some((value) => value !== '')) rows.push(row.map(csvField).join(','));
        row = null;
      }
    },
    text(raw, isCData) {
      if (capture) cellValue = (cellValue ?? '') + (isCData ? raw : decodeXmlEntities(raw));
    },
  });
  return rows;
}

function cellText(type: string, value: string | null, sharedStrings: readonly string[]): string {
  if (value === null) return '';
  switch (type) {
    case 's':
      return sharedStrings[Number(value)] ?? '';
    case 'b':
      return value === '1' ? 'TRUE' : 'FALSE';
    default:
      return value;
  }
}

function parsePptx(zip: ZipDocument): ParsedDocument {
  const targets = relationships(zip, 'ppt/_rels/presentation.xml.rels', 'ppt');
  const slideParts: string[] = [];
  const presentation = zip.text('ppt/presentation.xml');
  if (presentation !== undefined) {
    scanXml(presentation, {
      open(name, attributes) {
        if (name !== 'p:sldId') return;
        const id = relationshipId(attributes);
        const part = id === undefined ? undefined : targets.get(id);
        if (part !== undefined) slideParts.push(part);
      },
    });
  }
  if (slideParts.length === 0) {
    // no usable slide list: slides in the order of their file numbers
    const numbered = [...zip.entries.keys()]
      .map((name) => ({ name, match: /^ppt\/slides\/slide(\d+)\.xml$/.exec(name) }))
      .filter((item) => item.match !== null)
      .sort((a, b) => Number(a.match?.[1]) - Number(b.match?.[1]));
    slideParts.push(...numbered.map((item) => item.name));
  }
  zip.plan(slideParts);
  const blocks: TextBlock[] = [];
  slideParts.forEach((part, index) => {
    const xml = zip.text(part);
    if (xml === undefined) return;
    const text = normalizeText(flowText(xml, DRAWING));
    if (text !== '') blocks.push({ page: index + 1, text });
  });
  return { blocks: nonEmpty(blocks), pageCount: slideParts.length };
}

// ------------------------------------------------------------------------------------------------ CSV / TSV

const DELIMITER_CANDIDATES = [',', '\t', ';', '|'];

/** The delimiter that occurs most often outside quotes in the first line (ties: the type's own one). */
export function sniffDelimiter(text: string, preferred: string): string {
  const counts = new Map<string, number>();
  let quoted = false;
  for (let index = 0; index < text.length && index < 65_536; index++) {
    const character = text[index] as string;
    if (character === '"') quoted = !quoted;
    else if (!quoted && (character === '\n' || character === '\r')) {
      if (counts.size > 0) break;
    } else if (!quoted && DELIMITER_CANDIDATES.includes(character)) {
      counts.set(character, (counts.get(character) ?? 0) + 1);
    }
  }
  let best = preferred;
  let bestCount = counts.get(preferred) ?? 0;
  for (const [delimiter, count] of counts) {
    if (count > bestCount) {
      best = delimiter;
      bestCount = count;
    }
  }
  return best;
}

/** First row = header; each data row → `h1: v1; h2: v2` with empty cells skipped, one line per row. */
export function csvToText(text: string, preferredDelimiter: string): string {
  const records = parseCsv(text, {
    delimiter: sniffDelimiter(text, preferredDelimiter),
    bom: true,
    relax_column_count: true,
    relax_quotes: true,
    skip_empty_lines: true,
  }) as string[][];
  const [header, ...rows] = records;
  if (header === undefined) return '';
  const names = header.map((name, index) => oneLine(name) || `Column ${index + 1}`);
  if (rows.length === 0) return names.join('; ');
  const lines: string[] = [];
  for (const row of rows) {
    const pairs: string[] = [];
    row.forEach((value, index) => {
      const cell = oneLine(value);
      if (cell !== '') pairs.push(`${names[index] ?? `Column ${index + 1}`}: ${cell}`);
    });
    if (pairs.length > 0) lines.push(pairs.join('; '));
  }
  return lines.join('\n');
}

function oneLine(value: string): string {
  return value.replace(/\s+/g, ' ').trim();
}

// ----------------------------------------------------------------------------------------------------- HTML

const HTML_ENTITIES: Readonly<Record<string, string>> = {
  amp: '&',
  lt: '<',
  gt: '>',
  quot: '"',
  apos: "'",
  nbsp: ' ',
  ndash: '–',
  mdash: '—',
  hellip: '…',
  lsquo: '‘',
  rsquo: '’',
  ldquo: '“',
  rdquo: '”',
  copy: '©',
  reg: '®',
  trade: '™',
  euro: '€',
  pound: '£',
  deg: '°',
  middot: '·',
  bull: '•',
  times: '×',
};

const BLOCK_TAGS = new Set(
  'address article aside blockquote br dd div dl dt figcaption figure footer h1 h2 h3 h4 h5 h6 header hr li main nav ol p pre section table tbody thead tfoot tr ul title caption'.split(
    ' ',
  ),
);

/** Visible text of an HTML document: scripts, styles and comments dropped, block elements on their own lines. */
export function htmlToText(html: string): string {
  const stripped = html
    .replace(/<!--[\s\S]*?(?:-->|$)/g, ' ')
    .replace(/<(script|style|noscript|template|svg)\b[\s\S]*?(?:<\/\1\s*>|$)/gi, ' ')
    .replace(/<\/?([a-zA-Z][\w:-]*)(?:[^>"']|"[^"]*"|'[^']*')*>/g, (_tag, name: string) =>
      BLOCK_TAGS.has(name.toLowerCase())
        ? '\n'
        : name.toLowerCase() === 'td' || name.toLowerCase() === 'th'
          ? ' '
          : '',
    )
    .replace(/<!DOCTYPE[^>]*>/gi, '');
  return stripped.replace(/&(#[xX][0-9a-fA-F]+|#[0-9]+|[a-zA-Z]+);/g, (match, body: string) => {
    if (body.startsWith('#')) {
      const codePoint =
        body[1] === 'x' || body[1] === 'X' ? Number.parseInt(body.slice(2), 16) : Number(body.slice(1));
      return codePoint > 0 && codePoint <= 0x10ffff ? String.fromCodePoint(codePoint) : '';
    }
    return HTML_ENTITIES[body.toLowerCase()] ?? match;
  });
}
