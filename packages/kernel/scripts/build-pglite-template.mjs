// Writes dist/pglite-template.tar.gz: the data directory of a freshly initialised PGlite, so that opening a
// new database loads it (about a second) instead of running initdb (several seconds). No schema: migrations
// stay with the services. Skips when the template is newer than both the installed PGlite and this script.
// Usage: node build-pglite-template.mjs [output file, default ../dist/pglite-template.tar.gz]
import { existsSync, mkdirSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { PGlite } from '@electric-sql/pglite';

const scriptPath = fileURLToPath(import.meta.url);
const target =
  process.argv[2] === undefined
    ? fileURLToPath(new URL('../dist/pglite-template.tar.gz', import.meta.url))
    : resolve(process.argv[2]);

/** The installed package.json of PGlite (its `exports` do not expose it, so walk up from the entry point). */
function pglitePackageJson() {
  let dir = dirname(fileURLToPath(import.meta.resolve('@electric-sql/pglite')));
  while (!existsSync(join(dir, 'package.json'))) {
    const parent = dirname(dir);
    if (parent === dir) throw new Error('package.json of @electric-sql/pglite not found');
    dir = parent;
  }
  return join(dir, 'package.json');
}

function isFresh() {
  if (!existsSync(target)) return false;
  const built = statSync(target).mtimeMs;
  return built > statSync(pglitePackageJson()).mtimeMs && built > statSync(scriptPath).mtimeMs;
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
  mkdirSync(dirname(target), { recursive: true });
  // Written aside and renamed: a reader never sees half a file, and an interrupted build leaves none.
  const partial = `${target}.${process.pid}.tmp`;
  try {
    writeFileSync(partial, archive);
    renameSync(partial, target);
  } catch (error) {
    rmSync(partial, { force: true });
    throw error;
  }
  const seconds = ((performance.now() - started) / 1000).toFixed(1);
  console.log(`PGlite template written: ${target} (${archive.length} bytes, ${seconds} s)`);
}
