// A minimal, valid .docx builder: the templates of the unit, contract and e2e tests and of `docops load-test`.
// The output is deterministic (fixed entry order and timestamps) and opens in python-docx and LibreOffice.
import { type Zippable, zipSync } from 'fflate';

export const W_NS = 'http://schemas.openxmlformats.org/wordprocessingml/2006/main';
const R_NS = 'http://schemas.openxmlformats.org/officeDocument/2006/relationships';
const REL_NS = 'http://schemas.openxmlformats.org/package/2006/relationships';
const CT_NS = 'http://schemas.openxmlformats.org/package/2006/content-types';
const REL_TYPE = 'http://schemas.openxmlformats.org/officeDocument/2006/relationships';
const XML_DECL = '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n';

/** Namespace declarations Word puts on its root elements; tests rely on w14/mc surviving a round trip. */
const ROOT_NAMESPACES =
  `xmlns:wpc="http://schemas.microsoft.com/office/word/2010/wordprocessingCanvas" ` +
  `xmlns:mc="http://schemas.openxmlformats.org/markup-compatibility/2006" ` +
  `xmlns:o="urn:schemas-microsoft-com:office:office" ` +
  `xmlns:r="${R_NS}" ` +
  `xmlns:m="http://schemas.openxmlformats.org/officeDocument/2006/math" ` +
  `xmlns:v="urn:schemas-microsoft-com:vml" ` +
  `xmlns:wp="http://schemas.openxmlformats.org/drawingml/2006/wordprocessingDrawing" ` +
  `xmlns:w10="urn:schemas-microsoft-com:office:word" ` +
  `xmlns:w="${W_NS}" ` +
  `xmlns:w14="http://schemas.microsoft.com/office/word/2010/wordml" ` +
  `xmlns:w15="http://schemas.microsoft.com/office/word/2012/wordml" ` +
  `xmlns:wpg="http://schemas.microsoft.com/office/word/2010/wordprocessingGroup" ` +
  `xmlns:wps="http://schemas.microsoft.com/office/word/2010/wordprocessingShape" ` +
  `mc:Ignorable="w14 w15"`;

const DEFAULT_STYLES_INNER =
  '<w:docDefaults><w:rPrDefault><w:rPr>' +
  '<w:rFonts w:ascii="Calibri" w:eastAsia="宋体" w:hAnsi="Calibri" w:cs="Times New Roman"/>' +
  '<w:sz w:val="24"/><w:szCs w:val="24"/><w:lang w:val="en-US" w:eastAsia="zh-CN" w:bidi="ar-SA"/>' +
  '</w:rPr></w:rPrDefault><w:pPrDefault/></w:docDefaults>' +
  '<w:style w:type="paragraph" w:default="1" w:styleId="Normal"><w:name w:val="Normal"/><w:qFormat/></w:style>' +
  '<w:style w:type="character" w:default="1" w:styleId="DefaultParagraphFont">' +
  '<w:name w:val="Default Paragraph Font"/><w:uiPriority w:val="1"/><w:semiHidden/><w:unhideWhenUsed/></w:style>' +
  '<w:style w:type="table" w:default="1" w:styleId="TableNormal"><w:name w:val="Normal Table"/>' +
  '<w:uiPriority w:val="99"/><w:semiHidden/><w:unhideWhenUsed/><w:tblPr><w:tblInd w:w="0" w:type="dxa"/>' +
  '<w:tblCellMar><w:top w:w="0" w:type="dxa"/><w:left w:w="108" w:type="dxa"/>' +
  '<w:bottom w:w="0" w:type="dxa"/><w:right w:w="108" w:type="dxa"/></w:tblCellMar></w:tblPr></w:style>' +
  '<w:style w:type="table" w:styleId="TableGrid"><w:name w:val="Table Grid"/><w:basedOn w:val="TableNormal"/>' +
  '<w:uiPriority w:val="59"/><w:tblPr><w:tblBorders>' +
  '<w:top w:val="single" w:sz="4" w:space="0" w:color="auto"/>' +
  '<w:left w:val="single" w:sz="4" w:space="0" w:color="auto"/>' +
  '<w:bottom w:val="single" w:sz="4" w:space="0" w:color="auto"/>' +
  '<w:right w:val="single" w:sz="4" w:space="0" w:color="auto"/>' +
  '<w:insideH w:val="single" w:sz="4" w:space="0" w:color="auto"/>' +
  '<w:insideV w:val="single" w:sz="4" w:space="0" w:color="auto"/>' +
  '</w:tblBorders></w:tblPr></w:style>';

/** Content types of extra parts, by extension (anything else is declared application/octet-stream). */
const EXTENSION_CONTENT_TYPES: Record<string, string> = {
  png: 'image/png',
  jpeg: 'image/jpeg',
  jpg: 'image/jpeg',
  gif: 'image/gif',
  bmp: 'image/bmp',
  tiff: 'image/tiff',
  emf: 'image/x-emf',
  wmf: 'image/x-wmf',
  bin: 'application/octet-stream',
};

