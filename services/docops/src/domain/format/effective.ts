// The effective policy (§3.5): the loaded policy, or under the template baseline the policy with the
// template's own table use, dominant indent and dominant line spacing.
import type { Policy } from '../policy.js';
import type { FormatBaseline } from '../types.js';
import type { TemplateFacts } from './observe.js';

export interface EffectivePolicy extends Omit<Policy, 'line_spacing_twips'> {
  /** null disables line-spacing checks and fixes */
  line_spacing_twips: number | null;
  /** rule the safe fix writes with `line_spacing_twips` */
  line_spacing_rule: 'exact' | 'atLeast';
}

export type PolicyOverrides = Partial<
  Record<'forbid_tables' | 'first_line_indent_twips' | 'line_spacing_twips', unknown>
>;

export function effectivePolicy(
  policy: Policy,
  baseline: FormatBaseline,
  template: TemplateFacts,
): { policy: EffectivePolicy; overrides: PolicyOverrides } {
  const effective: EffectivePolicy = {
    ...policy,
    trim_chars: [...policy.trim_chars],
    line_spacing_rule: 'exact',
  };
  const overrides: PolicyOverrides = {};
  if (baseline === 'policy') return { policy: effective, overrides };

  if (template.observed.has_tables && effective.forbid_tables) {
    effective.forbid_tables = false;
    overrides.forbid_tables = false;
  }
  if (effective.first_line_indent_twips !== template.dominantIndent) {
    effective.first_line_indent_twips = template.dominantIndent;
    overrides.first_line_indent_twips = template.dominantIndent;
  }
  const spacing = template.dominantLineSpacing;
  const line = spacing?.line ?? null;
  if (effective.line_spacing_twips !== line) {
    effective.line_spacing_twips = line;
    overrides.line_spacing_twips = line;
  }
  effective.line_spacing_rule = spacing?.rule ?? 'exact';
  return { policy: effective, overrides };
}
