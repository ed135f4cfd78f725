// The cost panel (spec §3.8): this month's figures, the budget bar and alert, and the monthly history.
import { apiJson } from './api.js';
import { byId, el, formatUsd, showMessage } from './dom.js';

const HISTORY_MONTHS = 6;

export async function loadCosts() {
  const message = byId('costs-message');
  showMessage(message, '');
  let summary;
  let history;
  try {
    [summary, history] = await Promise.all([
      apiJson('/api/costs/summary'),
      apiJson(`/api/costs/history?months=${HISTORY_MONTHS}`),
    ]);
  } catch (error) {
    showMessage(message, error.message);
    return;
  }
  byId('costs-month').textContent = `Month ${summary.month} (UTC)`;
  const figures = [
    ['Queries', formatUsd(summary.query_cost_usd)],
    ['Indexing', formatUsd(summary.indexing_cost_usd)],
    ['Total', formatUsd(summary.total_usd)],
    ['Prompt tokens', String(summary.prompt_tokens)],
    ['Completion tokens', String(summary.completion_tokens)],
    ['Index tokens', String(summary.index_tokens)],
  ];
  byId('cost-figures').replaceChildren(
    ...figures.map(([label, value]) =>
      el('div', { className: 'figure' }, [el('dt', { text: label }), el('dd', { text: value })]),
    ),
  );

  const bar = byId('budget-bar');
  const fill = byId('budget-fill');
  const budgetText = byId('budget-text');
  if (summary.monthly_budget_usd === null || summary.monthly_budget_usd === undefined) {
    budgetText.textContent = 'No monthly budget: spending is unlimited.';
    bar.hidden = true;
  } else {
    const percent = Number(summary.percent_used ?? 0);
    budgetText.textContent = `${formatUsd(summary.total_usd)} of ${formatUsd(summary.monthly_budget_usd)} used (${percent.toFixed(1)} %), ${formatUsd(summary.remaining_budget_usd)} left`;
    bar.hidden = false;
    bar.setAttribute('aria-valuenow', String(Math.min(100, percent)));
    fill.style.width = `${Math.min(100, Math.max(0, percent))}%`;
    fill.classList.toggle('over', percent >= 100);
  }
  bar.classList.toggle('alert', summary.budget_alert === true);
  showMessage(
    byId('budget-alert'),
    summary.budget_alert
      ? `Budget alert: ${Number(summary.percent_used ?? 0).toFixed(1)} % of this month's budget is used.`
      : '',
    'warning',
  );

  byId('cost-history')
    .querySelector('tbody')
    .replaceChildren(
      ...history.map((row) =>
        el('tr', {}, [
          el('td', { text: row.month }),
          el('td', { text: formatUsd(row.query_cost_usd) }),
          el('td', { text: formatUsd(row.indexing_cost_usd) }),
          el('td', { text: formatUsd(row.total_usd) }),
        ]),
      ),
    );
}
