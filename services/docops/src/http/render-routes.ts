// POST /v1/run and POST /v1/inspect (spec §3.8.6, §3.8.8): upload → checks in the spec's order → a slot →
// a render process → the streamed zip (or the inspection JSON). Every exit path removes the workspace.
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { GateFullError } from '@quintet/kernel/limits';
import { type Logger, namedLogger } from '@quintet/kernel/log';
import {
  discardRequestBody,
  MultipartFormatError,
  MultipartLimitError,
  type MultipartResult,
  receiveMultipart,
} from '@quintet/kernel/multipart';
import { JobFailedError, JobTimeoutError, WorkerCrashedError } from '@quintet/kernel/workers';
import { ZipStreamWriter } from '@quintet/kernel/zip-stream';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { defaultPolicy, PolicyError, parsePolicy } from '../domain/policy.js';
import type { Skill } from '../domain/skills.js';
import { parseTaskJson, type Task, TaskJsonError, TaskSchemaError, validateTask } from '../domain/task.js';
import type { InspectJobPayload, InspectJobResult, RunJobPayload, RunJobResult } from '../render-job.js';
import type { DocopsContext } from '../server.js';
import { serviceVersion } from '../version.js';
import { badRequest, conflict, HttpError, outcomeOfStatus, unsupportedMedia } from './errors.js';
import { readRunForm, textPart } from './run-form.js';

const MAX_TEXT_PART_BYTES = 65_536;
const MAX_PARTS = 20;

type FailureStage =
  | 'parse_body'
  | 'upload'
  | 'validate_task'
  | 'validate_inputs'
  | 'validate_skill'
  | 'queue'
  | 'run_subprocess'
  | 'package_zip'
  | 'respond';

/** An HttpError tagged with the stage it happened in, for the `event=error` log line. */
class StagedError extends Error {
  constructor(
    readonly stage: FailureStage,
    readonly error: HttpError,
    readonly extra: Record<string, unknown> = {},
  ) {
    super(error.message);
  }
}

const msSince = (start: number) => Math.max(0, Math.round(performance.now() - start));

/** State of one render request, shared by its steps and its cleanup. */
class RenderRequest {
  readonly started = performance.now();
  readonly log: Logger;
  readonly abort = new AbortController();
  workspace: string | null = null;
  stage: FailureStage = 'parse_body';

  constructor(
    readonly context: DocopsContext,
    readonly request: FastifyRequest,
    readonly reply: FastifyReply,
    /** `docops_runs_total` counts /v1/run only */
    readonly route: 'run' | 'inspect',
  ) {
    const upstream = request.headers['x-request-id'];
    this.log = namedLogger(context.logger, 'docops.api', {
      request_id: request.id,
      ...(typeof upstream === 'string' ? { upstream_request_id: upstream.slice(0, 200) } : {}),
    });
    // A client that goes away cancels its queued or running job at once.
    reply.raw.on('close', () => {
      if (!reply.raw.writableFinished) this.abort.abort(new Error('client disconnected'));
    });
  }

  get clientGone(): boolean {
    return this.abort.signal.aborted;
  }

  fail(stage: FailureStage, error: HttpError, extra: Record<string, unknown> = {}): never {
    throw new StagedError(stage, error, extra);
  }

  /** Receives the upload into a fresh workspace; 415 for a non-multipart body, 413 while streaming. */
  async receive(fileFields: readonly string[]): Promise<MultipartResult> {
    const { config, workspaces } = this.context;
    const contentType = this.request.headers['content-type'] ?? '';
    if (!/^multipart\/form-data\s*;/i.test(contentType)) {
      discardRequestBody(this.request.raw);
      this.fail(
        'parse_body',
        unsupportedMedia('request body must be multipart/form-data', {
          field: 'body',
          expected: 'multipart/form-data',
        }),
      );
    }
    this.workspace = await workspaces.create(this.request.id);
    this.stage = 'upload';
    try {
      return await receiveMultipart(this.request.raw, {
        fileFields,
        directory: this.workspace,
        maxFileBytes: config.maxUploadBytes,
        maxFieldBytes: MAX_TEXT_PART_BYTES,
        maxParts: MAX_PARTS,
      });
    } catch (error) {
      if (error instanceof MultipartLimitError) {
        // The rest of the body is read and dropped while the 413 goes out. No `Connection: close`: Node would
        // close the socket as soon as the response is written, and a client still uploading would see a reset.
        discardRequestBody(this.request.raw);
        const detail =
          error.kind === 'parts'
            ? { field: 'body', max_parts: MAX_PARTS }
            : { field: error.field, max_bytes: error.maxBytes, received_bytes: error.receivedBytes };
        this.fail('upload', new HttpError(413, 'UPLOAD_TOO_LARGE', 'upload too large', detail));
      }
      if (error instanceof MultipartFormatError) {
        this.fail(
          'parse_body',
          badRequest('malformed multipart body', { field: 'body', reason: 'malformed' }),
        );
      }
      throw error;
    }
  }

