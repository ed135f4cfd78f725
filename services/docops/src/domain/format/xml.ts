// WordprocessingML property access for the format engine: direct paragraph/run properties only (style
// inheritance is not resolved; an absent direct value is "unknown").
import type { Element, Node } from '../docx/dom.js';

export const W_NS = 'http://schemas.openxmlformats.org/wordprocessingml/2006/main';

const ELEMENT_NODE = 1;

function isElement(node: Node | null): node is Element {
  return node !== null && node.nodeType === ELEMENT_NODE;
}

function isW(node: Element, localName: string): boolean {
  return node.namespaceURI === W_NS && node.localName === localName;
}

/** The first direct `w:<localName>` child. */
export function wChild(parent: Element, localName: string): Element | null {
  for (let node = parent.firstChild; node !== null; node = node.nextSibling) {
    if (isElement(node) && isW(node, localName)) return node;
  }
  return null;
}

/** A `w:` attribute value (namespaced, with a fallback for unqualified attributes). */
export function wAttr(element: Element, localName: string): string | null {
  const namespaced = element.getAttributeNS(W_NS, localName);
  if (namespaced !== null && namespaced !== '') return namespaced;
  const plain = element.getAttribute(localName);
  return plain !== null && plain !== '' ? plain : null;
}

/** A twips/half-points attribute as an integer; null when absent or not a number. */
export function wIntAttr(element: Element, localName: string): number | null {
  const raw = wAttr(element, localName);
  if (raw === null) return null;
  const value = Number(raw.trim());
  return Number.isFinite(value) ? Math.round(value) : null;
}

export function paragraphPr(paragraph: Element): Element | null {
  return wChild(paragraph, 'pPr');
}

export function runPr(run: Element): Element | null {
  return wChild(run, 'rPr');
}

/** Direct first-line indent in twips: `w:ind/@w:firstLine`, or minus `@w:hanging`; null when none. */
export function directFirstLineIndent(paragraph: Element): number | null {
  const ind = wChildOf(paragraphPr(paragraph), 'ind');
  if (ind === null) return null;
  const firstLine = wIntAttr(ind, 'firstLine');
  if (firstLine !== null) return firstLine;
  const hanging = wIntAttr(ind, 'hanging');
  return hanging !== null ? -hanging : null;
}

export type LineRule = 'exact' | 'atLeast' | 'auto';

/** Direct `w:spacing` line value and rule (`auto` when the rule is absent); null without `@w:line`. */
export function directLineSpacing(paragraph: Element): { line: number; rule: LineRule } | null {
  const spacing = wChildOf(paragraphPr(paragraph), 'spacing');
  if (spacing === null) return null;
  const line = wIntAttr(spacing, 'line');
  if (line === null) return null;
  const rule = wAttr(spacing, 'lineRule');
  return { line, rule: rule === 'exact' || rule === 'atLeast' ? rule : 'auto' };
}

/** Direct exact/atLeast line spacing (the only kind the engine checks, §3.5). */
export function fixedLineSpacing(paragraph: Element): { line: number; rule: 'exact' | 'atLeast' } | null {
  const spacing = directLineSpacing(paragraph);
  if (spacing === null || spacing.rule === 'auto') return null;
  return { line: spacing.line, rule: spacing.rule };
}

export function hasDirectNumPr(paragraph: Element): boolean {
  return wChildOf(paragraphPr(paragraph), 'numPr') !== null;
}

export function paragraphStyleId(paragraph: Element): string | null {
  const style = wChildOf(paragraphPr(paragraph), 'pStyle');
  return style === null ? null : wAttr(style, 'val');
}

function wChildOf(parent: Element | null, localName: string): Element | null {
  return parent === null ? null : wChild(parent, localName);
}

/** Python's round(): halves go to the even neighbour (w:sz 21 → 10.5 pt → 10), as the original did. */
export function roundHalfEven(value: number): number {
  const floor = Math.floor(value);
  const diff = value - floor;
  if (diff > 0.5) return floor + 1;
  if (diff < 0.5) return floor;
  return floor % 2 === 0 ? floor : floor + 1;
}

export interface RunStyle {
  latin_font: string | null;
  east_asia_font: string | null;
  size_pt: number | null;
}

/** Direct run fonts (`w:rFonts/@w:ascii`, `@w:eastAsia`) and size (`w:sz/2`, rounded). */
export function directRunStyle(run: Element): RunStyle {
  const rPr = runPr(run);
  const fonts = wChildOf(rPr, 'rFonts');
  const size = wChildOf(rPr, 'sz');
  const halfPoints = size === null ? null : wIntAttr(size, 'val');
  return {
    latin_font: fonts === null ? null : wAttr(fonts, 'ascii'),
    east_asia_font: fonts === null ? null : wAttr(fonts, 'eastAsia'),
    size_pt: halfPoints === null ? null : roundHalfEven(halfPoints / 2),
  };
}

