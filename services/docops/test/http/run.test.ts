// POST /v1/run and /v1/inspect success paths (spec §3.8.6, §3.8.8, §3.10; acceptance cases 1-8, 10, 19, 21,
// 45, 46): the zip as a client reads it, api_result.json, the log lines, and the filled document as
// python-docx and LibreOffice read it. Runs the compiled bin: `tsc -b` first.
import { execFile, spawnSync } from 'node:child_process';
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildDocx, paragraphXml, runXml, tableXml } from '../../src/domain/docx/build.js';
import {
  apiEvent,
  REQUEST_ID,
  settledWorkspaces,
  startServers,
  stopServers,
  survivors,
  waitFor,
} from '../helpers/contract.js';
import { documentParagraphTexts, postRun, type RunParts, readZip, type ZipEntries } from '../helpers/http.js';
import { type DocopsProcess, runDocops } from '../helpers/server.js';

const PACKAGE_VERSION = (
  JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string }
).version;
const BUILTINS = ['inspection_record', 'meeting_notice', 'training_notice'];
const REPORTS = ['out.docx', 'out.replace_log.json', 'out.missing_fields.json', 'out.format_report.json'];

// Payload and policy values that must never reach a log line.
const TITLE = 'Kickoff-7q3z';
const POLICY_MARKER = 'Garamond-9x1k';
const TEMPLATE = buildDocx({ paragraphs: ['Title: 【MEETING_TITLE】'] });
const TASK = { task_type: 'meeting_notice', payload: { meeting_title: TITLE } };
const TABLE_TEMPLATE = buildDocx({ body: paragraphXml('Title: 【MEETING_TITLE】') + tableXml([['a', 'b']]) });

const SOFFICE =
  ['/usr/bin/soffice', '/usr/local/bin/soffice', '/usr/bin/libreoffice'].find((path) => existsSync(path)) ??
  null;
const PYTHON_DOCX = spawnSync('/usr/bin/python3', ['-c', 'import docx'], { encoding: 'utf8' }).status === 0;
const PDFTOTEXT = spawnSync('pdftotext', ['-v'], { encoding: 'utf8' }).error === undefined;

let server: DocopsProcess;
/** A server with an operator skill registry, debug artifacts, a commit sha and an always-failing soffice. */
let registryServer: DocopsProcess;
let scratch: string;

beforeAll(async () => {
  scratch = mkdtempSync(join(tmpdir(), 'docops-http-run-'));
  const skillsDir = join(scratch, 'skills');
  mkdirSync(skillsDir);
  writeFileSync(
    join(skillsDir, 'visitor_pass.yaml'),
    [
      'name: visitor_pass',
      'description: Site visitor pass',
      'list_separator: " / "',
      'fields:',
      '  visitor_name: {placeholder: VISITOR_NAME, required: true}',
      '  visit_date:   {placeholder: VISIT_DATE, required: true}',
      '  escorts:      {placeholder: ESCORTS, type: "list[str]"}',
      '',
    ].join('\n'),
  );
  ({ server, registryServer } = await startServers({
    server: {},
    registryServer: {
      env: {
        DOCOPS_SKILLS_DIR: skillsDir,
        DOCOPS_DEBUG_ARTIFACTS: '1',
        DOCOPS_COMMIT_SHA: 'abc1234',
        // An "office suite" that always fails: PDF export is offered, and every conversion fails.
        DOCOPS_SOFFICE_PATH: '/bin/false',
      },
    },
  }));
});

afterAll(async () => {
  await stopServers({ server, registryServer });
  if (scratch) rmSync(scratch, { recursive: true, force: true });
});

/** `soffice --headless --convert-to txt` of a .docx, with its own profile directory; resolves with the text. */
function convertToText(
  soffice: string,
  docx: Uint8Array,
): Promise<{ code: number | null; stderr: string; text: string | null }> {
  const dir = join(scratch, 'lo');
  mkdirSync(dir);
  writeFileSync(join(dir, 'filled.docx'), docx);
  const args = [
    `-env:UserInstallation=file://${join(dir, 'profile')}`,
    '--headless',
    '--convert-to',
    'txt:Text',
    '--outdir',
    dir,
    join(dir, 'filled.docx'),
  ];
  return new Promise((resolve) => {
    execFile(soffice, args, { timeout: 90_000 }, (error, _stdout, stderr) => {
      const code = error ? ((error as { code?: unknown }).code as number | null) : 0;
      const text = existsSync(join(dir, 'filled.txt')) ? readFileSync(join(dir, 'filled.txt'), 'utf8') : null;
      resolve({ code: typeof code === 'number' ? code : 1, stderr, text });
    });
  });
}

