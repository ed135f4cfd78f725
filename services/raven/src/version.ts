import { packageVersion } from '@quintet/kernel/package-info';

/** The version of services/raven/package.json (`/health/` `version`). */
export function serviceVersion(): string {
  return packageVersion(new URL('../package.json', import.meta.url));
}
