// The `file-allocator` bin (spec §3.2): serve, worker, migrate, dlq, reembed, backup/restore, healthcheck,
// openapi. Configuration comes from the environment over `.env` (spec S3); a bad value exits 1 with one line.
import { enableCompileCache } from 'node:module';

enableCompileCache();
await import('./cli/program.js');