function run(parts: Partial<RunParts> = {}, headers: Record<string, string> = {}): Promise<Response> {
  const body = new FormData();
  const template = parts.template === undefined ? TEMPLATE : parts.template;
  if (template !== null) body.append('template', new Blob([template as BlobPart]), 'template.docx');
  body.append('task', new Blob([JSON.stringify(parts.task ?? TASK)]), 'task.json');
  for (const [name, value] of Object.entries(parts.fields ?? {})) body.append(name, value);
  return fetch(`${server.baseUrl}/v1/run`, { method: 'POST', body, headers });
}

interface SkillMeta {
  source: string;
  description: string;
  list_separator: string;
  fields: Record<string, { placeholder: string; type: string; required: boolean }>;
}

/** The parts of `/v1/meta` the cases read. */
interface Meta {
  supported_skills: string[];
  supported_task_types: string[];
  supported_presets: string[];
  task_payload_schemas: Record<
    string,
    { extra_policy: string; fields: Record<string, { type: string; required: boolean; nullable: boolean }> }
  >;
  skills: Record<string, SkillMeta>;
  features: Record<string, boolean>;
  limits: Record<string, number>;
  version: string;
}

interface Success {
  response: Response;
  zip: ZipEntries;
  requestId: string;
  apiResult: Record<string, unknown> & {
    timing: { queue_wait_ms: number; subprocess_ms: number; zip_ms: number; total_ms: number };
    subprocess_pid: number;
  };
}

/** A 200 zip response with the headers every success carries; returns the parsed zip. */
async function expectZip(response: Response, exitCode: number): Promise<Success> {
  if (response.status !== 200)
    throw new Error(`expected 200, got ${response.status}: ${await response.text()}`);
  expect(response.headers.get('content-type')).toBe('application/zip');
  expect(response.headers.get('content-disposition')).toBe('attachment; filename="docops_outputs.zip"');
  expect(response.headers.get('x-docops-exit-code')).toBe(String(exitCode));
  expect(response.headers.get('x-content-type-options')).toBe('nosniff');
  const requestId = response.headers.get('x-docops-request-id') as string;
  expect(requestId).toMatch(REQUEST_ID);
  const zip = await readZip(response);
  const apiResult = zip.json('api_result.json') as Success['apiResult'];
  expect(apiResult.exit_code).toBe(exitCode);
  expect(apiResult.request_id).toBe(requestId);
  return { response, zip, requestId, apiResult };
}

describe('GET /readyz', () => {
  it('200 ready with the idle render processes', async () => {
    const response = await fetch(`${server.baseUrl}/readyz`);
    expect(response.status).toBe(200);
    expect(response.headers.get('x-docops-request-id')).toMatch(REQUEST_ID);
    expect(response.headers.get('x-content-type-options')).toBe('nosniff');
    expect(await response.json()).toEqual({ status: 'ready', idle_workers: 2 });
  });
});

describe('GET /healthz (case 1)', () => {
  it('200 {"status":"ok"} with a request id', async () => {
    const response = await fetch(`${server.baseUrl}/healthz`);
    expect(response.status).toBe(200);
    expect(response.headers.get('x-docops-request-id')).toMatch(REQUEST_ID);
    expect(response.headers.get('x-content-type-options')).toBe('nosniff');
    expect(await response.json()).toEqual({ status: 'ok' });
  });
});

