// POST /v1/run and /v1/inspect errors (spec §3.8.6 rows 1-20, §3.8.1): exact status, error_code and detail,
// the request id of the header, no zip, the `event=error` log line, and no workspace left behind.
// One server for the whole file (PDF export disabled, a small inflated-size cap for the zip bomb).
// Runs the compiled bin: `tsc -b` first.
import { strToU8, unzipSync, zipSync } from 'fflate';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildDocx, paragraphXml } from '../../src/domain/docx/build.js';
import { apiEvent, expectError, settledWorkspaces } from '../helpers/contract.js';
import { postRun, type RunParts, runForm } from '../helpers/http.js';
import { type DocopsProcess, startDocops } from '../helpers/server.js';

const MAX_INFLATED = 200_000;
const TEMPLATE = buildDocx({ paragraphs: ['Title: 【MEETING_TITLE】'] });
const TASK = { task_type: 'meeting_notice', payload: { meeting_title: 'Kickoff' } };
const BUILTINS = ['inspection_record', 'meeting_notice', 'training_notice'];
const BOOLEAN_WORDS = ['0', '1', 'false', 'no', 'off', 'on', 'true', 'yes'];

let server: DocopsProcess;

beforeAll(async () => {
  server = await startDocops({
    DOCOPS_ENABLE_PDF: '0',
    DOCOPS_MAX_TEMPLATE_UNCOMPRESSED_BYTES: String(MAX_INFLATED),
  });
});

afterAll(async () => {
  await server?.stop();
});

/** The standard valid request with some parts changed. */
function run(parts: Partial<RunParts> = {}, path = '/v1/run'): Promise<Response> {
  return postRun(server.baseUrl, { template: TEMPLATE, task: TASK, ...parts }, path);
}

interface Expected {
  status: number;
  code: string;
  detail: Record<string, unknown>;
  /** `failure_stage` of the error log line, when the case pins it */
  stage?: string;
}

/** `failure_stage` values of §3.10. */
const FAILURE_STAGES = [
  'parse_body',
  'upload',
  'validate_task',
  'validate_inputs',
  'validate_skill',
  'queue',
  'run_subprocess',
  'package_zip',
  'respond',
];

const OUTCOMES: Record<number, string> = {
  400: 'bad_request',
  408: 'timeout',
  413: 'payload_too_large',
  415: 'unsupported_media_type',
  429: 'rate_limited',
};

/** The whole client-visible contract of one error, plus its log line and the workspace cleanup. */
async function expectRunError(response: Response, expected: Expected) {
  const body = await expectError(response, expected.status, expected.code, expected.detail);
  const line = await apiEvent(server, body.detail.request_id, 'error');
  expect(line).toMatchObject({
    logger: 'docops.api',
    error_code: expected.code,
    status_code: expected.status,
    http_status: expected.status,
    outcome: OUTCOMES[expected.status],
  });
  expect(['info', 'warn', 'error']).toContain(line.level);
  expect(FAILURE_STAGES).toContain(line.failure_stage);
  if (expected.stage) expect(line.failure_stage).toBe(expected.stage);
  expect(await settledWorkspaces(server.tmpDir)).toEqual([]);
  return body;
}

/** The sum of docops_runs_total over all outcomes. */
async function runsTotal(): Promise<number> {
  const text = await (await fetch(`${server.baseUrl}/metrics`)).text();
  return [...text.matchAll(/^docops_runs_total\{[^}]*\} (\d+)$/gm)].reduce(
    (sum, match) => sum + Number(match[1]),
    0,
  );
}

/** A deflated zip (not a Word document) holding the given files. */
function zipOf(files: Record<string, string | Uint8Array>): Uint8Array {
  const entries: Record<string, Uint8Array> = {};
  for (const [name, content] of Object.entries(files))
    entries[name] = typeof content === 'string' ? strToU8(content) : content;
  return zipSync(entries, { level: 9 });
}

