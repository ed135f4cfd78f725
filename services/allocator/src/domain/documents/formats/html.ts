// HTML and XHTML (spec §3.7; EPUB chapters too): the text of the body, h1–h6 as headings, script/style and
// similar non-content elements dropped, character references decoded. A small tolerant tokenizer rather than
// a full HTML parser: unclosed elements, unquoted attributes and stray `<` are all taken in stride.

import { codePointText } from '@quintet/kernel/xml';
import type { DocumentBlock, ExtractedDocument } from '../extract.js';
import { decodeText } from './text.js';

export interface HtmlContent {
  title: string | null;
  blocks: DocumentBlock[];
}

/** Elements whose content is never visible text: skipped up to their end tag. */
const SKIPPED_ELEMENTS = new Set(['script', 'style', 'noscript', 'template', 'svg']);
/** Elements that start and end a paragraph. */
const BLOCK_ELEMENTS = new Set(
  (
    'address article aside blockquote body caption center dd details dialog dir div dl dt fieldset figcaption ' +
    'figure footer form header hgroup hr html legend li main menu nav ol p pre section summary table tbody ' +
    'tfoot thead tr ul'
  ).split(' '),
);
const CELL_ELEMENTS = new Set(['td', 'th']);
/** Elements that belong in <head>; any other start tag there opens the body. */
const HEAD_ELEMENTS = new Set([
  'head',
  'title',
  'meta',
  'link',
  'base',
  'style',
  'script',
  'noscript',
  'template',
]);
const HEADING = /^h([1-6])$/;

// ------------------------------------------------------------------------------------------- entities

const LATIN1_NAMES =
  'nbsp iexcl cent pound curren yen brvbar sect uml copy ordf laquo not shy reg macr deg plusmn sup2 sup3 acute micro para middot cedil sup1 ordm raquo frac14 frac12 frac34 iquest Agrave Aacute Acirc Atilde Auml Aring AElig Ccedil Egrave Eacute Ecirc Euml Igrave Iacute Icirc Iuml ETH Ntilde Ograve Oacute Ocirc Otilde Ouml times Oslash Ugrave Uacute Ucirc Uuml Yacute THORN szlig agrave aacute acirc atilde auml aring aelig ccedil egrave eacute ecirc euml igrave iacute icirc iuml eth ntilde ograve oacute ocirc otilde ouml divide oslash ugrave uacute ucirc uuml yacute thorn yuml';
const GREEK_UPPER =
  'Alpha Beta Gamma Delta Epsilon Zeta Eta Theta Iota Kappa Lambda Mu Nu Xi Omicron Pi Rho - Sigma Tau Upsilon Phi Chi Psi Omega';
const GREEK_LOWER =
  'alpha beta gamma delta epsilon zeta eta theta iota kappa lambda mu nu xi omicron pi rho sigmaf sigma tau upsilon phi chi psi omega';
const OTHER_ENTITIES: Readonly<Record<string, number>> = {
  amp: 0x26,
  lt: 0x3c,
  gt: 0x3e,
  quot: 0x22,
  apos: 0x27,
  OElig: 0x152,
  oelig: 0x153,
  Scaron: 0x160,
  scaron: 0x161,
  Yuml: 0x178,
  fnof: 0x192,
  circ: 0x2c6,
  tilde: 0x2dc,
  ensp: 0x2002,
  emsp: 0x2003,
  thinsp: 0x2009,
  zwnj: 0x200c,
  zwj: 0x200d,
  lrm: 0x200e,
  rlm: 0x200f,
  ndash: 0x2013,
  mdash: 0x2014,
  lsquo: 0x2018,
  rsquo: 0x2019,
  sbquo: 0x201a,
  ldquo: 0x201c,
  rdquo: 0x201d,
  bdquo: 0x201e,
  dagger: 0x2020,
  Dagger: 0x2021,
  bull: 0x2022,
  hellip: 0x2026,
  permil: 0x2030,
  prime: 0x2032,
  Prime: 0x2033,
  lsaquo: 0x2039,
  rsaquo: 0x203a,
  oline: 0x203e,
  euro: 0x20ac,
  trade: 0x2122,
  larr: 0x2190,
  uarr: 0x2191,
  rarr: 0x2192,
  darr: 0x2193,
  harr: 0x2194,
  forall: 0x2200,
  part: 0x2202,
  exist: 0x2203,
  nabla: 0x2207,
  isin: 0x2208,
  notin: 0x2209,
  prod: 0x220f,
  sum: 0x2211,
  minus: 0x2212,
  radic: 0x221a,
  infin: 0x221e,
  cap: 0x2229,
  cup: 0x222a,
  int: 0x222b,
  there4: 0x2234,
  sim: 0x223c,
  asymp: 0x2248,
  ne: 0x2260,
  equiv: 0x2261,
  le: 0x2264,
  ge: 0x2265,
  loz: 0x25ca,
  spades: 0x2660,
  clubs: 0x2663,
  hearts: 0x2665,
  diams: 0x2666,
};

