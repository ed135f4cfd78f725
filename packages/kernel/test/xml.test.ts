import { describe, expect, it } from 'vitest';
import {
  codePointText,
  decodeXmlEntities,
  localName,
  scanXml,
  type XmlScanOptions,
  xmlAttribute,
} from '../src/xml.js';

/** Every visitor call of one scan, in order. */
function events(xml: string, options?: XmlScanOptions): unknown[][] {
  const seen: unknown[][] = [];
  scanXml(
    xml,
    {
      open: (name, attributes, selfClosing) => seen.push(['open', name, attributes, selfClosing]),
      close: (name) => seen.push(['close', name]),
      text: (text, isCData) => seen.push(['text', text, isCData]),
    },
    options,
  );
  return seen;
}

describe('scanXml', () => {
  it('reports start tags, end tags and text in document order', () => {
    expect(events('<w:p><w:t>Hi</w:t> there</w:p>')).toEqual([
      ['open', 'w:p', '', false],
      ['open', 'w:t', '', false],
      ['text', 'Hi', false],
      ['close', 'w:t'],
      ['text', ' there', false],
      ['close', 'w:p'],
    ]);
  });

  it('reports a self-closing tag as open then close, without the slash in its attributes', () => {
    expect(events('<a><br/><img src="x.png" /></a>')).toEqual([
      ['open', 'a', '', false],
      ['open', 'br', '', true],
      ['close', 'br'],
      ['open', 'img', ' src="x.png" ', true],
      ['close', 'img'],
      ['close', 'a'],
    ]);
  });

  it('keeps raw attribute text, where a quoted ">" does not end the tag', () => {
    expect(events(`<c r="B7" t='a>b' title="x > y">v</c>`)).toEqual([
      ['open', 'c', ` r="B7" t='a>b' title="x > y"`, false],
      ['text', 'v', false],
      ['close', 'c'],
    ]);
  });

  it('ends a name at white space of any kind', () => {
    expect(events('<a\tx="1"\n/><b\r\ny="2"></b\n>')).toEqual([
      ['open', 'a', '\tx="1"\n', true],
      ['close', 'a'],
      ['open', 'b', '\r\ny="2"', false],
      ['close', 'b'],
    ]);
  });

  it('skips comments (tags inside them included), processing instructions and declarations', () => {
    expect(
      events(
        '<?xml version="1.0" encoding="UTF-8"?><!DOCTYPE note SYSTEM "note.dtd"><r><!-- <x>hidden</x> -->' +
          '<?mso-application progid="Word.Document"?>kept</r>',
      ),
    ).toEqual([
      ['open', 'r', '', false],
      ['text', 'kept', false],
      ['close', 'r'],
    ]);
  });

  it('passes CDATA as written, flagged, whatever the entity option', () => {
    const xml = '<t><![CDATA[a < b &amp; <c>]]>&amp;</t>';
    const expected = (ampersand: string) => [
      ['open', 't', '', false],
      ['text', 'a < b &amp; <c>', true],
      ['text', ampersand, false],
      ['close', 't'],
    ];
    expect(events(xml)).toEqual(expected('&amp;'));
    expect(events(xml, { decodeEntities: true })).toEqual(expected('&'));
  });

  it('passes text raw by default and decoded on request', () => {
    const xml = '<t>Fish &amp; chips &#233;&#xE9; &lt;3&gt; &nbsp;</t>tail &quot;x&apos;';
    expect(events(xml).filter((event) => event[0] === 'text')).toEqual([
      ['text', 'Fish &amp; chips &#233;&#xE9; &lt;3&gt; &nbsp;', false],
      ['text', 'tail &quot;x&apos;', false],
    ]);
    expect(events(xml, { decodeEntities: true }).filter((event) => event[0] === 'text')).toEqual([
      ['text', 'Fish & chips éé <3> &nbsp;', false],
      ['text', 'tail "x\'', false],
    ]);
  });

  it('stops at an unterminated tag and runs an unterminated comment or CDATA to the end', () => {
    expect(events('<a>x</a><b attr="open')).toEqual([
      ['open', 'a', '', false],
      ['text', 'x', false],
      ['close', 'a'],
    ]);
    expect(events('<a>x<!-- never closed <b>')).toEqual([
      ['open', 'a', '', false],
      ['text', 'x', false],
    ]);
    expect(events('<a><![CDATA[tail <b>')).toEqual([
      ['open', 'a', '', false],
      ['text', 'tail <b>', true],
    ]);
  });
});

