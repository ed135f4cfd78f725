#!/usr/bin/env node
// The memory floor of the embedded store, for O7: a process that only opens a PGlite data directory (created
// when missing) with the service's shared_buffers and answers `select 1`, then idles as a server would.
// Prints one JSON line: {"rss_mb": …, "wasm_heap_mb": …}. Usage: node pglite-floor.mjs <data-dir>
import { readFileSync } from 'node:fs';
import { PGlite } from '@electric-sql/pglite';

const [dataDir] = process.argv.slice(2);
if (dataDir === undefined) throw new Error('usage: pglite-floor.mjs <data-dir>');
const db = await PGlite.create({
  dataDir,
  startParams: [...PGlite.defaultStartParams, '-c', 'shared_buffers=16MB'],
});
await db.query('select 1');
await new Promise((resolve) => setTimeout(resolve, 1500));
const rssKb = Number(readFileSync('/proc/self/status', 'utf8').match(/VmRSS:\s+(\d+)/)?.[1]);
console.log(
  JSON.stringify({
    rss_mb: Math.round(rssKb / 102.4) / 10,
    wasm_heap_mb: Math.round(process.memoryUsage().external / 104857.6) / 10,
  }),
);
await db.close();
