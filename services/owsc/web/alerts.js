// The alerts list (newest first, coloured by level) and the open incidents with their acknowledgement form.
import { ApiError, apiJson, UnauthorizedError } from './api.js';
import { formatNumber, formatTime, levelName, textElement } from './format.js';

const MAX_ALERTS = 200;
const OPERATOR_KEY = 'owsc.operator';

function createdAtMs(alert) {
  const ms = Date.parse(alert.created_at ?? '');
  return Number.isFinite(ms) ? ms : 0;
}

/** `#alerts`: stored alerts merged by id, newest first, at most MAX_ALERTS. */
export class AlertList {
  #list;
  #emptyNote;
  #alerts = new Map();
  #arrival = 0;

  constructor(list, emptyNote) {
    this.#list = list;
    this.#emptyNote = emptyNote;
  }

  /** Merges the stored alerts (`GET /api/alerts`, newest first). */
  seed(alerts) {
    for (const alert of [...alerts].reverse()) this.#remember(alert);
    this.#render();
  }

  /** A live alert from `/ws/alerts`. */
  add(alert) {
    this.#remember(alert);
    this.#render();
  }

  #remember(alert) {
    if (!alert || typeof alert !== 'object') return;
    const id = typeof alert.id === 'string' ? alert.id : `local-${this.#arrival}`;
    const known = this.#alerts.get(id);
    this.#alerts.set(id, { alert, order: known ? known.order : this.#arrival++ });
  }

  #render() {
    const entries = [...this.#alerts.entries()].sort(
      ([, a], [, b]) => createdAtMs(b.alert) - createdAtMs(a.alert) || b.order - a.order,
    );
    for (const [id] of entries.slice(MAX_ALERTS)) this.#alerts.delete(id);
    this.#list.replaceChildren(
      ...entries.slice(0, MAX_ALERTS).map(([id, { alert }]) => alertItem(id, alert)),
    );
    this.#emptyNote.hidden = this.#alerts.size > 0;
  }
}

function alertItem(id, alert) {
  const level = levelName(alert.level);
  const item = document.createElement('li');
  item.className = `alert level-${level}`;
  item.dataset.alertId = id;
  const head = document.createElement('div');
  head.className = 'alert-head';
  head.append(
    textElement('span', 'level-badge', level),
    textElement('span', 'alert-species', String(alert.species ?? '')),
    textElement('span', 'alert-type', String(alert.type ?? '')),
  );
  const time = textElement('time', 'alert-time', formatTime(alert.time));
  if (typeof alert.created_at === 'string') {
    time.dateTime = alert.created_at;
    time.title = `recorded ${formatTime(alert.created_at)}`;
  }
  head.append(time);
  item.append(head, textElement('p', 'alert-message', String(alert.message ?? '')));
  return item;
}

/** `#incidents`: open stream incidents, each with an Acknowledge button and an inline operator-name form. */
export class IncidentList {
  #list;
  #emptyNote;
  #rows = new Map();

  constructor(list, emptyNote) {
    this.#list = list;
    this.#emptyNote = emptyNote;
  }

  /** Replaces the list with the open incidents of `GET /api/incidents?state=open` (newest first). */
  seed(incidents) {
    const open = new Set(incidents.map((incident) => incident.id));
    for (const id of [...this.#rows.keys()]) if (!open.has(id)) this.#remove(id);
    for (const incident of [...incidents].reverse()) this.#upsert(incident);
    this.#updateEmpty();
  }

  /** An `{"type":"incident"}` frame of `/ws/alerts`. */
  applyEvent(event, incident) {
    if (!incident || typeof incident.id !== 'string') return;
    if (event === 'closed' || incident.state === 'closed') this.#remove(incident.id);
    else this.#upsert(incident);
    this.#updateEmpty();
  }

  /** A live alert that joined an open incident raises its count and peak. */
  noteAlert(alert) {
    const row = this.#rows.get(alert.incident_id);
    if (row === undefined) return;
    const incident = { ...row.incident, alert_count: (row.incident.alert_count ?? 0) + 1 };
    if (typeof alert.value === 'number' && alert.value > (incident.peak_value ?? Number.NEGATIVE_INFINITY)) {
      incident.peak_value = alert.value;
      incident.peak_level = alert.level;
    }
    row.incident = incident;
    row.render();
  }

  #upsert(incident) {
    const row = this.#rows.get(incident.id);
    if (row !== undefined) {
      // A stale list (seed) must not undo a newer acknowledgement.
      row.incident = row.incident.acknowledged && !incident.acknowledged ? row.incident : incident;
      row.render();
      return;
    }
    const created = incidentRow(incident);
    this.#rows.set(incident.id, created);
    this.#list.prepend(created.item);
  }

  #remove(id) {
    const row = this.#rows.get(id);
    if (row === undefined) return;
    row.item.remove();
    this.#rows.delete(id);
  }

  #updateEmpty() {
    this.#emptyNote.hidden = this.#rows.size > 0;
  }
}

let formCounter = 0;

function rememberedOperator() {
  try {
    return sessionStorage.getItem(OPERATOR_KEY) ?? '';
  } catch {
    return '';
  }
}