describe('decodeXmlEntities', () => {
  it('decodes the five predefined entities and leaves other names as written', () => {
    expect(decodeXmlEntities('&lt;a href=&quot;x&quot;&gt; &amp;&apos; &copy; &AMP; & ;')).toBe(
      '<a href="x"> &\' &copy; &AMP; & ;',
    );
  });

  it('decodes decimal and hexadecimal references, astral planes included', () => {
    expect(decodeXmlEntities('&#65;&#x42;&#X43;&#x1F600;&#128512;')).toBe('ABC😀😀');
  });

  it('turns a reference to no Unicode scalar value into U+FFFD', () => {
    expect(decodeXmlEntities('[&#0;][&#x110000;][&#xD800;][&#57343;][&#99999999999;]')).toBe(
      '[\uFFFD][\uFFFD][\uFFFD][\uFFFD][\uFFFD]',
    );
  });

  it('returns text without an ampersand unchanged', () => {
    expect(decodeXmlEntities('plain text')).toBe('plain text');
  });
});

describe('codePointText', () => {
  it('gives the character of a scalar value and U+FFFD otherwise', () => {
    expect(codePointText(0x41)).toBe('A');
    expect(codePointText(0x10ffff)).toBe(String.fromCodePoint(0x10ffff));
    expect(codePointText(0xdfff)).toBe('\uFFFD');
    expect(codePointText(-1)).toBe('\uFFFD');
    expect(codePointText(Number.NaN)).toBe('\uFFFD');
    expect(codePointText(65.5)).toBe('\uFFFD');
  });
});

describe('xmlAttribute', () => {
  it('reads double- and single-quoted values, decoded, with white space around "="', () => {
    const attributes = ` Id="rId1" Target = 'media/a&amp;b.png'\n\tname\n=\n"Q&#49;"`;
    expect(xmlAttribute(attributes, 'Id')).toBe('rId1');
    expect(xmlAttribute(attributes, 'Target')).toBe('media/a&b.png');
    expect(xmlAttribute(attributes, 'name')).toBe('Q1');
    expect(xmlAttribute(attributes, 'missing')).toBeUndefined();
  });

  it('matches the whole name, prefix included', () => {
    const attributes = ' r:id="rId7" id="plain" xid="other"';
    expect(xmlAttribute(attributes, 'id')).toBe('plain');
    expect(xmlAttribute(attributes, 'r:id')).toBe('rId7');
    expect(xmlAttribute(attributes, 'd')).toBeUndefined();
  });

  it('never takes text inside another value for an attribute', () => {
    const attributes = ` title="a Id='fake' > b" Id="real"`;
    expect(xmlAttribute(attributes, 'Id')).toBe('real');
    expect(xmlAttribute(' title="Id=x"', 'Id')).toBeUndefined();
  });

  it('gives an empty value as "", and skips malformed attributes to read the ones after', () => {
    expect(xmlAttribute(' alt=""', 'alt')).toBe('');
    expect(xmlAttribute(' checked size=10 =x id="k"', 'id')).toBe('k');
    expect(xmlAttribute(' id="unterminated', 'id')).toBeUndefined();
  });
});

describe('localName', () => {
  it('drops a namespace prefix', () => {
    expect(localName('w:t')).toBe('t');
    expect(localName('dc:title')).toBe('title');
    expect(localName('item')).toBe('item');
  });
});
