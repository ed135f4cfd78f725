#!/usr/bin/env node
// Builds the embedded database's migrated template (services/rag/dist/pglite-schema-*.tar.gz) after `tsc -b`
// and the kernel's base template: a new DATA_DIR is then this archive unpacked instead of a database created
// and migrated at start-up. Without it (or with another EMBEDDING_DIM) the service creates the database itself.
import { buildMigratedTemplate } from '@quintet/kernel/db';
import { DEFAULT_EMBEDDING_DIM } from '../dist/config.js';
import { EMBEDDED_TEMPLATE_DIR, embeddedMigrationSets } from '../dist/domain/database.js';

const { path, built } = await buildMigratedTemplate(
  EMBEDDED_TEMPLATE_DIR,
  { vector: true },
  embeddedMigrationSets(DEFAULT_EMBEDDING_DIM),
);
console.log(`rag: database template ${built ? 'built' : 'up to date'} (${path})`);
