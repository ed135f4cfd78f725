// The admin panel (spec §3.9), shown to admins only: system cards, users (role, activation, budget, notes),
// the usage table, the ingestion overview with retry, the watchdog button and the audit log.
import { apiJson } from './api.js';
import { byId, el, formatDate, formatUsd, showMessage } from './dom.js';
import { emit, state } from './state.js';

const message = byId('admin-message');

function fail(error) {
  showMessage(message, error.message);
}

export async function loadAdmin() {
  showMessage(message, '');
  await Promise.all([loadSystem(), loadUsers(), loadUsage(), loadIngestion(), loadAudit()]);
}

async function loadSystem() {
  let summary;
  try {
    summary = await apiJson('/api/admin/system/summary');
  } catch (error) {
    return fail(error);
  }
  const byStatus = summary.documents_by_status ?? {};
  const cards = [
    ['Users', summary.users],
    ['Stores', summary.stores],
    ['Documents', summary.documents],
    ['Chunks', summary.chunks],
    ['Active streams', summary.active_streams],
    ['Pending', byStatus.PENDING ?? 0],
    ['Running', byStatus.RUNNING ?? 0],
    ['Done', byStatus.DONE ?? 0],
    ['Errors', byStatus.ERROR ?? 0],
  ];
  byId('system-cards').replaceChildren(
    ...cards.map(([label, value]) =>
      el('div', { className: 'stat', dataset: { stat: label.toLowerCase().replace(/\s+/g, '-') } }, [
        el('span', { className: 'stat-value', text: value ?? 0 }),
        el('span', { className: 'stat-label muted', text: label }),
      ]),
    ),
  );
}

// ---- users --------------------------------------------------------------------------------------------------

async function loadUsers() {
  let users;
  try {
    users = await apiJson('/api/admin/users?limit=500');
  } catch (error) {
    return fail(error);
  }
  byId('user-table')
    .querySelector('tbody')
    .replaceChildren(...users.map(userRow));
}

function userRow(user) {
  const isSelf = user.id === state.user?.id;
  const adminBox = el('input', {
    type: 'checkbox',
    className: 'user-admin',
    checked: user.is_admin,
    disabled: isSelf,
    attrs: { 'aria-label': `Admin: ${user.email}` },
  });
  adminBox.addEventListener('change', () =>
    updateUser(`/api/admin/users/${user.id}/role`, { is_admin: adminBox.checked }, () => {
      adminBox.checked = !adminBox.checked;
    }),
  );
  const activeBox = el('input', {
    type: 'checkbox',
    className: 'user-active',
    checked: user.is_active,
    disabled: isSelf,
    attrs: { 'aria-label': `Active: ${user.email}` },
  });
  activeBox.addEventListener('change', () =>
    updateUser(`/api/admin/users/${user.id}/active`, { is_active: activeBox.checked }, () => {
      activeBox.checked = !activeBox.checked;
    }),
  );

  const budgetInput = el('input', {
    type: 'number',
    className: 'budget-input',
    min: '0',
    max: '99999999.99',
    step: '0.01',
    value:
      user.monthly_limit_usd === null || user.monthly_limit_usd === undefined
        ? ''
        : String(user.monthly_limit_usd),
    placeholder: 'unlimited',
    attrs: { 'aria-label': `Monthly budget of ${user.email}` },
  });
  const budgetForm = el('form', { className: 'inline budget-form' }, [
    budgetInput,
    el('button', { type: 'submit', className: 'small budget-save', text: 'Set' }),
    el('button', {
      type: 'button',
      className: 'secondary small budget-remove',
      text: 'Unlimited',
      on: { click: () => removeBudget(user) },
    }),
  ]);
  budgetForm.addEventListener('submit', async (event) => {
    event.preventDefault();
    try {
      await apiJson(`/api/admin/budgets/${user.id}`, {
        method: 'POST',
        json: { monthly_limit_usd: Number(budgetInput.value) },
      });
      showMessage(message, `Budget of ${user.email} set to ${formatUsd(budgetInput.value)}.`, 'success');
      afterChange(user);
    } catch (error) {
      fail(error);
    }
  });

  const notesInput = el('input', {
    className: 'notes-input',
    value: user.admin_notes ?? '',
    maxLength: 2000,
    attrs: { 'aria-label': `Notes on ${user.email}` },
  });
  const notesForm = el('form', { className: 'inline' }, [
    notesInput,
    el('button', { type: 'submit', className: 'secondary small', text: 'Save' }),
  ]);
  notesForm.addEventListener('submit', (event) => {
    event.preventDefault();
    updateUser(
      `/api/admin/users/${user.id}/role`,
      { is_admin: adminBox.checked, admin_notes: notesInput.value },
      () => {},
    );
  });

  return el('tr', { dataset: { userId: user.id, email: user.email } }, [
    el('td', { className: 'user-email', text: user.email }),
    el('td', {}, [adminBox]),
    el('td', {}, [activeBox]),
    el('td', {}, [budgetForm]),
    el('td', {}, [notesForm]),
    el('td', { text: formatDate(user.created_at) }),
  ]);
}

