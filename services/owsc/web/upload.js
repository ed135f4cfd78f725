// `#upload`: posts a CSV (with optional permit, mode and site) to POST /api/batches as multipart, then shows
// the verdict, the alerts table and the report links (fetched with the token when one is set).
import { ApiError, apiFetch, detailText, getToken, UnauthorizedError } from './api.js';
import { formatNumber, formatTime, levelName, textElement } from './format.js';

const REPORTS = [
  { format: 'html', label: 'HTML', filename: (id) => `compliance-${id}.html` },
  { format: 'pdf', label: 'PDF', filename: (id) => `compliance-${id}.pdf` },
  { format: 'csv', label: 'CSV', filename: (id) => `alerts-${id}.csv` },
];

export function setUpUpload() {
  const $ = (id) => document.getElementById(id);
  const form = $('upload');
  const fileInput = $('upload-file');
  const permitInput = $('upload-permit');
  const modeInput = $('upload-mode');
  const siteInput = $('upload-site');
  const button = $('upload-button');
  const errorBox = $('upload-error');
  const result = $('upload-result');
  const status = $('upload-status');
  const summary = $('upload-summary');
  const table = $('upload-alerts');
  const reportLinks = $('report-links');

  function showError(text) {
    errorBox.textContent = text;
    errorBox.hidden = text === '';
  }

  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    showError('');
    const file = fileInput.files && fileInput.files.length > 0 ? fileInput.files[0] : null;
    if (file === null) {
      showError('Choose a CSV file first.');
      fileInput.focus();
      return;
    }
    const permit = permitInput.value.trim();
    if (permit !== '') {
      try {
        JSON.parse(permit);
      } catch {
        showError('The permit is not valid JSON.');
        permitInput.focus();
        return;
      }
    }
    const body = new FormData();
    body.append('file', file, file.name);
    if (permit !== '') body.append('permit', permit);
    body.append('mode', modeInput.value);
    if (siteInput.value.trim() !== '') body.append('site', siteInput.value.trim());

    button.disabled = true;
    button.textContent = 'Checking…';
    try {
      const response = await apiFetch('/api/batches', { method: 'POST', body });
      const text = await response.text();
      let batch = null;
      try {
        batch = JSON.parse(text);
      } catch {
        batch = null;
      }
      if (response.status !== 201 || batch === null) {
        throw new ApiError(response.status, detailText(batch ?? text, response.status));
      }
      showBatch(batch);
    } catch (failure) {
      result.hidden = true;
      if (failure instanceof UnauthorizedError)
        showError('The server asks for the API token; enter it above.');
      else if (failure instanceof ApiError) showError(failure.message);
      else showError('The server could not be reached; try again.');
    } finally {
      button.disabled = false;
      button.textContent = 'Check batch';
    }
  });

  function showBatch(batch) {
    const count = Number(batch.count ?? batch.alerts?.length ?? 0);
    status.className = `upload-status ${batch.compliant ? 'compliant' : 'non-compliant'}`;
    status.textContent = batch.compliant
      ? 'Compliant: no alerts'
      : `Non-compliant: ${count} alert${count === 1 ? '' : 's'}`;
    const species = Array.isArray(batch.species) ? batch.species.join(', ') : '';
    const parts = [
      `${batch.filename || 'upload'}`,
      `${batch.rows} row${batch.rows === 1 ? '' : 's'}`,
      `species ${species}`,
      `mode ${batch.mode}`,
    ];
    if (batch.site) parts.push(`site ${batch.site}`);
    summary.textContent = parts.join(' · ');

    const rows = (Array.isArray(batch.alerts) ? batch.alerts : []).map(alertRow);
    table.tBodies[0].replaceChildren(...rows);
    table.hidden = rows.length === 0;

    reportLinks.replaceChildren('Report: ', ...REPORTS.map((report) => reportLink(batch.id, report)));
    result.hidden = false;
  }

  // With a token the report is fetched with the Authorization header and saved from memory; without one the
  // plain link works (the HTML report opens in a new tab, PDF and CSV download).
  function reportLink(batchId, report) {
    const link = textElement('a', 'report-link', report.label);
    link.id = `report-${report.format}`;
    link.href = `/api/batches/${encodeURIComponent(batchId)}/report?format=${report.format}`;
    if (report.format === 'html') {
      link.target = '_blank';
      link.rel = 'noopener';
    }
    link.addEventListener('click', async (event) => {
      if (getToken() === '') return;
      event.preventDefault();
      showError('');
      try {
        const response = await apiFetch(link.href);
        if (!response.ok) throw new ApiError(response.status, `Report failed (HTTP ${response.status})`);
        const url = URL.createObjectURL(await response.blob());
        const save = document.createElement('a');
        save.href = url;
        save.download = report.filename(batchId);
        document.body.append(save);
        save.click();
        save.remove();
        setTimeout(() => URL.revokeObjectURL(url), 60_000);
      } catch (failure) {
        if (failure instanceof UnauthorizedError)
          showError('The server asks for the API token; enter it above.');
        else if (failure instanceof ApiError) showError(failure.message);
        else showError('The report could not be fetched; try again.');
      }
    });
    return link;
  }
}

function alertRow(alert) {
  const row = document.createElement('tr');
  row.className = `level-${levelName(alert.level)}`;
  row.append(
    textElement('td', '', formatTime(alert.time)),
    textElement('td', 'alert-species', String(alert.species ?? '')),
    textElement('td', '', String(alert.type ?? '')),
    textElement('td', 'level-cell', levelName(alert.level)),
    textElement('td', 'number', formatNumber(alert.value)),
    textElement('td', 'number', formatNumber(alert.limit)),
    textElement('td', '', String(alert.message ?? '')),
  );
  return row;
}
