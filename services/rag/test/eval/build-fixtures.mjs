// Builds the binary documents of the evaluation set deterministically (fixed dates, fixed zip timestamps), so a
// re-run produces byte-identical files: documents/onboarding-guide.docx and documents/tg-400-gateway-spec.pdf.
// The generated files are committed; run `node services/rag/test/eval/build-fixtures.mjs` after editing the text.
import { writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { strToU8, zipSync } from 'fflate';
import { PDFDocument, StandardFonts } from 'pdf-lib';

const documentsDir = fileURLToPath(new URL('./documents/', import.meta.url));
const FIXED_DATE = new Date('2025-01-15T09:00:00Z');

const ONBOARDING_PARAGRAPHS = [
  'New Employee Onboarding Guide',
  'Welcome to Larkspur Systems. This guide explains what happens during your first weeks.',
  'On your first day, pick up your laptop at the IT desk on floor 3 between 9:00 and 10:00.',
  'Your team lead assigns you an onboarding buddy who answers everyday questions during the first month.',
  'Complete the security awareness course within your first 5 working days.',
  'Badge photos are taken at reception, and the badge opens the building from 06:00 to 22:00.',
  'Salaries are paid on the 25th of each month by bank transfer.',
  'The probation period lasts 6 months and ends with a review meeting with your team lead.',
  'Full-time employees receive 28 days of annual leave plus public holidays.',
  'Useful contacts:',
];
const ONBOARDING_TABLE = [
  ['Contact', 'Email', 'Phone extension'],
  ['IT helpdesk', 'it-help@larkspur.example', '4400'],
  ['People team', 'people@larkspur.example', '4410'],
  ['Facilities desk', 'facilities@larkspur.example', '4420'],
];

const SPEC_PAGES = [
  [
    'TG-400 Telemetry Gateway - Technical Specification v1.3',
    '',
    '1. Overview',
    'The TG-400 collects readings from field devices and forwards them to the cloud platform.',
    'It is designed for pumping stations, substations and other unattended outdoor sites.',
    '',
    '2. Hardware',
    'The gateway runs on an ARM Cortex-A53 quad-core processor at 1.4 GHz.',
    'It has 2 GB of RAM and 16 GB of eMMC storage.',
    'The supply voltage range is 12 to 48 V DC.',
    'Typical power consumption is 6.5 W, with a peak of 11 W during modem start-up.',
    'The operating temperature range is -40 to 70 °C.',
    'The aluminium enclosure is rated IP67 and mounts on a 35 mm DIN rail.',
  ],
  [
    '3. Interfaces',
    'Field interfaces are two RS-485 ports, one CAN bus port and four digital inputs.',
    'Cellular connectivity uses an LTE Cat-M1 modem with a fallback to NB-IoT.',
    'Modbus RTU devices can be polled at intervals down to 250 ms.',
    '',
    '4. Protocols',
    'Readings are published with MQTT over TLS 1.3 on port 8883.',
    'Each message carries the device serial number and a monotonic sequence number.',
    'When the uplink is down, the gateway buffers up to 500,000 readings in local storage.',
    'Buffered readings are sent oldest first once the connection returns.',
  ],
  [
    '5. Security',
    'Firmware images are signed with Ed25519 and verified by secure boot.',
    'Over-the-air updates are written to A/B partitions.',
    'The gateway rolls back to the previous image automatically after 3 failed boots.',
    'The local service port is disabled unless a technician unlocks it with a signed token.',
    '',
    '6. Reliability and maintenance',
    'The calculated MTBF of the TG-400 is 180,000 hours.',
    'The internal backup battery should be replaced every 8 years.',
    'The standard warranty period is 5 years from the date of delivery.',
  ],
];

function escapeXml(text) {
  return text.replaceAll('&', '&amp;').replaceAll('<', '&lt;').replaceAll('>', '&gt;');
}

function docxParagraph(text) {
  return `<w:p><w:r><w:t xml:space="preserve">${escapeXml(text)}</w:t></w:r></w:p>`;
}

function docxTable(rows) {
  const cells = (row) =>
    row.map((cell) => `<w:tc><w:tcPr><w:tcW w:w="3000" w:type="dxa"/></w:tcPr>${docxParagraph(cell)}</w:tc>`);
  return `<w:tbl><w:tblPr><w:tblW w:w="9000" w:type="dxa"/></w:tblPr>${rows
    .map((row) => `<w:tr>${cells(row).join('')}</w:tr>`)
    .join('')}</w:tbl>`;
}

function buildDocx() {
  const body = ONBOARDING_PARAGRAPHS.map(docxParagraph).join('') + docxTable(ONBOARDING_TABLE);
  const files = {
    '[Content_Types].xml': `<?xml version="1.0" encoding="UTF-8" standalone="yes"?>
<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types"><Default Extension="rels" ContentType="application/vnd.openxmlformats-package.relationships+xml"/><Default Extension="xml" ContentType="application/xml"/><Override PartName="/word/document.xml" ContentType="application/vnd.openxmlformats-officedocument.wordprocessingml.document.main+xml"/></Types>`,
    '_rels/.rels': `<?xml version="1.0" encoding="UTF-8" standalone="yes"?>
<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships"><Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/officeDocument" Target="word/document.xml"/></Relationships>`,
    'word/document.xml': `<?xml version="1.0" encoding="UTF-8" standalone="yes"?>
<w:document xmlns:w="http://schemas.openxmlformats.org/wordprocessingml/2006/main"><w:body>${body}</w:body></w:document>`,
  };
  const entries = Object.fromEntries(
    Object.entries(files).map(([name, text]) => [name, [strToU8(text), { mtime: FIXED_DATE }]]),
  );
  return zipSync(entries, { level: 6 });
}

async function buildPdf() {
  const pdf = await PDFDocument.create();
  pdf.setTitle('TG-400 Telemetry Gateway - Technical Specification v1.3');
  pdf.setAuthor('Larkspur Systems');
  pdf.setProducer('build-fixtures');
  pdf.setCreator('build-fixtures');
  pdf.setCreationDate(FIXED_DATE);
  pdf.setModificationDate(FIXED_DATE);
  const font = await pdf.embedFont(StandardFonts.Helvetica);
  const bold = await pdf.embedFont(StandardFonts.HelveticaBold);
  SPEC_PAGES.forEach((lines, index) => {
    const page = pdf.addPage([595, 842]); // A4
    let y = 780;
    for (const line of lines) {
      const heading = /^(\d+\.|TG-400 Telemetry)/.test(line);
      if (line !== '')
        page.drawText(line, { x: 50, y, size: heading ? 13 : 10.5, font: heading ? bold : font });
      y -= line === '' ? 12 : 20;
    }
    page.drawText(`Page ${index + 1} of ${SPEC_PAGES.length}`, { x: 260, y: 40, size: 9, font });
  });
  return pdf.save({ useObjectStreams: false });
}

writeFileSync(`${documentsDir}onboarding-guide.docx`, buildDocx());
writeFileSync(`${documentsDir}tg-400-gateway-spec.pdf`, await buildPdf());
process.stdout.write('wrote documents/onboarding-guide.docx and documents/tg-400-gateway-spec.pdf\n');
