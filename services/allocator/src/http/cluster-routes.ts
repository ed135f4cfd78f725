// Cluster routes (spec §3.12): the admin API under /api/v1/admin/clusters and the original API's
// /api/v1/clusters (list, view, PATCH with rename/merge/update_threshold/confirm).
import type { FastifyInstance, FastifyRequest } from 'fastify';
import {
  type AdminActor,
  ClusterConflictError,
  type ClusterDetail,
  ClusterNotFoundError,
  type ClusterRecord,
  ClusterRequestError,
  clusterStatistics,
  confirmCluster,
  getCluster,
  getClusterDetail,
  listClusterMembers,
  listClusters,
  mergeCandidates,
  mergeClusters,
  renameCluster,
  updateClusterThreshold,
} from '../domain/cluster-admin.js';
import type { AllocatorRuntime } from '../runtime.js';
import { BodyReader, isoTime, isUuid, parseId, QueryReader, sendJson } from './conventions.js';
import { badRequest, conflict, notFound } from './errors.js';

const MAX_NAME_LENGTH = 255;
const ORIGINAL_VIEW_ASSETS = 100;
/** performed_by recorded for the original API's PATCH route, whose body has no such field */
const DEFAULT_PATCH_ACTOR = 'api';
const PATCH_ACTIONS = ['rename', 'merge', 'update_threshold', 'confirm'] as const;

type Params = { id: string };

function clusterJson(cluster: ClusterRecord) {
  return {
    id: cluster.id,
    name: cluster.name,
    asset_count: cluster.assetCount,
    threshold: cluster.threshold,
    provisional: cluster.provisional,
    metadata: cluster.metadata,
    created_at: isoTime(cluster.createdAt),
    updated_at: isoTime(cluster.updatedAt),
  };
}

function detailJson(cluster: ClusterDetail) {
  return {
    ...clusterJson(cluster),
    centroid_quality: cluster.centroidQuality,
    sample_asset_ids: cluster.sampleAssetIds,
  };
}

function statusOf(cluster: ClusterRecord): 'provisional' | 'active' {
  return cluster.provisional ? 'provisional' : 'active';
}

/** Domain errors → the spec's statuses. */
function translate(error: unknown): never {
  if (error instanceof ClusterNotFoundError) throw notFound(error.message);
  if (error instanceof ClusterConflictError) throw conflict(error.message);
  if (error instanceof ClusterRequestError) throw badRequest(error.message);
  throw error;
}

async function guarded<T>(work: () => Promise<T>): Promise<T> {
  try {
    return await work();
  } catch (error) {
    return translate(error);
  }
}

/** new_name / name: trimmed, 1..255 characters (else 422). */
function readName(body: BodyReader, field: string): string | undefined {
  const raw = body.string(field, { required: true });
  if (raw === undefined) return undefined;
  const name = raw.trim();
  if (name.length < 1 || name.length > MAX_NAME_LENGTH) {
    body.issue(field, `Name must be 1 to ${MAX_NAME_LENGTH} characters after trimming`, 'string_length');
    return undefined;
  }
  return name;
}

/** source_cluster_ids: a non-empty list of UUIDs (else 422). */
function readSourceIds(body: BodyReader): string[] | undefined {
  const ids = body.stringArray('source_cluster_ids', { required: true });
  if (ids === undefined) return undefined;
  if (ids.length === 0) {
    body.issue('source_cluster_ids', 'List should have at least 1 item', 'too_short');
    return undefined;
  }
  const invalid = ids.findIndex((id) => !isUuid(id));
  if (invalid >= 0) {
    body.issue('source_cluster_ids', `Item ${invalid} is not a valid UUID`, 'uuid_parsing');
    return undefined;
  }
  return ids.map((id) => id.toLowerCase());
}

/** threshold: a number (else 422) within [0, 1] (else 400, checked after the shape). */
function checkThresholdRange(threshold: number): void {
  if (!(threshold >= 0 && threshold <= 1)) throw badRequest('threshold must be between 0 and 1');
}

