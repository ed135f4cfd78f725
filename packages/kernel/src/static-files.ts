// What the services' pages need to serve their own files: content types by extension and the fingerprint rule
// that decides whether a file may be cached for good.
import { extname } from 'node:path';

const CONTENT_TYPES: Readonly<Record<string, string>> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.mjs': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.json': 'application/json; charset=utf-8',
  '.map': 'application/json; charset=utf-8',
  '.txt': 'text/plain; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.ico': 'image/x-icon',
  '.webp': 'image/webp',
  '.woff2': 'font/woff2',
};

/** The Content-Type of a page asset by its extension (any case), or undefined for an unknown one. */
export function staticContentType(path: string): string | undefined {
  return CONTENT_TYPES[extname(path).toLowerCase()];
}

// `app.3f9a2b1c.js`, `app-3f9a2b1c4d.css`: a content hash of 8+ hex characters right before the extension.
const FINGERPRINTED = /[.-][0-9a-f]{8,}\.[a-z0-9]+$/i;

/** Whether the file's name carries its content hash, so that it may be cached for a year as immutable. */
export function isFingerprinted(path: string): boolean {
  return FINGERPRINTED.test(path);
}