/** Header/footer reference types, in the order headers (and footers) are assigned to them. */
const REFERENCE_TYPES = ['default', 'first', 'even'] as const;

/** Escapes text for element content and attribute values. */
export function escapeXml(text: string): string {
  return text.replace(/[&<>"]/g, (c) =>
    c === '&' ? '&amp;' : c === '<' ? '&lt;' : c === '>' ? '&gt;' : '&quot;',
  );
}

/** Wraps properties given either as inner XML or as the complete element. */
function properties(tag: 'w:pPr' | 'w:rPr', xml: string | undefined): string {
  if (xml === undefined || xml === '') return '';
  return xml.trimStart().startsWith(`<${tag}`) ? xml : `<${tag}>${xml}</${tag}>`;
}

/**
 * One run. `\t` becomes `<w:tab/>` and `\n` becomes `<w:br/>`, so the run's text (§3.1) equals `text`.
 * `rPr` is the inner XML of `w:rPr` (or the whole element).
 */
export function runXml(text: string, rPr?: string): string {
  const pieces: string[] = [];
  let pending = '';
  const flush = (): void => {
    if (pending !== '') pieces.push(`<w:t xml:space="preserve">${escapeXml(pending)}</w:t>`);
    pending = '';
  };
  for (const ch of text) {
    if (ch === '\t') {
      flush();
      pieces.push('<w:tab/>');
    } else if (ch === '\n') {
      flush();
      pieces.push('<w:br/>');
    } else {
      pending += ch;
    }
  }
  flush();
  if (pieces.length === 0) pieces.push('<w:t xml:space="preserve"></w:t>');
  return `<w:r>${properties('w:rPr', rPr)}${pieces.join('')}</w:r>`;
}

/** One paragraph holding one run. `pPr`/`rPr` are the inner XML of `w:pPr`/`w:rPr` (or the whole element). */
export function paragraphXml(text: string, options: { pPr?: string; rPr?: string } = {}): string {
  return `<w:p>${properties('w:pPr', options.pPr)}${runXml(text, options.rPr)}</w:p>`;
}

/** A bordered table; each cell holds one paragraph with the cell's text. */
export function tableXml(rows: string[][]): string {
  const columns = Math.max(1, ...rows.map((row) => row.length));
  const width = Math.floor(9000 / columns);
  const grid = Array.from({ length: columns }, () => `<w:gridCol w:w="${width}"/>`).join('');
  const body = rows
    .map(
      (row) =>
        `<w:tr>${row
          .map(
            (cell) =>
              `<w:tc><w:tcPr><w:tcW w:w="${width}" w:type="dxa"/></w:tcPr>${paragraphXml(cell)}</w:tc>`,
          )
          .join('')}</w:tr>`,
    )
    .join('');
  return (
    '<w:tbl><w:tblPr><w:tblStyle w:val="TableGrid"/><w:tblW w:w="0" w:type="auto"/>' +
    `<w:tblLook w:val="04A0" w:firstRow="1" w:lastRow="0" w:firstColumn="1" w:lastColumn="0" w:noHBand="0" w:noVBand="1"/></w:tblPr>` +
    `<w:tblGrid>${grid}</w:tblGrid>${body}</w:tbl>`
  );
}

export interface BuildDocxOptions {
  /** raw inner XML of `w:body` (wins over `paragraphs`); a final `w:sectPr` is appended unless it ends with one */
  body?: string;
  /** plain paragraph texts */
  paragraphs?: string[];
  /** `header1` → inner XML of `w:hdr` (at most three: default, first, even) */
  headers?: Record<string, string>;
  /** `footer1` → inner XML of `w:ftr` (at most three: default, first, even) */
  footers?: Record<string, string>;
  /** further parts by part name, e.g. `word/media/image1.png` */
  extraParts?: Record<string, string | Uint8Array>;
  /** `word/styles.xml`: a complete document (starting with `<?xml` or `<w:styles`) or the inner XML of `w:styles` */
  styles?: string;
}

/** Builds a .docx package (zip bytes). */
export function buildDocx(options: BuildDocxOptions = {}): Uint8Array {
  const headers = Object.entries(options.headers ?? {});
  const footers = Object.entries(options.footers ?? {});
  if (headers.length > REFERENCE_TYPES.length || footers.length > REFERENCE_TYPES.length) {
    throw new Error('buildDocx supports at most three headers and three footers (default, first, even)');
  }
  const encoder = new TextEncoder();

  const documentRels: string[] = [
    `<Relationship Id="rIdStyles" Type="${REL_TYPE}/styles" Target="styles.xml"/>`,
  ];
  const overrides: string[] = [
    '<Override PartName="/word/document.xml" ContentType="application/vnd.openxmlformats-officedocument.wordprocessingml.document.main+xml"/>',
    '<Override PartName="/word/styles.xml" ContentType="application/vnd.openxmlformats-officedocument.wordprocessingml.styles+xml"/>',
  ];
  const references: string[] = [];
  const partFiles: [string, string][] = [];
  const addHeaderFooter = (kind: 'header' | 'footer', entries: [string, string][]): void => {
    entries.forEach(([name, inner], index) => {
      if (!/^[A-Za-z0-9_-]+$/.test(name)) throw new Error(`invalid ${kind} name: ${name}`);
      const id = `rId_${kind}_${index + 1}`;
      const root = kind === 'header' ? 'w:hdr' : 'w:ftr';
      documentRels.push(`<Relationship Id="${id}" Type="${REL_TYPE}/${kind}" Target="${name}.xml"/>`);
      overrides.push(
        `<Override PartName="/word/${name}.xml" ContentType="application/vnd.openxmlformats-officedocument.wordprocessingml.${kind}+xml"/>`,
      );
      references.push(`<w:${kind}Reference w:type="${REFERENCE_TYPES[index]}" r:id="${id}"/>`);
      partFiles.push([`word/${name}.xml`, `${XML_DECL}<${root} ${ROOT_NAMESPACES}>${inner}</${root}>`]);
    });
  };
  addHeaderFooter('header', headers);
  addHeaderFooter('footer', footers);

  const titlePage = headers.length > 1 || footers.length > 1 ? '<w:titlePg/>' : '';
  const sectPr =
    `<w:sectPr>${references.join('')}<w:pgSz w:w="11906" w:h="16838"/>` +
    '<w:pgMar w:top="1440" w:right="1800" w:bottom="1440" w:left="1800" w:header="851" w:footer="992" w:gutter="0"/>' +
    `<w:cols w:space="425"/>${titlePage}<w:docGrid w:type="lines" w:linePitch="312"/></w:sectPr>`;
  let bodyInner = options.body ?? (options.paragraphs ?? []).map((text) => paragraphXml(text)).join('');
  if (!/<\/w:sectPr>\s*$/.test(bodyInner)) bodyInner += sectPr;
  const documentXml = `${XML_DECL}<w:document ${ROOT_NAMESPACES}><w:body>${bodyInner}</w:body></w:document>`;

  let stylesXml: string;
  const styles = options.styles?.trimStart();
  if (styles === undefined)
    stylesXml = `${XML_DECL}<w:styles ${ROOT_NAMESPACES}>${DEFAULT_STYLES_INNER}</w:styles>`;
  else if (styles.startsWith('<?xml') || styles.startsWith('<w:styles')) stylesXml = styles;
  else stylesXml = `${XML_DECL}<w:styles ${ROOT_NAMESPACES}>${styles}</w:styles>`;

  const extraParts = Object.entries(options.extraParts ?? {});
  const defaults = new Map<string, string>([
    ['rels', 'application/vnd.openxmlformats-package.relationships+xml'],
    ['xml', 'application/xml'],
  ]);
  for (const [name] of extraParts) {
    const extension = /\.([A-Za-z0-9]+)$/.exec(name)?.[1]?.toLowerCase();
    if (extension !== undefined && !defaults.has(extension)) {
      defaults.set(extension, EXTENSION_CONTENT_TYPES[extension] ?? 'application/octet-stream');
    }
  }
  const contentTypes =
    `${XML_DECL}<Types xmlns="${CT_NS}">` +
    [...defaults].map(([ext, type]) => `<Default Extension="${ext}" ContentType="${type}"/>`).join('') +
    `${overrides.join('')}</Types>`;
  const packageRels =
    `${XML_DECL}<Relationships xmlns="${REL_NS}">` +
    `<Relationship Id="rId1" Type="${REL_TYPE}/officeDocument" Target="word/document.xml"/></Relationships>`;
  const documentRelsXml = `${XML_DECL}<Relationships xmlns="${REL_NS}">${documentRels.join('')}</Relationships>`;

  // A fixed timestamp keeps the output byte-identical between runs.
  const mtime = new Date(2000, 0, 1);
  const files: Zippable = {};
  const add = (name: string, content: string | Uint8Array): void => {
    files[name] = [typeof content === 'string' ? encoder.encode(content) : content, { mtime }];
  };
  add('[Content_Types].xml', contentTypes);
  add('_rels/.rels', packageRels);
  add('word/document.xml', documentXml);
  add('word/_rels/document.xml.rels', documentRelsXml);
  add('word/styles.xml', stylesXml);
  for (const [name, xml] of partFiles) add(name, xml);
  for (const [name, content] of extraParts) add(name, content);
  return zipSync(files, { level: 6, mtime });
}
