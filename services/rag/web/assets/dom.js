// DOM building without HTML strings: every text goes through textContent / text nodes, so user-supplied
// names, questions, answers and settings are always shown as text.

/**
 * Creates an element. `options`: className, text, dataset, attrs (set with setAttribute), on (event
 * listeners), and any other key assigned as a DOM property (type, value, disabled, hidden…).
 */
export function el(tag, options = {}, children = []) {
  const element = document.createElement(tag);
  const { className, text, dataset, attrs, on, ...properties } = options;
  if (className !== undefined) element.className = className;
  if (text !== undefined && text !== null) element.textContent = String(text);
  for (const [key, value] of Object.entries(dataset ?? {})) element.dataset[key] = String(value);
  for (const [key, value] of Object.entries(attrs ?? {})) element.setAttribute(key, String(value));
  for (const [event, handler] of Object.entries(on ?? {})) element.addEventListener(event, handler);
  Object.assign(element, properties);
  for (const child of children) {
    if (child === null || child === undefined || child === false) continue;
    element.append(typeof child === 'string' ? document.createTextNode(child) : child);
  }
  return element;
}

export const byId = (id) => document.getElementById(id);

/** Shows `message` in an alert element (hidden when empty). */
export function showMessage(element, message, kind = 'error') {
  element.textContent = message;
  element.dataset.kind = kind;
  element.hidden = message === '';
}

/** USD with up to 6 decimals, as the API reports it (null → em dash). */
export function formatUsd(value) {
  if (value === null || value === undefined) return '—';
  const number = Number(value);
  const digits = number !== 0 && Math.abs(number) < 0.01 ? 6 : 2;
  return `$${number.toFixed(digits)}`;
}

export function formatDate(iso) {
  if (!iso) return '—';
  const date = new Date(iso);
  return Number.isNaN(date.getTime()) ? String(iso) : date.toLocaleString();
}

export function formatBytes(bytes) {
  if (bytes === null || bytes === undefined) return '—';
  if (bytes < 1024) return `${bytes} B`;
  if (bytes < 1024 * 1024) return `${(bytes / 1024).toFixed(1)} KB`;
  return `${(bytes / (1024 * 1024)).toFixed(1)} MB`;
}

/**
 * A destructive button that asks for a second click: the first click turns its label into "Confirm?", a
 * second click within 4 s runs `action`.
 */
export function confirmButton(label, action, className = 'danger') {
  let armed = null;
  const button = el('button', { type: 'button', className, text: label });
  button.addEventListener('click', () => {
    if (armed === null) {
      button.textContent = `Confirm ${label.toLowerCase()}?`;
      armed = setTimeout(() => {
        armed = null;
        button.textContent = label;
      }, 4000);
      return;
    }
    clearTimeout(armed);
    armed = null;
    button.textContent = label;
    action();
  });
  return button;
}
