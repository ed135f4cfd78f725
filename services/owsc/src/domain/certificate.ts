// Compliance certificates and alert exports (spec §3.6 `cert`, §3.5 report export): one document model rendered
// as self-contained HTML (inline CSS, no scripts, every text escaped), as PDF (pdf-lib, Helvetica) and the
// alerts as RFC 4180 CSV.
// pdf-lib is loaded only when a PDF is made: HTML certificates and advice stay quick to start.
import type { PDFDocument, PDFFont, PDFPage, rgb as RgbColor } from 'pdf-lib';
import { type AlertInput, alertLevel } from './remediation.js';
import { ALERT_LEVELS, type AlertLevel, type Statistics } from './types.js';

export interface CertificateInput {
  alerts: readonly AlertInput[];
  site: string;
  /** shown as `Current` when absent or empty */
  period?: string;
  generatedAt: Date;
  /** sha256 hex of the alerts file (or of the batch's input) */
  alertsSha256: string;
  /** regulatory statistics of the batch: daily and monthly tables per species */
  statistics?: Statistics | null;
}

interface Table {
  heading: string;
  columns: string[];
  rows: string[][];
  /** shown instead of the table when it has no rows */
  empty?: string;
}

interface CertificateDocument {
  title: string;
  fields: [label: string, value: string][];
  compliant: boolean;
  levelCounts: Record<AlertLevel, number>;
  tables: Table[];
  sha256: string;
}

export const CERTIFICATE_TITLE = 'Compliance Certificate';
const ALERT_COLUMNS = ['time', 'species', 'type', 'level', 'value', 'limit', 'action'];
const DAILY_COLUMNS = ['date', 'n', 'mean', 'max', 'min', 'flow (m³/d)', 'load (kg/d)'];
const MONTHLY_COLUMNS = [
  'month',
  'days',
  'n',
  'average',
  'max daily',
  'max sample',
  'load avg (kg/d)',
  'average limit',
  'daily limit',
  'compliant',
];

/** Display form of a number: six significant digits (the JSON outputs keep full precision). */
function displayNumber(value: unknown): string {
  if (typeof value === 'number')
    return Number.isFinite(value) ? String(Number(value.toPrecision(6))) : String(value);
  return displayText(value);
}

function displayText(value: unknown): string {
  if (value === null || value === undefined) return '';
  if (typeof value === 'string') return value;
  if (typeof value === 'number' || typeof value === 'boolean') return String(value);
  return JSON.stringify(value);
}

function nullable(value: number | null): string {
  return value === null ? '-' : displayNumber(value);
}

function buildDocument(input: CertificateInput): CertificateDocument {
  const levelCounts: Record<AlertLevel, number> = { info: 0, watch: 0, warning: 0, critical: 0 };
  for (const alert of input.alerts) levelCounts[alertLevel(alert)] += 1;
  const compliant = input.alerts.length === 0;
  const tables: Table[] = [
    {
      heading: 'Alerts',
      columns: ALERT_COLUMNS,
      rows: input.alerts.map((alert) => {
        const record = alert as Record<string, unknown>;
        return [
          displayText(record.time),
          displayText(record.species),
          displayText(record.type),
          displayText(record.level),
          displayNumber(record.value),
          displayNumber(record.limit),
          displayText(record.action),
        ];
      }),
      empty: 'No alerts.',
    },
  ];
  for (const [species, tablesOfSpecies] of Object.entries(input.statistics?.species ?? {})) {
    tables.push({
      heading: `Daily values: ${species} (mg/L)`,
      columns: DAILY_COLUMNS,
      rows: tablesOfSpecies.daily.map((day) => [
        day.date,
        String(day.n),
        displayNumber(day.mean),
        displayNumber(day.max),
        displayNumber(day.min),
        nullable(day.flow_m3d),
        nullable(day.load_kg_d),
      ]),
    });
    tables.push({
      heading: `Monthly averages: ${species} (mg/L)`,
      columns: MONTHLY_COLUMNS,
      rows: tablesOfSpecies.monthly.map((month) => [
        month.month,
        String(month.days),
        String(month.n),
        displayNumber(month.average),
        displayNumber(month.max_daily),
        displayNumber(month.max_sample),
        nullable(month.load_average_kg_d),
        nullable(month.average_limit),
        nullable(month.daily_limit),
        month.compliant ? 'yes' : 'no',
      ]),
    });
  }
  return {
    title: CERTIFICATE_TITLE,
    fields: [
      ['Site', input.site],
      ['Period', input.period ? input.period : 'Current'],
      ['Generated at', input.generatedAt.toISOString()],
      ['Status', compliant ? 'COMPLIANT' : 'NON-COMPLIANT'],
      ['Alerts', String(input.alerts.length)],
    ],
    compliant,
    levelCounts,
    tables,
    sha256: input.alertsSha256,
  };
}

