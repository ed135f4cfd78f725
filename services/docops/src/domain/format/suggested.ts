// The suggested policy (§3.5): a partial policy taken from the template, loadable back with parsePolicy.
import type { Policy } from '../policy.js';
import type { TemplateFacts } from './observe.js';

export interface SuggestedPolicy {
  forbid_tables: boolean;
  first_line_indent_twips: number | null;
  twips_tolerance: number;
  line_spacing_twips?: number;
}

export function suggestedPolicy(policy: Policy, template: TemplateFacts): SuggestedPolicy {
  const suggestion: SuggestedPolicy = {
    forbid_tables: template.observed.has_tables ? false : policy.forbid_tables,
    first_line_indent_twips: template.dominantIndent,
    twips_tolerance: policy.twips_tolerance,
  };
  if (template.dominantLineSpacing !== null)
    suggestion.line_spacing_twips = template.dominantLineSpacing.line;
  return suggestion;
}

/** Block-style YAML, one `key: value` per line. */
export function suggestedPolicyYaml(suggestion: SuggestedPolicy): string {
  const lines = [
    `forbid_tables: ${suggestion.forbid_tables}`,
    `first_line_indent_twips: ${suggestion.first_line_indent_twips ?? 'null'}`,
    `twips_tolerance: ${suggestion.twips_tolerance}`,
  ];
  if (suggestion.line_spacing_twips !== undefined)
    lines.push(`line_spacing_twips: ${suggestion.line_spacing_twips}`);
  return `${lines.join('\n')}\n`;
}
