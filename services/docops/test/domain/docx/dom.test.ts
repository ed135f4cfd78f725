import { describe, expect, it } from 'vitest';
import { buildDocx } from '../../../src/domain/docx/build.js';
import {
  CDATASection,
  Comment,
  type Element,
  ProcessingInstruction,
  parseXml,
  serializeXml,
  Text,
  XML_NS,
  XMLNS_NS,
  XmlParseError,
} from '../../../src/domain/docx/dom.js';
import { openBytes } from './fixtures/helpers.js';

const W = 'http://schemas.openxmlformats.org/wordprocessingml/2006/main';

function parseError(text: string, maxDepth?: number): XmlParseError {
  try {
    parseXml(text, maxDepth === undefined ? {} : { maxDepth });
  } catch (error) {
    expect(error).toBeInstanceOf(XmlParseError);
    return error as XmlParseError;
  }
  throw new Error(`parsed: ${text}`);
}

describe('parseXml', () => {
  it('resolves default, prefixed and redeclared namespaces', () => {
    const doc = parseXml(
      '<w:document xmlns:w="urn:w" xmlns="urn:default"><w:body a="1" w:b="2"><plain/><w:p xmlns:w="urn:other"/></w:body></w:document>',
    );
    const root = doc.documentElement as Element;
    expect([root.namespaceURI, root.prefix, root.localName, root.tagName]).toEqual([
      'urn:w',
      'w',
      'document',
      'w:document',
    ]);
    const body = root.firstChild as Element;
    expect(body.getAttributeNS(null, 'a')).toBe('1');
    expect(body.getAttributeNS('urn:w', 'b')).toBe('2');
    expect(body.getAttribute('w:b')).toBe('2');
    const [plain, inner] = body.children;
    expect(plain?.namespaceURI).toBe('urn:default');
    expect(inner?.namespaceURI).toBe('urn:other');
    expect(root.getAttributeNS(XMLNS_NS, 'w')).toBe('urn:w');
    expect(root.getAttributeNS(XMLNS_NS, 'xmlns')).toBe('urn:default');
  });

  it('knows the xml prefix and unsets the default namespace with xmlns=""', () => {
    const doc = parseXml('<a xmlns="urn:a"><t xml:space="preserve"> x </t><b xmlns=""/></a>');
    const [t, b] = (doc.documentElement as Element).children;
    expect(t?.getAttributeNS(XML_NS, 'space')).toBe('preserve');
    expect(t?.textContent).toBe(' x ');
    expect(b?.namespaceURI).toBeNull();
  });

  it('decodes references, normalises line endings and attribute whitespace', () => {
    const doc = parseXml(
      '<a v="x\ty\nz&#10;&amp;&lt;&quot;&apos;">1 &lt; 2 &amp;&amp; &#x4E2D;&#25991; &#128512;\r\nnext\rline</a>',
    );
    const a = doc.documentElement as Element;
    expect(a.getAttribute('v')).toBe('x y z\n&<"\'');
    expect(a.textContent).toBe('1 < 2 && 中文 😀\nnext\nline');
  });

  it('keeps CDATA, comments, processing instructions and the XML declaration', () => {
    const doc = parseXml(
      '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n<!-- top --><a><![CDATA[<raw> & ]]><!-- c --><?pi data?></a>',
    );
    expect(doc.firstChild).toBeInstanceOf(ProcessingInstruction);
    expect((doc.firstChild as ProcessingInstruction).data).toBe(
      'version="1.0" encoding="UTF-8" standalone="yes"',
    );
    const a = doc.documentElement as Element;
    expect(a.firstChild).toBeInstanceOf(CDATASection);
    expect(a.textContent).toBe('<raw> & ');
    expect(a.childNodes.map((node) => node.constructor.name)).toEqual([
      'CDATASection',
      'Comment',
      'ProcessingInstruction',
    ]);
    expect(doc.childNodes.some((node) => node instanceof Comment)).toBe(true);
  });

  it.each([
    ['<a><b></a>', 'end tag </a> does not match <b>'],
    ['<a>', 'unclosed element <a>'],
    ['<a x="1" x="2"/>', 'attribute x given twice'],
    ['<a x="<"/>', '"<" in value'],
    ['<a x=1/>', 'value must be quoted'],
    ['<a x="1"y="2"/>', 'expected whitespace between attributes'],
    ['<a/><b/>', 'content after the root element'],
    ['', 'missing root element'],
    ['text<a/>', 'missing root element'],
    ['<![CDATA[x]]><a/>', 'missing root element'],
    ['</a>', 'missing root element'],
    ['<a/>text', 'content after the root element'],
    ['<a>&nbsp;</a>', 'undefined entity &nbsp;'],
    ['<a>AT&T</a>', '"&" must start a character or entity reference'],
    ['<a>&#0;</a>', 'invalid character reference &#0;'],
    ['<a>\u0001</a>', 'character not allowed in XML'],
    ['<p:a/>', 'unbound namespace prefix "p"'],
    ['<a p:x="1"/>', 'unbound namespace prefix "p"'],
    ['<a><!-- a -- b --></a>', '"--" inside a comment'],
    ['<a><![CDATA[x</a>', 'unterminated CDATA section'],
    ['<?xml version="1.0"?><?xml version="1.0"?><a/>', 'XML declaration not at the start'],
    ['<?xml version=1.0?><a/>', 'malformed XML declaration'],
    ['<1a/>', 'expected a name'],
    ['<a></b >', 'end tag </b> does not match <a>'],
    ['<a b="1"', 'unclosed start tag <a>'],
    ['<a/ >', 'expected ">" after "/"'],
    ['<a xmlns:p=""/>', 'invalid namespace declaration xmlns:p'],
  ])('refuses %j', (xml, message) => {
    const error = parseError(xml);
    expect(error.reason).toBe('malformed');
    expect(error.message).toContain(message);
    expect(error.message).toMatch(/^line \d+: /);
  });

  it('refuses DOCTYPE declarations, in the prolog or anywhere', () => {
    expect(parseError('<!DOCTYPE a [<!ENTITY x "y">]><a>&x;</a>').reason).toBe('doctype');
    expect(
      parseError('<?xml version="1.0"?>\n<!-- c -->\n<!DOCTYPE a SYSTEM "file:///etc/passwd"><a/>').reason,
    ).toBe('doctype');
    expect(parseError('<a><!DOCTYPE b></a>').reason).toBe('doctype');
  });

  it('refuses nesting beyond the limit without recursion', () => {
    const deep = (n: number): string => `${'<a>'.repeat(n)}${'</a>'.repeat(n)}`;
    expect(parseError(deep(257), 256).reason).toBe('depth');
    expect(parseXml(deep(256), { maxDepth: 256 }).documentElement?.localName).toBe('a');
    // no stack overflow without a limit either
    expect(parseXml(deep(100_000)).documentElement?.localName).toBe('a');
  });

  it('reports the line of the error', () => {
    expect(parseError('<a>\n<b>\n</c></a>').message).toMatch(/^line 3: /);
  });
});

