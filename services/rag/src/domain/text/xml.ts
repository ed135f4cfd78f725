// A minimal streaming XML scanner for the document parts of OOXML/ODF archives: it reports start tags, end
// tags and text without building a tree, so large parts cost one pass and little memory. Namespaces are not
// resolved (tags keep their prefixes, which these formats fix by convention).

export interface XmlVisitor {
  /** `attributes` is the raw attribute text; read values with `xmlAttribute` */
  open?(name: string, attributes: string, selfClosing: boolean): void;
  close?(name: string): void;
  /** raw character data (entities not decoded; see `decodeXmlEntities`), CDATA already decoded */
  text?(raw: string, isCData: boolean): void;
}

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
    if (code === 32 || code === 9 || code === 10 || code === 13 || code === 47 || code === 62) break;
    index++;
  }
  return index;
}

/** Walks `xml` once, calling the visitor for each start tag, end tag and piece of text. */
export function scanXml(xml: string, visitor: XmlVisitor): void {
  const length = xml.length;
  let position = 0;
  while (position < length) {
    const lt = xml.indexOf('<', position);
    if (lt < 0) {
      visitor.text?.(xml.slice(position), false);
      return;
    }
    if (lt > position) visitor.text?.(xml.slice(position, lt), false);
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

const NAMED_ENTITIES: Readonly<Record<string, string>> = { amp: '&', lt: '<', gt: '>', quot: '"', apos: "'" };

/** Decodes the predefined and numeric character references of XML text. */
export function decodeXmlEntities(raw: string): string {
  if (!raw.includes('&')) return raw;
  return raw.replace(/&(#[xX][0-9a-fA-F]+|#[0-9]+|[a-zA-Z]+);/g, (match, body: string) => {
    if (body.startsWith('#')) {
      const codePoint =
        body[1] === 'x' || body[1] === 'X' ? Number.parseInt(body.slice(2), 16) : Number(body.slice(1));
      return codePoint > 0 && codePoint <= 0x10ffff ? String.fromCodePoint(codePoint) : '';
    }
    return NAMED_ENTITIES[body] ?? match;
  });
}

/** The decoded value of attribute `name` in raw attribute text, or undefined. */
export function xmlAttribute(attributes: string, name: string): string | undefined {
  let from = 0;
  while (from < attributes.length) {
    const found = attributes.indexOf(name, from);
    if (found < 0) return undefined;
    const before = found === 0 ? 32 : attributes.charCodeAt(found - 1);
    let index = found + name.length;
    while (attributes.charCodeAt(index) === 32) index++;
    if ((before === 32 || before === 9 || before === 10 || before === 13) && attributes[index] === '=') {
      index++;
      while (attributes.charCodeAt(index) === 32) index++;
      const quote = attributes[index];
      if (quote === '"' || quote === "'") {
        const close = attributes.indexOf(quote, index + 1);
        if (close < 0) return undefined;
        return decodeXmlEntities(attributes.slice(index + 1, close));
      }
    }
    from = found + name.length;
  }
  return undefined;
}
