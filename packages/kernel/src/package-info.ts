import { readFileSync } from 'node:fs';

const versions = new Map<string, string>();

/** The `version` of a package.json (read once per file): what a service reports as its version. */
export function packageVersion(packageJsonUrl: URL): string {
  let version = versions.get(packageJsonUrl.href);
  if (version === undefined) {
    version = (JSON.parse(readFileSync(packageJsonUrl, 'utf8')) as { version: string }).version;
    versions.set(packageJsonUrl.href, version);
  }
  return version;
}