describe('POST /v1/run', () => {
  let kickoff: Success;
  // LibreOffice's text export of the filled document, started early: it runs while the other cases do.
  let libreOfficeText: Promise<{ code: number | null; stderr: string; text: string | null }> | null = null;
  let pdfRun: Promise<Response | Error> | null = null;

  beforeAll(async () => {
    kickoff = await expectZip(await run({}, { 'x-request-id': 'edge-42' }), 0);
    if (SOFFICE) {
      libreOfficeText = convertToText(SOFFICE, kickoff.zip.files['out.docx'] as Uint8Array);
      // The PDF conversion (seconds of LibreOffice start-up) also runs while the other cases do.
      pdfRun = run({ fields: { pdf: 'true', export_suggested_policy: '1' } }).catch(
        (error: unknown) => error as Error,
      );
    }
  });

  it('fills the template: entries in order, the filled paragraph, api_result.json (case 2)', async () => {
    const { zip, apiResult, requestId } = kickoff;
    expect(zip.names).toEqual([...REPORTS, 'api_result.json']);
    expect(documentParagraphTexts(zip.files['out.docx'] as Uint8Array)).toEqual([`Title: ${TITLE}`]);
    expect(zip.json('out.missing_fields.json')).toEqual({
      missing_required: [],
      missing_optional: [],
      unknown: [],
    });
    const replaceLog = zip.json('out.replace_log.json') as {
      entries: Record<string, unknown>[];
      summary: Record<string, unknown>;
    };
    expect(replaceLog.entries).toEqual([
      expect.objectContaining({
        status: 'replaced',
        field_name: 'MEETING_TITLE',
        run_id: 'p0:r0',
        paragraph_path: 'p0',
        new_text: TITLE,
      }),
    ]);
    expect(replaceLog.summary).toMatchObject({
      total_placeholders: 1,
      replaced_count: 1,
      missing_count: 0,
      unsupported_mode: 'error',
    });
    expect(zip.json('out.format_report.json')).toMatchObject({ passed: true, error_count: 0 });

    expect(apiResult).toMatchObject({
      exit_code: 0,
      message: 'success',
      request_id: requestId,
      subprocess_start_method: 'spawn',
      input: {
        skill: null,
        preset: null,
        format_mode: null,
        format_baseline: null,
        format_fix_mode: null,
        format_report: null,
        policy_yaml_provided: false,
        export_suggested_policy: null,
        unsupported_mode: null,
        pdf: null,
      },
      effective: {
        preset: 'quick',
        format_mode: 'report',
        format_baseline: 'template',
        format_fix_mode: 'safe',
        format_report: 'json',
        unsupported_mode: 'error',
      },
      pdf: { requested: false, status: 'not_requested' },
      build: { version: PACKAGE_VERSION, commit: 'unknown' },
    });
    expect(Object.keys(apiResult.timing).sort()).toEqual([
      'queue_wait_ms',
      'subprocess_ms',
      'total_ms',
      'zip_ms',
    ]);
    for (const value of Object.values(apiResult.timing))
      expect(Number.isInteger(value) && value >= 0).toBe(true);
    expect(apiResult.timing.total_ms).toBeGreaterThanOrEqual(apiResult.timing.subprocess_ms);
  });

  it('logs start and done with the same request id, outcome ok and the same timings (case 21)', async () => {
    const { requestId, apiResult } = kickoff;
    const start = await apiEvent(server, requestId, 'start');
    const done = await apiEvent(server, requestId, 'done');
    expect(start).toMatchObject({
      level: 'info',
      logger: 'docops.api',
      skill: 'meeting_notice',
      task_type: 'meeting_notice',
      preset_input: null,
      effective: apiResult.effective,
      max_upload_bytes: 26_214_400,
      timeout_seconds: 60,
      queue_wait_ms: apiResult.timing.queue_wait_ms,
      policy_yaml_provided: false,
      upstream_request_id: 'edge-42',
    });
    expect(done).toMatchObject({
      level: 'info',
      logger: 'docops.api',
      exit_code: 0,
      outcome: 'ok',
      http_status: 200,
      timing: apiResult.timing,
      subprocess_pid: apiResult.subprocess_pid,
      debug_trace_enabled: false,
      upstream_request_id: 'edge-42',
    });
    for (const line of [start, done])
      expect(typeof line.time === 'string' && !Number.isNaN(Date.parse(line.time))).toBe(true);
    expect(kickoff.requestId).not.toBe('edge-42');
  });

  it('the render process of a job is gone after its response; every job gets a fresh one', async () => {
    const first = kickoff.apiResult.subprocess_pid;
    expect(await survivors([first], 3000)).toEqual([]);
    const second = await expectZip(await run(), 0);
    expect(second.apiResult.subprocess_pid).not.toBe(first);
    // Their workspaces are gone (the PDF case may still be running in its own).
    for (const { requestId } of [kickoff, second]) {
      await waitFor(
        () => !existsSync(join(server.tmpDir, `docops-run-${requestId}`)),
        3000,
        'workspace removal',
      );
    }
  });

  it('export_suggested_policy=true adds out.suggested_policy.yaml before api_result.json (case 3)', async () => {
    const { zip, apiResult } = await expectZip(
      await run({ template: TABLE_TEMPLATE, fields: { export_suggested_policy: ' TRUE ' } }),
      0,
    );
    expect(zip.names).toEqual([...REPORTS, 'out.suggested_policy.yaml', 'api_result.json']);
    const yaml = zip.text('out.suggested_policy.yaml');
    expect(yaml).toMatch(/^forbid_tables: false$/m);
    expect(yaml).toMatch(/^twips_tolerance: 20$/m);
    expect((apiResult.input as Record<string, unknown>).export_suggested_policy).toBe('TRUE');
  });

  it('an empty payload → exit 2 with MEETING_TITLE missing (case 5)', async () => {
    const { zip, apiResult, requestId } = await expectZip(
      await run({ task: { task_type: 'meeting_notice', payload: {} } }),
      2,
    );
    expect(apiResult.message).toBe('missing required fields');
    expect(zip.json('out.missing_fields.json')).toEqual({
      missing_required: ['MEETING_TITLE'],
      missing_optional: [],
      unknown: [],
    });
    expect(documentParagraphTexts(zip.files['out.docx'] as Uint8Array)).toEqual(['Title: 【MEETING_TITLE】']);
    expect(await apiEvent(server, requestId, 'done')).toMatchObject({
      exit_code: 2,
      outcome: 'missing_required',
      http_status: 200,
    });
  });

  it('training_notice and inspection_record: exit 0 when filled, 2 when empty (case 6)', async () => {
    const cases = [
      { skill: 'training_notice', placeholder: 'TRAINING_TITLE', key: 'training_title' },
      { skill: 'inspection_record', placeholder: 'INSPECTION_SUBJECT', key: 'inspection_subject' },
    ];
    for (const { skill, placeholder, key } of cases) {
      const template = buildDocx({ paragraphs: [`Subject: 【${placeholder}】`] });
      const filled = await expectZip(
        await run({
          template,
          task: { task_type: skill, payload: { [key]: 'Fire drill' } },
          fields: { skill },
        }),
        0,
      );
      expect(documentParagraphTexts(filled.zip.files['out.docx'] as Uint8Array)).toEqual([
        'Subject: Fire drill',
      ]);
      expect((filled.apiResult.input as Record<string, unknown>).skill).toBe(skill);
      const empty = await expectZip(
        await run({ template, task: { task_type: skill, payload: {} }, fields: { skill } }),
        2,
      );
      expect(empty.zip.json('out.missing_fields.json')).toMatchObject({ missing_required: [placeholder] });
    }
  });

  it('a table with preset=strict → exit 4, TABLE_FORBIDDEN at t0 (case 7)', async () => {
    const { zip, apiResult, requestId } = await expectZip(
      await run({ template: TABLE_TEMPLATE, fields: { preset: 'STRICT' } }),
      4,
    );
    expect(apiResult.message).toBe('format validation failed');
    expect(apiResult.effective).toMatchObject({
      preset: 'strict',
      format_mode: 'strict',
      format_baseline: 'policy',
      format_fix_mode: 'safe',
    });
    const report = zip.json('out.format_report.json') as {
      passed: boolean;
      issues: Record<string, unknown>[];
    };
    expect(report.passed).toBe(false);
    expect(report.issues).toContainEqual(
      expect.objectContaining({ code: 'TABLE_FORBIDDEN', paragraph_path: 't0', fixable: false }),
    );
    expect(await apiEvent(server, requestId, 'done')).toMatchObject({
      exit_code: 4,
      outcome: 'strict_failed',
    });
  });

  it('a table, preset=strict and an empty payload → API exit 4, CLI exit 2 (case 8)', async () => {
    const api = await expectZip(
      await run({
        template: TABLE_TEMPLATE,
        task: { task_type: 'meeting_notice', payload: {} },
        fields: { preset: 'strict' },
      }),
      4,
    );
    expect(api.zip.json('out.missing_fields.json')).toMatchObject({ missing_required: ['MEETING_TITLE'] });

    const dir = join(scratch, 'case8');
    mkdirSync(dir);
    writeFileSync(join(dir, 'template.docx'), TABLE_TEMPLATE);
    writeFileSync(join(dir, 'task.json'), JSON.stringify({ task_type: 'meeting_notice', payload: {} }));
    const cli = await runDocops([
      'run',
      '--template',
      join(dir, 'template.docx'),
      '--task',
      join(dir, 'task.json'),
      '--out-dir',
      join(dir, 'out'),
      '--preset',
      'strict',
    ]);
    expect(cli.code).toBe(2);
  });

  it('preset=template with strict=true → strict/template/none (case 10)', async () => {
    const { apiResult } = await expectZip(await run({ fields: { preset: 'template', strict: 'on' } }), 0);
    expect(apiResult.effective).toEqual({
      preset: 'template',
      format_mode: 'strict',
      format_baseline: 'template',
      format_fix_mode: 'none',
      format_report: 'json',
      unsupported_mode: 'error',
    });
    expect(apiResult.input).toMatchObject({ preset: 'template' });
  });

  it('explicit format parts without a preset; enum values are lower-cased, raw values kept in input', async () => {
    const { apiResult } = await expectZip(
      await run({ fields: { format_mode: ' Off ', format_fix_mode: 'NONE', format_report: 'Both' } }),
      0,
    );
    expect(apiResult.effective).toEqual({
      preset: 'quick',
      format_mode: 'off',
      format_baseline: 'template',
      format_fix_mode: 'none',
      format_report: 'both',
      unsupported_mode: 'error',
    });
    expect(apiResult.input).toMatchObject({
      format_mode: 'Off',
      format_fix_mode: 'NONE',
      format_report: 'Both',
    });
  });

  it('policy_yaml with a preset is accepted, applied, and never logged', async () => {
    const policy = `run_font_latin: ${POLICY_MARKER}\nforbid_tables: false\n`;
    // The policy allows tables (so strict passes) and asks for a font the touched run does not set: a warning.
    const { zip, apiResult, requestId } = await expectZip(
      await run({ template: TABLE_TEMPLATE, fields: { preset: 'strict', policy_yaml: policy } }),
      0,
    );
    expect((apiResult.input as Record<string, unknown>).policy_yaml_provided).toBe(true);
    expect(apiResult.effective).toMatchObject({
      preset: 'strict',
      format_mode: 'strict',
      format_baseline: 'policy',
    });
    const report = zip.json('out.format_report.json') as {
      passed: boolean;
      issues: { code: string; expected: unknown }[];
    };
    expect(report.passed).toBe(true);
    expect(report.issues.map((issue) => issue.code)).not.toContain('TABLE_FORBIDDEN');
    expect(report.issues).toContainEqual(
      expect.objectContaining({
        code: 'RUN_FONT_MISMATCH',
        expected: POLICY_MARKER,
        severity: 'warn',
        observability: 'unknown',
      }),
    );
    expect(await apiEvent(server, requestId, 'start')).toMatchObject({
      policy_yaml_provided: true,
      preset_input: 'strict',
    });
  });

  it('split placeholders: mergeable ones are replaced; differently formatted ones → exit 3, or 0 with unsupported_mode=warn', async () => {
    const merged = buildDocx({ body: `<w:p>${runXml('Title: 【MEETING_')}${runXml('TITLE】')}</w:p>` });
    const ok = await expectZip(await run({ template: merged }), 0);
    expect(documentParagraphTexts(ok.zip.files['out.docx'] as Uint8Array)).toEqual([`Title: ${TITLE}`]);

    const cross = buildDocx({ body: `<w:p>${runXml('【MEETING_')}${runXml('TITLE】', '<w:b/>')}</w:p>` });
    const refused = await expectZip(await run({ template: cross }), 3);
    expect(refused.apiResult.message).toBe('template unsupported placeholders');
    expect(documentParagraphTexts(refused.zip.files['out.docx'] as Uint8Array)).toEqual([
      '【MEETING_TITLE】',
    ]);
    expect(refused.zip.json('out.format_report.json')).toMatchObject({ passed: true, summary: null });
    expect(await apiEvent(server, refused.requestId, 'done')).toMatchObject({
      exit_code: 3,
      outcome: 'other_exit_code',
    });

    const warned = await expectZip(await run({ template: cross, fields: { unsupported_mode: 'WARN' } }), 0);
    expect(warned.apiResult.effective).toMatchObject({ unsupported_mode: 'warn' });
    expect(
      (warned.zip.json('out.replace_log.json') as { summary: Record<string, unknown> }).summary,
    ).toMatchObject({
      had_unsupported: true,
      unsupported_mode: 'warn',
    });
  });

  it('out.docx opens in python-docx with the filled text', async (context) => {
    if (!PYTHON_DOCX) {
      console.warn('skipped: python-docx for /usr/bin/python3 is not installed');
      context.skip();
    }
    const path = join(scratch, 'python-docx.docx');
    writeFileSync(path, kickoff.zip.files['out.docx'] as Uint8Array);
    const script = 'import sys, docx\nfor p in docx.Document(sys.argv[1]).paragraphs: print(p.text)';
    const result = spawnSync('/usr/bin/python3', ['-c', script, path], { encoding: 'utf8' });
    expect(result.stderr).toBe('');
    expect(result.stdout.trim().split('\n')).toEqual([`Title: ${TITLE}`]);
  });

  it('out.docx converts to text in LibreOffice with the filled text', async (context) => {
    if (!libreOfficeText) {
      console.warn('skipped: LibreOffice (soffice) is not installed');
      context.skip();
    }
    const { code, stderr, text } = await (libreOfficeText as NonNullable<typeof libreOfficeText>);
    expect(code, stderr).toBe(0);
    expect(text).toContain(`Title: ${TITLE}`);
  }, 120_000);

  it('pdf=true adds out.pdf after the suggested policy (case 46)', async (context) => {
    const meta = (await (await fetch(`${server.baseUrl}/v1/meta`)).json()) as {
      features: { pdf_export: boolean };
    };
    if (!SOFFICE) {
      expect(meta.features.pdf_export).toBe(false);
      console.warn('skipped: LibreOffice (soffice) is not installed, so PDF export is unavailable');
      context.skip();
    }
    expect(meta.features.pdf_export).toBe(true);
    const response = await pdfRun;
    if (!(response instanceof Response)) throw response;
    const { zip, apiResult } = await expectZip(response, 0);
    expect(zip.names).toEqual([...REPORTS, 'out.suggested_policy.yaml', 'out.pdf', 'api_result.json']);
    const pdf = zip.files['out.pdf'] as Uint8Array;
    expect(new TextDecoder().decode(pdf.subarray(0, 5))).toBe('%PDF-');
    expect(apiResult.pdf).toEqual({ requested: true, status: 'ok' });
    expect(apiResult.input).toMatchObject({ pdf: 'true' });
    if (PDFTOTEXT) {
      const path = join(scratch, 'out.pdf');
      writeFileSync(path, pdf);
      expect(spawnSync('pdftotext', [path, '-'], { encoding: 'utf8' }).stdout).toContain(`Title: ${TITLE}`);
    }
  }, 120_000);

  it('the logs never contain payload values, template text or policy text', async () => {
    expect(await settledWorkspaces(server.tmpDir)).toEqual([]);
    // With no request in flight the service keeps no files at all under DOCOPS_TMP_DIR.
    expect(readdirSync(server.tmpDir)).toEqual([]);
    const stdout = JSON.stringify(server.logs());
    expect(stdout).not.toContain(TITLE);
    expect(stdout).not.toContain(POLICY_MARKER);
    expect(stdout).not.toContain('Fire drill');
    expect(stdout).not.toContain('Title:');
  });
});

