// DocOps Web Console: reads /v1/meta, builds the /v1/run form from it, posts the run and shows what came
// back — the zip is opened in the browser so every report is visible and each output downloadable.
import { readZip } from './zip-reader.js';

const FORMAT_FIELDS = ['format_mode', 'format_baseline', 'format_fix_mode', 'format_report'];
const OPTION_SELECTS = [...FORMAT_FIELDS, 'unsupported_mode'];
const FALLBACK_PRESETS = ['quick', 'template', 'strict'];
const EXIT_MEANINGS = {
  0: 'success',
  2: 'missing required fields',
  3: 'template unsupported placeholders',
  4: 'format validation failed',
};

const state = {
  meta: null,
  /** the skeleton last written into the task editor; the editor counts as edited when it differs */
  lastSkeleton: '',
  /** object URLs of the current downloads, revoked when a new run starts */
  objectUrls: [],
  running: false,
  runCount: 0,
};

const byId = (id) => {
  const element = document.getElementById(id);
  if (!element) throw new Error(`missing element #${id}`);
  return element;
};

/** Creates an element with attributes/properties and children (strings become text nodes, never HTML). */
function h(tag, attributes = {}, ...children) {
  const element = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) {
    if (value === undefined || value === null || value === false) continue;
    if (name === 'className') element.className = value;
    else if (name === 'dataset') Object.assign(element.dataset, value);
    else element.setAttribute(name, value === true ? '' : String(value));
  }
  for (const child of children.flat()) {
    if (child === undefined || child === null || child === false) continue;
    element.append(child instanceof Node ? child : String(child));
  }
  return element;
}

function setText(id, text) {
  byId(id).textContent = text;
}

function formatBytes(bytes) {
  if (typeof bytes !== 'number' || !Number.isFinite(bytes)) return '—';
  const units = ['bytes', 'KiB', 'MiB', 'GiB'];
  let value = bytes;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit++;
  }
  const rounded = unit === 0 ? String(value) : value.toFixed(value < 10 && value % 1 !== 0 ? 1 : 0);
  return `${rounded} ${units[unit]}`;
}

/** A readable rendering of a report value: null → dash, objects as compact JSON. */
function formatValue(value) {
  if (value === null || value === undefined) return '—';
  if (typeof value === 'object') return JSON.stringify(value);
  return String(value);
}

// ---------------------------------------------------------------------------------------------------------
// Metadata and pickers

function skillFields(skill) {
  const meta = state.meta;
  if (!meta) return [];
  const described = meta.skills?.[skill]?.fields;
  if (described && typeof described === 'object') {
    return Object.entries(described).map(([key, field]) => ({
      key,
      placeholder: field?.placeholder ?? key.toUpperCase(),
      type: field?.type ?? 'str',
      required: field?.required === true,
    }));
  }
  const schema = meta.task_payload_schemas?.[skill]?.fields ?? {};
  return Object.entries(schema).map(([key, field]) => ({
    key,
    placeholder: key.toUpperCase(),
    type: field?.type ?? 'str',
    required: false,
  }));
}

function skeletonFor(skill) {
  const payload = {};
  for (const field of skillFields(skill)) payload[field.key] = field.type === 'list[str]' ? [] : '';
  return JSON.stringify({ task_type: skill || 'meeting_notice', payload }, null, 2);
}

function selectedSkill() {
  return byId('skill').value;
}

function writeSkeleton() {
  const skeleton = skeletonFor(selectedSkill());
  byId('task').value = skeleton;
  state.lastSkeleton = skeleton;
  byId('task-notice').hidden = true;
  updateTaskStatus();
}

function taskEdited() {
  const value = byId('task').value.trim();
  return value !== '' && value !== state.lastSkeleton.trim();
}

