// Entry of a render process (spawned by the HTTP process's worker pool) when it does not start from the
// startup snapshot (render-start.ts). A spawn-mode process serves one job and exits, so start-up cost is paid
// per job: the compile cache shares compiled code between processes, and the warm-up render runs before the
// process reports ready, off the request path. A forkserver process lives for many jobs: after a big one it
// collects its garbage, so a run of big documents does not pile up memory.
import { enableCompileCache } from 'node:module';

enableCompileCache();
const { serveJobs } = await import('@quintet/kernel/worker-child');
const { handleRenderJob, warmUpRenderer } = await import('./render-job.js');

serveJobs((payload) => handleRenderJob(payload as import('./render-job.js').RenderJobPayload), {
  warmUp: warmUpRenderer,
  collectAboveRssBytes: 160 * 1024 * 1024,
});
