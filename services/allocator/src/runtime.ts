// Everything a running allocator process shares between its HTTP routes, its job executors and its commands.
import type { Database } from '@quintet/kernel/db';
import type { Logger } from '@quintet/kernel/log';
import type { AllocatorConfig } from './config.js';
import type { ClusterCentroids, PerceptualHashes } from './domain/clustering.js';
import type { Catalog, CatalogDatabase } from './domain/database.js';
import type { MediaEmbedder, TextEmbedder } from './domain/embedders.js';
import type { AllocatorMetrics } from './domain/metrics.js';
import type { FileStorage } from './domain/storage.js';

/** Puts job ids on the queue (the job row in the catalog is the source of truth, spec §3.5). */
export interface JobDispatcher {
  readonly backend: 'inproc' | 'redis';
  /** `retryCount` (default 0) tells attempts apart, so a retry is never mistaken for the attempt that scheduled it */
  enqueue(
    jobId: string,
    options?: { priority?: number; delayMs?: number; retryCount?: number },
  ): Promise<void>;
  /** true when the backend can take jobs (Redis reachable) */
  reachable(): Promise<boolean>;
}

/** Serialises dedup + cluster assignment + centroid updates (spec §3.5 critical section). */
export type ClusterLock = <T>(work: () => Promise<T>) => Promise<T>;

/**
 * Tells this process's caches (the search index) that assets changed or were deleted; other instances notice
 * through `asset.updated_at` polling and periodic reconciliation.
 */
export interface CatalogChanges {
  assetsChanged(assetIds: readonly string[]): void;
  assetsDeleted(assetIds: readonly string[]): void;
  onChange(
    listener: (event: { kind: 'changed' | 'deleted'; assetIds: readonly string[] }) => void,
  ): () => void;
}

export interface AllocatorRuntime {
  readonly config: AllocatorConfig;
  readonly logger: Logger;
  readonly database: Database<CatalogDatabase>;
  readonly catalog: Catalog;
  readonly storage: FileStorage;
  readonly metrics: AllocatorMetrics;
  readonly version: string;
  /** Date.now() at start */
  readonly startedAt: number;
  readonly mediaEmbedder: MediaEmbedder;
  readonly textEmbedder: TextEmbedder;
  readonly jobs: JobDispatcher;
  readonly clusterLock: ClusterLock;
  /** every cluster's centroid, for assignments under the cluster lock */
  readonly clusterCentroids: ClusterCentroids;
  /** the perceptual hashes near duplicates are looked for among, under the cluster lock */
  readonly perceptualHashes: PerceptualHashes;
  readonly changes: CatalogChanges;
}
