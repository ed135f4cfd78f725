// Entry of a render process (spawned by the HTTP process's worker pool).
import { serveJobs } from '@quintet/kernel/worker-child';
import { handleRenderJob, type RenderJobPayload } from './render-job.js';

serveJobs((payload) => handleRenderJob(payload as RenderJobPayload));