function renderSkillDetails() {
  const skill = selectedSkill();
  const info = state.meta?.skills?.[skill];
  const parts = [];
  if (info?.description) parts.push(info.description);
  if (info?.source) parts.push(info.source === 'registry' ? 'operator-defined skill' : 'built-in skill');
  if (info?.list_separator !== undefined) parts.push(`lists joined with “${info.list_separator}”`);
  setText('skill-description', parts.join(' · '));
  const body = byId('skill-fields').tBodies[0];
  body.replaceChildren(
    ...skillFields(skill).map((field) =>
      h(
        'tr',
        {},
        h('td', {}, h('code', {}, field.key)),
        h('td', {}, h('code', {}, `【${field.placeholder}】`)),
        h('td', {}, field.type),
        h('td', {}, field.required ? 'required' : 'optional'),
      ),
    ),
  );
}

function onSkillChange() {
  renderSkillDetails();
  if (!taskEdited()) {
    writeSkeleton();
    return;
  }
  const skill = selectedSkill();
  setText(
    'task-notice-text',
    `Your edited task was kept. Replace it with the ${skill} skeleton? (Its task_type must match the skill.)`,
  );
  byId('task-notice').hidden = false;
  updateTaskStatus();
}

function renderMeta(meta) {
  state.meta = meta;
  setText('meta-version', meta.version ?? '—');
  const limits = meta.limits ?? {};
  setText('meta-max-upload', formatBytes(limits.max_upload_bytes));
  setText(
    'meta-timeout',
    typeof limits.request_timeout_seconds === 'number' ? `${limits.request_timeout_seconds} s` : '—',
  );
  setText(
    'meta-concurrency',
    typeof limits.max_concurrency === 'number'
      ? `${limits.max_concurrency} (queue ${limits.queue_timeout_seconds ?? 0} s)`
      : '—',
  );
  const pdfAvailable = meta.features?.pdf_export === true;
  setText('meta-pdf', pdfAvailable ? 'available' : 'unavailable');
  const pdf = byId('pdf');
  pdf.disabled = !pdfAvailable;
  if (!pdfAvailable) pdf.checked = false;
  setText(
    'pdf-hint',
    pdfAvailable
      ? 'Adds out.pdf (converted by LibreOffice on the server).'
      : 'Unavailable: the server has no LibreOffice.',
  );

  const skills = Array.isArray(meta.supported_skills)
    ? meta.supported_skills
    : Object.keys(meta.skills ?? {});
  const skillSelect = byId('skill');
  skillSelect.replaceChildren(...skills.map((name) => h('option', { value: name }, name)));
  if (skills.includes('meeting_notice')) skillSelect.value = 'meeting_notice';

  const presets = Array.isArray(meta.supported_presets) ? meta.supported_presets : FALLBACK_PRESETS;
  fillPresets(presets);

  const status = byId('meta-status');
  status.dataset.state = 'ready';
  status.textContent = `Connected: ${skills.length} skill${skills.length === 1 ? '' : 's'} available.`;
  status.hidden = true;
  renderSkillDetails();
  writeSkeleton();
}

function fillPresets(presets) {
  const presetSelect = byId('preset');
  presetSelect.replaceChildren(
    h('option', { value: '' }, '(default: quick)'),
    ...presets.map((name) => h('option', { value: name }, name)),
  );
}

/** Without /v1/meta (disabled or failing) the console still runs: the server's default skill is used. */
function renderMetaUnavailable(text) {
  state.meta = null;
  for (const id of ['meta-version', 'meta-max-upload', 'meta-timeout', 'meta-concurrency', 'meta-pdf']) {
    setText(id, '—');
  }
  const skillSelect = byId('skill');
  skillSelect.replaceChildren(h('option', { value: '' }, '(server default)'));
  fillPresets(FALLBACK_PRESETS);
  setText('skill-description', 'Skill list unavailable; the task’s task_type decides.');
  const status = byId('meta-status');
  status.dataset.state = 'error';
  status.className = 'notice notice--warn';
  status.textContent = `Server metadata unavailable (${text}). Runs still work; write the task by hand.`;
  const skeleton = JSON.stringify({ task_type: 'meeting_notice', payload: {} }, null, 2);
  byId('task').value = skeleton;
  state.lastSkeleton = skeleton;
  updateTaskStatus();
}

async function loadMeta() {
  try {
    const response = await fetch('/v1/meta', { headers: { accept: 'application/json' } });
    const body = await response.json().catch(() => null);
    if (!response.ok || body === null || typeof body !== 'object') {
      const code = body && typeof body.error_code === 'string' ? body.error_code : `HTTP ${response.status}`;
      renderMetaUnavailable(code);
      return;
    }
    renderMeta(body);
  } catch (error) {
    renderMetaUnavailable(error instanceof Error ? error.message : 'network error');
  }
}