describe('POST /v1/inspect', () => {
  const template = buildDocx({
    body:
      paragraphXml('Title: 【MEETING_TITLE】 at 【VENUE】 【bad】') +
      paragraphXml('Hello【FIELD') +
      `<w:p>${runXml('【MEETING_')}${runXml('DATE】')}</w:p>` +
      tableXml([['【MEETING_TITLE】', 'x']]),
    headers: { header1: paragraphXml('【ORGANIZER】') },
  });

  async function inspect(fields: Record<string, string> = {}) {
    const body = new FormData();
    body.append('template', new Blob([template as BlobPart]), 'template.docx');
    for (const [name, value] of Object.entries(fields)) body.append(name, value);
    const response = await fetch(`${server.baseUrl}/v1/inspect`, { method: 'POST', body });
    expect(response.status).toBe(200);
    expect(response.headers.has('x-docops-exit-code')).toBe(false);
    const requestId = response.headers.get('x-docops-request-id');
    const json = (await response.json()) as Record<string, unknown>;
    expect(json.request_id).toBe(requestId);
    return json;
  }

  it('lists placeholders in order of first occurrence, unsupported tokens with positions, and skill fields', async () => {
    const result = await inspect({ skill: 'meeting_notice' });
    expect(result.fingerprint).toMatch(/^[0-9a-f]{64}$/);
    expect(result.placeholders).toEqual([
      {
        field_name: 'MEETING_TITLE',
        occurrences: [
          { paragraph_path: 'p0', run_id: 'p0:r0', merged_runs: null },
          { paragraph_path: 't0.r0.c0.p0', run_id: 't0.r0.c0.p0:r0', merged_runs: null },
        ],
      },
      { field_name: 'VENUE', occurrences: [{ paragraph_path: 'p0', run_id: 'p0:r0', merged_runs: null }] },
      {
        field_name: 'MEETING_DATE',
        occurrences: [{ paragraph_path: 'p2', run_id: 'p2:r0', merged_runs: ['p2:r0', 'p2:r1'] }],
      },
      {
        field_name: 'ORGANIZER',
        occurrences: [{ paragraph_path: 'header1.p0', run_id: 'header1.p0:r0', merged_runs: null }],
      },
    ]);
    expect(result.unsupported).toEqual([
      { kind: 'invalid_format', text: '【bad】', run_id: 'p0:r0', paragraph_path: 'p0', start: 34, end: 39 },
      { kind: 'unclosed_bracket', text: '【FIELD', run_id: 'p1:r0', paragraph_path: 'p1', start: 5, end: 11 },
    ]);
    expect(result.skill).toEqual({
      name: 'meeting_notice',
      known_fields: ['MEETING_DATE', 'MEETING_TITLE', 'ORGANIZER'],
      unknown_placeholders: ['VENUE'],
      required_fields_absent_from_template: ['MEETING_LOCATION', 'MEETING_TIME'],
    });
  });

  it('without a skill, skill is null; the fingerprint does not depend on the skill', async () => {
    const withSkill = await inspect({ skill: 'meeting_notice' });
    const without = await inspect();
    expect(without.skill).toBeNull();
    expect(without.fingerprint).toBe(withSkill.fingerprint);
    expect(await settledWorkspaces(server.tmpDir)).toEqual([]);
  });

  it('logs start and done on docops.api with the request id', async () => {
    const result = await inspect({ skill: 'meeting_notice' });
    const requestId = result.request_id as string;
    expect(await apiEvent(server, requestId, 'start')).toMatchObject({
      logger: 'docops.api',
      endpoint: 'inspect',
      skill: 'meeting_notice',
      queue_wait_ms: expect.any(Number),
    });
    const done = await apiEvent(server, requestId, 'done');
    expect(done).toMatchObject({
      logger: 'docops.api',
      endpoint: 'inspect',
      outcome: 'ok',
      http_status: 200,
    });
    expect(done.subprocess_pid).toEqual(expect.any(Number));
  });
});

