// A small, namespace-aware XML DOM for package parts: the subset of the W3C DOM the engine uses, with the
// standard names, and its parser and serialiser.
//
// Why not @xmldom/xmldom: on a 300-page document (≈ 90,000 elements) its parser spent ≈ 2 s of CPU and its
// nodes held ≈ 1 KB each (≈ 400 MB RSS for the whole render), missing P3; these nodes are plain objects
// linked by pointers, several times faster to build and ≈ 3x smaller.
//
// Differences from the full DOM, on purpose: `childNodes`, `children` and `getElementsByTagName(NS)` return
// snapshot arrays (walk `firstChild`/`nextSibling` in loops), there are no live collections, events,
// mutation observers or DOCTYPE nodes.
export const XML_NS = 'http://www.w3.org/XML/1998/namespace';
export const XMLNS_NS = 'http://www.w3.org/2000/xmlns/';

export const ELEMENT_NODE = 1;
export const TEXT_NODE = 3;
export const CDATA_SECTION_NODE = 4;
export const PROCESSING_INSTRUCTION_NODE = 7;
export const COMMENT_NODE = 8;
export const DOCUMENT_NODE = 9;

function splitQName(qualifiedName: string): [prefix: string | null, localName: string] {
  const colon = qualifiedName.indexOf(':');
  return colon < 0 ? [null, qualifiedName] : [qualifiedName.slice(0, colon), qualifiedName.slice(colon + 1)];
}

/** A node of the tree. Children are a doubly linked list. */
export abstract class Node {
  abstract readonly nodeType: number;
  abstract readonly nodeName: string;
  parentNode: Node | null = null;
  firstChild: Node | null = null;
  lastChild: Node | null = null;
  previousSibling: Node | null = null;
  nextSibling: Node | null = null;

  constructor(public ownerDocument: Document | null) {}

  /** The value of a text-like node; null for elements and documents. */
  get nodeValue(): string | null {
    return null;
  }

  /** A snapshot array of the children (walk `firstChild`/`nextSibling` in loops instead). */
  get childNodes(): Node[] {
    const result: Node[] = [];
    for (let node = this.firstChild; node !== null; node = node.nextSibling) result.push(node);
    return result;
  }

  hasChildNodes(): boolean {
    return this.firstChild !== null;
  }

  /** Concatenated text of the text and CDATA descendants (null for documents). */
  get textContent(): string | null {
    let text = '';
    const end = this.nextInTreeAfterSubtree();
    for (let node = this.firstChild; node !== null && node !== end; node = node.nextInTree()) {
      if (node instanceof Text) text += node.data;
    }
    return text;
  }

  /** Replaces all children with one text node (none for an empty string). */
  set textContent(value: string | null) {
    while (this.firstChild !== null) this.removeChild(this.firstChild);
    if (value !== null && value !== '') this.appendChild(new Text(this.ownerDocument, value));
  }

  appendChild<T extends Node>(node: T): T {
    return this.insertBefore(node, null);
  }

  /** Inserts `node` before `reference` (at the end when null), moving it from its current parent. */
  insertBefore<T extends Node>(node: T, reference: Node | null): T {
    if (reference !== null && reference.parentNode !== this) throw new Error('reference node is not a child');
    if ((node as Node) === this) throw new Error('cannot insert a node into itself');
    // only a node with children can be an ancestor of this one
    if (node.firstChild !== null) {
      for (let ancestor = this.parentNode; ancestor !== null; ancestor = ancestor.parentNode) {
        if (ancestor === node) throw new Error('cannot insert a node into its own descendant');
      }
    }
    if (node.parentNode !== null) node.parentNode.removeChild(node);
    const previous = reference === null ? this.lastChild : reference.previousSibling;
    node.parentNode = this;
    node.previousSibling = previous;
    node.nextSibling = reference;
    if (previous === null) this.firstChild = node;
    else previous.nextSibling = node;
    if (reference === null) this.lastChild = node;
    else reference.previousSibling = node;
    return node;
  }

  /** @internal Appends a node that has no parent yet (the parser's fast path: no checks). */
  appendParsed(node: Node): void {
    const last = this.lastChild;
    node.parentNode = this;
    node.previousSibling = last;
    if (last === null) this.firstChild = node;
    else last.nextSibling = node;
    this.lastChild = node;
  }

  removeChild<T extends Node>(node: T): T {
    if (node.parentNode !== this) throw new Error('node is not a child');
    if (node.previousSibling === null) this.firstChild = node.nextSibling;
    else node.previousSibling.nextSibling = node.nextSibling;
    if (node.nextSibling === null) this.lastChild = node.previousSibling;
    else node.nextSibling.previousSibling = node.previousSibling;
    node.parentNode = null;
    node.previousSibling = null;
    node.nextSibling = null;
    return node;
  }