// ---------------------------------------------------------------------------------------------------------
// Form state hints

function parseTask(text) {
  try {
    return { value: JSON.parse(text), error: null };
  } catch (error) {
    return { value: null, error: error instanceof Error ? error.message : String(error) };
  }
}

function updateTaskStatus() {
  const status = byId('task-status');
  const text = byId('task').value;
  status.className = 'hint';
  if (text.trim() === '') {
    status.textContent = 'The task is empty.';
    status.classList.add('hint--warn');
    return;
  }
  const { value, error } = parseTask(text);
  if (error !== null) {
    status.textContent = `Not valid JSON: ${error}`;
    status.classList.add('hint--warn');
    return;
  }
  if (value === null || typeof value !== 'object' || Array.isArray(value)) {
    status.textContent = 'The task must be a JSON object {"task_type": …, "payload": {…}}.';
    status.classList.add('hint--warn');
    return;
  }
  const skill = selectedSkill();
  if (skill && value.task_type !== skill) {
    status.textContent = `task_type is ${JSON.stringify(value.task_type ?? null)} but the selected skill is ${skill}; the server will reject the mismatch.`;
    status.classList.add('hint--warn');
    return;
  }
  status.textContent = `Valid JSON · task_type ${value.task_type}`;
}

function explicitFormatFields() {
  return FORMAT_FIELDS.filter((name) => byId(name).value !== '');
}

function updateConflictHint() {
  const explicit = explicitFormatFields();
  const notes = [];
  if (byId('preset').value !== '' && explicit.length > 0) {
    notes.push(`A preset cannot be combined with ${explicit.join(', ')}.`);
  }
  if (byId('strict').checked && explicit.length > 0) {
    notes.push(`strict cannot be combined with ${explicit.join(', ')}.`);
  }
  const hint = byId('option-conflict');
  hint.textContent =
    notes.length > 0 ? `${notes.join(' ')} The server will answer INVALID_ARGUMENT_CONFLICT.` : '';
  hint.hidden = notes.length === 0;
}

function updateTemplateHint() {
  const file = byId('template').files?.[0];
  const hint = byId('template-hint');
  hint.className = 'hint';
  if (!file) {
    hint.textContent = 'A Word document with placeholders such as 【MEETING_TITLE】.';
    return;
  }
  const max = state.meta?.limits?.max_upload_bytes;
  if (typeof max === 'number' && file.size > max) {
    hint.textContent = `${file.name}: ${formatBytes(file.size)} — larger than the server limit of ${formatBytes(max)}.`;
    hint.classList.add('hint--warn');
    return;
  }
  hint.textContent = `${file.name} · ${formatBytes(file.size)}`;
}

// ---------------------------------------------------------------------------------------------------------
// Running

/** The multipart body: the two files, the skill, and only the options the user actually set. */
function buildRunForm(templateFile) {
  const form = new FormData();
  form.append('template', templateFile, templateFile.name);
  form.append('task', new File([byId('task').value], 'task.json', { type: 'application/json' }));
  const skill = selectedSkill();
  if (skill) form.append('skill', skill);
  const preset = byId('preset').value;
  if (preset) form.append('preset', preset);
  for (const name of OPTION_SELECTS) {
    const value = byId(name).value;
    if (value) form.append(name, value);
  }
  // strict=false means "not set", so an unchecked box sends nothing.
  if (byId('strict').checked) form.append('strict', 'true');
  if (byId('export_suggested_policy').checked) form.append('export_suggested_policy', 'true');
  const policy = byId('policy_yaml').value;
  if (policy.trim() !== '') form.append('policy_yaml', policy);
  const pdf = byId('pdf');
  if (pdf.checked && !pdf.disabled) form.append('pdf', 'true');
  return form;
}

function revokeDownloads() {
  for (const url of state.objectUrls) URL.revokeObjectURL(url);
  state.objectUrls = [];
  byId('downloads').replaceChildren();
}