/** A task whose payload nests `arrays` arrays inside `attendees` (the object itself is depth 1). */
function nestedTask(arrays: number): string {
  return `{"task_type":"meeting_notice","payload":{"attendees":${'['.repeat(arrays)}${']'.repeat(arrays)}}}`;
}

/**
 * Rewrites the declared uncompressed size of every entry (local header and central directory) to `size`:
 * a zip bomb whose declared sizes lie.
 */
function lieAboutSizes(zip: Uint8Array, size: number): Uint8Array {
  const bytes = new Uint8Array(zip);
  const view = new DataView(bytes.buffer);
  for (let offset = 0; offset + 4 <= bytes.length; offset++) {
    const signature = view.getUint32(offset, true);
    if (signature === 0x04034b50) view.setUint32(offset + 22, size, true);
    else if (signature === 0x02014b50) view.setUint32(offset + 24, size, true);
  }
  return bytes;
}

describe('row 1: the body is not multipart/form-data', () => {
  it('415 INVALID_MEDIA_TYPE for a JSON body', async () => {
    const response = await fetch(`${server.baseUrl}/v1/run`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(TASK),
    });
    await expectRunError(response, {
      status: 415,
      code: 'INVALID_MEDIA_TYPE',
      detail: { field: 'body', expected: 'multipart/form-data' },
      stage: 'parse_body',
    });
  });

  it('415 for a body without a content type, on /v1/inspect too', async () => {
    for (const path of ['/v1/run', '/v1/inspect']) {
      const response = await fetch(`${server.baseUrl}${path}`, {
        method: 'POST',
        body: new Uint8Array([1, 2, 3]),
      });
      await expectRunError(response, {
        status: 415,
        code: 'INVALID_MEDIA_TYPE',
        detail: { field: 'body', expected: 'multipart/form-data' },
      });
    }
  });
});

describe('row 3: text parts and part count', () => {
  it('413 for a text part over 65536 bytes', async () => {
    const body = await expectRunError(await run({ fields: { policy_yaml: `# ${'x'.repeat(65_536)}` } }), {
      status: 413,
      code: 'UPLOAD_TOO_LARGE',
      detail: { field: 'policy_yaml', max_bytes: 65_536, received_bytes: expect.any(Number) },
      stage: 'upload',
    });
    expect(body.detail.received_bytes).toBeGreaterThan(65_536);
  });

  it('a text part of exactly 65536 bytes is accepted (the next check, an unknown skill, answers)', async () => {
    const skill = 'a'.repeat(65_536);
    await expectRunError(await run({ fields: { skill } }), {
      status: 400,
      code: 'INVALID_ARGUMENT',
      detail: { field: 'skill', value: skill, supported_skills: BUILTINS },
    });
  });

  it('413 for more than 20 parts; exactly 20 parts are fine', async () => {
    const fields = (count: number) =>
      Object.fromEntries(Array.from({ length: count }, (_, i) => [`extra_${i}`, 'x']));
    await expectRunError(await run({ fields: fields(19) }), {
      status: 413,
      code: 'UPLOAD_TOO_LARGE',
      detail: { field: 'body', max_parts: 20 },
      stage: 'upload',
    });
    const ok = await run({ fields: fields(18) });
    expect(ok.status).toBe(200);
    await ok.arrayBuffer();
  });
});