function actorFor(request: FastifyRequest, performedBy: string): AdminActor {
  return { performedBy, requestId: request.id };
}

/** Registers the admin cluster routes and the original API's cluster routes. */
export function registerClusterRoutes(app: FastifyInstance, runtime: AllocatorRuntime): void {
  const { catalog } = runtime;

  app.get('/api/v1/admin/clusters', async (request, reply) => {
    const query = new QueryReader(request.query as Record<string, unknown>);
    const provisionalOnly = query.bool('provisional_only', false);
    const minAssetsRaw = query.string('min_assets');
    const minAssets =
      minAssetsRaw === undefined || minAssetsRaw === ''
        ? undefined
        : query.int('min_assets', 0, 0, Number.MAX_SAFE_INTEGER);
    query.finish();
    const clusters = await listClusters(catalog, { provisionalOnly, minAssets });
    return sendJson(reply, 200, { clusters: clusters.map(clusterJson), count: clusters.length });
  });

  app.get('/api/v1/admin/clusters/statistics', async (_request, reply) =>
    sendJson(reply, 200, await clusterStatistics(catalog)),
  );

  app.get('/api/v1/admin/clusters/merge-candidates', async (request, reply) => {
    const query = new QueryReader(request.query as Record<string, unknown>);
    const threshold = query.number('similarity_threshold', 0.85, 0, 1);
    query.finish();
    const candidates = await mergeCandidates(catalog, threshold);
    return sendJson(reply, 200, { candidates, count: candidates.length });
  });

  app.get<{ Params: Params }>('/api/v1/admin/clusters/:id', async (request, reply) => {
    const id = parseId(request.params.id, 'cluster id');
    const detail = await getClusterDetail(catalog, id);
    if (detail === null) throw notFound(`Cluster ${id} not found`);
    return sendJson(reply, 200, detailJson(detail));
  });

  app.post<{ Params: Params }>('/api/v1/admin/clusters/:id/rename', async (request, reply) => {
    const id = parseId(request.params.id, 'cluster id');
    const body = BodyReader.from(request);
    const name = readName(body, 'new_name');
    const performedBy = body.string('performed_by', { required: true });
    body.finish();
    const cluster = await guarded(() =>
      renameCluster(runtime, id, name as string, actorFor(request, performedBy as string)),
    );
    return sendJson(reply, 200, {
      status: 'renamed',
      cluster: detailJson(cluster),
      message: `Cluster renamed to '${cluster.name}'`,
    });
  });

  app.post<{ Params: Params }>('/api/v1/admin/clusters/:id/merge', async (request, reply) => {
    const id = parseId(request.params.id, 'cluster id');
    const body = BodyReader.from(request);
    const sources = readSourceIds(body);
    const performedBy = body.string('performed_by', { required: true });
    body.finish();
    const result = await guarded(() =>
      mergeClusters(runtime, id, sources as string[], actorFor(request, performedBy as string)),
    );
    const merged = new Set(sources).size;
    return sendJson(reply, 200, {
      status: 'merged',
      cluster: detailJson(result.cluster),
      assets_moved: result.assetsMoved,
      message: `Merged ${merged} cluster${merged === 1 ? '' : 's'} into '${result.cluster.name}'`,
    });
  });

  app.post<{ Params: Params }>('/api/v1/admin/clusters/:id/threshold', async (request, reply) => {
    const id = parseId(request.params.id, 'cluster id');
    const body = BodyReader.from(request);
    const threshold = body.number('threshold', { required: true });
    const performedBy = body.string('performed_by', { required: true });
    const reEvaluate = body.bool('re_evaluate', false);
    body.finish();
    checkThresholdRange(threshold as number);
    const result = await guarded(() =>
      updateClusterThreshold(
        runtime,
        id,
        threshold as number,
        reEvaluate,
        actorFor(request, performedBy as string),
      ),
    );
    return sendJson(reply, 200, {
      status: 'updated',
      cluster: detailJson(result.cluster),
      reassigned_assets: result.reassignedAssets,
      message: `Threshold updated to ${threshold}`,
    });
  });

  app.post<{ Params: Params }>('/api/v1/admin/clusters/:id/confirm', async (request, reply) => {
    const id = parseId(request.params.id, 'cluster id');
    const body = BodyReader.from(request);
    const performedBy = body.string('performed_by', { required: true });
    body.finish();
    const cluster = await guarded(() =>
      confirmCluster(runtime, id, actorFor(request, performedBy as string)),
    );
    return sendJson(reply, 200, {
      status: 'confirmed',
      cluster: detailJson(cluster),
      message: `Cluster '${cluster.name}' confirmed`,
    });
  });

  // The original API (docs/API.md of the original implementation).
  app.get('/api/v1/clusters', async (request, reply) => {
    const query = new QueryReader(request.query as Record<string, unknown>);
    const status = query.string('status');
    query.finish();
    if (status !== undefined && status !== '' && status !== 'provisional' && status !== 'active')
      throw badRequest(`Invalid status '${status}': expected provisional or active`);
    const provisional = status === 'provisional' ? true : status === 'active' ? false : undefined;
    const clusters = await listClusters(catalog, { provisional });
    return sendJson(reply, 200, {
      clusters: clusters.map((cluster) => ({
        id: cluster.id,
        name: cluster.name,
        asset_count: cluster.assetCount,
        status: statusOf(cluster),
        threshold: cluster.threshold,
        created_at: isoTime(cluster.createdAt),
      })),
      count: clusters.length,
    });
  });

  app.get<{ Params: Params }>('/api/v1/clusters/:id', async (request, reply) => {
    const id = parseId(request.params.id, 'cluster id');
    const cluster = await getCluster(catalog, id);
    if (cluster === null) throw notFound(`Cluster ${id} not found`);
    const assets = await listClusterMembers(catalog, id, ORIGINAL_VIEW_ASSETS);
    return sendJson(reply, 200, {
      id: cluster.id,
      name: cluster.name,
      status: statusOf(cluster),
      threshold: cluster.threshold,
      asset_count: cluster.assetCount,
      assets: assets.map((asset) => ({
        id: asset.id,
        uri: asset.uri,
        content_type: asset.contentType,
        created_at: isoTime(asset.createdAt),
      })),
    });
  });

  app.patch<{ Params: Params }>('/api/v1/clusters/:id', async (request, reply) => {
    const id = parseId(request.params.id, 'cluster id');
    const body = BodyReader.from(request);
    const action = body.string('action', { required: true });
    body.finish();
    if (!(PATCH_ACTIONS as readonly string[]).includes(action as string))
      throw badRequest(`Unknown action '${action}': expected one of ${PATCH_ACTIONS.join(', ')}`);
    const performedBy = body.string('performed_by') ?? DEFAULT_PATCH_ACTOR;
    const actor = actorFor(request, performedBy);
    let updated: ClusterRecord;
    switch (action) {
      case 'rename': {
        const name = readName(body, 'name');
        body.finish();
        updated = await guarded(() => renameCluster(runtime, id, name as string, actor));
        break;
      }
      case 'merge': {
        const sources = readSourceIds(body);
        body.finish();
        updated = (await guarded(() => mergeClusters(runtime, id, sources as string[], actor))).cluster;
        break;
      }
      case 'update_threshold': {
        const threshold = body.number('threshold', { required: true });
        const reEvaluate = body.bool('re_evaluate', false);
        body.finish();
        checkThresholdRange(threshold as number);
        updated = (
          await guarded(() => updateClusterThreshold(runtime, id, threshold as number, reEvaluate, actor))
        ).cluster;
        break;
      }
      default:
        body.finish();
        updated = await guarded(() => confirmCluster(runtime, id, actor));
    }
    return sendJson(reply, 200, {
      cluster_id: id,
      action,
      status: 'success',
      updated_at: isoTime(updated.updatedAt),
    });
  });
}
