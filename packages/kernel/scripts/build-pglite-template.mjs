// Writes dist/pglite-template.tar.gz: the data directory of a freshly initialised PGlite, so that opening a
// new database loads it (about a second) instead of running initdb (several seconds). No schema: migrations
// stay with the services, and each builds its migrated template from this one (src/pglite-template.ts).
// Skips when the template is newer than both the installed PGlite and this script.
// Usage: node build-pglite-template.mjs [output file, default ../dist/pglite-template.tar.gz]
import { existsSync, statSync } from 'node:fs';
import { resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { PGlite } from '@electric-sql/pglite';
import { pglitePackageJsonPath, writeFileAtomically } from '../dist/pglite-template.js';

const scriptPath = fileURLToPath(import.meta.url);
const target =
  process.argv[2] === undefined
    ? fileURLToPath(new URL('../dist/pglite-template.tar.gz', import.meta.url))
    : resolve(process.argv[2]);

function isFresh() {
  if (!existsSync(target)) return false;
  const built = statSync(target).mtimeMs;
  return built > statSync(pglitePackageJsonPath()).mtimeMs && built > statSync(scriptPath).mtimeMs;
}

if (isFresh()) {
  console.log(`PGlite template up to date: ${target}`);
} else {
  const started = performance.now();
  const engine = await PGlite.create();
  let archive;
  try {
    await engine.query('select 1');
    // gzip: a tenth of the size, and its checksum lets the loader reject a damaged file before using it.
    archive = new Uint8Array(await (await engine.dumpDataDir('gzip')).arrayBuffer());
  } finally {
    await engine.close();
  }
  writeFileAtomically(target, archive);
  const seconds = ((performance.now() - started) / 1000).toFixed(1);
  console.log(`PGlite template written: ${target} (${archive.length} bytes, ${seconds} s)`);
}
