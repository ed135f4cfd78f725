import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { constants, PerformanceObserver } from 'node:perf_hooks';
import { afterAll, describe, expect, it } from 'vitest';
import { GC_PACE_BYTES, MALLOC_TRIM_THRESHOLD_BYTES, paceStreamedBytes } from '../src/memory.js';

/** Minor collections seen while `work` runs (entries arrive asynchronously, hence the short wait). */
async function minorCollectionsDuring(work: () => void): Promise<number> {
  let minor = 0;
  const observer = new PerformanceObserver((list) => {
    for (const entry of list.getEntries()) {
      const kind = (entry as PerformanceEntry & { detail?: { kind?: number } }).detail?.kind;
      if (kind === constants.NODE_PERFORMANCE_GC_MINOR) minor++;
    }
  });
  observer.observe({ entryTypes: ['gc'] });
  work();
  await new Promise((resolve) => setTimeout(resolve, 50));
  observer.disconnect();
  return minor;
}

describe('paceStreamedBytes', () => {
  it('runs a minor collection each time another GC_PACE_BYTES of streamed data has passed', async () => {
    // Align the process-wide counter first, then stream exactly three paces in 64 KiB chunks.
    paceStreamedBytes(GC_PACE_BYTES);
    const chunk = 64 * 1024;
    const collections = await minorCollectionsDuring(() => {
      for (let sent = 0; sent < 3 * GC_PACE_BYTES; sent += chunk) paceStreamedBytes(chunk);
    });
    expect(collections).toBeGreaterThanOrEqual(3);
  });
});

describe('useFixedMallocTrim', () => {
  const dir = mkdtempSync(join(tmpdir(), 'kernel-malloc-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));
  const script = join(dir, 'bin.mjs');
  writeFileSync(
    script,
    `import { useFixedMallocTrim } from ${JSON.stringify(new URL('../src/memory.ts', import.meta.url).href)};
     useFixedMallocTrim();
     process.stdout.write(JSON.stringify({ pid: process.pid, value: process.env.MALLOC_TRIM_THRESHOLD_, args: process.argv.slice(2) }));`,
  );
  const run = (env: Record<string, string | undefined>) => {
    const child = spawnSync(process.execPath, ['--import', 'tsx', script, 'serve', '--port', '0'], {
      env: { ...process.env, ...env },
      encoding: 'utf8',
    });
    expect(child.status).toBe(0);
    return {
      childPid: child.pid,
      ...(JSON.parse(child.stdout) as { pid: number; value?: string; args: string[] }),
    };
  };

  it('restarts the process in place with the threshold set: same pid, same arguments', () => {
    const { childPid, pid, value, args } = run({ MALLOC_TRIM_THRESHOLD_: undefined });
    expect(pid).toBe(childPid);
    expect(value).toBe(String(MALLOC_TRIM_THRESHOLD_BYTES));
    expect(args).toEqual(['serve', '--port', '0']);
  });

  it("keeps the operator's value", () => {
    expect(run({ MALLOC_TRIM_THRESHOLD_: '4194304' }).value).toBe('4194304');
  });
});