/** A download link for bytes of the current result (an object URL, revoked when the next run starts). */
function offerDownload(id, label, bytes, filename, type) {
  const url = URL.createObjectURL(new Blob([bytes], { type }));
  state.objectUrls.push(url);
  byId('downloads').append(
    h('a', { id, className: 'button', href: url, download: filename, 'data-testid': id }, label),
  );
}

function setRunStatus(text, kind = '') {
  const status = byId('run-status');
  status.textContent = text;
  status.className = kind ? `run-status run-status--${kind}` : 'run-status';
}

function attachmentName(response, fallback) {
  const header = response.headers.get('content-disposition') ?? '';
  const match = /filename="?([^";]+)"?/i.exec(header);
  return match ? match[1] : fallback;
}

async function submitRun(event) {
  event.preventDefault();
  if (state.running) return;
  const templateInput = byId('template');
  const templateFile = templateInput.files?.[0];
  if (!templateFile) {
    setRunStatus('Choose a template (.docx) first.', 'error');
    templateInput.focus();
    return;
  }
  state.running = true;
  const submit = byId('submit');
  submit.disabled = true;
  submit.setAttribute('aria-busy', 'true');
  setRunStatus('Running…', 'busy');
  revokeDownloads();
  const started = performance.now();
  try {
    const response = await fetch('/v1/run', { method: 'POST', body: buildRunForm(templateFile) });
    const contentType = response.headers.get('content-type') ?? '';
    if (response.status === 200 && contentType.includes('application/zip')) {
      const zipBytes = new Uint8Array(await response.arrayBuffer());
      await showResult(response, zipBytes, Math.round(performance.now() - started));
    } else {
      await showErrorResponse(response);
    }
  } catch (error) {
    showError({
      status: 'no response',
      code: 'NETWORK_ERROR',
      message: error instanceof Error ? error.message : String(error),
      requestId: null,
      detail: {},
    });
  } finally {
    state.running = false;
    state.runCount++;
    // A completed-run counter, so scripts driving the page can wait for a specific run to finish.
    byId('run-form').dataset.runCount = String(state.runCount);
    submit.disabled = false;
    submit.removeAttribute('aria-busy');
  }
}

// ---------------------------------------------------------------------------------------------------------
// Errors

function renderDetailValue(value) {
  if (value === null || value === undefined) return h('span', { className: 'muted' }, 'null');
  if (Array.isArray(value)) {
    if (value.length === 0) return h('span', { className: 'muted' }, '(none)');
    if (value.every((item) => item === null || typeof item !== 'object')) {
      return h(
        'span',
        {},
        ...value.flatMap((item, index) => [index > 0 ? ', ' : '', h('code', {}, formatValue(item))]),
      );
    }
    return h(
      'ul',
      { className: 'detail-list' },
      ...value.map((item) => {
        if (item && typeof item === 'object' && !Array.isArray(item) && 'message' in item) {
          const where = item.path ?? item.field ?? item.loc;
          return h(
            'li',
            {},
            where !== undefined ? h('code', {}, formatValue(where)) : '',
            where !== undefined ? ': ' : '',
            String(item.message),
          );
        }
        return h('li', {}, renderDetailValue(item));
      }),
    );
  }
  if (typeof value === 'object') return renderDetailList(value);
  if (typeof value === 'string') return h('span', { className: 'detail-text' }, value);
  return h('code', {}, String(value));
}

function renderDetailList(detail) {
  const entries = Object.entries(detail);
  if (entries.length === 0) return h('p', { className: 'muted' }, 'No further details.');
  return h(
    'dl',
    { className: 'detail' },
    ...entries.map(([key, value]) =>
      h('div', { dataset: { detailKey: key } }, h('dt', {}, key), h('dd', {}, renderDetailValue(value))),
    ),
  );
}

function showError({ status, code, message, requestId, detail }) {
  byId('result').hidden = true;
  const panel = byId('error-panel');
  panel.hidden = false;
  setText('error-status', String(status));
  setText('error-code', code);
  setText('error-message', message);
  setText('error-request-id', requestId ?? '—');
  const rest = { ...detail };
  delete rest.request_id;
  byId('error-detail').replaceChildren(renderDetailList(rest));
  setRunStatus(`Failed: ${code}`, 'error');
  byId('error-heading').focus();
}

