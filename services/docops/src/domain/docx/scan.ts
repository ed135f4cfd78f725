// The placeholder scanner of §3.1: which paragraphs are scanned and in which order, their paths, the runs
// that count for placeholder text, the three placeholder scans and the split-run merge rules.
//
// The DOM is walked with firstChild/nextSibling only (childNodes is a snapshot array).

import type {
  ConsideredRun,
  PlaceholderToken,
  Region,
  ScannedParagraph,
  ScanResult,
  UnsupportedToken,
} from '../types.js';
import { W_NS } from './build.js';
import { type Element, type Node, TEXT_NODE, type Text, XMLNS_NS } from './dom.js';
import type { DocxPackage } from './package.js';

export { W_NS } from './build.js';
export const W = W_NS;
export const R_NS = 'http://schemas.openxmlformats.org/officeDocument/2006/relationships';

const HEADER_REL = /\/header$/;
const FOOTER_REL = /\/footer$/;

/** Elements whose `w:r` children belong to the paragraph (besides the paragraph itself and w:sdtContent). */
const RUN_CONTAINERS = new Set(['hyperlink', 'ins', 'smartTag', 'customXml', 'fldSimple']);
/** Elements allowed between the runs of a mergeable split token (rule b). */
const MERGE_GAP_ELEMENTS = new Set([
  'proofErr',
  'bookmarkStart',
  'bookmarkEnd',
  'permStart',
  'permEnd',
  'commentRangeStart',
  'commentRangeEnd',
]);
/** Children a run of a mergeable split token may hold (rule c). */
const MERGE_RUN_CHILDREN = new Set(['rPr', 't', 'lastRenderedPageBreak']);
/** Run-property children ignored when comparing formatting (rule d). */
const IGNORED_RPR_CHILDREN = new Set(['lang', 'noProof']);

const VALID_TOKEN = /【[A-Z0-9_]+】/g;
const BRACKETED = /【[^】]*】/g;
const FIELD_NAME = /^[A-Z0-9_]+$/;

/** True when `node` is the WordprocessingML element `w:{localName}`. */
export function isW(node: Node | null | undefined, localName: string): node is Element {
  return (
    node !== null &&
    node !== undefined &&
    node.nodeType === 1 &&
    (node as Element).localName === localName &&
    (node as Element).namespaceURI === W
  );
}

/** The first child element `w:{localName}` of `parent`, or null. */
export function firstChildW(parent: Element | null | undefined, localName: string): Element | null {
  if (parent === null || parent === undefined) return null;
  for (let node = parent.firstChild; node !== null; node = node.nextSibling) {
    if (isW(node, localName)) return node;
  }
  return null;
}

/** All child elements `w:{localName}` of `parent`, in order. */
export function childrenW(parent: Element | null | undefined, localName: string): Element[] {
  const result: Element[] = [];
  if (parent === null || parent === undefined) return result;
  for (let node = parent.firstChild; node !== null; node = node.nextSibling) {
    if (isW(node, localName)) result.push(node);
  }
  return result;
}

/** The run's `w:rPr`, or null. */
export function runProperties(run: Element): Element | null {
  return firstChildW(run, 'rPr');
}

/** The paragraph's `w:pPr`, or null. */
export function paragraphProperties(p: Element): Element | null {
  return firstChildW(p, 'pPr');
}

/** The integer value of `w:val` on the child `w:{localName}` of `parent`, or null. */
function childVal(parent: Element | null, localName: string): number | null {
  const child = firstChildW(parent, localName);
  if (child === null) return null;
  const value = Number.parseInt(child.getAttributeNS(W, 'val') ?? '', 10);
  return Number.isFinite(value) ? value : null;
}

/** Text of a `w:t` element (its text and CDATA children). */
function textOf(t: Element): string {
  const first = t.firstChild;
  if (first === null) return '';
  if (first.nextSibling === null && first.nodeType === TEXT_NODE) return (first as Text).data;
  return t.textContent ?? '';
}

/**
 * The run's text as §3.1 defines it, read from the DOM as it is now: `w:t` text, `w:tab`/`w:ptab` → `\t`,
 * `w:br`/`w:cr` → `\n`, `w:noBreakHyphen` → `-`.
 */
export function currentRunText(run: Element): string {
  let text = '';
  for (let node = run.firstChild; node !== null; node = node.nextSibling) {
    if (node.nodeType !== 1 || (node as Element).namespaceURI !== W) continue;
    switch ((node as Element).localName) {
      case 't':
        text += textOf(node as Element);
        break;
      case 'tab':
      case 'ptab':
        text += '\t';
        break;
      case 'br':
      case 'cr':
        text += '\n';
        break;
      case 'noBreakHyphen':
        text += '-';
        break;
    }
  }
  return text;
}