function entityTable(): Map<string, string> {
  const table = new Map<string, string>();
  const addRun = (names: string, firstCodePoint: number) => {
    names.split(' ').forEach((name, index) => {
      if (name !== '-') table.set(name, String.fromCodePoint(firstCodePoint + index));
    });
  };
  addRun(LATIN1_NAMES, 0xa0);
  addRun(GREEK_UPPER, 0x391);
  addRun(GREEK_LOWER, 0x3b1);
  for (const [name, codePoint] of Object.entries(OTHER_ENTITIES)) {
    table.set(name, String.fromCodePoint(codePoint));
  }
  return table;
}

const ENTITIES = entityTable();
/** Old documents write these without the semicolon; browsers still decode them. */
const LEGACY_WITHOUT_SEMICOLON = new Set(['amp', 'lt', 'gt', 'quot', 'nbsp', 'copy', 'reg']);
/** Numeric references 0x80–0x9F mean Windows-1252 characters in HTML. */
const WINDOWS_1252 =
  '\u20ac\u0081\u201a\u0192\u201e\u2026\u2020\u2021\u02c6\u2030\u0160\u2039\u0152\u008d\u017d\u008f\u0090\u2018\u2019\u201c\u201d\u2022\u2013\u2014\u02dc\u2122\u0161\u203a\u0153\u009d\u017e\u0178';