async function showErrorResponse(response) {
  const headerId = response.headers.get('x-docops-request-id');
  const text = await response.text();
  let body = null;
  try {
    body = JSON.parse(text);
  } catch {
    body = null;
  }
  if (body && typeof body === 'object' && typeof body.error_code === 'string') {
    const detail = body.detail && typeof body.detail === 'object' ? body.detail : {};
    showError({
      status: response.status,
      code: body.error_code,
      message: typeof body.message === 'string' ? body.message : '',
      requestId: typeof detail.request_id === 'string' ? detail.request_id : headerId,
      detail,
    });
    return;
  }
  showError({
    status: response.status,
    code: `HTTP_${response.status}`,
    message: text.trim().slice(0, 300) || response.statusText || 'unexpected response',
    requestId: headerId,
    detail: { content_type: response.headers.get('content-type') ?? null },
  });
}

// ---------------------------------------------------------------------------------------------------------
// Results

function jsonEntry(files, name) {
  const bytes = files.get(name);
  if (!bytes) return null;
  try {
    return JSON.parse(new TextDecoder().decode(bytes));
  } catch {
    return null;
  }
}

function fieldChips(names) {
  if (!Array.isArray(names) || names.length === 0) return [h('span', { className: 'muted' }, 'none')];
  return names.map((name) => h('code', { className: 'chip' }, name));
}

function cell(content, className) {
  return h('td', className ? { className } : {}, content);
}

function emptyRow(columns, text) {
  return h('tr', { className: 'empty-row' }, h('td', { colspan: columns, className: 'muted' }, text));
}

function renderMissing(missing) {
  byId('missing-required').replaceChildren(...fieldChips(missing?.missing_required));
  byId('missing-optional').replaceChildren(...fieldChips(missing?.missing_optional));
  byId('missing-unknown').replaceChildren(...fieldChips(missing?.unknown));
  byId('missing-table').dataset.requiredCount = String(missing?.missing_required?.length ?? 0);
}

function renderReplaceLog(log) {
  const entries = Array.isArray(log?.entries) ? log.entries : [];
  const summary = log?.summary;
  setText(
    'replace-summary',
    summary
      ? `${summary.total_placeholders} placeholder${summary.total_placeholders === 1 ? '' : 's'}: ` +
          `${summary.replaced_count} replaced, ${summary.missing_count} missing, ` +
          `${summary.unsupported_count} unsupported (mode ${summary.unsupported_mode}).`
      : '',
  );
  const body = byId('replace-log').tBodies[0];
  if (entries.length === 0) {
    body.replaceChildren(emptyRow(6, 'No placeholders found.'));
    return;
  }
  body.replaceChildren(
    ...entries.map((entry) => {
      const change =
        entry.status === 'replaced'
          ? h(
              'span',
              {},
              h('code', {}, entry.original_text),
              ' → ',
              h('code', { className: 'new-text' }, entry.new_text ?? ''),
            )
          : h('code', {}, entry.original_text);
      const runId = entry.merged_runs?.length
        ? `${entry.run_id} (merged ${entry.merged_runs.join(', ')})`
        : entry.run_id;
      return h(
        'tr',
        { dataset: { status: entry.status, field: entry.field_name ?? '' } },
        cell(h('span', { className: `status status--${entry.status}` }, entry.status)),
        cell(entry.field_name ? h('code', {}, entry.field_name) : '—'),
        cell(formatValue(runId), 'mono'),
        cell(entry.paragraph_path, 'mono'),
        cell(change, 'wrap'),
        cell(formatValue(entry.reason)),
      );
    }),
  );
}