function rememberOperator(name) {
  try {
    sessionStorage.setItem(OPERATOR_KEY, name);
  } catch {
    // storage disabled: nothing to remember
  }
}

function incidentRow(initial) {
  const formId = `ack-${++formCounter}`;
  const item = document.createElement('li');
  item.className = 'incident';
  item.dataset.incidentId = initial.id;

  const head = document.createElement('div');
  head.className = 'incident-head';
  const badge = textElement('span', 'level-badge', '');
  head.append(textElement('span', 'incident-species', String(initial.species ?? '')), badge);
  const summary = textElement('p', 'incident-summary', '');
  const status = textElement('p', 'ack-status', '');

  const ackButton = textElement('button', 'ack', 'Acknowledge');
  ackButton.type = 'button';
  ackButton.setAttribute('aria-controls', formId);
  ackButton.setAttribute('aria-expanded', 'false');

  const form = document.createElement('form');
  form.className = 'ack-form';
  form.id = formId;
  form.hidden = true;
  const nameLabel = textElement('label', '', 'Operator name');
  const nameInput = document.createElement('input');
  nameInput.className = 'ack-name';
  nameInput.name = 'by';
  nameInput.type = 'text';
  nameInput.required = true;
  nameInput.maxLength = 100;
  nameInput.autocomplete = 'name';
  nameInput.id = `${formId}-name`;
  nameLabel.htmlFor = nameInput.id;
  const noteLabel = textElement('label', '', 'Note (optional)');
  const noteInput = document.createElement('input');
  noteInput.className = 'ack-note';
  noteInput.name = 'note';
  noteInput.type = 'text';
  noteInput.maxLength = 1000;
  noteInput.id = `${formId}-note`;
  noteLabel.htmlFor = noteInput.id;
  const confirm = textElement('button', 'ack-confirm', 'Confirm acknowledgement');
  confirm.type = 'submit';
  const cancel = textElement('button', 'ack-cancel secondary', 'Cancel');
  cancel.type = 'button';
  const buttons = document.createElement('div');
  buttons.className = 'ack-buttons';
  buttons.append(confirm, cancel);
  form.append(nameLabel, nameInput, noteLabel, noteInput, buttons);

  const error = textElement('p', 'ack-error error', '');
  error.setAttribute('role', 'alert');
  error.hidden = true;

  item.append(head, summary, status, ackButton, form, error);

  const row = {
    item,
    incident: initial,
    render() {
      const incident = row.incident;
      const level = levelName(incident.peak_level);
      item.className = `incident level-${level}`;
      badge.textContent = level;
      const count = incident.alert_count ?? 0;
      summary.textContent =
        `peak ${formatNumber(incident.peak_value)} mg/L (limit ${formatNumber(incident.limit)} mg/L), ` +
        `${count} alert${count === 1 ? '' : 's'}, opened ${formatTime(incident.opened_at)}`;
      if (incident.acknowledged) {
        status.textContent = `Acknowledged by ${incident.acknowledged_by ?? 'unknown'} at ${formatTime(incident.acknowledged_at)}`;
        if (incident.ack_note) status.textContent += ` — ${incident.ack_note}`;
        ackButton.hidden = true;
        form.hidden = true;
      } else {
        status.textContent = 'Not acknowledged';
        ackButton.hidden = !form.hidden;
      }
    },
  };

  function showError(text) {
    error.textContent = text;
    error.hidden = text === '';
  }

  ackButton.addEventListener('click', () => {
    showError('');
    form.hidden = false;
    ackButton.hidden = true;
    ackButton.setAttribute('aria-expanded', 'true');
    if (nameInput.value === '') nameInput.value = rememberedOperator();
    nameInput.focus();
  });

  cancel.addEventListener('click', () => {
    form.hidden = true;
    ackButton.setAttribute('aria-expanded', 'false');
    showError('');
    row.render();
    ackButton.focus();
  });

  async function refresh() {
    try {
      row.incident = await apiJson(`/api/incidents/${encodeURIComponent(row.incident.id)}`);
      row.render();
    } catch {
      // the error already shown is the useful part
    }
  }

  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    const by = nameInput.value.trim();
    if (by === '') {
      showError('Enter your name to acknowledge.');
      nameInput.focus();
      return;
    }
    const body = { by };
    if (noteInput.value.trim() !== '') body.note = noteInput.value.trim();
    confirm.disabled = true;
    showError('');
    try {
      const incident = await apiJson(`/api/incidents/${encodeURIComponent(row.incident.id)}/ack`, {
        method: 'POST',
        headers: { 'Content-Type': 'application/json' },
        body: JSON.stringify(body),
      });
      rememberOperator(by);
      row.incident = incident;
      row.render();
    } catch (failure) {
      if (failure instanceof UnauthorizedError)
        showError('The server asks for the API token; enter it above.');
      else if (failure instanceof ApiError) {
        showError(failure.message);
        // Someone else acknowledged first: show who, as the server has it.
        if (failure.status === 409) await refresh();
      } else showError('The server could not be reached; try again.');
    } finally {
      confirm.disabled = false;
    }
  });

  row.render();
  return row;
}
