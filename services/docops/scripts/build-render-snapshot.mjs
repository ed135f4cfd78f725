#!/usr/bin/env node
import { loadSkillRegistry } from '../dist/domain/skills.js';
// Builds the render processes' startup snapshot (services/docops/dist/render.blob) after `tsc -b`. Without it
// DocOps still works: render processes then load their code at start (slower in `spawn` mode).
import { buildRenderSnapshot, RENDER_SNAPSHOT_BLOB } from '../dist/render-start.js';

try {
  await buildRenderSnapshot(loadSkillRegistry());
  console.log(`docops: render snapshot built (${RENDER_SNAPSHOT_BLOB})`);
} catch (error) {
  console.warn(
    `docops: no render snapshot, render processes will start from the plain entry: ${error?.message ?? error}`,
  );
}