  replaceChild<T extends Node>(node: Node, old: T): T {
    if (node !== old) {
      this.insertBefore(node, old);
      this.removeChild(old);
    }
    return old;
  }

  /** Removes the node from its parent. */
  remove(): void {
    this.parentNode?.removeChild(this);
  }

  /** The namespace bound to `prefix` (null: the default namespace) here, from xmlns declarations. */
  lookupNamespaceURI(prefix: string | null): string | null {
    if (prefix === 'xml') return XML_NS;
    if (prefix === 'xmlns') return XMLNS_NS;
    for (let node: Node | null = this; node !== null; node = node.parentNode) {
      if (!(node instanceof Element)) continue;
      const value =
        prefix === null || prefix === ''
          ? node.getAttributeNS(XMLNS_NS, 'xmlns')
          : node.getAttributeNS(XMLNS_NS, prefix);
      if (value !== null) return value === '' ? null : value;
    }
    return null;
  }

  /** A prefix bound to `namespace` here, or null. */
  lookupPrefix(namespace: string | null): string | null {
    if (namespace === null || namespace === '') return null;
    for (let node: Node | null = this; node !== null; node = node.parentNode) {
      if (!(node instanceof Element)) continue;
      if (node.namespaceURI === namespace && node.prefix !== null) return node.prefix;
      for (const attr of node.attrs) {
        if (attr.namespaceURI === XMLNS_NS && attr.prefix === 'xmlns' && attr.value === namespace) {
          if (this.lookupNamespaceURI(attr.localName) === namespace) return attr.localName;
        }
      }
    }
    return null;
  }

  abstract cloneNode(deep?: boolean): Node;

  protected cloneChildrenInto(target: Node): void {
    for (let node = this.firstChild; node !== null; node = node.nextSibling)
      target.appendChild(node.cloneNode(true));
  }

  /** The next node in document order (descending into children). */
  nextInTree(): Node | null {
    return this.firstChild ?? this.nextInTreeAfterSubtree();
  }

  /** The next node in document order after this node's subtree. */
  nextInTreeAfterSubtree(): Node | null {
    for (let node: Node | null = this; node !== null; node = node.parentNode) {
      if (node.nextSibling !== null) return node.nextSibling;
    }
    return null;
  }
}

/** An attribute. `xmlns` declarations are attributes in the XMLNS namespace, as in the DOM. */
export class Attr {
  constructor(
    public namespaceURI: string | null,
    public prefix: string | null,
    public localName: string,
    public value: string,
    public ownerElement: Element | null = null,
  ) {}

  get name(): string {
    return this.prefix === null ? this.localName : `${this.prefix}:${this.localName}`;
  }

  get nodeName(): string {
    return this.name;
  }

  get nodeValue(): string {
    return this.value;
  }
}

/** The attributes of an element, read-only, NamedNodeMap-style. */
export class AttributeList implements Iterable<Attr> {
  constructor(private readonly attrs: readonly Attr[]) {}

  get length(): number {
    return this.attrs.length;
  }

  item(index: number): Attr | null {
    return this.attrs[index] ?? null;
  }

  getNamedItem(qualifiedName: string): Attr | null {
    return this.attrs.find((attr) => attr.name === qualifiedName) ?? null;
  }

  getNamedItemNS(namespace: string | null, localName: string): Attr | null {
    const ns = namespace === '' ? null : namespace;
    return this.attrs.find((attr) => attr.namespaceURI === ns && attr.localName === localName) ?? null;
  }

  [Symbol.iterator](): Iterator<Attr> {
    return this.attrs[Symbol.iterator]();
  }
}

const NO_ATTRIBUTES: Attr[] = [];

export class Element extends Node {
  readonly nodeType = ELEMENT_NODE;
  /** Attribute objects in document order (read through the DOM methods or `attributes`). */
  attrs: Attr[] = NO_ATTRIBUTES;

  constructor(
    ownerDocument: Document | null,
    public namespaceURI: string | null,
    public prefix: string | null,
    public localName: string,
  ) {
    super(ownerDocument);
  }

  get tagName(): string {
    return this.prefix === null ? this.localName : `${this.prefix}:${this.localName}`;
  }

  get nodeName(): string {
    return this.tagName;
  }

  get attributes(): AttributeList {
    return new AttributeList(this.attrs);
  }

  /** Child elements (a snapshot array). */
  get children(): Element[] {
    const result: Element[] = [];
    for (let node = this.firstChild; node !== null; node = node.nextSibling) {
      if (node instanceof Element) result.push(node);
    }
    return result;
  }

  get firstElementChild(): Element | null {
    for (let node = this.firstChild; node !== null; node = node.nextSibling) {
      if (node instanceof Element) return node;
    }
    return null;
  }