function levelSummary(counts: Record<AlertLevel, number>): string {
  return [...ALERT_LEVELS]
    .reverse()
    .map((level) => `${level} ${counts[level]}`)
    .join(', ');
}

const HTML_ESCAPES: Record<string, string> = {
  '&': '&amp;',
  '<': '&lt;',
  '>': '&gt;',
  '"': '&quot;',
  "'": '&#39;',
};

export function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (character) => HTML_ESCAPES[character] ?? character);
}

const CERTIFICATE_CSS = `
body { font-family: Helvetica, Arial, sans-serif; color: #1b1f23; margin: 2rem auto; max-width: 70rem; padding: 0 1rem; }
h1 { font-size: 1.8rem; margin-bottom: 0.5rem; }
h2 { font-size: 1.15rem; margin-top: 1.8rem; }
dl { display: grid; grid-template-columns: max-content auto; gap: 0.3rem 1rem; }
dt { font-weight: bold; }
dd { margin: 0; }
.status { font-weight: bold; padding: 0.1rem 0.5rem; border-radius: 0.25rem; }
.status.compliant { background: #dcf5e3; color: #145a2a; }
.status.non-compliant { background: #fbe0e0; color: #8a1010; }
table { border-collapse: collapse; width: 100%; font-size: 0.9rem; }
th, td { border: 1px solid #c8ccd0; padding: 0.25rem 0.5rem; text-align: left; vertical-align: top; }
th { background: #eef1f4; }
tr.level-critical td { background: #fde8e8; }
tr.level-warning td { background: #fff1e0; }
tr.level-watch td { background: #fffbe0; }
.digest { font-family: monospace; word-break: break-all; }
`;

/** The certificate as one self-contained HTML page (no scripts, no external resources). */
export function certificateHtml(input: CertificateInput): string {
  const document = buildDocument(input);
  const field = ([label, value]: [string, string]): string => {
    if (label !== 'Status') return `<dt>${escapeHtml(label)}</dt><dd>${escapeHtml(value)}</dd>`;
    const kind = document.compliant ? 'compliant' : 'non-compliant';
    return `<dt>Status</dt><dd><span class="status ${kind}">${escapeHtml(value)}</span></dd>`;
  };
  const table = (section: Table, isAlerts: boolean): string => {
    const heading = `<h2>${escapeHtml(section.heading)}</h2>`;
    if (section.rows.length === 0) return `${heading}\n<p>${escapeHtml(section.empty ?? 'No data.')}</p>`;
    const head = section.columns.map((column) => `<th>${escapeHtml(column)}</th>`).join('');
    const body = section.rows
      .map((row, index) => {
        const level = isAlerts ? alertLevel(input.alerts[index] as AlertInput) : null;
        const rowClass = level ? ` class="level-${level}"` : '';
        return `<tr${rowClass}>${row.map((cell) => `<td>${escapeHtml(cell)}</td>`).join('')}</tr>`;
      })
      .join('\n');
    return `${heading}\n<table>\n<thead><tr>${head}</tr></thead>\n<tbody>\n${body}\n</tbody>\n</table>`;
  };
  return `<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${escapeHtml(`${document.title} - ${input.site}`)}</title>
<style>${CERTIFICATE_CSS}</style>
</head>
<body>
<h1>${escapeHtml(document.title)}</h1>
<dl>
${document.fields.map(field).join('\n')}
<dt>By level</dt><dd>${escapeHtml(levelSummary(document.levelCounts))}</dd>
</dl>
${document.tables.map((section, index) => table(section, index === 0)).join('\n')}
<h2>Integrity</h2>
<p>SHA-256 of the alerts: <span class="digest">${escapeHtml(document.sha256)}</span></p>
</body>
</html>
`;
}

