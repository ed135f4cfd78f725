// Template inspection (§3.8.8, §3.7.3): placeholders with their occurrences, unsupported tokens, a
// run-split-insensitive fingerprint and, with a skill, which of its fields the template has or lacks.
import { createHash } from 'node:crypto';
import type { ScanResult } from '../types.js';
import type { DocxPackage } from './package.js';
import { scanDocument } from './scan.js';

export interface InspectSkill {
  name: string;
  fields: { key: string; placeholder: string; required: boolean }[];
}

export interface PlaceholderOccurrence {
  paragraph_path: string;
  run_id: string;
  merged_runs: string[] | null;
}

export interface TemplateInspection {
  fingerprint: string;
  placeholders: { field_name: string; occurrences: PlaceholderOccurrence[] }[];
  unsupported: {
    kind: string;
    text: string;
    run_id: string | null;
    paragraph_path: string;
    start: number;
    end: number;
  }[];
  skill: null | {
    name: string;
    known_fields: string[];
    unknown_placeholders: string[];
    required_fields_absent_from_template: string[];
  };
}

const FINGERPRINT_VERSION = 'docops-template-fingerprint-1';

/**
 * sha256 (hex) over every scanned paragraph's path, NFC-normalised text and placeholder positions (field
 * name and offsets in the paragraph text). Run boundaries and formatting are not part of it: the same
 * template split into runs differently — even where that makes a split placeholder unmergeable — gives the
 * same fingerprint; any change of text, placeholder or document structure changes it.
 */
export function templateFingerprint(scan: ScanResult): string {
  const positions = new Map<string, [string, number, number][]>();
  const add = (path: string, position: [string, number, number]): void => {
    const list = positions.get(path);
    if (list === undefined) positions.set(path, [position]);
    else list.push(position);
  };
  for (const token of scan.tokens)
    add(token.paragraphPath, [token.fieldName, token.paragraphStart, token.paragraphEnd]);
  for (const token of scan.unsupported) {
    if (token.kind === 'cross_run')
      add(token.paragraphPath, [token.text.slice(1, -1), token.start, token.end]);
  }
  const hash = createHash('sha256');
  hash.update(FINGERPRINT_VERSION);
  for (const paragraph of scan.paragraphs) {
    const placeholders = (positions.get(paragraph.path) ?? []).sort((x, y) => x[1] - y[1]);
    hash.update('\n');
    hash.update(JSON.stringify([paragraph.path, paragraph.text.normalize('NFC'), placeholders]));
  }
  return hash.digest('hex');
}

/** Placeholder names present in the template: valid tokens, and well-formed tokens split across differently formatted runs. */
function presentFieldNames(scan: ScanResult): Set<string> {
  const names = new Set(scan.tokens.map((token) => token.fieldName));
  for (const token of scan.unsupported) if (token.kind === 'cross_run') names.add(token.text.slice(1, -1));
  return names;
}

/** The inspection result for an already scanned template. */
export function inspectScan(scan: ScanResult, skill: InspectSkill | null): TemplateInspection {
  const byField = new Map<string, PlaceholderOccurrence[]>();
  for (const token of scan.tokens) {
    const occurrence = {
      paragraph_path: token.paragraphPath,
      run_id: token.runId,
      merged_runs: token.mergedRuns === null ? null : [...token.mergedRuns],
    };
    const list = byField.get(token.fieldName);
    if (list === undefined) byField.set(token.fieldName, [occurrence]);
    else list.push(occurrence);
  }
  const placeholders = [...byField].map(([field_name, occurrences]) => ({ field_name, occurrences }));
  const unsupported = scan.unsupported.map((token) => ({
    kind: token.kind,
    text: token.text,
    run_id: token.runId,
    paragraph_path: token.paragraphPath,
    start: token.start,
    end: token.end,
  }));

  let skillSection: TemplateInspection['skill'] = null;
  if (skill !== null) {
    // Everything is expressed in placeholder names, like out.missing_fields.json. A placeholder split
    // across differently formatted runs counts as present: the template has the field, it is just listed
    // under `unsupported` too.
    const present = presentFieldNames(scan);
    const skillPlaceholders = new Set(skill.fields.map((field) => field.placeholder));
    const sorted = (values: Iterable<string>): string[] => [...new Set(values)].sort();
    skillSection = {
      name: skill.name,
      known_fields: sorted([...skillPlaceholders].filter((name) => present.has(name))),
      unknown_placeholders: sorted([...present].filter((name) => !skillPlaceholders.has(name))),
      required_fields_absent_from_template: sorted(
        skill.fields
          .filter((field) => field.required && !present.has(field.placeholder))
          .map((f) => f.placeholder),
      ),
    };
  }
  return { fingerprint: templateFingerprint(scan), placeholders, unsupported, skill: skillSection };
}

/** Scans and inspects a template (§3.8.8). */
export function inspectTemplate(pkg: DocxPackage, skill: InspectSkill | null): TemplateInspection {
  return inspectScan(scanDocument(pkg), skill);
}