describe('rows 4-7: file parts', () => {
  it('400 when template or task is missing', async () => {
    await expectRunError(await run({ template: null }), {
      status: 400,
      code: 'INVALID_ARGUMENT',
      detail: { field: 'template', reason: 'missing' },
      stage: 'validate_inputs',
    });
    await expectRunError(await run({ task: undefined }), {
      status: 400,
      code: 'INVALID_ARGUMENT',
      detail: { field: 'task', reason: 'missing' },
    });
  });

  it('400 when a file or text part is given twice', async () => {
    const twice = runForm({ template: TEMPLATE, task: TASK });
    twice.append('template', new Blob([TEMPLATE as BlobPart]), 'other.docx');
    await expectRunError(await fetch(`${server.baseUrl}/v1/run`, { method: 'POST', body: twice }), {
      status: 400,
      code: 'INVALID_ARGUMENT',
      detail: { field: 'template', reason: 'duplicate' },
    });
    const skillTwice = runForm({ template: TEMPLATE, task: TASK, fields: { skill: 'meeting_notice' } });
    skillTwice.append('skill', 'meeting_notice');
    await expectRunError(await fetch(`${server.baseUrl}/v1/run`, { method: 'POST', body: skillTwice }), {
      status: 400,
      code: 'INVALID_ARGUMENT',
      detail: { field: 'skill', reason: 'duplicate' },
    });
  });

  it('415 for the wrong file extensions; the extension check ignores case', async () => {
    await expectRunError(await run({ templateName: 'template.doc' }), {
      status: 415,
      code: 'INVALID_MEDIA_TYPE',
      detail: { field: 'template', filename: 'template.doc' },
    });
    await expectRunError(await run({ taskName: 'task.txt' }), {
      status: 415,
      code: 'INVALID_MEDIA_TYPE',
      detail: { field: 'task', filename: 'task.txt' },
    });
    const upper = await run({ templateName: 'TEMPLATE.DOCX', taskName: 'TASK.JSON' });
    expect(upper.status).toBe(200);
    await upper.arrayBuffer();
  });

  it('415 not_a_zip for template bytes that are not a zip (case 13)', async () => {
    await expectRunError(await run({ template: 'not-a-docx' }), {
      status: 415,
      code: 'INVALID_MEDIA_TYPE',
      detail: { field: 'template', reason: 'not_a_zip' },
      stage: 'validate_inputs',
    });
  });

  it('the first failing row wins: a missing task beats a bad template', async () => {
    await expectRunError(await run({ template: 'not-a-docx', templateName: 'x.txt', task: undefined }), {
      status: 400,
      code: 'INVALID_ARGUMENT',
      detail: { field: 'task', reason: 'missing' },
    });
  });
});

describe('rows 8-9: the task', () => {
  const invalidJson = {
    status: 400,
    code: 'INVALID_JSON',
    detail: { field: 'task', error: expect.any(String) },
    stage: 'validate_task',
  };

  it('400 INVALID_JSON for bytes that are not JSON (case 13), not UTF-8, an array, or nested deeper than 32', async () => {
    const notJson = await expectRunError(await run({ task: 'not-json' }), invalidJson);
    expect(notJson.detail.error).not.toContain('not-json');
    await expectRunError(
      await run({ task: new Uint8Array([0x7b, 0x22, 0xff, 0xfe, 0x22, 0x7d]) }),
      invalidJson,
    );
    await expectRunError(await run({ task: '[1, 2]' }), invalidJson);
    const deep = await expectRunError(await run({ task: nestedTask(31) }), invalidJson);
    expect(deep.detail.error).toMatch(/32/);
  });

  it('depth 32 is still JSON: the schema check answers', async () => {
    const body = await expectRunError(await run({ task: nestedTask(30) }), {
      status: 400,
      code: 'INVALID_ARGUMENT',
      detail: { field: 'task', error: expect.any(String), errors: expect.any(Array) },
    });
    expect(body.detail.errors).toContainEqual({ path: 'payload.attendees.0', message: expect.any(String) });
  });

  it('400 INVALID_ARGUMENT with errors[].path for schema errors', async () => {
    const schema = (errors: unknown[]) => ({
      status: 400,
      code: 'INVALID_ARGUMENT',
      detail: { field: 'task', error: expect.any(String), errors },
      stage: 'validate_task',
    });
    await expectRunError(
      await run({ task: { task_type: 'visitor_pass', payload: {} } }),
      schema([{ path: 'task_type', message: expect.stringContaining('visitor_pass') }]),
    );
    await expectRunError(
      await run({ task: { ...TASK, priority: 'high' } }),
      schema([{ path: 'priority', message: expect.any(String) }]),
    );
    await expectRunError(
      await run({
        task: {
          task_type: 'meeting_notice',
          payload: { meeting_title: 5, attendees: 'everyone', venue: 'x' },
        },
      }),
      schema([
        { path: 'payload.meeting_title', message: expect.any(String) },
        { path: 'payload.attendees', message: expect.any(String) },
        { path: 'payload.venue', message: expect.any(String) },
      ]),
    );
  });

  it('400 INVALID_ARGUMENT for a payload string over 1 MiB', async () => {
    const long = { task_type: 'meeting_notice', payload: { meeting_title: 'x'.repeat(1024 * 1024 + 1) } };
    const body = await expectRunError(await run({ task: long }), {
      status: 400,
      code: 'INVALID_ARGUMENT',
      detail: {
        field: 'task',
        error: expect.any(String),
        errors: [{ path: 'payload.meeting_title', message: expect.any(String) }],
      },
    });
    expect(JSON.stringify(body).length).toBeLessThan(10_000);
  });

  it('a bad task is reported before option conflicts', async () => {
    await expectRunError(
      await run({ task: 'not-json', fields: { preset: 'strict', format_mode: 'report' } }),
      invalidJson,
    );
  });
});

