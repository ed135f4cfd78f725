#!/usr/bin/env node
// Builds the embedded catalog's migrated template (services/allocator/dist/pglite-schema-*.tar.gz) after
// `tsc -b` and the kernel's base template: a new DATA_DIR is then this archive unpacked instead of a catalog
// created and migrated at start-up. Without it (or with another EMBEDDING_DIM) the service creates it itself.
import { buildMigratedTemplate } from '@quintet/kernel/db';
import { DEFAULT_EMBEDDING_DIM } from '../dist/config.js';
import { catalogMigrationSets, EMBEDDED_TEMPLATE_DIR } from '../dist/domain/database.js';

const { path, built } = await buildMigratedTemplate(
  EMBEDDED_TEMPLATE_DIR,
  { vector: true },
  catalogMigrationSets(DEFAULT_EMBEDDING_DIM),
);
console.log(`allocator: database template ${built ? 'built' : 'up to date'} (${path})`);