/** The considered runs of a paragraph (§3.1), in document order. */
export function consideredRuns(paragraph: Element): Element[] {
  const runs: Element[] = [];
  collectRuns(paragraph, runs);
  return runs;
}

function collectRuns(parent: Element, out: Element[]): void {
  for (let node = parent.firstChild; node !== null; node = node.nextSibling) {
    if (node.nodeType !== 1) continue;
    const el = node as Element;
    if (el.namespaceURI !== W) continue;
    const name = el.localName;
    if (name === 'r') out.push(el);
    else if (RUN_CONTAINERS.has(name)) collectRuns(el, out);
    else if (name === 'sdt') {
      for (const content of childrenW(el, 'sdtContent')) collectRuns(content, out);
    }
    // w:del, w:moveFrom and anything else: not part of the paragraph's text
  }
}

/** Canonical form of run properties for rule (d): no rsid attributes, no w:lang/w:noProof children. */
function canonicalRunProperties(run: Element): string {
  const rPr = runProperties(run);
  if (rPr === null) return '';
  let result = '';
  for (let node = rPr.firstChild; node !== null; node = node.nextSibling) {
    if (node.nodeType !== 1) continue;
    const el = node as Element;
    if (el.namespaceURI === W && IGNORED_RPR_CHILDREN.has(el.localName)) continue;
    result += canonicalElement(el);
  }
  return result;
}

function canonicalElement(el: Element): string {
  const attributes: string[] = [];
  for (const attr of el.attrs) {
    if (attr.namespaceURI === XMLNS_NS) continue;
    if (attr.namespaceURI === W && attr.localName.startsWith('rsid')) continue;
    attributes.push(JSON.stringify([attr.namespaceURI ?? '', attr.localName, attr.value]));
  }
  attributes.sort();
  let children = '';
  for (let node = el.firstChild; node !== null; node = node.nextSibling) {
    if (node.nodeType === 1) children += canonicalElement(node as Element);
  }
  return `<${JSON.stringify([el.namespaceURI ?? '', el.localName])}${attributes.join('')}>${children}</>`;
}

/** Rule (c): the run holds only w:rPr, w:t and w:lastRenderedPageBreak. */
function hasOnlyMergeableChildren(run: Element): boolean {
  for (let node = run.firstChild; node !== null; node = node.nextSibling) {
    if (node.nodeType === 1) {
      const el = node as Element;
      if (el.namespaceURI !== W || !MERGE_RUN_CHILDREN.has(el.localName)) return false;
    } else if (node.nodeType === 3 && (node.textContent ?? '').trim() !== '') {
      return false;
    }
  }
  return true;
}

/** Rule (b): only proofing, bookmark, permission and comment-range markers lie between two sibling runs. */
function onlyMarkersBetween(left: Element, right: Element): boolean {
  for (let node = left.nextSibling; node !== right; node = node.nextSibling) {
    if (node === null) return false;
    if (node.nodeType === 1) {
      const el = node as Element;
      if (el.namespaceURI !== W || !MERGE_GAP_ELEMENTS.has(el.localName)) return false;
    } else if (node.nodeType === 3 && (node.textContent ?? '').trim() !== '') {
      return false;
    }
  }
  return true;
}

class ParagraphScanner {
  readonly paragraphs: ScannedParagraph[] = [];
  readonly tokens: PlaceholderToken[] = [];
  readonly unsupported: UnsupportedToken[] = [];
  private readonly canonicalCache = new Map<Element, string>();

  scanParagraph(
    element: Element,
    path: string,
    region: Region,
    part: string,
    topTableIndex: number | null,
  ): void {
    const runElements = consideredRuns(element);
    const runs: ConsideredRun[] = [];
    const starts: number[] = [];
    let text = '';
    for (let k = 0; k < runElements.length; k += 1) {
      const run = runElements[k] as Element;
      const runText = currentRunText(run);
      runs.push({ id: `${path}:r${k}`, index: k, element: run, text: runText });
      starts.push(text.length);
      text += runText;
    }
    this.paragraphs.push({ path, region, part, element, runs, text, topTableIndex });
    if (text.includes('【') || text.includes('】')) this.scanPlaceholders(path, text, runs, starts);
  }

