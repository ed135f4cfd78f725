// How render processes start. With the startup snapshot built at install time (`dist/render.blob`, see
// scripts/build-render-snapshot.mjs) a process begins with the render code loaded, compiled and warmed up;
// without it (or when it was built by another Node binary or from other code) the plain entry loads the code
// and renders a warm-up job itself before it reports ready.
import { fileURLToPath } from 'node:url';
import { buildStartupSnapshot, usableStartupSnapshot } from '@quintet/kernel/startup-snapshot';
import type { WorkerMode } from '@quintet/kernel/workers';
import { buildDocx } from './domain/docx/build.js';
import { defaultPolicy } from './domain/policy.js';
import type { SkillRegistry } from './domain/skills.js';
import { WARM_UP_ENV, type WarmUpMaterial } from './render-job.js';

// Anchored to dist/ (also when this module runs from src/ under the tests): processes run compiled code.
const RENDER_SCRIPT = fileURLToPath(new URL('../dist/render-process.js', import.meta.url));
const SNAPSHOT_ENTRY = fileURLToPath(new URL('../dist/render-snapshot.js', import.meta.url));
/** The snapshot blob, beside the compiled code (written by the install-time build). */
export const RENDER_SNAPSHOT_BLOB = fileURLToPath(new URL('../dist/render.blob', import.meta.url));

/** A small template, a built-in skill and the default policy: one render through the whole pipeline. */
function warmUpMaterial(skills: SkillRegistry): WarmUpMaterial | null {
  const skill = skills.get('meeting_notice');
  if (!skill) return null;
  return {
    templateBase64: Buffer.from(
      buildDocx({
        paragraphs: ['Title: 【MEETING_TITLE】', 'Date: 【MEETING_DATE】', 'Attendees: 【ATTENDEES】'],
      }),
    ).toString('base64'),
    skill,
    policy: defaultPolicy(),
    task: { task_type: skill.name, payload: { meeting_title: 'warm-up', attendees: ['a', 'b'] } },
  };
}

export interface RenderLaunch {
  script: string;
  execArgv: string[];
  /** Only what a render process needs, never the server's secrets (plus warm-up material for the plain entry). */
  env: Record<string, string>;
  /** true when processes start from the snapshot */
  snapshot: boolean;
}

/**
 * One-job processes (`spawn`, `cold`) start from the snapshot when it fits. A `forkserver` process starts once
 * per thousand jobs, so it gains nothing from it and keeps the smaller heap of the plain entry.
 */
export function renderProcessLaunch(skills: SkillRegistry, mode: WorkerMode): RenderLaunch {
  const env: Record<string, string> = {};
  for (const name of ['PATH', 'LANG', 'LC_ALL', 'TZ', 'HOME']) {
    const value = process.env[name];
    if (value !== undefined) env[name] = value;
  }
  const blob = mode === 'forkserver' ? null : usableStartupSnapshot(RENDER_SNAPSHOT_BLOB);
  // From the snapshot, the script path is only argv[1]: the snapshot's own main function serves jobs.
  if (blob !== null)
    return { script: RENDER_SCRIPT, execArgv: ['--snapshot-blob', blob], env, snapshot: true };
  const material = warmUpMaterial(skills);
  if (material) env[WARM_UP_ENV] = JSON.stringify(material);
  return { script: RENDER_SCRIPT, execArgv: [], env, snapshot: false };
}

/** Builds `dist/render.blob` with the built-in skills' warm-up job (install time; needs esbuild). */
export async function buildRenderSnapshot(skills: SkillRegistry): Promise<void> {
  const material = warmUpMaterial(skills);
  await buildStartupSnapshot({
    entry: SNAPSHOT_ENTRY,
    blob: RENDER_SNAPSHOT_BLOB,
    env: material ? { [WARM_UP_ENV]: JSON.stringify(material) } : {},
  });
}
