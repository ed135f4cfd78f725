// The format engine of the render pipeline (§3.3 step 5, §3.5): effective policy, safe fix, validation,
// diagnostics, and the format report.
import type { Policy } from '../policy.js';
import type { EffectiveOptions, ScanResult } from '../types.js';
import { buildDiagnostics, type Diagnostics } from './diagnostics.js';
import { type EffectivePolicy, effectivePolicy, type PolicyOverrides } from './effective.js';
import { applySafeFix, type FixChange } from './fix.js';
import {
  dominantIndent,
  type Observation,
  type ObservationDiff,
  observationDiff,
  observe,
  type TemplateFacts,
} from './observe.js';
import { type FormatIssue, validateFormat } from './validate.js';
import type { RunStyle } from './xml.js';

export interface FormatSummary {
  mode: EffectiveOptions['format_mode'];
  baseline: EffectiveOptions['format_baseline'];
  template_observed: Observation;
  rendered_observed: Observation;
  diff: ObservationDiff;
  effective_policy_overrides: PolicyOverrides;
  diagnostics: Diagnostics | null;
  fix_applied: boolean;
  fix_changes: FixChange[];
  skipped: boolean;
}

/** `out.format_report.json` (§3.6). */
export interface FormatReport {
  passed: boolean;
  error_count: number;
  fixed_count: number;
  issues: FormatIssue[];
  summary: FormatSummary | null;
}

export interface FormatOutcome {
  report: FormatReport;
  effectivePolicy: EffectivePolicy | null;
  templateDominantIndent: number | null;
  renderedDominantIndent: number | null;
}

/** The report of a run stopped by unsupported placeholders (§3.3 step 3): passing, no summary. */
export function emptyPassingReport(): FormatReport {
  return { passed: true, error_count: 0, fixed_count: 0, issues: [], summary: null };
}

export interface FormatEngineInput {
  scan: ScanResult;
  policy: Policy;
  options: Pick<EffectiveOptions, 'format_mode' | 'format_baseline' | 'format_fix_mode'>;
  template: TemplateFacts;
  touchedRunIds: ReadonlySet<string>;
  templateRunStyles: ReadonlyMap<string, RunStyle>;
  /** called with the part name of every part the safe fix changed */
  markChanged: (partName: string) => void;
  /** paragraph styles carrying numbering (checked when `numpr_direct_only` is false) */
  numberedStyleIds?: ReadonlySet<string>;
}

export function countErrors(issues: readonly FormatIssue[]): number {
  return issues.filter((issue) => issue.severity === 'error' && !issue.fixed).length;
}

/** Runs the engine over the rendered document (after replacement). Mutates it only through the safe fix. */
export function runFormatEngine(input: FormatEngineInput): FormatOutcome {
  const { options, template } = input;
  if (options.format_mode === 'off') {
    const rendered = observe(input.scan);
    return {
      report: {
        passed: true,
        error_count: 0,
        fixed_count: 0,
        issues: [],
        summary: {
          mode: 'off',
          baseline: options.format_baseline,
          template_observed: template.observed,
          rendered_observed: rendered,
          diff: observationDiff(template.observed, rendered),
          effective_policy_overrides: {},
          diagnostics: null,
          fix_applied: false,
          fix_changes: [],
          skipped: true,
        },
      },
      effectivePolicy: null,
      templateDominantIndent: template.dominantIndent,
      renderedDominantIndent: dominantIndent(input.scan),
    };
  }
  const { policy, overrides } = effectivePolicy(input.policy, options.format_baseline, template);
  const fixChanges =
    options.format_fix_mode === 'safe'
      ? applySafeFix(input.scan, policy, input.touchedRunIds, input.markChanged)
      : [];
  const issues = validateFormat({
    scan: input.scan,
    policy,
    baseline: options.format_baseline,
    touchedRunIds: input.touchedRunIds,
    templateRunStyles: Object.fromEntries(input.templateRunStyles),
    ...(input.numberedStyleIds ? { numberedStyleIds: input.numberedStyleIds } : {}),
  });
  const errorCount = countErrors(issues);
  const rendered = observe(input.scan);
  return {
    report: {
      passed: errorCount === 0,
      error_count: errorCount,
      fixed_count: issues.filter((issue) => issue.fixed).length,
      issues,
      summary: {
        mode: options.format_mode,
        baseline: options.format_baseline,
        template_observed: template.observed,
        rendered_observed: rendered,
        diff: observationDiff(template.observed, rendered),
        effective_policy_overrides: overrides,
        diagnostics: buildDiagnostics(issues, {
          baseline: options.format_baseline,
          policy,
          templateDominantIndent: template.dominantIndent,
        }),
        fix_applied: fixChanges.length > 0,
        fix_changes: fixChanges,
        skipped: false,
      },
    },
    effectivePolicy: policy,
    templateDominantIndent: template.dominantIndent,
    renderedDominantIndent: dominantIndent(input.scan),
  };
}