describe('rows 10-12: options', () => {
  it('400 INVALID_ARGUMENT_CONFLICT for preset with any format_* part (case 9)', async () => {
    await expectRunError(await run({ fields: { preset: 'strict', format_mode: 'report' } }), {
      status: 400,
      code: 'INVALID_ARGUMENT_CONFLICT',
      detail: { conflicting_fields: ['format_mode'] },
      stage: 'validate_inputs',
    });
    for (const [field, value] of [
      ['format_baseline', 'policy'],
      ['format_fix_mode', 'none'],
      ['format_report', 'json'],
    ]) {
      await expectRunError(await run({ fields: { preset: 'quick', [field as string]: value as string } }), {
        status: 400,
        code: 'INVALID_ARGUMENT_CONFLICT',
        detail: { conflicting_fields: [field] },
      });
    }
    await expectRunError(
      await run({
        fields: {
          format_report: 'both',
          format_fix_mode: 'safe',
          preset: 'template',
          format_baseline: 'template',
          format_mode: 'off',
        },
      }),
      {
        status: 400,
        code: 'INVALID_ARGUMENT_CONFLICT',
        detail: {
          conflicting_fields: ['format_mode', 'format_baseline', 'format_fix_mode', 'format_report'],
        },
      },
    );
  });

  it('400 INVALID_ARGUMENT_CONFLICT for strict=true with each format_* part (case 9)', async () => {
    for (const [field, value] of [
      ['format_mode', 'report'],
      ['format_baseline', 'policy'],
      ['format_fix_mode', 'none'],
      ['format_report', 'json'],
    ]) {
      await expectRunError(await run({ fields: { strict: 'TRUE', [field as string]: value as string } }), {
        status: 400,
        code: 'INVALID_ARGUMENT_CONFLICT',
        detail: { conflicting_fields: [field] },
      });
    }
  });

  it('strict=false and empty text parts count as not set', async () => {
    const response = await run({ fields: { strict: 'false', preset: '  ', format_mode: 'strict' } });
    expect(response.status).toBe(200);
    await response.arrayBuffer();
  });

  it('400 INVALID_ARGUMENT for a bad enum value, with the sorted allowed values', async () => {
    await expectRunError(await run({ fields: { preset: 'fast' } }), {
      status: 400,
      code: 'INVALID_ARGUMENT',
      detail: { field: 'preset', value: 'fast', allowed: ['quick', 'strict', 'template'] },
      stage: 'validate_inputs',
    });
    await expectRunError(await run({ fields: { format_mode: 'loose' } }), {
      status: 400,
      code: 'INVALID_ARGUMENT',
      detail: { field: 'format_mode', value: 'loose', allowed: ['off', 'report', 'strict'] },
    });
    await expectRunError(await run({ fields: { unsupported_mode: 'ignore' } }), {
      status: 400,
      code: 'INVALID_ARGUMENT',
      detail: { field: 'unsupported_mode', value: 'ignore', allowed: ['error', 'warn'] },
    });
    await expectRunError(await run({ fields: { format_report: 'xml' } }), {
      status: 400,
      code: 'INVALID_ARGUMENT',
      detail: { field: 'format_report', value: 'xml', allowed: ['both', 'human', 'json'] },
    });
  });

  it('400 INVALID_ARGUMENT for a bad boolean', async () => {
    for (const field of ['export_suggested_policy', 'pdf', 'strict']) {
      await expectRunError(await run({ fields: { [field]: 'maybe' } }), {
        status: 400,
        code: 'INVALID_ARGUMENT',
        detail: { field, value: 'maybe', allowed: BOOLEAN_WORDS },
      });
    }
  });
});

