// Entry of a render process (spawned by the HTTP process's worker pool). A spawn-mode process serves one job
// and exits, so start-up cost is paid per job: the compile cache shares compiled code between processes, and
// the warm-up render runs before the process reports ready, off the request path.
import { enableCompileCache } from 'node:module';

enableCompileCache();
const { serveJobs } = await import('@quintet/kernel/worker-child');
const { handleRenderJob, warmUpRenderer } = await import('./render-job.js');

serveJobs((payload) => handleRenderJob(payload as import('./render-job.js').RenderJobPayload), {
  warmUp: warmUpRenderer,
});