function renderFormatReport(report) {
  const summary = report?.summary ?? null;
  const passed = byId('format-passed');
  passed.replaceChildren(
    h(
      'span',
      { className: `status status--${report?.passed ? 'passed' : 'failed'}` },
      report?.passed ? 'passed' : 'failed',
    ),
  );
  passed.dataset.passed = String(report?.passed === true);
  setText('format-error-count', formatValue(report?.error_count));
  setText('format-fixed-count', formatValue(report?.fixed_count));
  setText(
    'format-mode-baseline',
    summary
      ? `${summary.mode} / ${summary.baseline}${summary.skipped ? ' (checks skipped)' : ''}`
      : 'not run',
  );

  const issues = Array.isArray(report?.issues) ? report.issues : [];
  const issueBody = byId('format-issues').tBodies[0];
  issueBody.replaceChildren(
    ...(issues.length === 0
      ? [emptyRow(7, 'No issues.')]
      : issues.map((issue) =>
          h(
            'tr',
            { dataset: { code: issue.code, severity: issue.severity } },
            cell(h('code', {}, issue.code)),
            cell(
              h(
                'span',
                { className: `status status--${issue.severity}` },
                `${issue.severity}${issue.observability === 'unknown' ? ' (unknown)' : ''}`,
              ),
            ),
            cell(
              issue.run_id ? `${issue.paragraph_path} · ${issue.run_id}` : formatValue(issue.paragraph_path),
              'mono',
            ),
            cell(formatValue(issue.expected), 'wrap'),
            cell(formatValue(issue.actual), 'wrap'),
            cell(issue.fixed ? 'yes' : issue.fixable ? 'no (fixable)' : 'no'),
            cell(formatValue(issue.message), 'wrap'),
          ),
        )),
  );

  const suggestions = byId('format-suggestions');
  const byCode = summary?.diagnostics?.by_code;
  if (byCode && Object.keys(byCode).length > 0) {
    suggestions.replaceChildren(
      h(
        'ul',
        { className: 'suggestions' },
        ...Object.entries(byCode).map(([code, info]) =>
          h(
            'li',
            { dataset: { code } },
            h('code', {}, code),
            ` × ${info?.count ?? 0}`,
            Array.isArray(info?.suggestions) && info.suggestions.length > 0
              ? h('ul', {}, ...info.suggestions.map((text) => h('li', {}, text)))
              : '',
          ),
        ),
      ),
    );
  } else {
    suggestions.replaceChildren(
      h('p', { className: 'muted' }, summary?.diagnostics ? 'No suggestions.' : 'No diagnostics.'),
    );
  }

  const changes = Array.isArray(summary?.fix_changes) ? summary.fix_changes : [];
  byId('fix-changes').tBodies[0].replaceChildren(
    ...(changes.length === 0
      ? [emptyRow(5, summary ? 'No changes were made.' : 'Format checks did not run.')]
      : changes.map((change) =>
          h(
            'tr',
            {},
            cell(change.paragraph_path, 'mono'),
            cell(h('code', {}, change.field)),
            cell(formatValue(change.before)),
            cell(formatValue(change.after)),
            cell(formatValue(change.reason), 'wrap'),
          ),
        )),
  );

  const overrides = summary?.effective_policy_overrides;
  byId('format-overrides').replaceChildren(
    overrides && Object.keys(overrides).length > 0
      ? renderDetailList(overrides)
      : h('p', { className: 'muted' }, 'None.'),
  );
}

function renderTimings(apiResult, elapsedMs) {
  const timing = apiResult?.timing ?? {};
  const facts = [
    ['queue wait', timing.queue_wait_ms, 'ms'],
    ['render', timing.subprocess_ms, 'ms'],
    ['zip', timing.zip_ms, 'ms'],
    ['server total', timing.total_ms, 'ms'],
    ['round trip', elapsedMs, 'ms'],
    ['render pid', apiResult?.subprocess_pid, ''],
    ['start method', apiResult?.subprocess_start_method, ''],
    ['build', apiResult?.build ? `${apiResult.build.version} (${apiResult.build.commit})` : null, ''],
  ];
  byId('timings').replaceChildren(
    ...facts.map(([label, value, unit]) =>
      h(
        'div',
        { dataset: { timing: label.replace(/ /g, '_') } },
        h('dt', {}, label),
        h('dd', {}, value === null || value === undefined ? '—' : `${value}${unit ? ` ${unit}` : ''}`),
      ),
    ),
  );
}