// Schema order of w:pPr children (CT_PPrBase + CT_PPr); new children are inserted at their place so that
// Word accepts the document.
const PPR_ORDER = [
  'pStyle',
  'keepNext',
  'keepLines',
  'pageBreakBefore',
  'framePr',
  'widowControl',
  'numPr',
  'suppressLineNumbers',
  'pBdr',
  'shd',
  'tabs',
  'suppressAutoHyphens',
  'kinsoku',
  'wordWrap',
  'overflowPunct',
  'topLinePunct',
  'autoSpaceDE',
  'autoSpaceDN',
  'bidi',
  'adjustRightInd',
  'snapToGrid',
  'spacing',
  'ind',
  'contextualSpacing',
  'mirrorIndents',
  'suppressOverlap',
  'jc',
  'textDirection',
  'textAlignment',
  'textboxTightWrap',
  'outlineLvl',
  'divId',
  'cnfStyle',
  'rPr',
  'sectPr',
  'pPrChange',
];

function prefixOf(element: Element): string {
  return element.prefix ?? element.lookupPrefix(W_NS) ?? 'w';
}

function createW(owner: Element, localName: string): Element {
  const doc = owner.ownerDocument;
  if (doc === null) throw new Error('element without a document');
  return doc.createElementNS(W_NS, `${prefixOf(owner)}:${localName}`);
}

/** Sets a `w:` attribute with the element's own prefix. */
export function setWAttr(element: Element, localName: string, value: string): void {
  if (element.hasAttributeNS(W_NS, localName) || !element.hasAttribute(localName)) {
    element.setAttributeNS(W_NS, `${prefixOf(element)}:${localName}`, value);
  } else {
    element.setAttribute(localName, value);
  }
}

export function removeWAttr(element: Element, localName: string): void {
  if (element.hasAttributeNS(W_NS, localName)) element.removeAttributeNS(W_NS, localName);
  if (element.hasAttribute(localName)) element.removeAttribute(localName);
}

/** The paragraph's `w:pPr`, created as its first child when absent. */
function ensureParagraphPr(paragraph: Element): Element {
  const existing = paragraphPr(paragraph);
  if (existing !== null) return existing;
  const pPr = createW(paragraph, 'pPr');
  paragraph.insertBefore(pPr, paragraph.firstChild);
  return pPr;
}

/** The `w:pPr` child `localName`, created at its schema position when absent. */
function ensurePPrChild(pPr: Element, localName: string): Element {
  const existing = wChild(pPr, localName);
  if (existing !== null) return existing;
  const child = createW(pPr, localName);
  const rank = PPR_ORDER.indexOf(localName);
  let before: Node | null = null;
  for (let node = pPr.firstChild; node !== null; node = node.nextSibling) {
    if (!isElement(node)) continue;
    const nodeRank = node.namespaceURI === W_NS ? PPR_ORDER.indexOf(node.localName ?? '') : -1;
    if (nodeRank > rank) {
      before = node;
      break;
    }
  }
  pPr.insertBefore(child, before);
  return child;
}

/** Sets the direct first-line indent (removing hanging/character-unit values that would override it). */
export function setFirstLineIndent(paragraph: Element, twips: number): void {
  const ind = ensurePPrChild(ensureParagraphPr(paragraph), 'ind');
  removeWAttr(ind, 'hanging');
  removeWAttr(ind, 'hangingChars');
  removeWAttr(ind, 'firstLineChars');
  setWAttr(ind, 'firstLine', String(twips));
}

/** Sets the direct line spacing value and rule, keeping before/after spacing. */
export function setLineSpacing(paragraph: Element, twips: number, rule: 'exact' | 'atLeast'): void {
  const spacing = ensurePPrChild(ensureParagraphPr(paragraph), 'spacing');
  setWAttr(spacing, 'line', String(twips));
  setWAttr(spacing, 'lineRule', rule);
}

/**
 * Paragraph style ids whose definition (or a style it is based on) carries `w:pPr/w:numPr`, from a
 * `word/styles.xml` document.
 */
export function numberedParagraphStyles(styles: { documentElement: Element | null }): Set<string> {
  const root = styles.documentElement;
  const result = new Set<string>();
  if (root === null) return result;
  const basedOn = new Map<string, string | null>();
  const direct = new Set<string>();
  for (let node = root.firstChild; node !== null; node = node.nextSibling) {
    if (!isElement(node) || !isW(node, 'style') || wAttr(node, 'type') !== 'paragraph') continue;
    const id = wAttr(node, 'styleId');
    if (id === null) continue;
    const parent = wChild(node, 'basedOn');
    basedOn.set(id, parent === null ? null : wAttr(parent, 'val'));
    if (wChildOf(wChild(node, 'pPr'), 'numPr') !== null) direct.add(id);
  }
  for (const id of basedOn.keys()) {
    const seen = new Set<string>();
    for (
      let current: string | null | undefined = id;
      current && !seen.has(current);
      current = basedOn.get(current)
    ) {
      seen.add(current);
      if (direct.has(current)) {
        result.add(id);
        break;
      }
    }
  }
  return result;
}
