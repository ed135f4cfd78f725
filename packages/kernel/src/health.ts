// Named dependency checks behind live / ready / health endpoints. Each service maps the result onto its own
// paths and bodies.

export interface CheckResult {
  ok: boolean;
  /** anything worth showing (latency, counts, a short reason) */
  detail?: Record<string, unknown>;
}

export type HealthCheck = () => Promise<CheckResult> | CheckResult;

export interface HealthReport {
  ok: boolean;
  checks: Record<string, CheckResult>;
}

/** A set of named checks, each bounded by a timeout so one hung dependency cannot hang the probe. */
export class HealthChecks {
  private readonly checks = new Map<string, HealthCheck>();

  constructor(private readonly timeoutMs = 2000) {}

  register(name: string, check: HealthCheck): this {
    this.checks.set(name, check);
    return this;
  }

  async run(): Promise<HealthReport> {
    const entries = await Promise.all(
      [...this.checks].map(async ([name, check]) => [name, await this.runOne(check)] as const),
    );
    const checks = Object.fromEntries(entries);
    return { ok: entries.every(([, result]) => result.ok), checks };
  }

  private async runOne(check: HealthCheck): Promise<CheckResult> {
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<CheckResult>((resolve) => {
      timer = setTimeout(() => resolve({ ok: false, detail: { reason: 'timeout' } }), this.timeoutMs);
    });
    try {
      return await Promise.race([Promise.resolve().then(check), timeout]);
    } catch (error) {
      return { ok: false, detail: { reason: error instanceof Error ? error.message : 'failed' } };
    } finally {
      clearTimeout(timer);
    }
  }
}