/** Decodes named (common HTML 4 set) and numeric character references. */
export function decodeHtmlEntities(raw: string): string {
  if (!raw.includes('&')) return raw;
  return raw.replace(
    /&(#[xX][0-9a-fA-F]+|#[0-9]+|[a-zA-Z][a-zA-Z0-9]*)(;?)/g,
    (match, body: string, semicolon) => {
      if (body.startsWith('#')) {
        const hex = body[1] === 'x' || body[1] === 'X';
        const codePoint = hex ? Number.parseInt(body.slice(2), 16) : Number(body.slice(1));
        if (codePoint >= 0x80 && codePoint <= 0x9f) return WINDOWS_1252[codePoint - 0x80] as string;
        return codePointText(codePoint);
      }
      if (semicolon === '' && !LEGACY_WITHOUT_SEMICOLON.has(body)) return match;
      const decoded = ENTITIES.get(body);
      if (decoded === undefined) return match;
      return body === 'shy' ? '' : decoded;
    },
  );
}

// ------------------------------------------------------------------------------------------- blocks

/** Collects paragraphs into text blocks, cut where a heading starts. */
class BlockBuilder {
  readonly blocks: DocumentBlock[] = [];
  #paragraphs: string[] = [];
  #current = '';
  #preformatted = false;
  #heading: { level: number; text: string } | null = null;

  constructor(readonly page: number | null) {}

  text(text: string): void {
    if (this.#heading !== null) {
      this.#heading.text += text.replace(/\s+/g, ' ');
    } else if (this.#preformatted) {
      this.#current += text.replace(/\r\n?/g, '\n');
    } else {
      const collapsed = text.replace(/[ \t\n\r\f]+/g, ' ');
      // one space between words, whichever element each side of it came from
      const atGap = this.#current === '' || this.#current.endsWith(' ') || this.#current.endsWith('\n');
      this.#current += atGap && collapsed.startsWith(' ') ? collapsed.slice(1) : collapsed;
    }
  }

  lineBreak(): void {
    if (this.#heading !== null) this.#heading.text += ' ';
    else this.#current += '\n';
  }

  paragraphBreak(): void {
    this.endHeading();
    const lines = this.#current.split('\n');
    const paragraph = (
      this.#preformatted ? lines.map((line) => line.trimEnd()) : lines.map((line) => line.trim())
    )
      .join('\n')
      .replace(/^\n+|\n+$/g, '');
    if (paragraph.trim() !== '') this.#paragraphs.push(paragraph);
    this.#current = '';
  }

  setPreformatted(preformatted: boolean): void {
    this.paragraphBreak();
    this.#preformatted = preformatted;
  }

  startHeading(level: number): void {
    this.paragraphBreak();
    this.#flushSection();
    this.#heading = { level, text: '' };
  }

  endHeading(): void {
    if (this.#heading === null) return;
    const text = this.#heading.text.trim();
    if (text !== '') this.blocks.push({ kind: 'heading', text, page: this.page, level: this.#heading.level });
    this.#heading = null;
  }

  finish(): DocumentBlock[] {
    this.paragraphBreak();
    this.#flushSection();
    return this.blocks;
  }

  #flushSection(): void {
    if (this.#paragraphs.length > 0) {
      this.blocks.push({ kind: 'text', text: this.#paragraphs.join('\n\n'), page: this.page });
    }
    this.#paragraphs = [];
  }
}

/** Index of the `>` closing a tag opened before `from`, quotes respected; -1 when the tag never closes. */
function tagEnd(html: string, from: number): number {
  let quote = 0;
  for (let index = from; index < html.length; index++) {
    const code = html.charCodeAt(index);
    if (quote !== 0) {
      if (code === quote) quote = 0;
    } else if (code === 34 || code === 39) {
      // a quote only opens an attribute value right after `=` (possibly spaced)
      let before = index - 1;
      while (before >= from && /\s/.test(html[before] as string)) before--;
      if (html.charCodeAt(before) === 61) quote = code;
    } else if (code === 62) {
      return index;
    }
  }
  return -1;
}

function isAsciiLetter(code: number): boolean {
  return (code >= 97 && code <= 122) || (code >= 65 && code <= 90);
}

/** Position just after the end tag `</name…>` at or after `from`, or the end of the text. */
function afterEndTag(html: string, name: string, from: number): { contentEnd: number; next: number } {
  const pattern = new RegExp(`</${name.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}(?=[\\s/>])`, 'gi');
  pattern.lastIndex = from;
  const match = pattern.exec(html);
  if (match === null) return { contentEnd: html.length, next: html.length };
  const close = html.indexOf('>', match.index);
  return { contentEnd: match.index, next: close < 0 ? html.length : close + 1 };
}

/** Title and blocks of an HTML/XHTML document; `page` is given to every block. */
export function htmlContent(html: string, page: number | null): HtmlContent {
  const builder = new BlockBuilder(page);
  let title: string | null = null;
  let inHead = false;
  let preDepth = 0;
  const length = html.length;
  let position = 0;
  while (position < length) {
    const lt = html.indexOf('<', position);
    const textEnd = lt < 0 ? length : lt;
    if (textEnd > position && !inHead) builder.text(decodeHtmlEntities(html.slice(position, textEnd)));
    if (lt < 0) break;
    if (html.startsWith('<!--', lt)) {
      const end = html.indexOf('-->', lt + 4);
      position = end < 0 ? length : end + 3;
      continue;
    }
    if (html.startsWith('<![CDATA[', lt)) {
      const end = html.indexOf(']]>', lt + 9);
      if (!inHead) builder.text(html.slice(lt + 9, end < 0 ? length : end));
      position = end < 0 ? length : end + 3;
      continue;
    }
    const next = html.charCodeAt(lt + 1);
    const isEndTag = next === 47; /* / */
    const nameStart = isEndTag ? lt + 2 : lt + 1;
    if (
      next === 33 /* ! */ ||
      next === 63 /* ? */ ||
      (isEndTag && !isAsciiLetter(html.charCodeAt(nameStart)))
    ) {
      // doctype, processing instruction or bogus comment
      const end = html.indexOf('>', lt);
      position = end < 0 ? length : end + 1;
      continue;
    }
    if (!isAsciiLetter(html.charCodeAt(nameStart))) {
      if (!inHead) builder.text('<');
      position = lt + 1;
      continue;
    }
    const end = tagEnd(html, nameStart);
    if (end < 0) break;
    let nameEnd = nameStart;
    while (nameEnd < end && !/[\s/>]/.test(html[nameEnd] as string)) nameEnd++;
    const qualified = html.slice(nameStart, nameEnd).toLowerCase();
    const name = qualified.slice(qualified.indexOf(':') + 1);
    const selfClosing = !isEndTag && html.charCodeAt(end - 1) === 47;
    position = end + 1;
    const heading = HEADING.exec(name);

    if (isEndTag) {
      if (name === 'head') inHead = false;
      else if (inHead) continue;
      else if (heading !== null) builder.endHeading();
      else if (name === 'pre') {
        preDepth = Math.max(0, preDepth - 1);
        builder.setPreformatted(preDepth > 0);
      } else if (name === 'br') builder.lineBreak();
      else if (BLOCK_ELEMENTS.has(name)) builder.paragraphBreak();
      else if (CELL_ELEMENTS.has(name)) builder.text(' ');
      continue;
    }

    // any element that cannot be in <head> starts the body, as in browsers (a missing </head>)
    if (inHead && !HEAD_ELEMENTS.has(name)) inHead = false;
    if (name === 'head') {
      inHead = !selfClosing;
    } else if (name === 'body') {
      inHead = false;
      builder.paragraphBreak();
    } else if (name === 'title') {
      if (selfClosing) continue;
      const { contentEnd, next: after } = afterEndTag(html, 'title', position);
      title ??= decodeHtmlEntities(html.slice(position, contentEnd)).replace(/\s+/g, ' ').trim() || null;
      position = after;
    } else if (SKIPPED_ELEMENTS.has(name)) {
      if (!selfClosing) position = afterEndTag(html, qualified, position).next;
    } else if (inHead && HEAD_ELEMENTS.has(name)) {
      // meta, link, base… carry no text
    } else if (heading !== null) {
      builder.startHeading(Number(heading[1]));
      if (selfClosing) builder.endHeading();
    } else if (name === 'br') {
      builder.lineBreak();
    } else if (name === 'pre') {
      preDepth++;
      builder.setPreformatted(true);
    } else if (BLOCK_ELEMENTS.has(name)) {
      builder.paragraphBreak();
    } else if (CELL_ELEMENTS.has(name)) {
      builder.text(' ');
    }
  }
  const blocks = builder.finish();
  // without a <title>, the first level-1 heading names the document
  title ??= blocks.find((block) => block.kind === 'heading' && block.level === 1)?.text ?? null;
  return { title, blocks };
}

/** Charset named by a `<meta>` in the first bytes, when the decoder knows it. */
function declaredCharset(bytes: Uint8Array): string | null {
  const start = Buffer.from(bytes.subarray(0, 2048)).toString('latin1');
  const match = /<meta[^>]+charset\s*=\s*["']?\s*([\w.:-]+)/i.exec(start);
  if (match === null) return null;
  try {
    return new TextDecoder(match[1]).encoding;
  } catch {
    return null;
  }
}

/** An HTML file: a BOM decides the encoding, then a `<meta charset>`, else UTF-8. */
export function extractHtml(bytes: Uint8Array): ExtractedDocument {
  const hasBom =
    (bytes[0] === 0xef && bytes[1] === 0xbb && bytes[2] === 0xbf) ||
    (bytes[0] === 0xff && bytes[1] === 0xfe) ||
    (bytes[0] === 0xfe && bytes[1] === 0xff);
  const charset = hasBom ? null : declaredCharset(bytes);
  const html =
    charset === null || charset === 'utf-8' ? decodeText(bytes) : new TextDecoder(charset).decode(bytes);
  const { title, blocks } = htmlContent(html, null);
  return { title, pageCount: null, blocks, images: [] };
}
