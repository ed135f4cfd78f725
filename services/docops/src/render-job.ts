// What the HTTP process asks a render process to do, and how the render process does it. Everything a job
// reads or writes lives in its own workspace; module-level state is limited to read-only caches. The HTTP
// process resolves the skill and the policy before sending a job, so a render process never loads the skill
// registry or a YAML parser: that keeps the start of a fresh (spawn-mode) process short.
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { inspectTemplate } from './domain/docx/inspect.js';
import { openDocxPackage } from './domain/docx/package.js';
import type { Policy } from './domain/policy.js';
import { MemoryReportSink } from './domain/reports.js';
import { renderJob } from './domain/run.js';
import type { Skill } from './domain/skills.js';
import type { Task } from './domain/task.js';
import type { EffectiveOptions, ExitCode } from './domain/types.js';

interface JobBase {
  workspace: string;
  templatePath: string;
  maxUncompressedBytes: number;
  /** test mode only: write runner.pid and sleep this long before working */
  testSleepSeconds: number | null;
}

export interface RunJobPayload extends JobBase {
  kind: 'run';
  task: Task;
  skill: Skill;
  policy: Policy;
  options: EffectiveOptions;
  exportSuggestedPolicy: boolean;
  sofficePath: string | null;
}

export interface InspectJobPayload extends JobBase {
  kind: 'inspect';
  skill: Skill | null;
}

export type RenderJobPayload = RunJobPayload | InspectJobPayload;

export interface RunJobResult {
  exitCode: ExitCode;
  message: string;
  /** where the file outputs (out.docx, out.pdf) are */
  outDir: string;
  /** output names in zip order */
  files: string[];
  /** the text reports, by name (every name of `files` not here is a file in outDir) */
  reports: Record<string, string>;
  pdf: { requested: boolean; status: 'ok' | 'failed' | 'not_requested'; error?: string };
}

export type InspectJobResult = ReturnType<typeof inspectTemplate>;

/** What a fresh render process renders once before it reports ready (see `warmUpRenderer`). */
export interface WarmUpMaterial {
  templateBase64: string;
  skill: Skill;
  policy: Policy;
  task: Task;
}

/** The environment variable carrying the warm-up material (JSON) to render processes. */
export const WARM_UP_ENV = 'DOCOPS_RENDER_WARM_UP';

async function testHook(payload: JobBase): Promise<void> {
  if (payload.testSleepSeconds === null) return;
  await writeFile(join(payload.workspace, 'runner.pid'), String(process.pid));
  if (payload.testSleepSeconds > 0) await sleep(payload.testSleepSeconds * 1000);
}

/** Runs one job inside a render process. Input errors are thrown as DocopsInputError. */
export async function handleRenderJob(payload: RenderJobPayload): Promise<RunJobResult | InspectJobResult> {
  await testHook(payload);
  if (payload.kind === 'inspect') {
    const pkg = await openDocxPackage(payload.templatePath, {
      maxUncompressedBytes: payload.maxUncompressedBytes,
    });
    return inspectTemplate(pkg, payload.skill);
  }
  const outDir = join(payload.workspace, 'out');
  await mkdir(outDir, { recursive: true });
  const reports = new MemoryReportSink();
  const result = await renderJob({
    templatePath: payload.templatePath,
    task: payload.task,
    skill: payload.skill,
    policy: payload.policy,
    options: payload.options,
    exitPrecedence: 'api',
    outDir,
    reports,
    exportSuggestedPolicy: payload.exportSuggestedPolicy,
    debugDump: false,
    pdf:
      payload.sofficePath === null
        ? null
        : { sofficePath: payload.sofficePath, profileDir: join(payload.workspace, 'lo-profile') },
    maxUncompressedBytes: payload.maxUncompressedBytes,
  });
  return {
    exitCode: result.exitCode,
    message: result.message,
    outDir,
    files: result.files,
    reports: reports.texts,
    pdf: result.pdf,
  };
}

/**
 * One render through the whole pipeline (strict checks included) in a scratch directory that is removed again,
 * so that the process's first real job runs on warm, compiled code. The material comes from the HTTP process
 * (WARM_UP_ENV); without it there is nothing to warm up.
 */
export async function warmUpRenderer(): Promise<void> {
  const text = process.env[WARM_UP_ENV];
  delete process.env[WARM_UP_ENV];
  if (!text) return;
  const material = JSON.parse(text) as WarmUpMaterial;
  const dir = await mkdtemp(join(tmpdir(), 'docops-warmup-'));
  try {
    const templatePath = join(dir, 'template.docx');
    await writeFile(templatePath, Buffer.from(material.templateBase64, 'base64'));
    await handleRenderJob({
      kind: 'run',
      workspace: dir,
      templatePath,
      task: material.task,
      skill: material.skill,
      policy: material.policy,
      options: {
        preset: 'strict',
        format_mode: 'strict',
        format_baseline: 'template',
        format_fix_mode: 'safe',
        format_report: 'json',
        unsupported_mode: 'error',
      },
      exportSuggestedPolicy: true,
      sofficePath: null,
      maxUncompressedBytes: 10 * 1024 * 1024,
      testSleepSeconds: null,
    });
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}
