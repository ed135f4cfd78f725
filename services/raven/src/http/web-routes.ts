// The web UI (spec §3.9, §5 B1): `GET /` upload page, `GET /d` share page (key in the URL fragment, never sent
// on load) and their assets under `/static/<name>`. Every file is read once at start-up; `/static/` serves only
// the files present then (flat names, no sub-directories), anything else is the usual 404.
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { staticContentType } from '@quintet/kernel/static-files';
import type { FastifyInstance, FastifyReply } from 'fastify';
import { PAGE_CSP } from './conventions.js';
import { sendDetail } from './errors.js';

/** The directory holding index.html, d.html and static/ (the same from src/ and dist/). */
export const WEB_ROOT = resolve(import.meta.dirname, '../../web');

const STATIC_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]*$/;

interface Asset {
  body: Buffer;
  contentType: string;
}

/** The flat allow-list of `/static/` files present now: name → contents and type. */
export function loadStaticAssets(dir: string): Map<string, Asset> {
  const assets = new Map<string, Asset>();
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch {
    return assets;
  }
  for (const name of names) {
    if (!STATIC_NAME.test(name)) continue;
    const path = join(dir, name);
    if (!statSync(path).isFile()) continue;
    assets.set(name, {
      body: readFileSync(path),
      contentType: staticContentType(name) ?? 'application/octet-stream',
    });
  }
  return assets;
}

function sendPage(reply: FastifyReply, html: Buffer): FastifyReply {
  return reply.header('content-security-policy', PAGE_CSP).type('text/html; charset=utf-8').send(html);
}

/** Registers `/`, `/d` (and `/d/`) and `/static/:name`. */
export function registerWebRoutes(app: FastifyInstance, root: string = WEB_ROOT): void {
  const index = readFileSync(join(root, 'index.html'));
  const share = readFileSync(join(root, 'd.html'));
  const assets = loadStaticAssets(join(root, 'static'));

  app.get('/', async (_request, reply) => sendPage(reply, index));
  for (const url of ['/d', '/d/']) {
    app.get(url, async (_request, reply) => sendPage(reply, share));
  }
  app.get<{ Params: { name: string } }>('/static/:name', async (request, reply) => {
    const asset = assets.get(request.params.name);
    if (asset === undefined) return sendDetail(reply, 404, 'Not Found');
    return reply.type(asset.contentType).send(asset.body);
  });
}
