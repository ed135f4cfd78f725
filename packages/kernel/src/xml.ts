/**
 * A small streaming XML scanner for the parts of office and e-book packages (OOXML, ODF, EPUB): start tags, end
 * tags and text in one pass, without building a tree, so a large part costs one pass and little memory.
 * Namespace prefixes are kept as written (these formats fix them by convention); `localName` strips them where
 * a producer might choose another prefix. Comments, processing instructions and declarations are skipped.
 */

export interface XmlVisitor {
  /** `attributes` is the raw attribute text; read values with `xmlAttribute`. */
  open?(name: string, attributes: string, selfClosing: boolean): void;
  close?(name: string): void;
  /**
   * Character data: raw (entities not decoded) unless the scan decodes them; CDATA sections always come as
   * written, with `isCData` set.
   */
  text?(text: string, isCData: boolean): void;
}

export interface XmlScanOptions {
  /** Pass text with entities decoded instead of raw (raw lets a visitor decode only the text it keeps). */
  decodeEntities?: boolean;
}

const NAMED_ENTITIES: Readonly<Record<string, string>> = { amp: '&', lt: '<', gt: '>', quot: '"', apos: "'" };

/** The text of a numeric character reference, or U+FFFD when it names no Unicode scalar value. */
export function codePointText(codePoint: number): string {
  const valid =
    Number.isInteger(codePoint) &&
    codePoint > 0 &&
    codePoint <= 0x10ffff &&
    !(codePoint >= 0xd800 && codePoint <= 0xdfff);
  return valid ? String.fromCodePoint(codePoint) : '\uFFFD';
}

/** Decodes the predefined entities and the numeric character references of XML text; others stay as written. */
export function decodeXmlEntities(raw: string): string {
  if (!raw.includes('&')) return raw;
  return raw.replace(/&(#[xX][0-9a-fA-F]+|#[0-9]+|[a-zA-Z]+);/g, (match, body: string) => {
    if (body.startsWith('#')) {
      const hex = body[1] === 'x' || body[1] === 'X';
      return codePointText(hex ? Number.parseInt(body.slice(2), 16) : Number(body.slice(1)));
    }
    return NAMED_ENTITIES[body] ?? match;
  });
}

/** `w:t` → `t`. */
export function localName(name: string): string {
  const colon = name.indexOf(':');
  return colon < 0 ? name : name.slice(colon + 1);
}

function isXmlSpace(code: number): boolean {
  return code === 32 || code === 9 || code === 10 || code === 13;
}

/** Index of the `>` that ends a tag starting at `from`, skipping quoted attribute values; -1 if none. */
function tagEnd(xml: string, from: number): number {
  let quote = 0;
  for (let index = from; index < xml.length; index++) {
    const code = xml.charCodeAt(index);
    if (quote !== 0) {
      if (code === quote) quote = 0;
    } else if (code === 34 || code === 39) {
      quote = code;
    } else if (code === 62) {
      return index;
    }
  }
  return -1;
}

function nameEnd(xml: string, from: number, limit: number): number {
  let index = from;
  while (index < limit) {
    const code = xml.charCodeAt(index);
    if (isXmlSpace(code) || code === 47 || code === 62) break;
    index++;
  }
  return index;
}

/** Walks `xml` once, calling the visitor for each start tag, end tag and piece of text. */
export function scanXml(xml: string, visitor: XmlVisitor, options: XmlScanOptions = {}): void {
  const decode = options.decodeEntities === true;
  const text = (raw: string) => visitor.text?.(decode ? decodeXmlEntities(raw) : raw, false);
  const length = xml.length;
  let position = 0;
  while (position < length) {
    const lt = xml.indexOf('<', position);
    if (lt < 0) {
      text(xml.slice(position));
      return;
    }
    if (lt > position) text(xml.slice(position, lt));
    const next = xml.charCodeAt(lt + 1);
    if (next === 33 /* ! */) {
      if (xml.startsWith('<!--', lt)) {
        const end = xml.indexOf('-->', lt + 4);
        position = end < 0 ? length : end + 3;
      } else if (xml.startsWith('<![CDATA[', lt)) {
        const end = xml.indexOf(']]>', lt + 9);
        visitor.text?.(xml.slice(lt + 9, end < 0 ? length : end), true);
        position = end < 0 ? length : end + 3;
      } else {
        const end = tagEnd(xml, lt + 2);
        position = end < 0 ? length : end + 1;
      }
      continue;
    }
    if (next === 63 /* ? */) {
      const end = xml.indexOf('?>', lt + 2);
      position = end < 0 ? length : end + 2;
      continue;
    }
    const end = tagEnd(xml, lt + 1);
    if (end < 0) return;
    if (next === 47 /* / */) {
      visitor.close?.(xml.slice(lt + 2, nameEnd(xml, lt + 2, end)));
    } else {
      const nameStop = nameEnd(xml, lt + 1, end);
      const name = xml.slice(lt + 1, nameStop);
      const selfClosing = xml.charCodeAt(end - 1) === 47;
      visitor.open?.(name, xml.slice(nameStop, selfClosing ? end - 1 : end), selfClosing);
      if (selfClosing) visitor.close?.(name);
    }
    position = end + 1;
  }
}

/**
 * The decoded value of attribute `name` (exact, prefix included) in raw attribute text, or undefined. The text
 * is read attribute by attribute, so a value that happens to contain `name="…"` is never mistaken for it.
 */
export function xmlAttribute(attributes: string, name: string): string | undefined {
  const length = attributes.length;
  let index = 0;
  while (index < length) {
    while (index < length && isXmlSpace(attributes.charCodeAt(index))) index++;
    const nameStart = index;
    while (index < length) {
      const code = attributes.charCodeAt(index);
      if (isXmlSpace(code) || code === 61 /* = */) break;
      index++;
    }
    const nameStop = index;
    while (index < length && isXmlSpace(attributes.charCodeAt(index))) index++;
    if (attributes.charCodeAt(index) !== 61) {
      // a name without a value is not well-formed: skip it and read on
      if (index === nameStart) index++;
      continue;
    }
    index++;
    while (index < length && isXmlSpace(attributes.charCodeAt(index))) index++;
    const quote = attributes.charCodeAt(index);
    if (quote !== 34 && quote !== 39) {
      // an unquoted value is not well-formed either: skip it
      while (index < length && !isXmlSpace(attributes.charCodeAt(index))) index++;
      continue;
    }
    const close = attributes.indexOf(quote === 34 ? '"' : "'", index + 1);
    if (close < 0) return undefined;
    if (nameStop - nameStart === name.length && attributes.startsWith(name, nameStart)) {
      return decodeXmlEntities(attributes.slice(index + 1, close));
    }
    index = close + 1;
  }
  return undefined;
}