describe('serializeXml', () => {
  it('round-trips Word XML exactly (apart from the line break after the declaration)', async () => {
    const pkg = await openBytes(
      buildDocx({
        body:
          '<w:p w14:paraId="1A2B3C4D" w:rsidR="00AB"><w:pPr><w:ind w:firstLine="480"/></w:pPr>' +
          '<w:r><w:t xml:space="preserve"> a &amp; b &lt; c &gt; "q" \'s\' 中文 </w:t></w:r>' +
          '<mc:AlternateContent><mc:Choice Requires="w14"><w:r><w:t>x</w:t></w:r></mc:Choice><mc:Fallback/></mc:AlternateContent>' +
          '<w:bookmarkStart w:id="0" w:name="_GoBack"/><w:bookmarkEnd w:id="0"/></w:p>',
      }),
    );
    for (const part of [
      'word/document.xml',
      'word/styles.xml',
      '[Content_Types].xml',
      'word/_rels/document.xml.rels',
    ]) {
      const original = Buffer.from(pkg.readPart(part) ?? []).toString('utf8');
      const written = serializeXml(parseXml(original));
      expect(written.replace('?>\r\n', '?>\n')).toBe(original);
    }
  });

  it('escapes text and attribute values so they read back the same', () => {
    const doc = parseXml('<a/>');
    const a = doc.documentElement as Element;
    a.setAttribute('v', 'tab\tnl\ncr\r & < > " \'');
    a.textContent = 'x < y & z > w ]]> \r end';
    const back = parseXml(serializeXml(doc)).documentElement as Element;
    expect(back.getAttribute('v')).toBe('tab\tnl\ncr\r & < > " \'');
    expect(back.textContent).toBe('x < y & z > w ]]> \r end');
  });

  it('declares prefixes that created nodes use but the document does not declare', () => {
    const doc = parseXml(`<w:document xmlns:w="${W}"><w:body/></w:document>`);
    const body = (doc.documentElement as Element).firstChild as Element;
    body.appendChild(doc.createElementNS(W, 'w:p'));
    const ext = doc.createElementNS('urn:ext', 'x:ext');
    ext.setAttributeNS('urn:attr', 'y:flag', '1');
    ext.appendChild(doc.createElementNS('urn:ext', 'x:child'));
    body.appendChild(ext);
    const xml = serializeXml(doc);
    expect(xml).toBe(
      `<w:document xmlns:w="${W}"><w:body><w:p/><x:ext y:flag="1" xmlns:x="urn:ext" xmlns:y="urn:attr"><x:child/></x:ext></w:body></w:document>`,
    );
    const reparsed = parseXml(xml).getElementsByTagNameNS('urn:ext', 'child');
    expect(reparsed).toHaveLength(1);
  });

  it('serialises a subtree with the declarations in scope', () => {
    const doc = parseXml(`<w:document xmlns:w="${W}"><w:body><w:p><w:r/></w:p></w:body></w:document>`);
    const p = doc.getElementsByTagNameNS(W, 'p')[0] as Element;
    expect(serializeXml(p)).toBe('<w:p><w:r/></w:p>');
  });
});

