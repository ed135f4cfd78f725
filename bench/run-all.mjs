#!/usr/bin/env node
// `npm run bench`: every service's benchmarks, one after another (they measure; they never fail a build).
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));
for (const service of ['docops', 'owsc', 'allocator', 'rag', 'raven']) {
  const script = `${root}/bench/${service}/bench.mjs`;
  if (!existsSync(script)) continue;
  console.log(`# ${service}`);
  const result = spawnSync(process.execPath, [script, ...process.argv.slice(2)], {
    stdio: 'inherit',
    cwd: root,
  });
  if (result.status !== 0) process.exitCode = result.status ?? 1;
}
