// What the HTTP process asks a render process to do, and how the render process does it. Everything a job
// reads or writes lives in its own workspace; module-level state is limited to read-only caches.
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { buildDocx } from './domain/docx/build.js';
import { inspectTemplate } from './domain/docx/inspect.js';
import { openDocxPackage } from './domain/docx/package.js';
import { defaultPolicy, parsePolicy } from './domain/policy.js';
import { renderJob } from './domain/run.js';
import { loadSkillRegistry, type SkillRegistry } from './domain/skills.js';
import type { Task } from './domain/task.js';
import type { EffectiveOptions, ExitCode } from './domain/types.js';

interface JobBase {
  workspace: string;
  templatePath: string;
  skillsDir: string | null;
  maxUncompressedBytes: number;
  /** test mode only: write runner.pid and sleep this long before working */
  testSleepSeconds: number | null;
}

export interface RunJobPayload extends JobBase {
  kind: 'run';
  task: Task;
  skillName: string;
  policyYaml: string | null;
  options: EffectiveOptions;
  exportSuggestedPolicy: boolean;
  sofficePath: string | null;
}

export interface InspectJobPayload extends JobBase {
  kind: 'inspect';
  skillName: string | null;
}

export type RenderJobPayload = RunJobPayload | InspectJobPayload;

export interface RunJobResult {
  exitCode: ExitCode;
  message: string;
  outDir: string;
  /** output file names in zip order */
  files: string[];
  pdf: { requested: boolean; status: 'ok' | 'failed' | 'not_requested'; error?: string };
}

export type InspectJobResult = ReturnType<typeof inspectTemplate>;

const registries = new Map<string, SkillRegistry>();

function registryFor(skillsDir: string | null): SkillRegistry {
  const key = skillsDir ?? '';
  let registry = registries.get(key);
  if (!registry) {
    registry = loadSkillRegistry(skillsDir ?? undefined);
    registries.set(key, registry);
  }
  return registry;
}

async function testHook(payload: JobBase): Promise<void> {
  if (payload.testSleepSeconds === null) return;
  await writeFile(join(payload.workspace, 'runner.pid'), String(process.pid));
  if (payload.testSleepSeconds > 0) await sleep(payload.testSleepSeconds * 1000);
}

/** Runs one job inside a render process. Input errors are thrown as DocopsInputError. */
export async function handleRenderJob(payload: RenderJobPayload): Promise<RunJobResult | InspectJobResult> {
  await testHook(payload);
  const registry = registryFor(payload.skillsDir);
  if (payload.kind === 'inspect') {
    const pkg = await openDocxPackage(payload.templatePath, {
      maxUncompressedBytes: payload.maxUncompressedBytes,
    });
    const skill = payload.skillName === null ? null : (registry.get(payload.skillName) ?? null);
    return inspectTemplate(pkg, skill);
  }
  const skill = registry.get(payload.skillName);
  if (!skill) throw new Error(`unknown skill ${payload.skillName}`);
  const outDir = join(payload.workspace, 'out');
  await mkdir(outDir, { recursive: true });
  const result = await renderJob({
    templatePath: payload.templatePath,
    task: payload.task,
    skill,
    policy: payload.policyYaml === null ? defaultPolicy() : parsePolicy(payload.policyYaml),
    options: payload.options,
    exitPrecedence: 'api',
    outDir,
    exportSuggestedPolicy: payload.exportSuggestedPolicy,
    debugDump: false,
    pdf:
      payload.sofficePath === null
        ? null
        : { sofficePath: payload.sofficePath, profileDir: join(payload.workspace, 'lo-profile') },
    maxUncompressedBytes: payload.maxUncompressedBytes,
  });
  return { exitCode: result.exitCode, message: result.message, outDir, files: result.files, pdf: result.pdf };
}

/**
 * One small render through the whole pipeline (strict checks included) in a scratch directory that is removed
 * again, so that the process's first real job runs on warm, compiled code.
 */
export async function warmUpRenderer(): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), 'docops-warmup-'));
  try {
    const templatePath = join(dir, 'template.docx');
    await writeFile(
      templatePath,
      buildDocx({ paragraphs: ['Title: 【MEETING_TITLE】', 'Date: 【MEETING_DATE】'] }),
    );
    const registry = registryFor(null);
    const skill = registry.get('meeting_notice');
    if (!skill) return;
    await renderJob({
      templatePath,
      task: { task_type: 'meeting_notice', payload: { meeting_title: 'warm-up' } },
      skill,
      policy: defaultPolicy(),
      options: {
        preset: 'strict',
        format_mode: 'strict',
        format_baseline: 'template',
        format_fix_mode: 'safe',
        format_report: 'json',
        unsupported_mode: 'error',
      },
      exitPrecedence: 'api',
      outDir: dir,
      exportSuggestedPolicy: true,
      debugDump: false,
      pdf: null,
      maxUncompressedBytes: 10 * 1024 * 1024,
    });
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}
