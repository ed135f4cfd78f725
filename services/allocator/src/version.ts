import { packageVersion } from '@quintet/kernel/package-info';

/** The version of services/allocator/package.json (`/health.version`, `--version`, the webhook User-Agent). */
export function serviceVersion(): string {
  return packageVersion(new URL('../package.json', import.meta.url));
}