  /** The template file part: present, once, named *.docx, starting with the zip magic (rows 4-7). */
  checkFiles(form: MultipartResult, names: readonly ('template' | 'task')[]): void {
    this.stage = 'validate_inputs';
    for (const name of names) {
      if (!form.files.has(name))
        this.fail(
          'validate_inputs',
          badRequest(`${name} file is required`, { field: name, reason: 'missing' }),
        );
    }
    for (const name of form.duplicates) {
      this.fail(
        'validate_inputs',
        badRequest(`${name} was given more than once`, { field: name, reason: 'duplicate' }),
      );
    }
    const extensions = { template: '.docx', task: '.json' } as const;
    for (const name of names) {
      const file = form.files.get(name);
      if (file && !file.filename.toLowerCase().endsWith(extensions[name])) {
        this.fail(
          'validate_inputs',
          unsupportedMedia(`${name} must be a ${extensions[name]} file`, {
            field: name,
            filename: file.filename,
          }),
        );
      }
    }
    const template = form.files.get('template');
    if (template && !template.head.subarray(0, 4).equals(Buffer.from('PK\x03\x04', 'latin1'))) {
      this.fail(
        'validate_inputs',
        unsupportedMedia('template must be a .docx file', { field: 'template', reason: 'not_a_zip' }),
      );
    }
  }

  /** The skill part for /v1/inspect and /v1/run (row 14). */
  checkSkill(name: string): void {
    if (!this.context.skills.get(name)) {
      this.fail(
        'validate_skill',
        badRequest(`unknown skill: ${name}`, {
          field: 'skill',
          value: name,
          supported_skills: this.context.skills.names(),
        }),
      );
    }
  }

  /** Waits for a slot (row 17); resolves with the slot's release and the wait. */
  async takeSlot(): Promise<{ release: () => void; waitedMs: number }> {
    this.stage = 'queue';
    const { gate, config, metrics } = this.context;
    try {
      const slot = await gate.acquire(this.abort.signal);
      metrics.queueWait.observe(slot.waitedMs / 1000);
      return slot;
    } catch (error) {
      if (error instanceof GateFullError) {
        this.fail(
          'queue',
          new HttpError(
            429,
            'TOO_MANY_REQUESTS',
            'server busy',
            { max_concurrency: config.maxConcurrency, queue_timeout_seconds: config.queueTimeoutSeconds },
            { 'retry-after': '1' },
          ),
          { queue_wait_ms: Math.round(error.waitedMs) },
        );
      }
      throw error;
    }
  }

  /** Runs a job in a render process and maps its failures onto rows 18-22. */
  async runJob<T>(payload: RunJobPayload | InspectJobPayload): Promise<{ pid: number; result: T }> {
    this.stage = 'run_subprocess';
    const { pool, config } = this.context;
    try {
      const { pid, result } = await pool.run<T>(payload, {
        timeoutMs: config.requestTimeoutSeconds * 1000,
        signal: this.abort.signal,
      });
      return { pid, result };
    } catch (error) {
      if (error instanceof JobTimeoutError) {
        this.fail(
          'run_subprocess',
          new HttpError(408, 'REQUEST_TIMEOUT', 'request timed out', {
            timeout_seconds: config.requestTimeoutSeconds,
            terminated: error.terminated,
            ...(config.testMode ? { timed_out_pid: error.pid } : {}),
          }),
        );
      }
      if (error instanceof WorkerCrashedError) {
        this.fail(
          'run_subprocess',
          new HttpError(500, 'INTERNAL_ERROR', 'render process crashed', { reason: 'worker_crashed' }),
        );
      }
      if (error instanceof JobFailedError) {
        const data = error.data;
        if (
          data.name === 'DocopsInputError' &&
          typeof data.status === 'number' &&
          typeof data.errorCode === 'string'
        ) {
          this.fail(
            'run_subprocess',
            new HttpError(
              data.status,
              data.errorCode,
              String(data.message ?? 'invalid template'),
              (data.detail ?? {}) as Record<string, unknown>,
            ),
          );
        }
        if (data.code === 'ENOSPC') {
          this.fail(
            'run_subprocess',
            new HttpError(500, 'INTERNAL_ERROR', 'no space left on device', { reason: 'no_space_left' }),
          );
        }
        this.log.error(
          { event: 'job_failed', error_name: data.name, error_code: data.code },
          'render job failed',
        );
        this.fail(
          'run_subprocess',
          new HttpError(500, 'INTERNAL_ERROR', 'internal error', { reason: 'internal' }),
        );
      }
      throw error;
    }
  }