const PAGE_WIDTH = 595.28;
const PAGE_HEIGHT = 841.89;
const MARGIN = 40;
const TABLE_FONT_SIZE = 8;
const CELL_PADDING = 3;

/** Relative column widths of the alerts table (the action column gets the room). */
const ALERT_COLUMN_WEIGHTS = [2.1, 0.8, 1.4, 0.8, 0.8, 0.8, 3.3];

/** Lays out text on pages, starting a new page whenever the next block does not fit. */
class PdfWriter {
  private page: PDFPage;
  private y = 0;
  private readonly supported: Set<number>;

  constructor(
    private readonly pdf: PDFDocument,
    private readonly font: PDFFont,
    private readonly bold: PDFFont,
    private readonly rgb: typeof RgbColor,
  ) {
    this.supported = new Set(font.getCharacterSet());
    this.page = this.newPage();
  }

  private newPage(): PDFPage {
    const page = this.pdf.addPage([PAGE_WIDTH, PAGE_HEIGHT]);
    this.y = PAGE_HEIGHT - MARGIN;
    this.page = page;
    return page;
  }

  /** Helvetica is WinAnsi-encoded: characters it cannot encode become `?` instead of failing. */
  encodable(text: string): string {
    let out = '';
    for (const character of text) {
      const code = character.codePointAt(0) ?? 0;
      if (code < 0x20 || code === 0x7f) out += ' ';
      else out += this.supported.has(code) ? character : '?';
    }
    return out;
  }

  private ensure(height: number): boolean {
    if (this.y - height >= MARGIN) return false;
    this.newPage();
    return true;
  }

  gap(height: number): void {
    this.y -= height;
  }

  line(text: string, size: number, options: { bold?: boolean; color?: [number, number, number] } = {}): void {
    const font = options.bold ? this.bold : this.font;
    const width = PAGE_WIDTH - 2 * MARGIN;
    for (const part of this.wrap(this.encodable(text), font, size, width)) {
      this.ensure(size * 1.35);
      this.y -= size * 1.35;
      const [r, g, b] = options.color ?? [0.1, 0.12, 0.14];
      this.page.drawText(part, { x: MARGIN, y: this.y + size * 0.3, size, font, color: this.rgb(r, g, b) });
    }
  }

  table(section: Table, weights?: readonly number[]): void {
    this.ensure(40);
    this.line(section.heading, 11, { bold: true });
    this.gap(3);
    if (section.rows.length === 0) {
      this.line(section.empty ?? 'No data.', 9);
      return;
    }
    const total = PAGE_WIDTH - 2 * MARGIN;
    const columnWeights = weights ?? section.columns.map(() => 1);
    const weightSum = columnWeights.reduce((sum, weight) => sum + weight, 0);
    const widths = columnWeights.map((weight) => (weight / weightSum) * total);
    const drawRow = (cells: readonly string[], header: boolean): void => {
      const font = header ? this.bold : this.font;
      const wrapped = cells.map((cell, index) =>
        this.wrap(this.encodable(cell), font, TABLE_FONT_SIZE, (widths[index] ?? 0) - 2 * CELL_PADDING),
      );
      const lineHeight = TABLE_FONT_SIZE * 1.25;
      const height = Math.max(1, ...wrapped.map((lines) => lines.length)) * lineHeight + 2 * CELL_PADDING;
      if (this.ensure(height) && !header) drawRow(section.columns, true);
      let x = MARGIN;
      this.page.drawRectangle({
        x,
        y: this.y - height,
        width: total,
        height,
        borderColor: this.rgb(0.78, 0.8, 0.82),
        borderWidth: 0.5,
        ...(header ? { color: this.rgb(0.93, 0.95, 0.96) } : {}),
      });
      wrapped.forEach((lines, index) => {
        lines.forEach((text, lineIndex) => {
          this.page.drawText(text, {
            x: x + CELL_PADDING,
            y: this.y - CELL_PADDING - (lineIndex + 1) * lineHeight + TABLE_FONT_SIZE * 0.3,
            size: TABLE_FONT_SIZE,
            font,
            color: this.rgb(0.1, 0.12, 0.14),
          });
        });
        x += widths[index] ?? 0;
      });
      this.y -= height;
    };
    drawRow(section.columns, true);
    for (const row of section.rows) drawRow(row, false);
  }

