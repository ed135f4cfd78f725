// The stages of `out.debug.json` (§3.6, CLI `--debug-dump`): runs whose font or characters commonly cause
// "invisible" or wrongly rendered text.

import type { ScanResult } from '../types.js';
import type { Element } from './dom.js';
import { currentRunText, firstChildW, runProperties, W } from './scan.js';

export type DebugStageName = 'pre_pipeline' | 'post_pipeline';

export interface CodepointInfo {
  index: number;
  char: string;
  codepoint: string;
  category: string;
  /** Node ships no Unicode name database */
  unicode_name: string | null;
}

export interface FontInfo {
  name: string | null;
  ascii: string | null;
  hAnsi: string | null;
  eastAsia: string | null;
  cs: string | null;
}

export interface SuspiciousRun {
  stage: DebugStageName;
  run_id: string;
  paragraph_path: string;
  touched: boolean;
  text_repr: string;
  codepoints: CodepointInfo[];
  font_info: FontInfo;
  reasons: string[];
}

export interface DebugStage {
  stage: DebugStageName;
  scanned_runs: number;
  suspicious_runs: SuspiciousRun[];
}

const SYMBOL_FONTS = new Set(['symbol', 'wingdings', 'wingdings 2', 'wingdings 3', 'webdings', 'mt extra']);
const SUSPICIOUS_CATEGORIES = new Set(['So', 'Cf', 'Cs', 'Co', 'Cc']);

/** Unicode general categories, tested in this order. */
const CATEGORIES: [string, RegExp][] = [
  'Lu',
  'Ll',
  'Lt',
  'Lm',
  'Lo',
  'Mn',
  'Mc',
  'Me',
  'Nd',
  'Nl',
  'No',
  'Pc',
  'Pd',
  'Ps',
  'Pe',
  'Pi',
  'Pf',
  'Po',
  'Sm',
  'Sc',
  'Sk',
  'So',
  'Zs',
  'Zl',
  'Zp',
  'Cc',
  'Cf',
  'Cs',
  'Co',
].map((category) => [category, new RegExp(`^\\p{${category}}$`, 'u')]);

/** The two-letter Unicode general category of one code point (`Cn` when unassigned). */
export function unicodeCategory(char: string): string {
  for (const [category, pattern] of CATEGORIES) if (pattern.test(char)) return category;
  return 'Cn';
}

/** Whitespace as Python's str.isspace() sees it (the original's notion of "space"). */
function isSpace(char: string): boolean {
  // biome-ignore lint/suspicious/noControlCharactersInRegex: Python counts the separators U+001C-U+001F as space
  return /^[\t\n\v\f\r\x1c-\x1f \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]$/.test(char);
}

function fontInfo(run: Element): FontInfo {
  const fonts = firstChildW(runProperties(run), 'rFonts');
  const attr = (name: string): string | null => fonts?.getAttributeNS(W, name) ?? null;
  const ascii = attr('ascii');
  return { name: ascii, ascii, hAnsi: attr('hAnsi'), eastAsia: attr('eastAsia'), cs: attr('cs') };
}

/**
 * One stage of the debug dump. Run texts are read from the DOM as it is now, so the post-pipeline stage
 * sees the replaced text.
 */
export function debugStage(
  scan: ScanResult,
  stage: DebugStageName,
  touchedRunIds: ReadonlySet<string>,
): DebugStage {
  const suspicious: SuspiciousRun[] = [];
  let scanned = 0;
  for (const paragraph of scan.paragraphs) {
    for (const run of paragraph.runs) {
      scanned += 1;
      const text = currentRunText(run.element);
      const font = fontInfo(run.element);
      const reasons: string[] = [];
      const fonts = [font.ascii, font.hAnsi, font.eastAsia, font.cs];
      if (fonts.some((name) => name !== null && SYMBOL_FONTS.has(name.trim().toLowerCase())))
        reasons.push('symbol_font');
      const codepoints: CodepointInfo[] = [];
      const flagged = new Set<string>();
      let index = 0;
      for (const char of text) {
        const codePoint = char.codePointAt(0) ?? 0;
        const category = unicodeCategory(char);
        codepoints.push({
          index,
          char,
          codepoint: `U+${codePoint.toString(16).toUpperCase().padStart(4, '0')}`,
          category,
          unicode_name: null,
        });
        if (SUSPICIOUS_CATEGORIES.has(category) && !isSpace(char)) flagged.add(category);
        index += 1;
      }
      for (const category of [...flagged].sort()) reasons.push(`unicode_category:${category}`);
      if (reasons.length === 0) continue;
      suspicious.push({
        stage,
        run_id: run.id,
        paragraph_path: paragraph.path,
        touched: touchedRunIds.has(run.id),
        text_repr: JSON.stringify(text),
        codepoints,
        font_info: font,
        reasons,
      });
    }
  }
  return { stage, scanned_runs: scanned, suspicious_runs: suspicious };
}
