import { readFileSync } from 'node:fs';

let cached: string | undefined;

/** The version of services/raven/package.json (`/health/` `version`). */
export function serviceVersion(): string {
  cached ??= (
    JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version: string }
  ).version;
  return cached;
}