describe('GET /v1/meta (case 19)', () => {
  it('lists skills, task types, presets, schemas, features and limits', async () => {
    const response = await fetch(`${server.baseUrl}/v1/meta`);
    expect(response.status).toBe(200);
    const meta = (await response.json()) as Meta;
    expect(meta.supported_skills).toEqual(BUILTINS);
    expect(meta.supported_task_types).toEqual(BUILTINS);
    expect(meta.supported_presets).toEqual(['quick', 'template', 'strict']);
    const schema = meta.task_payload_schemas.meeting_notice as Meta['task_payload_schemas'][string];
    expect(schema.extra_policy).toBe('forbid');
    expect(Object.keys(schema.fields)).toEqual([
      'attendees',
      'meeting_date',
      'meeting_location',
      'meeting_time',
      'meeting_title',
      'organizer',
    ]);
    expect(schema.fields.attendees).toEqual({ type: 'list[str]', required: false, nullable: true });
    expect(schema.fields.meeting_title).toEqual({ type: 'str', required: false, nullable: true });
    expect(meta.skills.meeting_notice).toMatchObject({
      source: 'builtin',
      list_separator: ', ',
      description: expect.any(String),
    });
    expect(meta.skills.meeting_notice?.fields.meeting_title).toEqual({
      placeholder: 'MEETING_TITLE',
      type: 'str',
      required: true,
    });
    expect(meta.skills.meeting_notice?.fields.attendees).toEqual({
      placeholder: 'ATTENDEES',
      type: 'list[str]',
      required: false,
    });
    const trainingFields = Object.keys(meta.skills.training_notice?.fields ?? {});
    expect(trainingFields).toEqual([...trainingFields].sort());
    expect(trainingFields).toHaveLength(7);
    expect(meta.features).toEqual({
      pdf_export: SOFFICE !== null,
      split_run_placeholders: true,
      header_footer_placeholders: true,
    });
    expect(meta.limits).toEqual({
      max_upload_bytes: 26_214_400,
      max_template_uncompressed_bytes: 104_857_600,
      request_timeout_seconds: 60,
      max_concurrency: 2,
      queue_timeout_seconds: 0,
    });
    expect(meta.version).toBe(PACKAGE_VERSION);
  });
});