async function updateUser(path, body, revert) {
  showMessage(message, '');
  try {
    await apiJson(path, { method: 'POST', json: body });
    await Promise.all([loadAudit(), loadSystem()]);
  } catch (error) {
    revert();
    fail(error);
  }
}

async function removeBudget(user) {
  try {
    await apiJson(`/api/admin/budgets/${user.id}`, { method: 'DELETE' });
    showMessage(message, `Budget of ${user.email} removed.`, 'success');
    afterChange(user);
  } catch (error) {
    fail(error);
  }
}

function afterChange(user) {
  loadUsers();
  loadUsage();
  loadAudit();
  if (user.id === state.user?.id) emit('spend-changed');
}

// ---- usage ----------------------------------------------------------------------------------------------------

async function loadUsage() {
  const month = byId('usage-month').value;
  let rows;
  try {
    rows = await apiJson(month ? `/api/admin/usage?month=${encodeURIComponent(month)}` : '/api/admin/usage');
  } catch (error) {
    return fail(error);
  }
  byId('usage-table')
    .querySelector('tbody')
    .replaceChildren(
      ...rows.map((row) =>
        el('tr', { dataset: { userId: row.user_id } }, [
          el('td', { text: row.email }),
          el('td', { text: formatUsd(row.query_cost_usd) }),
          el('td', { text: formatUsd(row.indexing_cost_usd) }),
          el('td', { text: formatUsd(row.total_usd) }),
          el('td', { text: `${row.prompt_tokens} / ${row.completion_tokens} / ${row.index_tokens}` }),
          el('td', { text: row.monthly_limit_usd === null ? 'unlimited' : formatUsd(row.monthly_limit_usd) }),
          el('td', { text: formatUsd(row.remaining_budget_usd) }),
          el('td', { text: row.percent_used === null ? '—' : `${Number(row.percent_used).toFixed(1)} %` }),
        ]),
      ),
    );
}

// ---- ingestion ------------------------------------------------------------------------------------------------

async function loadIngestion() {
  const status = byId('ingestion-status').value;
  let documents;
  try {
    documents = await apiJson(`/api/admin/documents?limit=200${status ? `&status=${status}` : ''}`);
  } catch (error) {
    return fail(error);
  }
  byId('ingestion-table')
    .querySelector('tbody')
    .replaceChildren(
      ...documents.map((doc) =>
        el('tr', { dataset: { documentId: doc.id, status: doc.status } }, [
          el('td', { text: doc.display_name || doc.filename }),
          el('td', { text: doc.owner_email ?? '—' }),
          el('td', {}, [
            el('span', { className: `status status-${String(doc.status).toLowerCase()}`, text: doc.status }),
          ]),
          el('td', { text: doc.attempts ?? 0 }),
          el('td', { className: 'doc-error', text: doc.last_error ?? '' }),
          el('td', { text: formatDate(doc.status_updated_at) }),
          el('td', {}, [
            doc.status === 'DONE'
              ? null
              : el('button', {
                  type: 'button',
                  className: 'small retry',
                  text: 'Retry',
                  on: { click: () => retry(doc) },
                }),
          ]),
        ]),
      ),
    );
}

async function retry(doc) {
  try {
    await apiJson(`/api/admin/documents/${doc.id}/retry`, { method: 'POST' });
    showMessage(message, `Document ${doc.display_name || doc.filename} queued for indexing.`, 'success');
    await Promise.all([loadIngestion(), loadSystem(), loadAudit()]);
  } catch (error) {
    fail(error);
  }
}

// ---- audit ----------------------------------------------------------------------------------------------------

async function loadAudit() {
  let entries;
  try {
    entries = await apiJson('/api/admin/audit?limit=50');
  } catch (error) {
    return fail(error);
  }
  byId('audit-table')
    .querySelector('tbody')
    .replaceChildren(
      ...entries.map((entry) =>
        el('tr', { dataset: { action: entry.action } }, [
          el('td', { text: formatDate(entry.created_at) }),
          el('td', { text: entry.admin_user_id }),
          el('td', { className: 'audit-action', text: entry.action }),
          el('td', {
            text: [entry.target_type, entry.target_id]
              .filter((part) => part !== null && part !== undefined)
              .join(' '),
          }),
          el('td', { className: 'audit-metadata', text: entry.metadata_json ?? '' }),
        ]),
      ),
    );
}

// ---- wiring ---------------------------------------------------------------------------------------------------

export function setUpAdmin() {
  byId('admin-refresh').addEventListener('click', () => loadAdmin());
  byId('usage-month').addEventListener('change', () => loadUsage());
  byId('ingestion-status').addEventListener('change', () => loadIngestion());
  byId('watchdog-form').addEventListener('submit', async (event) => {
    event.preventDefault();
    const result = byId('watchdog-result');
    try {
      const answer = await apiJson('/api/admin/watchdog/reset-stuck', {
        method: 'POST',
        json: { ttl_minutes: Number(byId('watchdog-ttl').value) },
      });
      showMessage(result, `Watchdog reset ${answer.reset_count} stuck document(s).`, 'success');
      await Promise.all([loadIngestion(), loadSystem(), loadAudit()]);
    } catch (error) {
      showMessage(result, error.message);
    }
  });
}
