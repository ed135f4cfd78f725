import { packageVersion } from '@quintet/kernel/package-info';

/** The version of services/docops/package.json: `/v1/meta` `version` and `api_result.build.version`. */
export function serviceVersion(): string {
  return packageVersion(new URL('../package.json', import.meta.url));
}
