// `file-allocator dlq list|show|requeue|discard` (spec §3.2, §3.14) on the configured database.
import type { AllocatorRuntime } from '../runtime.js';
import { CliFailure, cliConfig, commandLogger, runCommand, say } from './runtime.js';

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/** Runs `work` with a runtime whose executors are not started (nothing is processed by the command). */
async function withRuntime<T>(work: (runtime: AllocatorRuntime) => Promise<T>): Promise<T> {
  const config = cliConfig();
  const logger = await commandLogger(config);
  const { createRuntime } = await import('../server.js');
  const started = await createRuntime(config, { logger });
  try {
    return await work(started.runtime);
  } finally {
    await started.close();
  }
}

function checkId(jobId: string): string {
  if (!UUID.test(jobId)) throw new CliFailure(`invalid job id '${jobId}': expected a UUID`);
  return jobId.toLowerCase();
}

export async function dlqList(flags: { jobType?: string; limit: number; json?: boolean }): Promise<void> {
  await runCommand(() =>
    withRuntime(async (runtime) => {
      const { listDeadLetters } = await import('../domain/dlq.js');
      const result = await listDeadLetters(runtime, {
        ...(flags.jobType === undefined ? {} : { jobType: flags.jobType }),
        limit: flags.limit,
      });
      if (flags.json) say(JSON.stringify(result, null, 2));
      else {
        say(`${result.count} of ${result.total} dead-lettered job(s)`);
        for (const job of result.jobs)
          say(
            `${job.job_id}  ${job.job_type.padEnd(5)}  retries=${job.retries}  ${job.dlq_timestamp ?? ''}  ${job.error ?? ''}`,
          );
      }
      return 0;
    }),
  );
}

export async function dlqShow(jobId: string): Promise<void> {
  await runCommand(() =>
    withRuntime(async (runtime) => {
      const { getDeadLetter } = await import('../domain/dlq.js');
      const entry = await getDeadLetter(runtime, checkId(jobId));
      if (entry === null) throw new CliFailure(`job ${jobId} is not in the dead-letter queue`);
      say(JSON.stringify(entry, null, 2));
      return 0;
    }),
  );
}

export async function dlqRequeue(jobId: string): Promise<void> {
  await runCommand(() =>
    withRuntime(async (runtime) => {
      const { requeueDeadLetter } = await import('../domain/dlq.js');
      if (!(await requeueDeadLetter(runtime, checkId(jobId))))
        throw new CliFailure(`job ${jobId} is not in the dead-letter queue`);
      say(`job ${jobId} requeued`);
      return 0;
    }),
  );
}

export async function dlqDiscard(jobId: string): Promise<void> {
  await runCommand(() =>
    withRuntime(async (runtime) => {
      const { discardDeadLetter } = await import('../domain/dlq.js');
      if (!(await discardDeadLetter(runtime, checkId(jobId))))
        throw new CliFailure(`job ${jobId} is not in the dead-letter queue`);
      say(`job ${jobId} discarded`);
      return 0;
    }),
  );
}

export { withRuntime };
