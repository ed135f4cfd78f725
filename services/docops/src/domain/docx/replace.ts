// Placeholder replacement (§3.1, §3.3 step 4) and the replace log entries of §3.6.
//
// Only run text changes. The replacement goes into the `w:t` where the token starts; the token's other
// characters are removed from the `w:t` elements (and, for merged split tokens, the runs) that hold them.
// Tabs, breaks and every other child outside the token are left alone. A value's own tabs and line
// breaks become `w:tab`/`w:br` next to that `w:t`, so the run's text (§3.1) reads exactly as the value.

import type { ConsideredRun, ReplaceLogEntry, ScannedParagraph, ScanResult } from '../types.js';
import type { Element } from './dom.js';
import { type DocxPackage, preserveSpaceIfNeeded } from './package.js';
import { W } from './scan.js';

export interface ReplaceResult {
  entries: ReplaceLogEntry[];
  /** runs whose text changed, in document order */
  touchedRunIds: string[];
  replacedCount: number;
  missingCount: number;
}

interface RunEdit {
  /** offsets in the run's text before replacement */
  start: number;
  end: number;
  text: string;
}

/** Characters XML 1.0 cannot carry (C0 controls other than tab/newline, U+FFFE/U+FFFF, lone surrogates). */
const XML_INVALID =
  // biome-ignore lint/suspicious/noControlCharactersInRegex: these are exactly the characters XML 1.0 forbids
  /[\u0000-\u0008\u000b\u000c\u000e-\u001f\ufffe\uffff]|[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/g;

/** The text that will stand in the document for a value: line endings as `\n`, XML-invalid characters dropped. */
export function documentText(value: string): string {
  return value.replace(/\r\n?/g, '\n').replace(XML_INVALID, '');
}

/** Log entries of the unsupported tokens, in document order (also the whole log of the exit-3 path). */
export function unsupportedLogEntries(scan: ScanResult): ReplaceLogEntry[] {
  return scan.unsupported.map((token) => ({
    status: 'unsupported',
    // a cross-run token is a well-formed placeholder: its field is known
    field_name: token.kind === 'cross_run' ? token.text.slice(1, -1) : null,
    run_id: token.runId,
    paragraph_path: token.paragraphPath,
    start: token.start,
    end: token.end,
    original_text: token.text,
    new_text: null,
    reason: token.kind,
    merged_runs: null,
  }));
}

/**
 * Replaces every valid token that has a value (merged split tokens as one) and marks the changed parts.
 * Entries: unsupported tokens first, then per run in document order, within a run by descending start.
 */
export function replacePlaceholders(
  pkg: DocxPackage,
  scan: ScanResult,
  values: ReadonlyMap<string, string>,
): ReplaceResult {
  const runs = new Map<string, { run: ConsideredRun; paragraph: ScannedParagraph; start: number }>();
  for (const paragraph of scan.paragraphs) {
    let offset = 0;
    for (const run of paragraph.runs) {
      runs.set(run.id, { run, paragraph, start: offset });
      offset += run.text.length;
    }
  }

  const entriesByRun = new Map<string, ReplaceLogEntry[]>();
  const editsByRun = new Map<string, RunEdit[]>();
  const touched = new Set<string>();
  let replacedCount = 0;
  let missingCount = 0;
  const addEdit = (runId: string, edit: RunEdit): void => {
    const edits = editsByRun.get(runId);
    if (edits === undefined) editsByRun.set(runId, [edit]);
    else edits.push(edit);
    touched.add(runId);
  };

  for (const token of scan.tokens) {
    const value = values.get(token.fieldName);
    const newText = value === undefined ? null : documentText(value);
    const entry: ReplaceLogEntry = {
      status: newText === null ? 'missing' : 'replaced',
      field_name: token.fieldName,
      run_id: token.runId,
      paragraph_path: token.paragraphPath,
      start: token.start,
      end: token.end,
      original_text: `【${token.fieldName}】`,
      new_text: newText,
      reason: newText === null ? 'missing_field' : null,
      merged_runs: token.mergedRuns === null ? null : [...token.mergedRuns],
    };
    const list = entriesByRun.get(token.runId);
    if (list === undefined) entriesByRun.set(token.runId, [entry]);
    else list.push(entry);
    if (newText === null) {
      missingCount += 1;
      continue;
    }
    replacedCount += 1;
    if (token.mergedRuns === null) {
      addEdit(token.runId, { start: token.start, end: token.end, text: newText });
      continue;
    }
    // A merged token: the value goes where the token starts; its characters leave the other runs.
    token.mergedRuns.forEach((runId, i) => {
      const located = runs.get(runId);
      if (located === undefined) return;
      const from = Math.max(token.paragraphStart, located.start) - located.start;
      const to = Math.min(token.paragraphEnd, located.start + located.run.text.length) - located.start;
      if (i === 0 || to > from)
        addEdit(runId, { start: from, end: Math.max(from, to), text: i === 0 ? newText : '' });
    });
  }

  const changedParts = new Set<string>();
  for (const [runId, edits] of editsByRun) {
    const located = runs.get(runId);
    if (located === undefined) continue;
    // descending offsets: an edit never moves the text of the edits still to come
    edits.sort((x, y) => y.start - x.start);
    for (const edit of edits) applyEdit(located.run.element, edit);
    changedParts.add(located.paragraph.part);
  }
  for (const part of changedParts) pkg.markChanged(part);

  const entries = unsupportedLogEntries(scan);
  const touchedRunIds: string[] = [];
  for (const paragraph of scan.paragraphs) {
    for (const run of paragraph.runs) {
      if (touched.has(run.id)) touchedRunIds.push(run.id);
      const runEntries = entriesByRun.get(run.id);
      if (runEntries !== undefined) entries.push(...runEntries.sort((x, y) => y.start - x.start));
    }
  }
  return { entries, touchedRunIds, replacedCount, missingCount };
}

/** A text-bearing child of a run with its offsets in the run's text. */
interface Segment {
  node: Element;
  isText: boolean;
  start: number;
  end: number;
  text: string;
}

function segments(run: Element): Segment[] {
  const result: Segment[] = [];
  let offset = 0;
  for (let node = run.firstChild; node !== null; node = node.nextSibling) {
    if (node.nodeType !== 1 || (node as Element).namespaceURI !== W) continue;
    const el = node as Element;
    let text: string;
    switch (el.localName) {
      case 't':
        text = el.textContent ?? '';
        break;
      case 'tab':
      case 'ptab':
        text = '\t';
        break;
      case 'br':
      case 'cr':
        text = '\n';
        break;
      case 'noBreakHyphen':
        text = '-';
        break;
      default:
        continue;
    }
    result.push({ node: el, isText: el.localName === 't', start: offset, end: offset + text.length, text });
    offset += text.length;
  }
  return result;
}

function setText(t: Element, text: string): void {
  t.textContent = text;
  preserveSpaceIfNeeded(t, text);
}

/** Replaces run text [start, end) with `text`, touching only the `w:t` elements holding those characters. */
function applyEdit(run: Element, edit: RunEdit): void {
  const parts = segments(run);
  // the w:t holding the first character (for an empty range: the w:t the position falls in or ends)
  const anchor =
    parts.find((s) => s.isText && s.start <= edit.start && edit.start < s.end) ??
    parts.find((s) => s.isText && s.start <= edit.start && edit.start <= s.end);
  if (anchor === undefined) return;
  for (const segment of parts) {
    if (segment === anchor || !segment.isText) continue;
    if (segment.end <= edit.start || segment.start >= edit.end) continue;
    // a later w:t holding the token's remaining characters keeps only what follows the token
    setText(segment.node, segment.text.slice(Math.max(0, edit.end - segment.start)));
  }
  const before = anchor.text.slice(0, edit.start - anchor.start);
  const after = edit.end < anchor.end ? anchor.text.slice(edit.end - anchor.start) : '';
  const pieces = edit.text.split(/([\t\n])/);
  if (pieces.length === 1) {
    setText(anchor.node, before + edit.text + after);
    return;
  }
  // value with tabs or line breaks: w:t, w:tab/w:br, w:t, ... in place of the anchor's text
  const doc = anchor.node.ownerDocument;
  if (doc === null) return;
  const prefix = anchor.node.prefix ? `${anchor.node.prefix}:` : '';
  setText(anchor.node, before + (pieces[0] ?? ''));
  let insertAfter: Element = anchor.node;
  for (let i = 1; i < pieces.length; i += 2) {
    const separator = doc.createElementNS(W, `${prefix}${pieces[i] === '\t' ? 'tab' : 'br'}`);
    const t = doc.createElementNS(W, `${prefix}t`);
    const isLast = i + 2 >= pieces.length;
    setText(t, (pieces[i + 1] ?? '') + (isLast ? after : ''));
    run.insertBefore(separator, insertAfter.nextSibling);
    run.insertBefore(t, separator.nextSibling);
    insertAfter = t;
  }
}