  /** Removes the workspace once the response is over (finished, failed or abandoned). */
  cleanupAfterResponse(): void {
    const workspace = this.workspace;
    if (workspace === null) return;
    this.workspace = null;
    const remove = () => void this.context.workspaces.remove(workspace);
    if (this.reply.raw.writableFinished || this.reply.raw.destroyed) remove();
    else this.reply.raw.once('close', remove);
  }

  /** Resolves with the promise, or rejects as soon as the client has gone away. */
  whileConnected<T>(promise: Promise<T>): Promise<T> {
    const signal = this.abort.signal;
    if (signal.aborted) return Promise.reject(signal.reason);
    return new Promise<T>((resolve, reject) => {
      const onAbort = () => reject(signal.reason);
      signal.addEventListener('abort', onAbort, { once: true });
      promise.then(
        (value) => {
          signal.removeEventListener('abort', onAbort);
          resolve(value);
        },
        (error: unknown) => {
          signal.removeEventListener('abort', onAbort);
          reject(error);
        },
      );
    });
  }

  /** Turns any failure into the error response and the `event=error` log line. */
  handleFailure(error: unknown): void {
    const staged =
      error instanceof StagedError ? error : new StagedError(this.stage, this.mapUnexpected(error));
    // Nobody is left to answer once the client has gone: that is logged as 499.
    const status = this.clientGone ? 499 : staged.error.status;
    const outcome = outcomeOfStatus(status);
    if (this.route === 'run') this.context.metrics.runs.inc({ outcome });
    const line = {
      event: 'error',
      error_code: status === 499 ? 'CLIENT_DISCONNECTED' : staged.error.code,
      status_code: status,
      http_status: status,
      failure_stage: staged.stage,
      outcome,
      ...staged.extra,
    };
    if (status >= 500 && status !== 499) this.log.error(line, 'request failed');
    else this.log.warn(line, 'request rejected');
    if (status === 499) return;
    // A zip already under way cannot turn into a JSON error: cut it so the client sees a broken transfer.
    if (this.reply.sent) this.reply.raw.destroy();
    else throw staged.error;
  }

  private mapUnexpected(error: unknown): HttpError {
    if ((error as NodeJS.ErrnoException | null)?.code === 'ENOSPC') {
      return new HttpError(500, 'INTERNAL_ERROR', 'no space left on device', { reason: 'no_space_left' });
    }
    if (!this.clientGone) this.log.error({ err: error }, 'unexpected error');
    return new HttpError(500, 'INTERNAL_ERROR', 'internal error', { reason: 'internal' });
  }
}

/** Task checks (rows 8-9) on the uploaded task file. */
async function readTask(job: RenderRequest, path: string): Promise<Task> {
  job.stage = 'validate_task';
  try {
    return validateTask(parseTaskJson(await readFile(path)), job.context.skills);
  } catch (error) {
    if (error instanceof TaskJsonError) {
      job.fail(
        'validate_task',
        new HttpError(400, 'INVALID_JSON', 'task must be a JSON object', {
          field: 'task',
          error: error.message,
        }),
      );
    }
    if (error instanceof TaskSchemaError) {
      job.fail(
        'validate_task',
        badRequest('task does not match its schema', {
          field: 'task',
          error: error.error,
          errors: error.errors,
        }),
      );
    }
    throw error;
  }
}

function testSleep(context: DocopsContext): number | null {
  return context.config.testMode ? context.config.testSleepSeconds : null;
}

