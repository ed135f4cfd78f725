// A small streaming XML scanner for the parts of DOCX, PPTX and EPUB packages: start tags, end tags and text,
// in one pass and without building a tree. Namespace prefixes are kept as written (these formats fix them by
// convention); `localName` strips them where a producer might choose another prefix.

export interface XmlVisitor {
  /** `attributes` is the raw attribute text; read values with `xmlAttribute`. */
  open?(name: string, attributes: string, selfClosing: boolean): void;
  close?(name: string): void;
  /** Character data with entities decoded (CDATA as written). */
  text?(text: string): void;
}

const NAMED_ENTITIES: Readonly<Record<string, string>> = { amp: '&', lt: '<', gt: '>', quot: '"', apos: "'" };

/** The code point of a numeric character reference, or U+FFFD when it names none. */
export function codePointText(codePoint: number): string {
  const valid =
    Number.isInteger(codePoint) &&
    codePoint > 0 &&
    codePoint <= 0x10ffff &&
    !(codePoint >= 0xd800 && codePoint <= 0xdfff);
  return valid ? String.fromCodePoint(codePoint) : '\uFFFD';
}

/** Decodes the predefined entities and the numeric character references of XML text. */
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
      visitor.text?.(decodeXmlEntities(xml.slice(position)));
      return;
    }
    if (lt > position) visitor.text?.(decodeXmlEntities(xml.slice(position, lt)));
    const next = xml.charCodeAt(lt + 1);
    if (next === 33 /* ! */) {
      if (xml.startsWith('<!--', lt)) {
        const end = xml.indexOf('-->', lt + 4);
        position = end < 0 ? length : end + 3;
      } else if (xml.startsWith('<![CDATA[', lt)) {
        const end = xml.indexOf(']]>', lt + 9);
        visitor.text?.(xml.slice(lt + 9, end < 0 ? length : end));
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

/** The decoded value of attribute `name` (exact, prefix included) in raw attribute text, or undefined. */
export function xmlAttribute(attributes: string, name: string): string | undefined {
  const pattern = /([^\s=]+)\s*=\s*("([^"]*)"|'([^']*)')/g;
  for (let match = pattern.exec(attributes); match !== null; match = pattern.exec(attributes)) {
    if (match[1] === name) return decodeXmlEntities(match[3] ?? match[4] ?? '');
  }
  return undefined;
}

/** Resolves `target` against `baseFolder` inside a package (`../media/a.png` from `ppt/slides`). */
export function resolvePartName(baseFolder: string, target: string): string {
  let path = target;
  const hash = path.indexOf('#');
  if (hash >= 0) path = path.slice(0, hash);
  try {
    path = decodeURIComponent(path);
  } catch {
    // a stray % is taken literally
  }
  const parts = path.startsWith('/') ? [] : baseFolder.split('/').filter((part) => part !== '');
  for (const part of path.split('/')) {
    if (part === '..') parts.pop();
    else if (part !== '.' && part !== '') parts.push(part);
  }
  return parts.join('/');
}

/** The folder of a part name (`ppt/slides/slide1.xml` → `ppt/slides`). */
export function folderOf(partName: string): string {
  const slash = partName.lastIndexOf('/');
  return slash < 0 ? '' : partName.slice(0, slash);
}
