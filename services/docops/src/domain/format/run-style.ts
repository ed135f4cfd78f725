// template_run_styles (§3.6): the direct style of each run a replacement may touch, taken before replacing,
// so that the template baseline can compare the rendered runs with what the template had.
import type { ScanResult } from '../types.js';
import { directRunStyle, type RunStyle } from './xml.js';

/** Styles of every run holding (part of) a valid placeholder, by run id. */
export function captureTemplateRunStyles(scan: ScanResult): Map<string, RunStyle> {
  const wanted = new Set<string>();
  for (const token of scan.tokens) {
    wanted.add(token.runId);
    for (const runId of token.mergedRuns ?? []) wanted.add(runId);
  }
  const styles = new Map<string, RunStyle>();
  for (const paragraph of scan.paragraphs) {
    for (const run of paragraph.runs) {
      if (wanted.has(run.id)) styles.set(run.id, directRunStyle(run.element));
    }
  }
  return styles;
}
