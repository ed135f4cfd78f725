// The dashboard page and its assets (spec §3.5, §3.8): `GET /` → web/index.html, `GET /static/*` → web/ files
// and the uPlot build, with content types and the cache rules (one hour; fingerprinted names: immutable, a year).
import { readFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { dirname, join, normalize, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import { isFingerprinted, staticContentType } from '@quintet/kernel/static-files';
import type { FastifyInstance } from 'fastify';
import { sendDetail } from './conventions.js';

/** The service's `web/` directory (the same relative place from `src/http` and `dist/http`). */
export const WEB_DIR = fileURLToPath(new URL('../../web/', import.meta.url));

const UPLOT_DIST = dirname(createRequire(import.meta.url).resolve('uplot'));

/** Vendor files served from the installed packages rather than copied into web/. */
const VENDOR_FILES: Readonly<Record<string, string>> = {
  'vendor/uplot.min.js': join(UPLOT_DIST, 'uPlot.iife.min.js'),
  'vendor/uPlot.min.js': join(UPLOT_DIST, 'uPlot.iife.min.js'),
  'vendor/uplot.esm.js': join(UPLOT_DIST, 'uPlot.esm.js'),
  'vendor/uPlot.min.css': join(UPLOT_DIST, 'uPlot.min.css'),
  'vendor/uplot.min.css': join(UPLOT_DIST, 'uPlot.min.css'),
};

const ONE_HOUR = 'public, max-age=3600';
const ONE_YEAR_IMMUTABLE = 'public, max-age=31536000, immutable';

/** The file under web/ (or a vendor file) for a `/static/` sub-path, or null when it is outside them. */
export function staticFilePath(subPath: string): string | null {
  const vendor = VENDOR_FILES[subPath];
  if (vendor !== undefined) return vendor;
  if (subPath === '' || subPath.includes('\0')) return null;
  const resolved = normalize(join(WEB_DIR, subPath));
  return resolved.startsWith(WEB_DIR.endsWith(sep) ? WEB_DIR : WEB_DIR + sep) ? resolved : null;
}

async function readOrNull(path: string): Promise<Buffer | null> {
  try {
    return await readFile(path);
  } catch {
    return null;
  }
}

/** Registers `GET /` and `GET /static/*` (HEAD too). */
export function registerWebRoutes(app: FastifyInstance): void {
  app.get('/', async (_request, reply) => {
    const page = await readOrNull(join(WEB_DIR, 'index.html'));
    if (page === null) return sendDetail(reply, 404, 'Not Found');
    return reply.header('cache-control', 'no-cache').type('text/html; charset=utf-8').send(page);
  });

  app.get('/static/*', async (request, reply) => {
    const subPath = (request.params as { '*': string })['*'];
    const path = staticFilePath(subPath);
    const content = path === null ? null : await readOrNull(path);
    if (path === null || content === null) return sendDetail(reply, 404, 'Not Found');
    return reply
      .header('cache-control', isFingerprinted(subPath) ? ONE_YEAR_IMMUTABLE : ONE_HOUR)
      .type(staticContentType(path) ?? 'application/octet-stream')
      .send(content);
  });
}
