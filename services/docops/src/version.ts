import { readFileSync } from 'node:fs';

let cached: string | undefined;

/** The version of services/docops/package.json: `/v1/meta` `version` and `api_result.build.version`. */
export function serviceVersion(): string {
  cached ??= (
    JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version: string }
  ).version;
  return cached;
}
