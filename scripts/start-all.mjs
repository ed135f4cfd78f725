#!/usr/bin/env node
// `npm start`: runs every service built so far on its embedded defaults, each on its port, prints
// `name → http://127.0.0.1:PORT`, and stops them all cleanly on Ctrl-C (SIGINT) or SIGTERM.
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));

/** name, bin (relative to the repo), port, the bin's server command — in the order of the services table. */
const SERVICES = [
  { name: 'docops', bin: 'services/docops/bin/docops.js', port: 8000 },
  { name: 'openworld-chem', bin: 'services/owsc/bin/openworld-chem.js', port: 8001, command: 'dashboard' },
  // The allocator's DATA_DIR default (./data) would share ./data/pglite with the RAG Assistant here.
  {
    name: 'file-allocator',
    bin: 'services/allocator/bin/file-allocator.js',
    port: 8002,
    env: { DATA_DIR: 'data/file-allocator', STORAGE_PATH: 'data/file-allocator/storage' },
  },
  { name: 'rag-assistant', bin: 'services/rag/bin/rag-assistant.js', port: 8003 },
  { name: 'raven-zero', bin: 'services/raven/bin/raven-zero.js', port: 8004 },
];

const available = SERVICES.filter((service) => existsSync(`${root}/${service.bin}`));
const children = new Map();
let stopping = false;

for (const service of available) {
  const child = spawn(
    process.execPath,
    [service.bin, service.command ?? 'serve', '--port', String(service.port)],
    {
      cwd: root,
      stdio: ['ignore', 'inherit', 'inherit'],
      // Variables the caller set win over the per-service defaults above.
      env: { ...service.env, ...process.env },
    },
  );
  children.set(child, service);
  child.on('exit', (code, signal) => {
    children.delete(child);
    if (!stopping) {
      console.error(`${service.name} exited (${signal ?? code}); stopping the others`);
      stop('SIGTERM', 1);
    } else if (children.size === 0) {
      process.exit(process.exitCode ?? 0);
    }
  });
}

const width = Math.max(...available.map((service) => service.name.length));
console.log('Quintet services:');
for (const service of available)
  console.log(`  ${service.name.padEnd(width)} → http://127.0.0.1:${service.port}`);
console.log('Ctrl-C stops them all.');

function stop(signal, code = 0) {
  if (stopping) return;
  stopping = true;
  process.exitCode = code;
  for (const child of children.keys()) child.kill(signal);
  if (children.size === 0) process.exit(code);
}

process.on('SIGINT', () => stop('SIGTERM'));
process.on('SIGTERM', () => stop('SIGTERM'));
