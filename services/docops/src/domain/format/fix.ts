// The safe fix (§3.5): on touched body paragraphs only, bring the first-line indent and the line spacing to
// the effective policy. Text, fonts, tables and numbering are never changed.
import type { ScanResult } from '../types.js';
import type { EffectivePolicy } from './effective.js';
import { directFirstLineIndent, directLineSpacing, setFirstLineIndent, setLineSpacing } from './xml.js';

export interface FixChange {
  paragraph_path: string;
  field: 'first_line_indent_twips' | 'line_spacing_twips';
  before: number | null;
  after: number;
  reason: 'safe_fix_to_effective_policy';
}

/** The paragraph path of a run id (`p3:r1` → `p3`, `t0.r1.c0.p0:r2` → `t0.r1.c0.p0`). */
export function paragraphPathOfRun(runId: string): string {
  const index = runId.lastIndexOf(':r');
  return index < 0 ? runId : runId.slice(0, index);
}

/**
 * Applies the safe fix and returns the changes in scan order (indent before spacing per paragraph).
 * `markChanged` is called with the part name of every paragraph changed.
 */
export function applySafeFix(
  scan: ScanResult,
  policy: EffectivePolicy,
  touchedRunIds: ReadonlySet<string>,
  markChanged: (partName: string) => void,
): FixChange[] {
  const touchedPaths = new Set([...touchedRunIds].map(paragraphPathOfRun));
  const changes: FixChange[] = [];
  for (const paragraph of scan.paragraphs) {
    if (paragraph.region !== 'body' || !touchedPaths.has(paragraph.path)) continue;
    let changed = false;
    const wantedIndent = policy.first_line_indent_twips;
    if (wantedIndent !== null) {
      const before = directFirstLineIndent(paragraph.element);
      if (before !== wantedIndent) {
        setFirstLineIndent(paragraph.element, wantedIndent);
        changes.push({
          paragraph_path: paragraph.path,
          field: 'first_line_indent_twips',
          before,
          after: wantedIndent,
          reason: 'safe_fix_to_effective_policy',
        });
        changed = true;
      }
    }
    const wantedLine = policy.line_spacing_twips;
    if (wantedLine !== null) {
      const current = directLineSpacing(paragraph.element);
      if (current === null || current.line !== wantedLine || current.rule !== policy.line_spacing_rule) {
        setLineSpacing(paragraph.element, wantedLine, policy.line_spacing_rule);
        changes.push({
          paragraph_path: paragraph.path,
          field: 'line_spacing_twips',
          before: current?.line ?? null,
          after: wantedLine,
          reason: 'safe_fix_to_effective_policy',
        });
        changed = true;
      }
    }
    if (changed) markChanged(paragraph.part);
  }
  return changes;
}