  private findAttr(namespace: string | null, localName: string): Attr | undefined {
    const ns = namespace === '' ? null : namespace;
    for (const attr of this.attrs) if (attr.namespaceURI === ns && attr.localName === localName) return attr;
    return undefined;
  }

  private findAttrByName(qualifiedName: string): Attr | undefined {
    for (const attr of this.attrs) if (attr.name === qualifiedName) return attr;
    return undefined;
  }

  /** @internal Appends a parsed attribute without looking for an existing one. */
  addParsedAttr(attr: Attr): void {
    if (this.attrs === NO_ATTRIBUTES) this.attrs = [];
    attr.ownerElement = this;
    this.attrs.push(attr);
  }

  getAttribute(qualifiedName: string): string | null {
    return this.findAttrByName(qualifiedName)?.value ?? null;
  }

  getAttributeNS(namespace: string | null, localName: string): string | null {
    return this.findAttr(namespace, localName)?.value ?? null;
  }

  getAttributeNode(qualifiedName: string): Attr | null {
    return this.findAttrByName(qualifiedName) ?? null;
  }

  getAttributeNodeNS(namespace: string | null, localName: string): Attr | null {
    return this.findAttr(namespace, localName) ?? null;
  }

  getAttributeNames(): string[] {
    return this.attrs.map((attr) => attr.name);
  }

  hasAttribute(qualifiedName: string): boolean {
    return this.findAttrByName(qualifiedName) !== undefined;
  }

  hasAttributeNS(namespace: string | null, localName: string): boolean {
    return this.findAttr(namespace, localName) !== undefined;
  }

  hasAttributes(): boolean {
    return this.attrs.length > 0;
  }

  /** Sets an attribute by qualified name; a new one has no namespace (as in the DOM). */
  setAttribute(qualifiedName: string, value: string): void {
    const existing = this.findAttrByName(qualifiedName);
    if (existing !== undefined) existing.value = String(value);
    else this.addParsedAttr(new Attr(null, null, qualifiedName, String(value)));
  }

  /** Sets a namespaced attribute; an existing one keeps its prefix. */
  setAttributeNS(namespace: string | null, qualifiedName: string, value: string): void {
    const [prefix, localName] = splitQName(qualifiedName);
    const ns = namespace === '' ? null : namespace;
    if (prefix !== null && ns === null) throw new Error('a prefixed attribute needs a namespace');
    const existing = this.findAttr(ns, localName);
    if (existing !== undefined) existing.value = String(value);
    else this.addParsedAttr(new Attr(ns, prefix, localName, String(value)));
  }

  removeAttribute(qualifiedName: string): void {
    const attr = this.findAttrByName(qualifiedName);
    if (attr !== undefined) this.removeAttr(attr);
  }

  removeAttributeNS(namespace: string | null, localName: string): void {
    const attr = this.findAttr(namespace, localName);
    if (attr !== undefined) this.removeAttr(attr);
  }

  private removeAttr(attr: Attr): void {
    this.attrs = this.attrs.filter((candidate) => candidate !== attr);
    attr.ownerElement = null;
  }

  /** Descendant elements with this namespace and local name (`*` matches any), in document order. */
  getElementsByTagNameNS(namespace: string | null, localName: string): Element[] {
    return descendants(
      this,
      (el) =>
        (namespace === '*' || el.namespaceURI === namespace) &&
        (localName === '*' || el.localName === localName),
    );
  }

  /** Descendant elements with this qualified name (`*` matches any), in document order. */
  getElementsByTagName(qualifiedName: string): Element[] {
    return descendants(this, (el) => qualifiedName === '*' || el.tagName === qualifiedName);
  }

  cloneNode(deep = false): Element {
    const copy = new Element(this.ownerDocument, this.namespaceURI, this.prefix, this.localName);
    for (const attr of this.attrs)
      copy.addParsedAttr(new Attr(attr.namespaceURI, attr.prefix, attr.localName, attr.value));
    if (deep) this.cloneChildrenInto(copy);
    return copy;
  }
}

function descendants(root: Node, match: (el: Element) => boolean): Element[] {
  const result: Element[] = [];
  const end = root.nextInTreeAfterSubtree();
  for (let node = root.firstChild; node !== null && node !== end; node = node.nextInTree()) {
    if (node instanceof Element && match(node)) result.push(node);
  }
  return result;
}

export class Text extends Node {
  readonly nodeType: number = TEXT_NODE;
  constructor(
    ownerDocument: Document | null,
    public data: string,
  ) {
    super(ownerDocument);
  }

  get nodeName(): string {
    return '#text';
  }

  override get nodeValue(): string {
    return this.data;
  }

  override get textContent(): string {
    return this.data;
  }

  override set textContent(value: string | null) {
    this.data = value ?? '';
  }

  get length(): number {
    return this.data.length;
  }

  cloneNode(): Text {
    return new Text(this.ownerDocument, this.data);
  }
}