describe('operator skills and debug artifacts (cases 4, 45)', () => {
  const visitorTemplate = buildDocx({
    paragraphs: ['Visitor: 【VISITOR_NAME】 on 【VISIT_DATE】 with 【ESCORTS】'],
  });
  const visitorTask = {
    task_type: 'visitor_pass',
    payload: { visitor_name: 'R. Roe', visit_date: '2025-03-01', escorts: ['A', 'B'] },
  };

  it('the registry skill appears in /v1/meta', async () => {
    const meta = (await (await fetch(`${registryServer.baseUrl}/v1/meta`)).json()) as Meta;
    expect(meta.supported_skills).toEqual([
      'inspection_record',
      'meeting_notice',
      'training_notice',
      'visitor_pass',
    ]);
    expect(meta.skills.visitor_pass).toEqual({
      source: 'registry',
      description: 'Site visitor pass',
      list_separator: ' / ',
      fields: {
        escorts: { placeholder: 'ESCORTS', type: 'list[str]', required: false },
        visit_date: { placeholder: 'VISIT_DATE', type: 'str', required: true },
        visitor_name: { placeholder: 'VISITOR_NAME', type: 'str', required: true },
      },
    });
    expect(meta.task_payload_schemas.visitor_pass?.extra_policy).toBe('forbid');
  });

  it('renders with the registry skill; trace.json comes last with the same request id, pid and timing (case 4)', async () => {
    const body = new FormData();
    body.append('template', new Blob([visitorTemplate as BlobPart]), 'pass.docx');
    body.append('task', new Blob([JSON.stringify(visitorTask)]), 'pass.json');
    body.append('skill', 'visitor_pass');
    const response = await fetch(`${registryServer.baseUrl}/v1/run`, { method: 'POST', body });
    const { zip, apiResult, requestId } = await expectZip(response, 0);
    expect(zip.names).toEqual([...REPORTS, 'api_result.json', 'trace.json']);
    expect(documentParagraphTexts(zip.files['out.docx'] as Uint8Array)).toEqual([
      'Visitor: R. Roe on 2025-03-01 with A / B',
    ]);
    expect(apiResult.build).toEqual({ version: PACKAGE_VERSION, commit: 'abc1234' });
    expect(zip.json('trace.json')).toEqual({
      request_id: requestId,
      exit_code: 0,
      timing: apiResult.timing,
      subprocess: { pid: apiResult.subprocess_pid, start_method: 'spawn' },
      effective: apiResult.effective,
    });
    expect(await apiEvent(registryServer, requestId, 'done')).toMatchObject({
      debug_trace_enabled: true,
      outcome: 'ok',
    });
  });

  it('a failed PDF conversion keeps the 200 and the docx, with pdf.status "failed"', async () => {
    const response = await postRun(registryServer.baseUrl, {
      template: TEMPLATE,
      task: TASK,
      fields: { pdf: 'true' },
    });
    const { zip, apiResult } = await expectZip(response, 0);
    expect(zip.names).toEqual([...REPORTS, 'api_result.json', 'trace.json']);
    expect(documentParagraphTexts(zip.files['out.docx'] as Uint8Array)).toEqual([`Title: ${TITLE}`]);
    expect(apiResult.pdf).toEqual({ requested: true, status: 'failed', error: expect.any(String) });
    expect(JSON.stringify(apiResult.pdf)).not.toMatch(/\/(tmp|bin|work)\b|docops-run-/);
  });

  it('an unknown skill error lists the registry skill too', async () => {
    const response = await postRun(registryServer.baseUrl, {
      template: visitorTemplate,
      task: visitorTask,
      fields: { skill: 'nope' },
    });
    expect(response.status).toBe(400);
    expect(
      ((await response.json()) as { detail: { supported_skills: string[] } }).detail.supported_skills,
    ).toEqual(['inspection_record', 'meeting_notice', 'training_notice', 'visitor_pass']);
  });

  it('/v1/inspect knows the registry skill', async () => {
    const body = new FormData();
    body.append('template', new Blob([visitorTemplate as BlobPart]), 'pass.docx');
    body.append('skill', 'visitor_pass');
    const result = (await (
      await fetch(`${registryServer.baseUrl}/v1/inspect`, { method: 'POST', body })
    ).json()) as Record<string, unknown>;
    expect(result.skill).toEqual({
      name: 'visitor_pass',
      known_fields: ['ESCORTS', 'VISITOR_NAME', 'VISIT_DATE'],
      unknown_placeholders: [],
      required_fields_absent_from_template: [],
    });
  });

  it('an invalid registry file stops start-up with exit 1, naming the file', async () => {
    const bad = mkdtempSync(join(tmpdir(), 'docops-bad-skills-'));
    try {
      writeFileSync(
        join(bad, 'broken_pass.yaml'),
        'name: broken_pass\nfields:\n  visitor_name: {placeholder: visitor-name}\n',
      );
      const result = await runDocops(['serve', '--port', '0'], {
        DOCOPS_SKILLS_DIR: bad,
        DOCOPS_TMP_DIR: bad,
      });
      expect(result.code).toBe(1);
      expect(result.stderr).toContain('broken_pass.yaml');
      expect(result.stdout).not.toContain('listening');

      rmSync(join(bad, 'broken_pass.yaml'));
      writeFileSync(
        join(bad, 'dup.json'),
        JSON.stringify({ name: 'meeting_notice', fields: { a: { placeholder: 'A' } } }),
      );
      const duplicate = await runDocops(['serve', '--port', '0'], {
        DOCOPS_SKILLS_DIR: bad,
        DOCOPS_TMP_DIR: bad,
      });
      expect(duplicate.code).toBe(1);
      expect(duplicate.stderr).toContain('dup.json');
    } finally {
      rmSync(bad, { recursive: true, force: true });
    }
  });
});
