// Documents built in memory for the parser tests: PDFs with pdf-lib, OOXML/ODF by zipping minimal XML.
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { strToU8, zipSync } from 'fflate';
import { PDFDocument, PDFName, PDFString, StandardFonts } from 'pdf-lib';

export async function pdfBytes(
  pages: string[][],
  options: { encrypted?: boolean } = {},
): Promise<Uint8Array> {
  const document = await PDFDocument.create();
  const font = await document.embedFont(StandardFonts.Helvetica);
  for (const lines of pages) {
    const page = document.addPage([400, 400]);
    lines.forEach((line, index) => {
      page.drawText(line, { x: 20, y: 360 - index * 20, size: 12, font });
    });
  }
  if (options.encrypted) {
    // a standard security handler whose empty user password does not match: readers must ask for one
    const bytes32 = PDFString.of('0123456789abcdef0123456789abcdef');
    document.context.trailerInfo.Encrypt = document.context.obj({
      Filter: PDFName.of('Standard'),
      V: 1,
      R: 2,
      O: bytes32,
      U: bytes32,
      P: -4,
    });
    document.context.trailerInfo.ID = document.context.obj([PDFString.of('id0'), PDFString.of('id0')]);
  }
  return document.save({ useObjectStreams: false });
}

export function zipBytes(files: Record<string, string | Uint8Array>): Uint8Array {
  const entries: Record<string, Uint8Array> = {};
  for (const [name, content] of Object.entries(files)) {
    entries[name] = typeof content === 'string' ? strToU8(content) : content;
  }
  return zipSync(entries, { level: 6 });
}

const W = 'xmlns:w="http://schemas.openxmlformats.org/wordprocessingml/2006/main"';

export function docxBytes(bodyXml: string): Uint8Array {
  return zipBytes({
    '[Content_Types].xml': '<?xml version="1.0"?><Types/>',
    'word/document.xml': `<?xml version="1.0" encoding="UTF-8" standalone="yes"?><w:document ${W}><w:body>${bodyXml}</w:body></w:document>`,
  });
}

export function wordParagraph(text: string): string {
  return `<w:p><w:pPr><w:tabs><w:tab w:val="left" w:pos="720"/></w:tabs></w:pPr><w:r><w:t xml:space="preserve">${text}</w:t></w:r></w:p>`;
}

export function xlsxBytes(sheets: { name: string; rows: string }[], sharedStrings: string[]): Uint8Array {
  const files: Record<string, string> = {
    '[Content_Types].xml': '<Types/>',
    'xl/workbook.xml': `<workbook xmlns:r="http://schemas.openxmlformats.org/officeDocument/2006/relationships"><sheets>${sheets
      .map((sheet, index) => `<sheet name="${sheet.name}" sheetId="${index + 1}" r:id="rId${index + 1}"/>`)
      .join('')}</sheets></workbook>`,
    'xl/_rels/workbook.xml.rels': `<Relationships>${sheets
      .map(
        (_, index) =>
          `<Relationship Id="rId${index + 1}" Type="worksheet" Target="worksheets/sheet${index + 1}.xml"/>`,
      )
      .join('')}</Relationships>`,
    'xl/sharedStrings.xml': `<sst>${sharedStrings.map((value) => `<si><t>${value}</t></si>`).join('')}</sst>`,
  };
  sheets.forEach((sheet, index) => {
    files[`xl/worksheets/sheet${index + 1}.xml`] =
      `<worksheet><sheetData>${sheet.rows}</sheetData></worksheet>`;
  });
  return zipBytes(files);
}

export function pptxBytes(slides: string[][]): Uint8Array {
  const files: Record<string, string> = {
    'ppt/presentation.xml': `<p:presentation xmlns:p="p" xmlns:r="r"><p:sldIdLst>${slides
      .map((_, index) => `<p:sldId id="${256 + index}" r:id="rId${index + 1}"/>`)
      .join('')}</p:sldIdLst></p:presentation>`,
    'ppt/_rels/presentation.xml.rels': `<Relationships>${slides
      .map(
        (_, index) =>
          `<Relationship Id="rId${index + 1}" Type="slide" Target="slides/slide${index + 1}.xml"/>`,
      )
      .join('')}</Relationships>`,
  };
  slides.forEach((paragraphs, index) => {
    files[`ppt/slides/slide${index + 1}.xml`] =
      `<p:sld xmlns:a="a" xmlns:p="p"><p:cSld><p:spTree><p:sp><p:txBody>${paragraphs
        .map((text) => `<a:p><a:r><a:t>${text}</a:t></a:r></a:p>`)
        .join('')}</p:txBody></p:sp></p:spTree></p:cSld></p:sld>`;
  });
  return zipBytes(files);
}

export function odtBytes(bodyXml: string): Uint8Array {
  return zipBytes({
    mimetype: 'application/vnd.oasis.opendocument.text',
    'content.xml': `<?xml version="1.0" encoding="UTF-8"?><office:document-content xmlns:office="o" xmlns:text="t" xmlns:table="tb"><office:body><office:text>${bodyXml}</office:text></office:body></office:document-content>`,
  });
}

export async function writeFixture(dir: string, name: string, content: string | Uint8Array): Promise<string> {
  const path = join(dir, name);
  await writeFile(path, content);
  return path;
}