export class CDATASection extends Text {
  override readonly nodeType = CDATA_SECTION_NODE;

  override get nodeName(): string {
    return '#cdata-section';
  }

  override cloneNode(): CDATASection {
    return new CDATASection(this.ownerDocument, this.data);
  }
}

export class Comment extends Node {
  readonly nodeType = COMMENT_NODE;
  constructor(
    ownerDocument: Document | null,
    public data: string,
  ) {
    super(ownerDocument);
  }

  get nodeName(): string {
    return '#comment';
  }

  override get nodeValue(): string {
    return this.data;
  }

  override get textContent(): string {
    return this.data;
  }

  cloneNode(): Comment {
    return new Comment(this.ownerDocument, this.data);
  }
}

export class ProcessingInstruction extends Node {
  readonly nodeType = PROCESSING_INSTRUCTION_NODE;
  constructor(
    ownerDocument: Document | null,
    public target: string,
    public data: string,
  ) {
    super(ownerDocument);
  }

  get nodeName(): string {
    return this.target;
  }

  override get nodeValue(): string {
    return this.data;
  }

  override get textContent(): string {
    return this.data;
  }

  cloneNode(): ProcessingInstruction {
    return new ProcessingInstruction(this.ownerDocument, this.target, this.data);
  }
}

export class Document extends Node {
  readonly nodeType = DOCUMENT_NODE;

  constructor() {
    super(null);
  }

  get nodeName(): string {
    return '#document';
  }

  override get textContent(): null {
    return null;
  }

  get documentElement(): Element | null {
    for (let node = this.firstChild; node !== null; node = node.nextSibling) {
      if (node instanceof Element) return node;
    }
    return null;
  }

  createElementNS(namespace: string | null, qualifiedName: string): Element {
    const [prefix, localName] = splitQName(qualifiedName);
    const ns = namespace === '' ? null : namespace;
    if (prefix !== null && ns === null) throw new Error('a prefixed element needs a namespace');
    return new Element(this, ns, prefix, localName);
  }

  createElement(name: string): Element {
    return new Element(this, null, null, name);
  }

  createTextNode(data: string): Text {
    return new Text(this, data);
  }

  createCDATASection(data: string): CDATASection {
    return new CDATASection(this, data);
  }

  createComment(data: string): Comment {
    return new Comment(this, data);
  }

  createProcessingInstruction(target: string, data: string): ProcessingInstruction {
    return new ProcessingInstruction(this, target, data);
  }

  getElementsByTagNameNS(namespace: string | null, localName: string): Element[] {
    return this.documentElement === null
      ? []
      : [this.documentElement, ...this.documentElement.getElementsByTagNameNS(namespace, localName)].filter(
          (el) =>
            (namespace === '*' || el.namespaceURI === namespace) &&
            (localName === '*' || el.localName === localName),
        );
  }

  cloneNode(deep = false): Document {
    const copy = new Document();
    if (deep) {
      for (let node = this.firstChild; node !== null; node = node.nextSibling) {
        const child = node.cloneNode(true);
        reown(child, copy);
        copy.appendChild(child);
      }
    }
    return copy;
  }
}

function reown(node: Node, doc: Document): void {
  node.ownerDocument = doc;
  for (let child = node.firstChild; child !== null; child = child.nextSibling) reown(child, doc);
}

/** A document that is not well-formed XML, or is refused (depth). */
export class XmlParseError extends Error {
  override readonly name = 'XmlParseError';
  constructor(
    message: string,
    /** what kind of refusal: malformed XML, a DOCTYPE, or nesting beyond the limit */
    readonly reason: 'malformed' | 'doctype' | 'depth' = 'malformed',
  ) {
    super(message);
  }
}

export interface ParseOptions {
  /** deepest allowed element nesting (the root element is depth 1) */
  maxDepth?: number;
}

/** XML 1.0 names (NameStartChar, NameChar), sticky so they match at a given position. */
const NAME =
  /[:A-Z_a-z\u00C0-\u00D6\u00D8-\u00F6\u00F8-\u02FF\u0370-\u037D\u037F-\u1FFF\u200C-\u200D\u2070-\u218F\u2C00-\u2FEF\u3001-\uD7FF\uF900-\uFDCF\uFDF0-\uFFFD\u{10000}-\u{EFFFF}][-.0-9:A-Z_a-z\u00B7\u00C0-\u00D6\u00D8-\u00F6\u00F8-\u037D\u037F-\u1FFF\u200C-\u200D\u203F\u2040\u2070-\u218F\u2C00-\u2FEF\u3001-\uD7FF\uF900-\uFDCF\uFDF0-\uFFFD\u{10000}-\u{EFFFF}]*/uy;
