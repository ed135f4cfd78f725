// Observation of a document's format (§3.5): histograms over body and table paragraphs, and the dominant
// values the template baseline adopts.
import type { ScannedParagraph, ScanResult } from '../types.js';
import { directFirstLineIndent, directRunStyle, fixedLineSpacing, hasDirectNumPr } from './xml.js';

export interface Observation {
  has_tables: boolean;
  has_numpr: boolean;
  first_line_indent_twips_hist: Record<string, number>;
  run_font_latin_hist: Record<string, number>;
  run_font_east_asia_hist: Record<string, number>;
}

export interface ObservationDiff {
  has_tables_changed: boolean;
  has_numpr_changed: boolean;
  first_line_indent_twips_hist_delta: Record<string, number>;
}

/** Dominant indents below this (and "none") are ignored: they are not first-line indents of body text. */
export const MIN_DOMINANT_INDENT_TWIPS = 200;

/** Body and table paragraphs: the ones the format engine looks at (never headers/footers). */
export function formatParagraphs(scan: ScanResult): ScannedParagraph[] {
  return scan.paragraphs.filter((paragraph) => paragraph.region === 'body' || paragraph.region === 'table');
}

function bump(hist: Record<string, number>, key: string): void {
  hist[key] = (hist[key] ?? 0) + 1;
}

/** The observation of the document as it is now. */
export function observe(scan: ScanResult): Observation {
  const observation: Observation = {
    has_tables: scan.topLevelTables.length > 0,
    has_numpr: false,
    first_line_indent_twips_hist: {},
    run_font_latin_hist: {},
    run_font_east_asia_hist: {},
  };
  for (const paragraph of formatParagraphs(scan)) {
    if (hasDirectNumPr(paragraph.element)) observation.has_numpr = true;
    const indent = directFirstLineIndent(paragraph.element);
    bump(observation.first_line_indent_twips_hist, indent === null ? 'none' : String(indent));
    for (const run of paragraph.runs) {
      const style = directRunStyle(run.element);
      bump(observation.run_font_latin_hist, style.latin_font ?? 'none');
      bump(observation.run_font_east_asia_hist, style.east_asia_font ?? 'unknown');
    }
  }
  return observation;
}

export function observationDiff(template: Observation, rendered: Observation): ObservationDiff {
  const delta: Record<string, number> = {};
  const keys = new Set([
    ...Object.keys(template.first_line_indent_twips_hist),
    ...Object.keys(rendered.first_line_indent_twips_hist),
  ]);
  for (const key of keys) {
    delta[key] =
      (rendered.first_line_indent_twips_hist[key] ?? 0) - (template.first_line_indent_twips_hist[key] ?? 0);
  }
  return {
    has_tables_changed: template.has_tables !== rendered.has_tables,
    has_numpr_changed: template.has_numpr !== rendered.has_numpr,
    first_line_indent_twips_hist_delta: delta,
  };
}

/** Most frequent value; ties go to the smaller value; null for no values. */
export function dominantValue(values: Iterable<number>): number | null {
  const counts = new Map<number, number>();
  for (const value of values) counts.set(value, (counts.get(value) ?? 0) + 1);
  let best: number | null = null;
  let bestCount = 0;
  for (const [value, count] of counts) {
    if (count > bestCount || (count === bestCount && best !== null && value < best)) {
      best = value;
      bestCount = count;
    }
  }
  return best;
}

function indentsOf(paragraphs: ScannedParagraph[]): number[] {
  const values: number[] = [];
  for (const paragraph of paragraphs) {
    const indent = directFirstLineIndent(paragraph.element);
    if (indent !== null && indent >= MIN_DOMINANT_INDENT_TWIPS) values.push(indent);
  }
  return values;
}

/** Dominant direct first-line indent: body paragraphs first, table paragraphs only when the body has none. */
export function dominantIndent(scan: ScanResult): number | null {
  const body = indentsOf(scan.paragraphs.filter((paragraph) => paragraph.region === 'body'));
  if (body.length > 0) return dominantValue(body);
  return dominantValue(indentsOf(scan.paragraphs.filter((paragraph) => paragraph.region === 'table')));
}

export interface DominantLineSpacing {
  line: number;
  /** the rule most used with the dominant value (ties: exact) */
  rule: 'exact' | 'atLeast';
}

/** Dominant direct exact/atLeast line spacing of body paragraphs, or null. */
export function dominantLineSpacing(scan: ScanResult): DominantLineSpacing | null {
  const spacings = scan.paragraphs
    .filter((paragraph) => paragraph.region === 'body')
    .map((paragraph) => fixedLineSpacing(paragraph.element))
    .filter((spacing) => spacing !== null);
  const line = dominantValue(spacings.map((spacing) => spacing.line));
  if (line === null) return null;
  let exact = 0;
  let atLeast = 0;
  for (const spacing of spacings) {
    if (spacing.line !== line) continue;
    if (spacing.rule === 'exact') exact++;
    else atLeast++;
  }
  return { line, rule: atLeast > exact ? 'atLeast' : 'exact' };
}

/** What the engine needs to know about the template, taken before any replacement. */
export interface TemplateFacts {
  observed: Observation;
  dominantIndent: number | null;
  dominantLineSpacing: DominantLineSpacing | null;
}

export function templateFacts(scan: ScanResult): TemplateFacts {
  return {
    observed: observe(scan),
    dominantIndent: dominantIndent(scan),
    dominantLineSpacing: dominantLineSpacing(scan),
  };
}
