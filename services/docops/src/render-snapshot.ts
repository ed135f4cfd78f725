// Entry of the render processes' startup snapshot (see render-start.ts). It runs once, under
// `node --build-snapshot`: it loads the render code and renders the warm-up job, and the heap after that is
// what every render process then starts from; the deserialized main function serves the jobs.
import { startupSnapshot } from 'node:v8';
import { serveJobs } from '@quintet/kernel/worker-child';
import { handleRenderJob, type RenderJobPayload, warmUpRenderer } from './render-job.js';

if (!startupSnapshot.isBuildingSnapshot()) {
  throw new Error('render-snapshot is a snapshot entry: build it with scripts/build-render-snapshot.mjs');
}
void warmUpRenderer();
startupSnapshot.setDeserializeMainFunction(() => {
  serveJobs((payload) => handleRenderJob(payload as RenderJobPayload));
});