describe('DOM operations', () => {
  const doc = (): ReturnType<typeof parseXml> =>
    parseXml(
      `<w:body xmlns:w="${W}"><w:p><w:r><w:t>a</w:t></w:r></w:p><w:p/><w:tbl><w:tr><w:tc><w:p/></w:tc></w:tr></w:tbl></w:body>`,
    );

  it('finds descendants in document order', () => {
    const d = doc();
    const body = d.documentElement as Element;
    expect(d.getElementsByTagNameNS(W, 'p')).toHaveLength(3);
    expect(body.getElementsByTagNameNS(W, '*').map((el) => el.localName)).toEqual([
      'p',
      'r',
      't',
      'p',
      'tbl',
      'tr',
      'tc',
      'p',
    ]);
    expect(body.getElementsByTagName('w:t')[0]?.textContent).toBe('a');
    expect(d.getElementsByTagNameNS(W, 'body')).toEqual([body]);
  });

  it('inserts, moves, replaces and removes children', () => {
    const d = doc();
    const body = d.documentElement as Element;
    const [p0, p1, tbl] = body.children as [Element, Element, Element];
    body.insertBefore(p1, p0);
    expect(body.children).toEqual([p1, p0, tbl]);
    const fresh = d.createElementNS(W, 'w:sectPr');
    body.replaceChild(fresh, tbl);
    expect(body.children).toEqual([p1, p0, fresh]);
    expect(tbl.parentNode).toBeNull();
    body.removeChild(p0);
    expect(body.childNodes).toEqual([p1, fresh]);
    expect([body.firstChild, body.lastChild, p1.nextSibling, fresh.previousSibling]).toEqual([
      p1,
      fresh,
      fresh,
      p1,
    ]);
    fresh.remove();
    expect(body.lastChild).toBe(p1);
    expect(() => body.insertBefore(d.createElementNS(W, 'w:p'), fresh)).toThrow();
    expect(() => p1.appendChild(body)).toThrow();
  });

  it('sets and removes attributes, keeping an existing prefix', () => {
    const d = parseXml(`<w:ind xmlns:w="${W}" w:firstLine="420" w:hanging="10" plain="1"/>`);
    const ind = d.documentElement as Element;
    ind.setAttributeNS(W, 'w:firstLine', '480');
    ind.removeAttributeNS(W, 'hanging');
    ind.setAttribute('plain', '2');
    ind.setAttributeNS(W, 'w:left', '0');
    expect(ind.hasAttributeNS(W, 'hanging')).toBe(false);
    expect(ind.hasAttribute('plain')).toBe(true);
    expect(ind.getAttributeNames()).toEqual(['xmlns:w', 'w:firstLine', 'plain', 'w:left']);
    expect(ind.attributes.getNamedItemNS(W, 'left')?.value).toBe('0');
    expect(serializeXml(d)).toBe(`<w:ind xmlns:w="${W}" w:firstLine="480" plain="2" w:left="0"/>`);
  });

  it('reads and replaces text content', () => {
    const d = doc();
    const body = d.documentElement as Element;
    expect(body.textContent).toBe('a');
    const t = body.getElementsByTagNameNS(W, 't')[0] as Element;
    t.textContent = 'b';
    expect(t.firstChild).toBeInstanceOf(Text);
    t.textContent = '';
    expect(t.firstChild).toBeNull();
  });

  it('looks up prefixes and namespaces', () => {
    const d = doc();
    const t = d.getElementsByTagNameNS(W, 't')[0] as Element;
    expect(t.lookupPrefix(W)).toBe('w');
    expect(t.lookupNamespaceURI('w')).toBe(W);
    expect(t.lookupNamespaceURI('nope')).toBeNull();
    expect(t.lookupNamespaceURI('xml')).toBe(XML_NS);
  });

  it('clones deeply', () => {
    const d = doc();
    const p = (d.documentElement as Element).firstChild as Element;
    const copy = p.cloneNode(true);
    expect(copy.parentNode).toBeNull();
    // detached, the copy declares the prefix it uses
    expect(serializeXml(copy)).toBe(serializeXml(p).replace('<w:p>', `<w:p xmlns:w="${W}">`));
    (copy.getElementsByTagNameNS(W, 't')[0] as Element).textContent = 'changed';
    expect(p.textContent).toBe('a');
  });
});