  private scanPlaceholders(path: string, text: string, runs: ConsideredRun[], starts: number[]): void {
    const found: UnsupportedToken[] = [];
    const runAt = (offset: number): number => {
      // the last run starting at or before offset is the non-empty run holding that character
      let lo = 0;
      let hi = starts.length - 1;
      while (lo < hi) {
        const mid = (lo + hi + 1) >> 1;
        if ((starts[mid] as number) <= offset) lo = mid;
        else hi = mid - 1;
      }
      return lo;
    };
    const runId = (offset: number): string => (runs[runAt(offset)] as ConsideredRun).id;

    // 1. valid tokens (and the crossing ones that cannot be merged)
    for (const match of text.matchAll(VALID_TOKEN)) {
      const start = match.index;
      const end = start + match[0].length;
      const a = runAt(start);
      const b = runAt(end - 1);
      const first = runs[a] as ConsideredRun;
      const runStart = starts[a] as number;
      const token: PlaceholderToken = {
        fieldName: match[0].slice(1, -1),
        paragraphPath: path,
        runId: first.id,
        start: start - runStart,
        end: end - runStart,
        paragraphStart: start,
        paragraphEnd: end,
        mergedRuns: null,
      };
      if (a === b) {
        this.tokens.push(token);
      } else if (this.mergeable(runs, a, b)) {
        token.mergedRuns = runs.slice(a, b + 1).map((run) => run.id);
        this.tokens.push(token);
      } else {
        found.push({ kind: 'cross_run', text: match[0], runId: first.id, paragraphPath: path, start, end });
      }
    }
    // 2. bracketed text that is not a valid name
    for (const match of text.matchAll(BRACKETED)) {
      if (FIELD_NAME.test(match[0].slice(1, -1))) continue;
      const start = match.index;
      found.push({
        kind: 'invalid_format',
        text: match[0],
        runId: runId(start),
        paragraphPath: path,
        start,
        end: start + match[0].length,
      });
    }
    // 3. bracket balance
    const open: number[] = [];
    for (let i = 0; i < text.length; i += 1) {
      const ch = text.charCodeAt(i);
      if (ch === 0x3010) open.push(i);
      else if (ch === 0x3011) {
        if (open.length > 0) open.pop();
        else
          found.push({
            kind: 'stray_close',
            text: '】',
            runId: runId(i),
            paragraphPath: path,
            start: i,
            end: i + 1,
          });
      }
    }
    for (const start of open) {
      found.push({
        kind: 'unclosed_bracket',
        text: text.slice(start),
        runId: runId(start),
        paragraphPath: path,
        start,
        end: text.length,
      });
    }
    // document order; Array.prototype.sort is stable, so equal starts keep the scan order
    found.sort((x, y) => x.start - y.start);
    this.unsupported.push(...found);
  }

  /** Rules (a)-(d) of §3.1 for runs a..b. */
  private mergeable(runs: ConsideredRun[], a: number, b: number): boolean {
    const first = (runs[a] as ConsideredRun).element;
    const parent = first.parentNode;
    const formatting = this.canonical(first);
    for (let k = a; k <= b; k += 1) {
      const run = (runs[k] as ConsideredRun).element;
      if (run.parentNode !== parent || !hasOnlyMergeableChildren(run)) return false;
      if (k > a) {
        if (!onlyMarkersBetween((runs[k - 1] as ConsideredRun).element, run)) return false;
        if (this.canonical(run) !== formatting) return false;
      }
    }
    return true;
  }

  private canonical(run: Element): string {
    let value = this.canonicalCache.get(run);
    if (value === undefined) {
      value = canonicalRunProperties(run);
      this.canonicalCache.set(run, value);
    }
    return value;
  }

  /** Paragraphs of a body/header/footer container: its paragraphs first, then its tables. */
  scanContainer(container: Element, prefix: string, region: Region, part: string, tables: Element[]): void {
    let index = 0;
    for (let node = container.firstChild; node !== null; node = node.nextSibling) {
      if (isW(node, 'p')) {
        this.scanParagraph(node, `${prefix}p${index}`, region, part, null);
        index += 1;
      } else if (isW(node, 'tbl')) {
        tables.push(node);
      }
    }
    tables.forEach((table, t) => {
      this.scanTable(
        table,
        `${prefix}t${t}`,
        region === 'body' ? 'table' : region,
        part,
        region === 'body' ? t : null,
      );
    });
  }