describe('rows 13-16: policy, skill, features', () => {
  it('400 for an invalid policy_yaml: the message names the key, never a server path', async () => {
    const unknownKey = await expectRunError(await run({ fields: { policy_yaml: 'forbid_tablez: true\n' } }), {
      status: 400,
      code: 'INVALID_ARGUMENT',
      detail: { field: 'policy_yaml', error: expect.stringContaining('forbid_tablez') },
      stage: 'validate_inputs',
    });
    expect(String(unknownKey.detail.error)).not.toMatch(/\//);
    const wrongType = await expectRunError(await run({ fields: { policy_yaml: 'run_size_pt: big\n' } }), {
      status: 400,
      code: 'INVALID_ARGUMENT',
      detail: { field: 'policy_yaml', error: expect.stringContaining('run_size_pt') },
    });
    expect(String(wrongType.detail.error)).not.toContain('/');
    await expectRunError(await run({ fields: { policy_yaml: 'forbid_tables: [true\n' } }), {
      status: 400,
      code: 'INVALID_ARGUMENT',
      detail: { field: 'policy_yaml', error: expect.any(String) },
    });
    // A YAML alias bomb and a custom tag.
    const aliases = Array.from({ length: 101 }, () => '*a').join(', ');
    await expectRunError(await run({ fields: { policy_yaml: `trim_chars: &a [" "]\nx: [${aliases}]\n` } }), {
      status: 400,
      code: 'INVALID_ARGUMENT',
      detail: { field: 'policy_yaml', error: expect.stringContaining('alias') },
    });
    await expectRunError(await run({ fields: { policy_yaml: 'forbid_tables: !!js/function "x"\n' } }), {
      status: 400,
      code: 'INVALID_ARGUMENT',
      detail: { field: 'policy_yaml', error: expect.any(String) },
    });
    await expectRunError(await run({ fields: { policy_yaml: '- a\n- b\n' } }), {
      status: 400,
      code: 'INVALID_ARGUMENT',
      detail: { field: 'policy_yaml', error: expect.any(String) },
    });
  });

  it('400 for an unknown skill, listing the supported skills (case 11)', async () => {
    await expectRunError(await run({ fields: { skill: 'unknown_skill' } }), {
      status: 400,
      code: 'INVALID_ARGUMENT',
      detail: { field: 'skill', value: 'unknown_skill', supported_skills: BUILTINS },
      stage: 'validate_skill',
    });
  });

  it('400 INVALID_ARGUMENT_CONFLICT when skill and task_type differ (case 12)', async () => {
    const body = await expectRunError(await run({ fields: { skill: 'training_notice' } }), {
      status: 400,
      code: 'INVALID_ARGUMENT_CONFLICT',
      detail: { field: 'skill', skill: 'training_notice', task_type: 'meeting_notice' },
      stage: 'validate_skill',
    });
    expect(body.message).toBe('skill and task_type must match');
  });

  it('400 FEATURE_UNAVAILABLE for pdf=true when PDF export is disabled', async () => {
    await expectRunError(await run({ fields: { pdf: 'Yes' } }), {
      status: 400,
      code: 'FEATURE_UNAVAILABLE',
      detail: { field: 'pdf', feature: 'pdf_export' },
    });
    const off = await run({ fields: { pdf: 'off' } });
    expect(off.status).toBe(200);
    await off.arrayBuffer();
  });

  it('/v1/meta says pdf_export is off', async () => {
    const meta = (await (await fetch(`${server.baseUrl}/v1/meta`)).json()) as {
      features: Record<string, boolean>;
      limits: Record<string, number>;
    };
    expect(meta.features.pdf_export).toBe(false);
    expect(meta.limits.max_template_uncompressed_bytes).toBe(MAX_INFLATED);
  });
});

describe('rows 18-20: the template, inside the render job', () => {
  it('415 corrupt_zip for a damaged zip', async () => {
    const damaged = new Uint8Array(TEMPLATE);
    damaged.fill(0x41, 30, damaged.length - 200);
    await expectRunError(await run({ template: damaged }), {
      status: 415,
      code: 'INVALID_MEDIA_TYPE',
      detail: { field: 'template', reason: 'corrupt_zip' },
      stage: 'run_subprocess',
    });
    const truncated = new Uint8Array([0x50, 0x4b, 0x03, 0x04, 1, 2, 3, 4, 5, 6, 7, 8]);
    await expectRunError(await run({ template: truncated }), {
      status: 415,
      code: 'INVALID_MEDIA_TYPE',
      detail: { field: 'template', reason: 'corrupt_zip' },
    });
  });

  it('415 corrupt_zip for a path-traversal entry name', async () => {
    await expectRunError(
      await run({ template: zipOf({ '../evil.xml': '<x/>', '[Content_Types].xml': '<Types/>' }) }),
      {
        status: 415,
        code: 'INVALID_MEDIA_TYPE',
        detail: { field: 'template', reason: 'corrupt_zip' },
      },
    );
  });

  it('415 not_a_word_document for a zip without a main document part', async () => {
    await expectRunError(await run({ template: zipOf({ 'readme.txt': 'hello' }) }), {
      status: 415,
      code: 'INVALID_MEDIA_TYPE',
      detail: { field: 'template', reason: 'not_a_word_document' },
      stage: 'run_subprocess',
    });
  });

  it('413 TEMPLATE_TOO_LARGE for a zip bomb (zeros inflating past the cap)', async () => {
    const bomb = buildDocx({
      paragraphs: ['【MEETING_TITLE】'],
      extraParts: { 'word/media/zeros.bin': new Uint8Array(4 * MAX_INFLATED) },
    });
    expect(bomb.length).toBeLessThan(MAX_INFLATED / 10);
    await expectRunError(await run({ template: bomb }), {
      status: 413,
      code: 'TEMPLATE_TOO_LARGE',
      detail: { field: 'template', max_uncompressed_bytes: MAX_INFLATED, part: 'word/media/zeros.bin' },
      stage: 'run_subprocess',
    });
  });

  it('413 TEMPLATE_TOO_LARGE when the declared sizes lie (caught while inflating)', async () => {
    const bomb = lieAboutSizes(zipOf({ 'word/document.xml': new Uint8Array(4 * MAX_INFLATED) }), 1000);
    await expectRunError(await run({ template: bomb }), {
      status: 413,
      code: 'TEMPLATE_TOO_LARGE',
      detail: { field: 'template', max_uncompressed_bytes: MAX_INFLATED, part: 'word/document.xml' },
    });
  });

  it('400 INVALID_TEMPLATE for a DOCTYPE and for malformed XML', async () => {
    const withDoctype = zipOf({
      ...unzipSync(TEMPLATE),
      'word/document.xml': `<?xml version="1.0"?><!DOCTYPE w:document [<!ENTITY e "boom">]><w:document xmlns:w="http://schemas.openxmlformats.org/wordprocessingml/2006/main"><w:body>${paragraphXml('&e;')}</w:body></w:document>`,
    });
    await expectRunError(await run({ template: withDoctype }), {
      status: 400,
      code: 'INVALID_TEMPLATE',
      detail: { field: 'template', part: 'word/document.xml', error: expect.any(String) },
      stage: 'run_subprocess',
    });
    const malformed = buildDocx({ body: '<w:p><w:r><w:t>Title: 【MEETING_TITLE】</w:r></w:p>' });
    await expectRunError(await run({ template: malformed }), {
      status: 400,
      code: 'INVALID_TEMPLATE',
      detail: { field: 'template', part: 'word/document.xml', error: expect.any(String) },
    });
  });
});

describe('/v1/inspect errors (same rules as /v1/run)', () => {
  const inspect = (parts: Partial<RunParts>) =>
    postRun(server.baseUrl, { template: TEMPLATE, ...parts }, '/v1/inspect');

  it('missing template, bad extension, not a zip, unknown skill, invalid XML', async () => {
    const runsBefore = await runsTotal();
    await expectRunError(await inspect({ template: null }), {
      status: 400,
      code: 'INVALID_ARGUMENT',
      detail: { field: 'template', reason: 'missing' },
    });
    await expectRunError(await inspect({ templateName: 'template.odt' }), {
      status: 415,
      code: 'INVALID_MEDIA_TYPE',
      detail: { field: 'template', filename: 'template.odt' },
    });
    await expectRunError(await inspect({ template: 'not-a-docx' }), {
      status: 415,
      code: 'INVALID_MEDIA_TYPE',
      detail: { field: 'template', reason: 'not_a_zip' },
    });
    await expectRunError(await inspect({ fields: { skill: 'nope' } }), {
      status: 400,
      code: 'INVALID_ARGUMENT',
      detail: { field: 'skill', value: 'nope', supported_skills: BUILTINS },
    });
    await expectRunError(await inspect({ template: buildDocx({ body: '<w:p><w:r></w:p>' }) }), {
      status: 400,
      code: 'INVALID_TEMPLATE',
      detail: { field: 'template', part: 'word/document.xml', error: expect.any(String) },
    });
    await expectRunError(await inspect({ template: zipOf({ 'a.txt': 'a' }) }), {
      status: 415,
      code: 'INVALID_MEDIA_TYPE',
      detail: { field: 'template', reason: 'not_a_word_document' },
    });
    // Inspections are not runs: docops_runs_total does not move.
    expect(await runsTotal()).toBe(runsBefore);
  });
});

describe('unknown paths and methods', () => {
  it('404 NOT_FOUND with the path (case 20)', async () => {
    const response = await fetch(`${server.baseUrl}/__does_not_exist__?x=1`);
    await expectError(response, 404, 'NOT_FOUND', { path: '/__does_not_exist__' });
  });

  it('a malformed URL gets the error contract, not the framework default', async () => {
    await expectError(await fetch(`${server.baseUrl}/v1/%zz`), 400, 'BAD_REQUEST', {});
  });

  it('405 METHOD_NOT_ALLOWED with an Allow header (case 20)', async () => {
    const post = await fetch(`${server.baseUrl}/healthz`, { method: 'POST' });
    expect(post.headers.get('allow')).toMatch(/GET/);
    const body = await expectError(post, 405, 'METHOD_NOT_ALLOWED', {
      path: '/healthz',
      method: 'POST',
      allowed: expect.any(Array),
    });
    expect(body.detail.allowed).toContain('GET');
    expect(body.detail.allowed).not.toContain('POST');

    const get = await fetch(`${server.baseUrl}/v1/run`);
    expect(get.headers.get('allow')).toBe('POST');
    await expectError(get, 405, 'METHOD_NOT_ALLOWED', { path: '/v1/run', method: 'GET', allowed: ['POST'] });
  });
});

describe('after all of the above', () => {
  it('the server keeps no workspace and logged no payload value', async () => {
    expect(await settledWorkspaces(server.tmpDir)).toEqual([]);
    const stdout = JSON.stringify(server.logs());
    expect(stdout).not.toContain('Kickoff');
    expect(stdout).not.toContain('forbid_tablez');
  });
});