async function handleRun(
  context: DocopsContext,
  request: FastifyRequest,
  reply: FastifyReply,
): Promise<void> {
  const job = new RenderRequest(context, request, reply, 'run');
  const { config } = context;
  let release: (() => void) | null = null;
  try {
    const form = await job.receive(['template', 'task']);
    job.checkFiles(form, ['template', 'task']);
    const task = await readTask(job, (form.files.get('task') as { path: string }).path);

    job.stage = 'validate_inputs';
    let runForm: ReturnType<typeof readRunForm>;
    try {
      runForm = readRunForm(form.fields);
    } catch (error) {
      if (error instanceof HttpError) job.fail('validate_inputs', error);
      throw error;
    }
    let policy = defaultPolicy();
    if (runForm.policyYaml !== null) {
      try {
        policy = parsePolicy(runForm.policyYaml);
      } catch (error) {
        if (error instanceof PolicyError)
          job.fail(
            'validate_inputs',
            badRequest('invalid policy_yaml', { field: 'policy_yaml', error: error.message }),
          );
        throw error;
      }
    }
    job.stage = 'validate_skill';
    job.checkSkill(runForm.skill);
    if (runForm.skill !== task.task_type) {
      job.fail(
        'validate_skill',
        conflict('skill and task_type must match', {
          field: 'skill',
          skill: runForm.skill,
          task_type: task.task_type,
        }),
      );
    }
    if (runForm.pdf && context.sofficePath === null) {
      job.fail(
        'validate_inputs',
        new HttpError(400, 'FEATURE_UNAVAILABLE', 'PDF export is not available on this server', {
          field: 'pdf',
          feature: 'pdf_export',
        }),
      );
    }

    const slot = await job.takeSlot();
    release = slot.release;
    const queueWaitMs = Math.round(slot.waitedMs);
    job.log.info(
      {
        event: 'start',
        skill: runForm.skill,
        task_type: task.task_type,
        preset_input: runForm.raw.preset ?? null,
        effective: runForm.options,
        max_upload_bytes: config.maxUploadBytes,
        timeout_seconds: config.requestTimeoutSeconds,
        queue_wait_ms: queueWaitMs,
        policy_yaml_provided: runForm.policyYaml !== null,
      },
      'run started',
    );
    const jobStarted = performance.now();
    const workspace = job.workspace as string;
    const { pid, result } = await job.runJob<RunJobResult>({
      kind: 'run',
      workspace,
      templatePath: (form.files.get('template') as { path: string }).path,
      task,
      skill: context.skills.get(runForm.skill) as Skill,
      policy,
      options: runForm.options,
      exportSuggestedPolicy: runForm.exportSuggestedPolicy,
      sofficePath: runForm.pdf ? context.sofficePath : null,
      maxUncompressedBytes: config.maxTemplateUncompressedBytes,
      testSleepSeconds: testSleep(context),
    });
    const subprocessMs = msSince(jobStarted);
    release();
    release = null;
    context.metrics.runDuration.observe(subprocessMs / 1000);

    job.stage = 'package_zip';
    await streamZip(job, runForm, result, { pid, queueWaitMs, subprocessMs });
  } catch (error) {
    job.handleFailure(error);
  } finally {
    release?.();
    job.cleanupAfterResponse();
  }
}

const OUTCOMES: Record<number, string> = { 0: 'ok', 2: 'missing_required', 4: 'strict_failed' };

