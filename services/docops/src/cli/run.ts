// `docops run` (§3.7.2): renders one template in-process and writes the artifacts into --out-dir.

import { accessSync, constants, existsSync, statSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { envInt } from '@quintet/kernel/config';
import type { Command } from 'commander';
import {
  finalStatusLine,
  formatWarningLine,
  humanSummaryLines,
  unsupportedWarningLine,
} from '../domain/human-summary.js';
import {
  ALLOWED_OPTION_VALUES,
  conflictingFields,
  type EnumOptionField,
  OptionValueError,
  type RawOptions,
  resolveEffectiveOptions,
} from '../domain/options.js';
import { findSoffice } from '../domain/pdf.js';
import { defaultPolicy, loadPolicyFile, type Policy } from '../domain/policy.js';
import { OUTPUT_FILES, writeFallbackReports, writeFileAtomic } from '../domain/reports.js';
import { type RenderStage, renderFailureStage, renderJob } from '../domain/run.js';
import { loadSkillRegistry, type Skill, type SkillRegistry } from '../domain/skills.js';
import { parseTaskJson, type Task, validateTask } from '../domain/task.js';
import { DocopsInputError, type EffectiveOptions, type UnsupportedMode } from '../domain/types.js';
import { newCommand, runAction, UsageError } from './common.js';

export const DEFAULT_MAX_TEMPLATE_UNCOMPRESSED_BYTES = 104_857_600;

interface RunFlags {
  template: string;
  task: string;
  skill?: string;
  outDir: string;
  preset?: string;
  policy?: string;
  unsupportedMode?: string;
  formatMode?: string;
  formatBaseline?: string;
  formatFixMode?: string;
  formatReport?: string;
  exportSuggestedPolicy?: string;
  pdf?: boolean;
  force?: boolean;
  overwrite: boolean;
  debugDump?: boolean;
}

const CLI_OPTION_NAMES: Record<EnumOptionField, string> = {
  preset: '--preset',
  format_mode: '--format-mode',
  format_baseline: '--format-baseline',
  format_fix_mode: '--format-fix-mode',
  format_report: '--format-report',
  unsupported_mode: '--unsupported-mode',
};

/** A failure after the output directory is known: the fallback reports are written (§3.6). */
class RunFailure extends Error {
  constructor(
    message: string,
    readonly errorType: string,
    readonly stage: string,
    readonly docxWriteError = false,
  ) {
    super(message);
  }
}

function out(line: string): void {
  process.stdout.write(`${line}\n`);
}

/** `--template`/`--task` must name an existing readable regular file (usage error otherwise). */
function checkInputFile(option: string, path: string): void {
  let isFile = false;
  try {
    isFile = statSync(path).isFile();
    if (isFile) accessSync(path, constants.R_OK);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ENOTDIR') throw new UsageError(`${option}: file not found: ${path}`);
    throw new UsageError(`${option}: not a readable file: ${path}`);
  }
  if (!isFile) throw new UsageError(`${option}: not a readable file: ${path}`);
}

/** The configured template expansion limit (same variable as the server), else the default. */
export function maxTemplateUncompressedBytes(env: NodeJS.ProcessEnv): number {
  try {
    return envInt(env, 'DOCOPS_MAX_TEMPLATE_UNCOMPRESSED_BYTES', DEFAULT_MAX_TEMPLATE_UNCOMPRESSED_BYTES, {
      min: 1,
    });
  } catch (error) {
    throw new UsageError((error as Error).message);
  }
}

/** The skills registry of DOCOPS_SKILLS_DIR (built-ins only when unset). */
export function cliSkillRegistry(env: NodeJS.ProcessEnv): SkillRegistry {
  const dir = env.DOCOPS_SKILLS_DIR?.trim();
  if (dir) {
    let isDir = false;
    try {
      isDir = statSync(dir).isDirectory();
    } catch {
      isDir = false;
    }
    if (!isDir) throw new UsageError(`DOCOPS_SKILLS_DIR is not a directory: ${dir}`);
  }
  return loadSkillRegistry(dir || undefined);
}

function rawOptions(flags: RunFlags): RawOptions {
  return {
    preset: flags.preset,
    format_mode: flags.formatMode,
    format_baseline: flags.formatBaseline,
    format_fix_mode: flags.formatFixMode,
    format_report: flags.formatReport,
    unsupported_mode: flags.unsupportedMode,
  };
}

async function loadTask(path: string, registry: SkillRegistry): Promise<Task> {
  let bytes: Buffer;
  try {
    bytes = await readFile(path);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code ?? 'error';
    throw new RunFailure(`--task: cannot read ${path} (${code})`, 'TaskReadError', 'load_task');
  }
  try {
    return validateTask(parseTaskJson(bytes), registry);
  } catch (error) {
    const name = error instanceof Error ? error.name : 'Error';
    const message = error instanceof Error ? error.message : String(error);
    throw new RunFailure(`invalid task: ${message}`, name, 'load_task');
  }
}

function resolveSkill(flags: RunFlags, task: Task, registry: SkillRegistry): Skill {
  const name = flags.skill?.trim() ?? task.task_type;
  const skill = registry.get(name);
  if (skill === undefined) {
    throw new RunFailure(
      `--skill: unknown skill '${name}' (supported: ${registry.names().join(', ')})`,
      'UnknownSkill',
      'resolve_skill',
    );
  }
  if (skill.name !== task.task_type) {
    throw new RunFailure(
      `skill and task_type must match (skill=${skill.name}, task_type=${task.task_type})`,
      'SkillMismatch',
      'resolve_skill',
    );
  }
  return skill;
}

async function loadPolicy(path: string | undefined): Promise<Policy> {
  if (path === undefined) return defaultPolicy();
  try {
    return await loadPolicyFile(path);
  } catch (error) {
    const message = error instanceof Error ? error.message : String(error);
    throw new RunFailure(
      `--policy ${path}: ${message}`,
      error instanceof Error ? error.name : 'Error',
      'load_policy',
    );
  }
}

function describeRenderError(error: unknown): string {
  if (error instanceof DocopsInputError) {
    const part = typeof error.detail.part === 'string' ? ` (${error.detail.part}` : '';
    const reason =
      typeof error.detail.error === 'string'
        ? `${part ? ': ' : ' ('}${error.detail.error})`
        : part
          ? ')'
          : '';
    return `${error.message}${part}${reason}`;
  }
  if (error instanceof Error) {
    const code = (error as NodeJS.ErrnoException).code;
    return code ? `${error.message.split('\n')[0]} (${code})` : (error.message.split('\n')[0] ?? 'error');
  }
  return String(error);
}

async function execute(flags: RunFlags): Promise<number> {
  if (flags.force && !flags.overwrite) throw new UsageError('--force cannot be combined with --no-overwrite');
  const raw = rawOptions(flags);
  const conflicts = conflictingFields(raw);
  if (conflicts.length > 0) {
    const names = conflicts.map((field) => CLI_OPTION_NAMES[field]).join(', ');
    throw new UsageError(`--preset cannot be combined with ${names}`);
  }
  checkInputFile('--template', flags.template);
  checkInputFile('--task', flags.task);

  const outDir = resolve(flags.outDir);
  try {
    await mkdir(outDir, { recursive: true });
  } catch (error) {
    throw new UsageError(
      `--out-dir: cannot create ${flags.outDir} (${(error as NodeJS.ErrnoException).code ?? 'error'})`,
    );
  }

  const planned: [string, string][] = [
    [OUTPUT_FILES.docx, join(outDir, OUTPUT_FILES.docx)],
    [OUTPUT_FILES.replaceLog, join(outDir, OUTPUT_FILES.replaceLog)],
    [OUTPUT_FILES.missingFields, join(outDir, OUTPUT_FILES.missingFields)],
    [OUTPUT_FILES.formatReport, join(outDir, OUTPUT_FILES.formatReport)],
  ];
  if (flags.exportSuggestedPolicy !== undefined) {
    planned.push([flags.exportSuggestedPolicy, resolve(flags.exportSuggestedPolicy)]);
  }
  if (flags.pdf) planned.push([OUTPUT_FILES.pdf, join(outDir, OUTPUT_FILES.pdf)]);
  if (flags.debugDump) planned.push([OUTPUT_FILES.debug, join(outDir, OUTPUT_FILES.debug)]);
  const existing = planned.filter(([, path]) => existsSync(path)).map(([name]) => name);
  if (existing.length > 0 && !flags.overwrite) {
    throw new UsageError(`outputs already exist and --no-overwrite is set: ${existing.join(', ')}`);
  }

  let unsupportedMode: UnsupportedMode = 'error';
  let options: EffectiveOptions;
  try {
    options = resolveEffectiveOptions(raw, { format_report: 'human' });
  } catch (error) {
    if (error instanceof OptionValueError) {
      const option = CLI_OPTION_NAMES[error.field as EnumOptionField] ?? error.field;
      const allowed = ALLOWED_OPTION_VALUES[error.field as EnumOptionField] ?? error.allowed;
      const message = `${option}: invalid value '${error.value}' (allowed: ${allowed.join(', ')})`;
      return fail(outDir, new RunFailure(message, 'UsageError', 'parse_arguments'), unsupportedMode);
    }
    throw error;
  }
  unsupportedMode = options.unsupported_mode;

  out(`INFO(format): baseline=${options.format_baseline}`);
  if (existing.length > 0) out(`INFO: overwriting existing outputs: ${existing.join(', ')}`);

  let profileDir: string | null = null;
  try {
    let registry: SkillRegistry;
    try {
      registry = cliSkillRegistry(process.env);
    } catch (error) {
      const message = error instanceof Error ? error.message : String(error);
      throw new RunFailure(message, error instanceof Error ? error.name : 'Error', 'load_skills');
    }
    const task = await loadTask(flags.task, registry);
    const skill = resolveSkill(flags, task, registry);
    const policy = await loadPolicy(flags.policy);
    let maxBytes: number;
    try {
      maxBytes = maxTemplateUncompressedBytes(process.env);
    } catch (error) {
      throw new RunFailure((error as Error).message, 'ConfigError', 'parse_arguments');
    }
    let pdf: { sofficePath: string; profileDir: string } | null = null;
    if (flags.pdf) {
      const sofficePath = findSoffice(process.env);
      if (sofficePath === null) {
        throw new RunFailure(
          '--pdf: PDF export is unavailable: LibreOffice (soffice) was not found; set DOCOPS_SOFFICE_PATH or add soffice to PATH',
          'FeatureUnavailable',
          'pdf',
        );
      }
      profileDir = await mkdtemp(join(tmpdir(), 'docops-lo-profile-'));
      pdf = { sofficePath, profileDir };
    }

    let result: Awaited<ReturnType<typeof renderJob>>;
    try {
      result = await renderJob({
        templatePath: flags.template,
        task,
        skill,
        policy,
        options,
        exitPrecedence: 'cli',
        outDir,
        exportSuggestedPolicy: false,
        debugDump: flags.debugDump === true,
        pdf,
        maxUncompressedBytes: maxBytes,
      });
    } catch (error) {
      const stage: RenderStage | 'render' = renderFailureStage(error) ?? 'render';
      const failure = new RunFailure(
        describeRenderError(error),
        error instanceof Error ? error.name : 'Error',
        stage,
        stage === 'write_docx',
      );
      // Once out.docx exists the run produced output: no fallback reports over it.
      if (stage === 'write_reports' || stage === 'pdf') {
        process.stderr.write(`ERROR: ${failure.message}\n`);
        return 1;
      }
      throw failure;
    }

    if (flags.exportSuggestedPolicy !== undefined) {
      try {
        await writeFileAtomic(resolve(flags.exportSuggestedPolicy), result.suggestedPolicyYaml);
      } catch (error) {
        const code = (error as NodeJS.ErrnoException).code ?? 'error';
        process.stderr.write(
          `ERROR: --export-suggested-policy: cannot write ${flags.exportSuggestedPolicy} (${code})\n`,
        );
        return 1;
      }
    }

    const human = options.format_report !== 'json';
    if (human) {
      const unsupported = unsupportedWarningLine(result.unsupportedCount, options.unsupported_mode);
      if (unsupported !== null) out(unsupported);
      const format = formatWarningLine(result.formatReport);
      if (format !== null) out(format);
    }
    if (result.pdf.status === 'failed')
      out(`WARNING(pdf): PDF export failed: ${result.pdf.error ?? 'unknown error'}`);
    if (human) {
      for (const line of humanSummaryLines({
        options,
        result,
        templateArg: flags.template,
        taskArg: flags.task,
      })) {
        out(line);
      }
    }
    out(finalStatusLine(result.exitCode));
    return result.exitCode;
  } catch (error) {
    if (error instanceof RunFailure) return fail(outDir, error, unsupportedMode);
    throw error;
  } finally {
    if (profileDir !== null) await rm(profileDir, { recursive: true, force: true });
  }
}

async function fail(outDir: string, failure: RunFailure, unsupportedMode: UnsupportedMode): Promise<number> {
  await writeFallbackReports(
    outDir,
    {
      error_type: failure.errorType,
      error_message: failure.message,
      stage: failure.stage,
      docx_write_error: failure.docxWriteError,
    },
    unsupportedMode,
  );
  process.stderr.write(`ERROR: ${failure.message}\n`);
  return 1;
}

export function registerRunCommand(program: Command): void {
  const command = newCommand('run')
    .description('Fill a Word template from a task JSON, check and fix its format, write the artifacts')
    .requiredOption('--template <path>', 'the .docx template')
    .requiredOption('--task <path>', 'the task JSON ({"task_type": ..., "payload": {...}})')
    .option('--skill <name>', "skill to render with (default: the task's task_type)")
    .option('--out-dir <dir>', 'output directory (created if missing)', '.')
    .option('--preset <name>', 'quick | template | strict (default quick)')
    .option('--policy <path>', 'format policy YAML (partial policies are merged onto the default)')
    .option('--unsupported-mode <mode>', 'error | warn (default error)')
    .option('--format-mode <mode>', 'report | strict | off (default report)')
    .option('--format-baseline <baseline>', 'template | policy (default template)')
    .option('--format-fix-mode <mode>', 'safe | none (default safe)')
    .option('--format-report <style>', 'human | json | both (default human)')
    .option('--export-suggested-policy <path>', 'write a policy derived from the template to this file')
    .option('--pdf', 'also write out.pdf (needs LibreOffice)')
    .option('--force', 'overwrite existing outputs (the default)')
    .option('--no-overwrite', 'fail instead of overwriting existing outputs')
    .option('--debug-dump', 'write out.debug.json with suspicious runs before and after rendering')
    .action(async (flags: RunFlags) => {
      await runAction(() => execute(flags));
    });
  program.addCommand(command);
}