const XML_DECLARATION =
  /^<\?xml[ \t\n]+version[ \t\n]*=[ \t\n]*(["'])(1\.[0-9]+)\1(?:[ \t\n]+encoding[ \t\n]*=[ \t\n]*(["'])([A-Za-z][-A-Za-z0-9._]*)\3)?(?:[ \t\n]+standalone[ \t\n]*=[ \t\n]*(["'])(yes|no)\5)?[ \t\n]*\?>/;
/** Characters XML 1.0 does not allow anywhere in a document. */
// biome-ignore lint/suspicious/noControlCharactersInRegex: these are exactly the characters XML 1.0 forbids
const DISALLOWED = /[\u0000-\u0008\u000B\u000C\u000E-\u001F\uFFFE\uFFFF]/;
const LITERAL_WHITESPACE = /[\t\n]/;
const LITERAL_WHITESPACE_ALL = /[\t\n]/g;
const PREDEFINED: Record<string, string> = { lt: '<', gt: '>', amp: '&', quot: '"', apos: "'" };
const REFERENCE = /&(?:([a-z]+)|#([0-9]+)|#x([0-9a-fA-F]+));|&/g;

/** Namespace bindings in scope: prefix ('' = default) → namespace ('' = none), chained by prototype. */
type Bindings = Record<string, string>;
const ROOT_BINDINGS: Bindings = Object.assign(Object.create(null) as Bindings, {
  xml: XML_NS,
  xmlns: XMLNS_NS,
});

/**
 * A strict, non-validating XML 1.0 parser building the DOM above: well-formedness (tags, attributes,
 * references, names, characters), namespaces (unbound prefixes are errors), line-ending and
 * attribute-value normalisation. No DOCTYPE (refused), so only the five predefined entities exist.
 *
 * Hand-written for speed: Word parts are large (a 300-page document.xml holds ~100,000 elements) and
 * every render parses them; general-purpose parsers measured 4-6x slower here.
 */
class XmlParser {
  private pos = 0;
  private readonly doc = new Document();
  /** attribute names and values of the start tag being read (reused) */
  private readonly names: string[] = [];
  private readonly values: string[] = [];

  constructor(
    private readonly text: string,
    private readonly maxDepth: number,
  ) {}

  private fail(message: string, at = this.pos, reason: XmlParseError['reason'] = 'malformed'): never {
    let line = 1;
    for (let i = this.text.indexOf('\n'); i !== -1 && i < at; i = this.text.indexOf('\n', i + 1)) line += 1;
    throw new XmlParseError(`line ${line}: ${message}`, reason);
  }

  private decode(raw: string, at: number): string {
    if (raw.indexOf('&') < 0) return raw;
    return raw.replace(REFERENCE, (match: string, name?: string, dec?: string, hex?: string) => {
      if (name !== undefined) {
        const value = PREDEFINED[name];
        if (value === undefined) this.fail(`undefined entity &${name};`, at);
        return value;
      }
      if (dec === undefined && hex === undefined)
        this.fail('"&" must start a character or entity reference', at);
      const code = dec !== undefined ? Number.parseInt(dec, 10) : Number.parseInt(hex as string, 16);
      const valid =
        code === 0x9 ||
        code === 0xa ||
        code === 0xd ||
        (code >= 0x20 && code <= 0xd7ff) ||
        (code >= 0xe000 && code <= 0xfffd) ||
        (code >= 0x10000 && code <= 0x10ffff);
      if (!valid) this.fail(`invalid character reference ${match}`, at);
      return String.fromCodePoint(code);
    });
  }

  private name(): string {
    NAME.lastIndex = this.pos;
    if (!NAME.test(this.text)) this.fail('expected a name');
    const start = this.pos;
    this.pos = NAME.lastIndex;
    return this.text.slice(start, this.pos);
  }

  private skipSpace(): boolean {
    const start = this.pos;
    for (;;) {
      const ch = this.text.charCodeAt(this.pos);
      if (ch !== 0x20 && ch !== 0x0a && ch !== 0x09) break;
      this.pos += 1;
    }
    return this.pos > start;
  }

  /** Comments, processing instructions and whitespace outside the root element. */
  private misc(): void {
    for (;;) {
      this.skipSpace();
      if (this.text.startsWith('<!--', this.pos)) this.comment(this.doc);
      else if (this.text.startsWith('<?', this.pos)) this.processingInstruction(this.doc);
      else return;
    }
  }

  private comment(parent: Node): void {
    const end = this.text.indexOf('-->', this.pos + 4);
    if (end < 0) this.fail('unterminated comment');
    const data = this.text.slice(this.pos + 4, end);
    if (data.includes('--')) this.fail('"--" inside a comment');
    parent.appendParsed(new Comment(this.doc, data));
    this.pos = end + 3;
  }

  private processingInstruction(parent: Node): void {
    const start = this.pos;
    this.pos += 2;
    const target = this.name();
    if (target.toLowerCase() === 'xml') this.fail('XML declaration not at the start of the document', start);
    const end = this.text.indexOf('?>', this.pos);
    if (end < 0) this.fail('unterminated processing instruction', start);
    if (end > this.pos && !this.skipSpace()) this.fail('expected whitespace after the target');
    parent.appendParsed(new ProcessingInstruction(this.doc, target, this.text.slice(this.pos, end)));
    this.pos = end + 2;
  }

  parse(): Document {
    const text = this.text;
    if (DISALLOWED.test(text)) this.fail('character not allowed in XML', text.search(DISALLOWED));
    if (text.startsWith('\uFEFF')) this.pos = 1;
    if (text.startsWith('<?xml', this.pos)) {
      const declaration = XML_DECLARATION.exec(text.slice(this.pos, this.pos + 200));
      if (declaration === null) this.fail('malformed XML declaration');
      let data = `version="${declaration[2]}"`;
      if (declaration[4] !== undefined) data += ` encoding="${declaration[4]}"`;
      if (declaration[6] !== undefined) data += ` standalone="${declaration[6]}"`;
      this.doc.appendParsed(new ProcessingInstruction(this.doc, 'xml', data));
      this.pos += declaration[0].length;
    }
    this.misc();
    if (text.startsWith('<!DOCTYPE', this.pos))
      this.fail('DOCTYPE declarations are not allowed', this.pos, 'doctype');
    const afterLt = text.charCodeAt(this.pos + 1);
    if (text.charCodeAt(this.pos) !== 0x3c || afterLt === 0x21 || afterLt === 0x2f || afterLt === 0x3f) {
      this.fail('missing root element');
    }
    this.element();
    this.misc();
    if (this.pos < text.length) this.fail('content after the root element');
    return this.doc;
  }

  /** The root element and everything in it (iterative: nesting costs no stack). */
  private element(): void {
    const text = this.text;
    const doc = this.doc;
    const open: { el: Element; qname: string; bindings: Bindings }[] = [];
    let parent: Node = doc;
    let bindings = ROOT_BINDINGS;
    for (;;) {
      // text up to the next markup
      const lt = text.indexOf('<', this.pos);
      if (lt < 0) this.fail(`unclosed element <${open[open.length - 1]?.qname ?? ''}>`, text.length);
      if (lt > this.pos) {
        const data = this.decode(text.slice(this.pos, lt), this.pos);
        const last = parent.lastChild;
        if (last !== null && last.nodeType === TEXT_NODE) (last as Text).data += data;
        else parent.appendParsed(new Text(doc, data));
        this.pos = lt;
      }
      const next = text.charCodeAt(lt + 1);
      if (next === 0x2f /* / */) {
        const top = open.pop();
        if (top === undefined) this.fail('end tag without a start tag');
        const end = text.indexOf('>', lt);
        const qname = end < 0 ? '' : text.slice(lt + 2, end).trimEnd();
        if (qname !== top.qname) this.fail(`end tag </${qname}> does not match <${top.qname}>`, lt);
        this.pos = end + 1;
        const outer = open[open.length - 1];
        if (outer === undefined) return;
        parent = outer.el;
        bindings = outer.bindings;
        continue;
      }
      if (next === 0x21 /* ! */) {
        if (text.startsWith('<!--', lt)) this.comment(parent);
        else if (text.startsWith('<![CDATA[', lt)) {
          const end = text.indexOf(']]>', lt + 9);
          if (end < 0) this.fail('unterminated CDATA section');
          parent.appendParsed(new CDATASection(doc, text.slice(lt + 9, end)));
          this.pos = end + 3;
        } else if (text.startsWith('<!DOCTYPE', lt))
          this.fail('DOCTYPE declarations are not allowed', lt, 'doctype');
        else this.fail('unexpected "<!"');
        continue;
      }
      if (next === 0x3f /* ? */) {
        this.processingInstruction(parent);
        continue;
      }

      // start tag
      this.pos = lt + 1;
      const qname = this.name();
      const names = this.names;
      const values = this.values;
      names.length = 0;
      values.length = 0;
      for (;;) {
        const spaced = this.skipSpace();
        const ch = text.charCodeAt(this.pos);
        if (ch === 0x3e /* > */ || ch === 0x2f /* / */) break;
        if (!spaced)
          this.fail(
            Number.isNaN(ch) ? `unclosed start tag <${qname}>` : 'expected whitespace between attributes',
          );
        const name = this.name();
        this.skipSpace();
        if (text.charCodeAt(this.pos) !== 0x3d /* = */) this.fail(`attribute ${name} has no value`);
        this.pos += 1;
        this.skipSpace();
        const quote = text[this.pos];
        if (quote !== '"' && quote !== "'") this.fail(`attribute ${name}: value must be quoted`);
        const end = text.indexOf(quote, this.pos + 1);
        if (end < 0) this.fail(`attribute ${name}: unterminated value`);
        const raw = text.slice(this.pos + 1, end);
        if (raw.includes('<')) this.fail(`attribute ${name}: "<" in value`);
        if (names.includes(name)) this.fail(`attribute ${name} given twice`);
        names.push(name);
        // attribute-value normalisation: literal whitespace characters become spaces
        values.push(
          this.decode(
            LITERAL_WHITESPACE.test(raw) ? raw.replace(LITERAL_WHITESPACE_ALL, ' ') : raw,
            this.pos,
          ),
        );
        this.pos = end + 1;
      }
      const selfClosing = text.charCodeAt(this.pos) === 0x2f;
      if (selfClosing && text.charCodeAt(this.pos + 1) !== 0x3e) this.fail('expected ">" after "/"');
      this.pos += selfClosing ? 2 : 1;

      // namespaces: declarations first, then the element's and attributes' prefixes
      let scope = bindings;
      for (let i = 0; i < names.length; i += 1) {
        const name = names[i] as string;
        if (name !== 'xmlns' && !name.startsWith('xmlns:')) continue;
        const prefix = name === 'xmlns' ? '' : name.slice(6);
        const value = values[i] as string;
        if (
          prefix === 'xmlns' ||
          (prefix === 'xml') !== (value === XML_NS) ||
          (prefix !== '' && value === '')
        ) {
          this.fail(`invalid namespace declaration ${name}`, lt);
        }
        if (scope === bindings) scope = Object.create(bindings) as Bindings;
        scope[prefix] = value;
      }
      const colon = qname.indexOf(':');
      const prefix = colon < 0 ? null : qname.slice(0, colon);
      const uri = scope[prefix ?? ''];
      if (prefix !== null && uri === undefined) this.fail(`unbound namespace prefix "${prefix}"`, lt);
      const el = new Element(
        doc,
        uri === undefined || uri === '' ? null : uri,
        prefix,
        colon < 0 ? qname : qname.slice(colon + 1),
      );
      for (let i = 0; i < names.length; i += 1) {
        const name = names[i] as string;
        const value = values[i] as string;
        if (name === 'xmlns') {
          el.addParsedAttr(new Attr(XMLNS_NS, null, 'xmlns', value));
          continue;
        }
        const c = name.indexOf(':');
        if (c < 0) {
          el.addParsedAttr(new Attr(null, null, name, value));
          continue;
        }
        const attrPrefix = name.slice(0, c);
        const attrUri = scope[attrPrefix];
        if (attrUri === undefined) this.fail(`unbound namespace prefix "${attrPrefix}"`, lt);
        el.addParsedAttr(new Attr(attrUri, attrPrefix, name.slice(c + 1), value));
      }
      parent.appendParsed(el);
      if (selfClosing) {
        if (open.length === 0) return;
        continue;
      }
      open.push({ el, qname, bindings: scope });
      if (open.length > this.maxDepth)
        this.fail(`XML nests deeper than ${this.maxDepth} elements`, lt, 'depth');
      parent = el;
      bindings = scope;
    }
  }
}

/**
 * Parses a complete XML document. Throws XmlParseError with a short message (line number, what is wrong)
 * for malformed XML, DOCTYPE declarations and nesting beyond `maxDepth`.
 */
export function parseXml(text: string, options: ParseOptions = {}): Document {
  const normalized = text.includes('\r') ? text.replace(/\r\n?/g, '\n') : text;
  return new XmlParser(normalized, options.maxDepth ?? Number.POSITIVE_INFINITY).parse();
}

const TEXT_SPECIAL = /[&<>\r]/;
const TEXT_SPECIAL_ALL = /[&<>\r]/g;
const ATTRIBUTE_SPECIAL = /[&<>"\t\n\r]/;
const ATTRIBUTE_SPECIAL_ALL = /[&<>"\t\n\r]/g;

function escapeText(text: string): string {
  return TEXT_SPECIAL.test(text)
    ? text.replace(TEXT_SPECIAL_ALL, (c) =>
        c === '&' ? '&amp;' : c === '<' ? '&lt;' : c === '>' ? '&gt;' : '&#13;',
      )
    : text;
}

const ATTRIBUTE_ESCAPES: Record<string, string> = {
  '&': '&amp;',
  '<': '&lt;',
  '>': '&gt;',
  '"': '&quot;',
  '\t': '&#9;',
  '\n': '&#10;',
  '\r': '&#13;',
};

function escapeAttribute(value: string): string {
  return ATTRIBUTE_SPECIAL.test(value)
    ? value.replace(ATTRIBUTE_SPECIAL_ALL, (c) => ATTRIBUTE_ESCAPES[c] ?? c)
    : value;
}

/** Serialisation state: the namespace declarations in scope, innermost last. */
class XmlWriter {
  out = '';
  /** prefix ('' = default) → namespace (null = undeclared), one map per element that declares something */
  private readonly scopes: Map<string, string | null>[] = [];

  constructor(root: Node) {
    // declarations in scope above a serialised subtree
    if (!(root instanceof Document) && root.parentNode !== null) {
      const chain: Element[] = [];
      for (let node: Node | null = root.parentNode; node !== null; node = node.parentNode) {
        if (node instanceof Element) chain.unshift(node);
      }
      const inherited = new Map<string, string | null>();
      for (const el of chain) declarations(el, inherited);
      this.scopes.push(inherited);
    }
  }

  private lookup(prefix: string): string | null | undefined {
    for (let i = this.scopes.length - 1; i >= 0; i -= 1) {
      const scope = this.scopes[i] as Map<string, string | null>;
      if (scope.has(prefix)) return scope.get(prefix);
    }
    return prefix === 'xml' ? XML_NS : undefined;
  }

  /** A declaration for `prefix` when it is not bound to `namespace` here ('' when it is). */
  private declare(
    prefix: string | null,
    namespace: string | null,
    local: Map<string, string | null>,
  ): string {
    if (prefix === 'xml' || prefix === 'xmlns') return '';
    const key = prefix ?? '';
    const bound = local.has(key) ? local.get(key) : this.lookup(key);
    if ((bound ?? null) === namespace) return '';
    local.set(key, namespace);
    return `${prefix === null ? ' xmlns' : ` xmlns:${prefix}`}="${escapeAttribute(namespace ?? '')}"`;
  }

  element(el: Element): void {
    const attrs = el.attrs;
    let local: Map<string, string | null> | null = null;
    let attributes = '';
    for (const attr of attrs) {
      if (attr.namespaceURI === XMLNS_NS) {
        local ??= new Map();
        local.set(attr.prefix === null ? '' : attr.localName, attr.value === '' ? null : attr.value);
      }
      attributes += ` ${attr.prefix === null ? attr.localName : `${attr.prefix}:${attr.localName}`}="${escapeAttribute(attr.value)}"`;
    }
    // fix-ups for prefixes not declared in scope (unprefixed attributes are in no namespace: nothing to do)
    let extra = '';
    const scope = local ?? new Map<string, string | null>();
    extra += this.declare(el.prefix, el.namespaceURI, scope);
    for (const attr of attrs) {
      if (attr.prefix !== null && attr.namespaceURI !== XMLNS_NS)
        extra += this.declare(attr.prefix, attr.namespaceURI, scope);
    }
    const name = el.prefix === null ? el.localName : `${el.prefix}:${el.localName}`;
    if (el.firstChild === null) {
      this.out += `<${name}${attributes}${extra}/>`;
      return;
    }
    this.out += `<${name}${attributes}${extra}>`;
    const pushed = scope.size > 0;
    if (pushed) this.scopes.push(scope);
    for (let node: Node | null = el.firstChild; node !== null; node = node.nextSibling) this.node(node);
    if (pushed) this.scopes.pop();
    this.out += `</${name}>`;
  }

  node(node: Node): void {
    switch (node.nodeType) {
      case ELEMENT_NODE:
        this.element(node as Element);
        break;
      case TEXT_NODE:
        this.out += escapeText((node as Text).data);
        break;
      case CDATA_SECTION_NODE:
        this.out += `<![CDATA[${(node as CDATASection).data.replaceAll(']]>', ']]]]><![CDATA[>')}]]>`;
        break;
      case COMMENT_NODE:
        this.out += `<!--${(node as Comment).data}-->`;
        break;
      case PROCESSING_INSTRUCTION_NODE: {
        const pi = node as ProcessingInstruction;
        this.out += pi.data === '' ? `<?${pi.target}?>` : `<?${pi.target} ${pi.data}?>`;
        // Word puts a line break between the XML declaration and the root element
        if (pi.target === 'xml' && pi.parentNode instanceof Document) this.out += '\r\n';
        break;
      }
      case DOCUMENT_NODE:
        for (let child = node.firstChild; child !== null; child = child.nextSibling) this.node(child);
        break;
    }
  }
}

function declarations(el: Element, into: Map<string, string | null>): void {
  for (const attr of el.attrs) {
    if (attr.namespaceURI === XMLNS_NS)
      into.set(attr.prefix === null ? '' : attr.localName, attr.value === '' ? null : attr.value);
  }
}

/**
 * Serialises a document or node. Namespace declarations are written as they are held; a prefix used by an
 * element or attribute but not declared in scope (nodes created with another prefix) gets a declaration.
 */
export function serializeXml(root: Node): string {
  const writer = new XmlWriter(root);
  writer.node(root);
  return writer.out;
}