/** Streams the zip: outputs in order, then api_result.json (with the final timings), then trace.json. */
async function streamZip(
  job: RenderRequest,
  form: ReturnType<typeof readRunForm>,
  result: RunJobResult,
  run: { pid: number; queueWaitMs: number; subprocessMs: number },
): Promise<void> {
  const { config } = job.context;
  const zip = new ZipStreamWriter();
  const zipStarted = performance.now();
  job.reply
    .code(200)
    .type('application/zip')
    .header('content-disposition', 'attachment; filename="docops_outputs.zip"')
    .header('x-docops-exit-code', String(result.exitCode));

  const finished = new Promise<void>((resolve, reject) => {
    zip.stream.on('end', resolve);
    zip.stream.on('error', reject);
  });
  job.reply.send(zip.stream);
  for (const name of result.files) {
    const report = result.reports[name];
    const adding =
      report === undefined
        ? zip.addFile(join(result.outDir, name), name)
        : zip.addBuffer(Buffer.from(report), name);
    await job.whileConnected(adding);
  }

  const timing = {
    queue_wait_ms: run.queueWaitMs,
    subprocess_ms: run.subprocessMs,
    zip_ms: msSince(zipStarted),
    total_ms: msSince(job.started),
  };
  const effective = form.options;
  const apiResult = {
    exit_code: result.exitCode,
    message: result.message,
    request_id: job.request.id,
    subprocess_pid: run.pid,
    subprocess_start_method: config.startMethod,
    timing,
    input: {
      skill: form.raw.skill ?? null,
      preset: form.raw.preset ?? null,
      format_mode: form.raw.format_mode ?? null,
      format_baseline: form.raw.format_baseline ?? null,
      format_fix_mode: form.raw.format_fix_mode ?? null,
      format_report: form.raw.format_report ?? null,
      policy_yaml_provided: form.policyYaml !== null,
      export_suggested_policy: form.raw.export_suggested_policy ?? null,
      unsupported_mode: form.raw.unsupported_mode ?? null,
      pdf: form.raw.pdf ?? null,
    },
    effective,
    pdf: result.pdf,
    build: { version: serviceVersion(), commit: config.commitSha },
  };
  await job.whileConnected(zip.addBuffer(Buffer.from(JSON.stringify(apiResult)), 'api_result.json'));
  if (config.debugArtifacts) {
    const trace = {
      request_id: job.request.id,
      exit_code: result.exitCode,
      timing,
      subprocess: { pid: run.pid, start_method: config.startMethod },
      effective,
    };
    await job.whileConnected(zip.addBuffer(Buffer.from(JSON.stringify(trace)), 'trace.json'));
  }
  await job.whileConnected(zip.end());

  const outcome = OUTCOMES[result.exitCode] ?? 'other_exit_code';
  job.context.metrics.runs.inc({ outcome });
  job.log.info(
    {
      event: 'done',
      exit_code: result.exitCode,
      outcome,
      http_status: 200,
      timing,
      subprocess_pid: run.pid,
      debug_trace_enabled: config.debugArtifacts,
    },
    'run finished',
  );
  job.stage = 'respond';
  await job.whileConnected(finished);
}

async function handleInspect(
  context: DocopsContext,
  request: FastifyRequest,
  reply: FastifyReply,
): Promise<void> {
  const job = new RenderRequest(context, request, reply, 'inspect');
  let release: (() => void) | null = null;
  try {
    const form = await job.receive(['template']);
    job.checkFiles(form, ['template']);
    const skillName = textPart(form.fields, 'skill') ?? null;
    if (skillName !== null) job.checkSkill(skillName);
    const slot = await job.takeSlot();
    release = slot.release;
    const queueWaitMs = Math.round(slot.waitedMs);
    job.log.info(
      {
        event: 'start',
        endpoint: 'inspect',
        skill: skillName,
        max_upload_bytes: context.config.maxUploadBytes,
        timeout_seconds: context.config.requestTimeoutSeconds,
        queue_wait_ms: queueWaitMs,
      },
      'inspect started',
    );
    const jobStarted = performance.now();
    const { pid, result } = await job.runJob<InspectJobResult>({
      kind: 'inspect',
      workspace: job.workspace as string,
      templatePath: (form.files.get('template') as { path: string }).path,
      skill: skillName === null ? null : (context.skills.get(skillName) ?? null),
      maxUncompressedBytes: context.config.maxTemplateUncompressedBytes,
      testSleepSeconds: testSleep(context),
    });
    release();
    release = null;
    job.stage = 'respond';
    job.log.info(
      {
        event: 'done',
        endpoint: 'inspect',
        outcome: 'ok',
        http_status: 200,
        timing: {
          queue_wait_ms: queueWaitMs,
          subprocess_ms: msSince(jobStarted),
          total_ms: msSince(job.started),
        },
        subprocess_pid: pid,
      },
      'inspect finished',
    );
    await reply.send({ request_id: request.id, ...result });
  } catch (error) {
    job.handleFailure(error);
  } finally {
    release?.();
    job.cleanupAfterResponse();
  }
}

export function registerRenderRoutes(app: FastifyInstance, context: DocopsContext): void {
  // Bodies are read by the routes themselves (streamed multipart), never parsed or buffered by the framework.
  app.removeAllContentTypeParsers();
  app.addContentTypeParser('*', (_request, _payload, done) => done(null));
  app.post('/v1/run', (request, reply) => handleRun(context, request, reply));
  app.post('/v1/inspect', (request, reply) => handleInspect(context, request, reply));
}
