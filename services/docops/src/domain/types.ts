import type { Element } from './docx/dom.js';

// Shared shapes of the DocOps engine. The docx core (package, scan, replace, inspect) produces them; the
// format engine, the run pipeline, the CLI and the HTTP layer consume them.

/** Where a scanned paragraph lives. Header and footer paragraphs are replaced but never format-checked. */
export type Region = 'body' | 'table' | 'header' | 'footer';

/** A `w:r` that counts for placeholder text (§3.1 "considered runs"). */
export interface ConsideredRun {
  /** `{paragraphPath}:r{k}` */
  id: string;
  /** k: index among the paragraph's considered runs */
  index: number;
  element: Element;
  /** the run's text (w:t, tabs, breaks, hyphens) before replacement */
  text: string;
}

export interface ScannedParagraph {
  /** `p3`, `t0.r1.c2.p0`, `header2.p0`, ... */
  path: string;
  region: Region;
  /** package part name, e.g. `word/document.xml` */
  part: string;
  element: Element;
  runs: ConsideredRun[];
  /** concatenated run texts */
  text: string;
  /** index of the top-level table holding the paragraph (table region), else null */
  topTableIndex: number | null;
}

export type UnsupportedKind = 'invalid_format' | 'unclosed_bracket' | 'stray_close' | 'cross_run';

/** A valid `【NAME】` occurrence. */
export interface PlaceholderToken {
  fieldName: string;
  paragraphPath: string;
  /** run holding the token start */
  runId: string;
  /** offsets in that run's text (end exclusive; for merged tokens `end` is the end in the first run's text
   * after merging, i.e. start + token length) */
  start: number;
  end: number;
  /** offsets in the paragraph text */
  paragraphStart: number;
  paragraphEnd: number;
  /** ids of all runs of a mergeable split token, else null */
  mergedRuns: string[] | null;
}

export interface UnsupportedToken {
  kind: UnsupportedKind;
  text: string;
  runId: string | null;
  paragraphPath: string;
  /** offsets in the paragraph text */
  start: number;
  end: number;
}

export interface ScanResult {
  paragraphs: ScannedParagraph[];
  /** top-level `w:tbl` elements of the main document body, in document order */
  topLevelTables: Element[];
  tokens: PlaceholderToken[];
  unsupported: UnsupportedToken[];
}

/** One entry of `out.replace_log.json` (§3.6). */
export interface ReplaceLogEntry {
  status: 'replaced' | 'missing' | 'unsupported';
  field_name: string | null;
  run_id: string | null;
  paragraph_path: string;
  start: number;
  end: number;
  original_text: string;
  new_text: string | null;
  reason: string | null;
  merged_runs: string[] | null;
}

export type FormatMode = 'report' | 'strict' | 'off';
export type FormatBaseline = 'template' | 'policy';
export type FormatFixMode = 'safe' | 'none';
export type FormatReportStyle = 'human' | 'json' | 'both';
export type UnsupportedMode = 'error' | 'warn';
export type PresetName = 'quick' | 'template' | 'strict';

/** The options a render runs with, after presets and explicit values are combined. */
export interface EffectiveOptions {
  preset: PresetName;
  format_mode: FormatMode;
  format_baseline: FormatBaseline;
  format_fix_mode: FormatFixMode;
  format_report: FormatReportStyle;
  unsupported_mode: UnsupportedMode;
}

export interface MissingFields {
  missing_required: string[];
  missing_optional: string[];
  unknown: string[];
}

export type ExitCode = 0 | 2 | 3 | 4;

/**
 * An error caused by the input, with the HTTP status and error code of spec §3.8.6. Thrown by the engine,
 * carried across the render-process boundary as plain data, rendered by the HTTP layer and the CLI.
 */
export class DocopsInputError extends Error {
  override readonly name = 'DocopsInputError';
  constructor(
    readonly status: number,
    readonly errorCode: string,
    message: string,
    readonly detail: Record<string, unknown> = {},
  ) {
    super(message);
  }
}
