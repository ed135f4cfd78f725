import { packageVersion } from '@quintet/kernel/package-info';

/** The version of services/rag/package.json (`/health` and `version`). */
export function serviceVersion(): string {
  return packageVersion(new URL('../package.json', import.meta.url));
}