async function showResult(response, zipBytes, elapsedMs) {
  let zip;
  try {
    zip = await readZip(zipBytes);
  } catch (error) {
    showError({
      status: response.status,
      code: 'UNREADABLE_ZIP',
      message: `The response could not be opened: ${error instanceof Error ? error.message : String(error)}`,
      requestId: response.headers.get('x-docops-request-id'),
      detail: {},
    });
    return;
  }
  const { names, files } = zip;
  const apiResult = jsonEntry(files, 'api_result.json');
  const headerExit = response.headers.get('x-docops-exit-code');
  const exitCode = headerExit !== null ? Number(headerExit) : apiResult?.exit_code;
  const requestId = apiResult?.request_id ?? response.headers.get('x-docops-request-id') ?? '—';

  byId('error-panel').hidden = true;
  const result = byId('result');
  result.hidden = false;
  result.dataset.exitCode = String(exitCode);

  const badge = byId('exit-badge');
  badge.className = `exit-badge exit-badge--${exitCode === 0 ? 'ok' : 'problem'}`;
  setText('exit-code', String(exitCode));
  setText('exit-message', apiResult?.message ?? EXIT_MEANINGS[exitCode] ?? '—');
  setText('request-id', requestId);
  const effective = apiResult?.effective;
  setText(
    'effective',
    effective
      ? `preset ${effective.preset} · format_mode ${effective.format_mode} · baseline ${effective.format_baseline} · fix ${effective.format_fix_mode} · unsupported ${effective.unsupported_mode}`
      : '—',
  );
  const pdf = apiResult?.pdf;
  setText('pdf-status', pdf ? `${pdf.status}${pdf.error ? ` (${pdf.error})` : ''}` : '—');

  const zipName = attachmentName(response, 'docops_outputs.zip');
  offerDownload('download-zip', 'Download all (zip)', zipBytes, zipName, 'application/zip');
  if (files.has('out.docx')) {
    offerDownload(
      'download-docx',
      'Download out.docx',
      files.get('out.docx'),
      'out.docx',
      'application/vnd.openxmlformats-officedocument.wordprocessingml.document',
    );
  }
  if (files.has('out.pdf')) {
    offerDownload('download-pdf', 'Download out.pdf', files.get('out.pdf'), 'out.pdf', 'application/pdf');
  }
  const suggested = files.get('out.suggested_policy.yaml');
  const suggestedBlock = byId('suggested-policy-block');
  if (suggested) {
    offerDownload(
      'download-policy',
      'Download suggested policy',
      suggested,
      'out.suggested_policy.yaml',
      'application/yaml',
    );
    setText('suggested-policy', new TextDecoder().decode(suggested));
    suggestedBlock.hidden = false;
  } else {
    suggestedBlock.hidden = true;
  }

  renderMissing(jsonEntry(files, 'out.missing_fields.json'));
  renderReplaceLog(jsonEntry(files, 'out.replace_log.json'));
  renderFormatReport(jsonEntry(files, 'out.format_report.json'));
  renderTimings(apiResult, elapsedMs);
  setText('zip-entries', names.join(', '));

  setRunStatus(
    `Done: exit ${exitCode} (${apiResult?.message ?? EXIT_MEANINGS[exitCode] ?? 'unknown'})`,
    exitCode === 0 ? 'ok' : 'warn',
  );
  byId('result-heading').focus();
}

// ---------------------------------------------------------------------------------------------------------

function init() {
  byId('skill').addEventListener('change', onSkillChange);
  byId('task').addEventListener('input', () => {
    updateTaskStatus();
    if (!taskEdited()) byId('task-notice').hidden = true;
  });
  byId('task-skeleton').addEventListener('click', writeSkeleton);
  byId('task-notice-replace').addEventListener('click', () => {
    writeSkeleton();
    byId('task').focus();
  });
  byId('task-notice-dismiss').addEventListener('click', () => {
    byId('task-notice').hidden = true;
    byId('task').focus();
  });
  byId('template').addEventListener('change', updateTemplateHint);
  for (const id of ['preset', 'strict', ...FORMAT_FIELDS])
    byId(id).addEventListener('change', updateConflictHint);
  byId('run-form').addEventListener('submit', submitRun);
  loadMeta();
}

init();
