import { constants, PerformanceObserver } from 'node:perf_hooks';
import { describe, expect, it } from 'vitest';
import { GC_PACE_BYTES, paceStreamedBytes } from '../src/memory.js';

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
