// `docops inspect` (§3.7.3): placeholders, unsupported tokens and missing skill fields of a template.
import { accessSync, constants, statSync } from 'node:fs';
import type { Command } from 'commander';
import { inspectTemplate, type TemplateInspection } from '../domain/docx/inspect.js';
import { openDocxPackage } from '../domain/docx/package.js';
import { stableJson } from '../domain/reports.js';
import { DocopsInputError } from '../domain/types.js';
import { newCommand, runAction, UsageError } from './common.js';
import { cliSkillRegistry, maxTemplateUncompressedBytes } from './run.js';

interface InspectFlags {
  template: string;
  skill?: string;
  json?: boolean;
}

function checkTemplate(path: string): void {
  let isFile = false;
  try {
    isFile = statSync(path).isFile();
    if (isFile) accessSync(path, constants.R_OK);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ENOTDIR') throw new UsageError(`--template: file not found: ${path}`);
    throw new UsageError(`--template: not a readable file: ${path}`);
  }
  if (!isFile) throw new UsageError(`--template: not a readable file: ${path}`);
}

function list(values: string[]): string {
  return values.length === 0 ? '(none)' : values.join(', ');
}

/** The readable form of an inspection result. */
export function inspectionLines(result: TemplateInspection): string[] {
  const lines = [`fingerprint: ${result.fingerprint}`, `placeholders: ${result.placeholders.length}`];
  for (const placeholder of result.placeholders) {
    const where = placeholder.occurrences
      .map((occurrence) =>
        occurrence.merged_runs === null
          ? occurrence.run_id
          : `${occurrence.run_id} (merged ${occurrence.merged_runs.join('+')})`,
      )
      .join(', ');
    lines.push(`  ${placeholder.field_name} x${placeholder.occurrences.length}: ${where}`);
  }
  lines.push(`unsupported: ${result.unsupported.length}`);
  for (const token of result.unsupported) {
    lines.push(
      `  ${token.kind} ${JSON.stringify(token.text)} at ${token.run_id ?? token.paragraph_path} [${token.start}, ${token.end})`,
    );
  }
  if (result.skill !== null) {
    lines.push(`skill: ${result.skill.name}`);
    lines.push(`  known_fields: ${list(result.skill.known_fields)}`);
    lines.push(`  unknown_placeholders: ${list(result.skill.unknown_placeholders)}`);
    lines.push(
      `  required_fields_absent_from_template: ${list(result.skill.required_fields_absent_from_template)}`,
    );
  }
  return lines;
}

async function execute(flags: InspectFlags): Promise<number> {
  checkTemplate(flags.template);
  const registry = cliSkillRegistry(process.env);
  let skill = null;
  if (flags.skill !== undefined) {
    skill = registry.get(flags.skill.trim()) ?? null;
    if (skill === null) {
      throw new UsageError(
        `--skill: unknown skill '${flags.skill}' (supported: ${registry.names().join(', ')})`,
      );
    }
  }
  let result: TemplateInspection;
  try {
    const pkg = await openDocxPackage(flags.template, {
      maxUncompressedBytes: maxTemplateUncompressedBytes(process.env),
    });
    result = inspectTemplate(pkg, skill);
  } catch (error) {
    if (error instanceof DocopsInputError) {
      const part = typeof error.detail.part === 'string' ? ` (${error.detail.part})` : '';
      const reason = typeof error.detail.error === 'string' ? `: ${error.detail.error}` : '';
      throw new Error(`${error.message}${part}${reason}`);
    }
    throw error;
  }
  if (flags.json) process.stdout.write(`${stableJson(result)}\n`);
  else process.stdout.write(`${inspectionLines(result).join('\n')}\n`);
  return result.unsupported.length > 0 ? 3 : 0;
}

export function registerInspectCommand(program: Command): void {
  const command = newCommand('inspect')
    .description(
      'List the placeholders and unsupported tokens of a template (exit 3 when there are unsupported ones)',
    )
    .requiredOption('--template <path>', 'the .docx template')
    .option('--skill <name>', 'compare with the fields of this skill')
    .option('--json', 'print JSON')
    .action(async (flags: InspectFlags) => {
      await runAction(() => execute(flags));
    });
  program.addCommand(command);
}
