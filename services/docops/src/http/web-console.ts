// The web console (spec §3.8.7): a static page and its assets, guarded like /v1/meta, with a strict CSP.
import { readdir, readFile } from 'node:fs/promises';
import { pageSecurityHeaders } from '@quintet/kernel/security';
import { staticContentType } from '@quintet/kernel/static-files';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { DocopsContext } from '../server.js';
import { HttpError } from './errors.js';
import { guardDebugEndpoint } from './guard.js';

const WEB_DIR = new URL('../../web/', import.meta.url);

export const WEB_CONSOLE_CSP =
  "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'";

interface Asset {
  body: Buffer;
  type: string;
}

/** Reads the page and its assets once; they are served from memory. */
async function loadAssets(): Promise<{ page: Asset; assets: Map<string, Asset> }> {
  const page = {
    body: await readFile(new URL('index.html', WEB_DIR)),
    type: staticContentType('index.html') as string,
  };
  const assets = new Map<string, Asset>();
  const assetDir = new URL('assets/', WEB_DIR);
  for (const name of await readdir(assetDir)) {
    const type = staticContentType(name);
    if (type) assets.set(name, { body: await readFile(new URL(name, assetDir)), type });
  }
  return { page, assets };
}

export async function registerWebConsole(app: FastifyInstance, context: DocopsContext): Promise<void> {
  const { page, assets } = await loadAssets();
  const headers = pageSecurityHeaders(WEB_CONSOLE_CSP);
  const guard = (request: FastifyRequest) =>
    guardDebugEndpoint(request, context.config.enableWebConsole, context.config.webBasicAuth);
  const send = (reply: FastifyReply, asset: Asset) =>
    reply.headers(headers).header('cache-control', 'no-cache').type(asset.type).send(asset.body);

  app.get('/web', async (request, reply) => {
    guard(request);
    return send(reply, page);
  });
  app.get('/web/', async (request, reply) => {
    guard(request);
    return send(reply, page);
  });
  app.get<{ Params: { name: string } }>('/web/assets/:name', async (request, reply) => {
    guard(request);
    const asset = assets.get(request.params.name);
    if (!asset) throw new HttpError(404, 'NOT_FOUND', 'not found', { path: request.url.split('?')[0] });
    return send(reply, asset);
  });
}