  /** Rows → cells (once each, at their first grid column) → cell paragraphs, then nested tables. */
  scanTable(
    table: Element,
    prefix: string,
    region: Region,
    part: string,
    topTableIndex: number | null,
  ): void {
    let r = 0;
    for (let row = table.firstChild; row !== null; row = row.nextSibling) {
      if (!isW(row, 'tr')) continue;
      let column = Math.max(0, childVal(firstChildW(row, 'trPr'), 'gridBefore') ?? 0);
      for (let cell = row.firstChild; cell !== null; cell = cell.nextSibling) {
        if (!isW(cell, 'tc')) continue;
        const cellPath = `${prefix}.r${r}.c${column}`;
        const nested: Element[] = [];
        let p = 0;
        for (let node = cell.firstChild; node !== null; node = node.nextSibling) {
          if (isW(node, 'p')) {
            this.scanParagraph(node, `${cellPath}.p${p}`, region, part, topTableIndex);
            p += 1;
          } else if (isW(node, 'tbl')) {
            nested.push(node);
          }
        }
        nested.forEach((inner, t) => {
          this.scanTable(inner, `${cellPath}.t${t}`, region, part, topTableIndex);
        });
        column += Math.max(1, childVal(firstChildW(cell, 'tcPr'), 'gridSpan') ?? 1);
      }
      r += 1;
    }
  }
}

/** Compares part names with embedded numbers numerically (`header2` before `header10`). */
function comparePartNames(a: string, b: string): number {
  const split = (s: string): (string | number)[] =>
    s.split(/(\d+)/).map((x, i) => (i % 2 === 1 ? Number(x) : x));
  const x = split(a);
  const y = split(b);
  for (let i = 0; i < Math.min(x.length, y.length); i += 1) {
    const p = x[i] as string | number;
    const q = y[i] as string | number;
    if (p === q) continue;
    if (typeof p === 'number' && typeof q === 'number') return p - q;
    return String(p) < String(q) ? -1 : 1;
  }
  return x.length - y.length;
}

/** Header and footer parts referenced by any w:sectPr of the main document, each once, by part name. */
export function headerFooterParts(
  pkg: DocxPackage,
): { partName: string; kind: 'header' | 'footer'; prefix: string }[] {
  const main = pkg.mainPartName;
  const doc = pkg.xml(main);
  const rels = new Map(pkg.relationships(main).map((rel) => [rel.id, rel]));
  const parts = new Map<string, 'header' | 'footer'>();
  for (const sectPr of doc.getElementsByTagNameNS(W, 'sectPr')) {
    for (let node = sectPr.firstChild; node !== null; node = node.nextSibling) {
      const kind = isW(node, 'headerReference') ? 'header' : isW(node, 'footerReference') ? 'footer' : null;
      if (kind === null) continue;
      const rel = rels.get((node as Element).getAttributeNS(R_NS, 'id') ?? '');
      if (rel === undefined || rel.partName === null || !pkg.hasPart(rel.partName)) continue;
      if (!(kind === 'header' ? HEADER_REL : FOOTER_REL).test(rel.type)) continue;
      if (!parts.has(rel.partName)) parts.set(rel.partName, kind);
    }
  }
  const used = new Set<string>();
  return [...parts]
    .sort(([a], [b]) => comparePartNames(a, b))
    .map(([partName, kind]) => {
      // word/header2.xml → header2
      const digits = /(\d+)(?!.*\d)/.exec(partName.slice(partName.lastIndexOf('/') + 1))?.[1] ?? '';
      let prefix = `${kind}${digits}`;
      for (let n = 2; used.has(prefix); n += 1) prefix = `${kind}${digits}_${n}`;
      used.add(prefix);
      return { partName, kind, prefix };
    });
}

/**
 * Scans the document (§3.1): body paragraphs, then top-level tables (rows → cells → paragraphs, nested
 * tables recursively after the cell's paragraphs), then header and footer parts. Throws DocopsInputError
 * (400 INVALID_TEMPLATE) when a scanned part is not acceptable XML.
 */
export function scanDocument(pkg: DocxPackage): ScanResult {
  const scanner = new ParagraphScanner();
  const main = pkg.mainPartName;
  const body = firstChildW(pkg.xml(main).documentElement, 'body');
  const topLevelTables: Element[] = [];
  if (body !== null) scanner.scanContainer(body, '', 'body', main, topLevelTables);
  for (const { partName, kind, prefix } of headerFooterParts(pkg)) {
    const root = pkg.xml(partName).documentElement;
    if (root === null) continue;
    scanner.scanContainer(root, `${prefix}.`, kind, partName, []);
  }
  return {
    paragraphs: scanner.paragraphs,
    topLevelTables,
    tokens: scanner.tokens,
    unsupported: scanner.unsupported,
  };
}