  /** Greedy word wrap; words wider than the column are broken between characters. */
  private wrap(text: string, font: PDFFont, size: number, width: number): string[] {
    const lines: string[] = [];
    let current = '';
    const fits = (candidate: string): boolean => font.widthOfTextAtSize(candidate, size) <= width;
    for (const word of text.split(' ')) {
      const candidate = current === '' ? word : `${current} ${word}`;
      if (fits(candidate)) {
        current = candidate;
        continue;
      }
      if (current !== '') lines.push(current);
      current = '';
      for (const character of word) {
        if (current !== '' && !fits(current + character)) {
          lines.push(current);
          current = '';
        }
        current += character;
      }
    }
    lines.push(current);
    return lines;
  }
}

/** The certificate as a PDF (A4, Helvetica), with the same content as the HTML. */
export async function certificatePdf(input: CertificateInput): Promise<Uint8Array> {
  const document = buildDocument(input);
  const { PDFDocument, StandardFonts, rgb } = await import('pdf-lib');
  const pdf = await PDFDocument.create();
  pdf.setTitle(`${document.title} - ${input.site}`);
  pdf.setCreationDate(input.generatedAt);
  pdf.setModificationDate(input.generatedAt);
  const writer = new PdfWriter(
    pdf,
    await pdf.embedFont(StandardFonts.Helvetica),
    await pdf.embedFont(StandardFonts.HelveticaBold),
    rgb,
  );
  writer.line(document.title, 20, { bold: true });
  writer.gap(6);
  for (const [label, value] of document.fields) {
    const color: [number, number, number] | undefined =
      label === 'Status' ? (document.compliant ? [0.08, 0.45, 0.2] : [0.6, 0.05, 0.05]) : undefined;
    writer.line(`${label}: ${value}`, 10, { bold: label === 'Status', ...(color ? { color } : {}) });
  }
  writer.line(`By level: ${levelSummary(document.levelCounts)}`, 10);
  document.tables.forEach((section, index) => {
    writer.gap(10);
    writer.table(section, index === 0 ? ALERT_COLUMN_WEIGHTS : undefined);
  });
  writer.gap(10);
  writer.line('Integrity', 11, { bold: true });
  writer.line(`SHA-256 of the alerts: ${document.sha256}`, 8);
  return pdf.save();
}

const CSV_COLUMNS = ['time', 'species', 'type', 'level', 'value', 'limit', 'action', 'message'] as const;

function csvField(value: unknown): string {
  const text = typeof value === 'number' ? String(value) : displayText(value);
  return /[",\r\n]/.test(text) ? `"${text.replace(/"/g, '""')}"` : text;
}

/**
 * The alerts as RFC 4180 CSV: header `time,species,type,level,value,limit,action,message`, CRLF line ends
 * (also after the last record), fields quoted only when they hold a comma, quote or line break; numbers in
 * full precision.
 */
export function alertsCsv(alerts: readonly AlertInput[]): string {
  const lines = [CSV_COLUMNS.join(',')];
  for (const alert of alerts) {
    const record = alert as Record<string, unknown>;
    lines.push(CSV_COLUMNS.map((column) => csvField(record[column])).join(','));
  }
  return `${lines.join('\r\n')}\r\n`;
}

/** The alerts of an alerts document: a JSON list of objects, or an object with such an `alerts` list. */
export function parseAlertsDocument(value: unknown): Record<string, unknown>[] {
  const list =
    Array.isArray(value) || typeof value !== 'object' || value === null
      ? value
      : (value as Record<string, unknown>).alerts;
  if (!Array.isArray(list)) {
    throw new Error('alerts must be a JSON list of alerts or an object with an "alerts" list');
  }
  list.forEach((item, index) => {
    if (typeof item !== 'object' || item === null || Array.isArray(item)) {
      throw new Error(`alerts must be objects: item ${index + 1} is not`);
    }
  });
  return list as Record<string, unknown>[];
}
