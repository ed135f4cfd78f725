// What happens when a job reaches a terminal state (spec §3.13, §3.16): its folder batch is recounted, and
// its callback_url receives the job status body — in the background, never blocking processing.
import { namedLogger } from '@quintet/kernel/log';
import type { AllocatorRuntime } from '../../runtime.js';
import { updateBatchProgress } from '../folder-ingest.js';
import { jobStatusBody } from '../ingest.js';
import { recordLineageList } from '../lineage.js';
import { deliverWebhook, type WebhookEvent } from '../webhooks.js';

/** Webhook deliveries still running (awaited on shutdown so none is cut off needlessly). */
const pendingDeliveries = new Set<Promise<void>>();

/** Retry delays between delivery attempts (spec §3.16: 1, 2, 4, 8 s); tests shorten them. */
let deliveryBackoffMs: readonly number[] = [1000, 2000, 4000, 8000];

/** Shortens the webhook retry delays (tests only: the spec's delays would make a failing receiver take 15 s). */
export function setWebhookBackoffForTests(backoffMs: readonly number[]): void {
  deliveryBackoffMs = backoffMs;
}

export async function notifyJobTerminal(
  runtime: AllocatorRuntime,
  jobId: string,
  event: WebhookEvent,
): Promise<void> {
  const job = await runtime.catalog
    .selectFrom('job')
    .select(['id', 'request_id', 'batch_id', 'callback_url', 'asset_ids'])
    .where('id', '=', jobId)
    .executeTakeFirst();
  if (job === undefined) return;
  if (job.batch_id !== null) {
    await updateBatchProgress(runtime, job.batch_id).catch((error: unknown) =>
      runtime.logger.warn({ err: error, batch_id: job.batch_id }, 'batch progress update failed'),
    );
  }
  if (job.callback_url === null) return;
  const body = await jobStatusBody(runtime, jobId);
  if (body === null) return;
  const url = job.callback_url;
  const delivery = deliverWebhook(url, event, body, {
    version: runtime.version,
    secret: runtime.config.webhookSecret,
    backoffMs: deliveryBackoffMs,
  })
    .then(async (result) => {
      // One entry per asset of the job, so each asset's lineage shows the notification.
      const detail = {
        job_id: jobId,
        event,
        delivery_id: result.deliveryId,
        attempts: result.attempts,
        status: result.status,
      };
      const assetIds = job.asset_ids.length > 0 ? job.asset_ids : [null];
      await recordLineageList(
        runtime.catalog,
        assetIds.map((assetId) => ({
          requestId: job.request_id,
          assetId,
          stage: result.delivered ? 'webhook_delivered' : 'webhook_failed',
          success: result.delivered,
          errorMessage: result.error,
          detail,
        })),
      );
    })
    .catch((error: unknown) =>
      namedLogger(runtime.logger, 'allocator.worker').warn(
        { err: error, job_id: jobId },
        'webhook delivery failed',
      ),
    )
    .finally(() => pendingDeliveries.delete(delivery));
  pendingDeliveries.add(delivery);
}

/** Resolves once every running webhook delivery has finished (or after `timeoutMs`). */
export async function settleWebhookDeliveries(timeoutMs: number): Promise<void> {
  await Promise.race([
    Promise.all(pendingDeliveries),
    new Promise((resolve) => setTimeout(resolve, timeoutMs).unref()),
  ]);
}
