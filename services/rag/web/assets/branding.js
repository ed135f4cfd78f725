// Branding (spec §3.9 settings): GET /api/settings applied to the page — name, icon, theme preset, colours,
// favicon, welcome text and suggested prompts — and the admin form that saves them (POST /api/settings) and
// applies the answer at once.
import { apiJson } from './api.js';
import { byId, showMessage } from './dom.js';
import { emit, state } from './state.js';

const ICONS = { bolt: '⚡', book: '📖', bot: '🤖', compass: '🧭', file: '📄', sparkles: '✨' };
const TEXT_FIELDS = [
  'app_name',
  'app_icon',
  'theme_preset',
  'primary_color',
  'accent_color',
  'welcome_message',
  'suggested_prompt_1',
  'suggested_prompt_2',
  'suggested_prompt_3',
];
const HEX_COLOR = /^#[0-9A-Fa-f]{6}$/;

/** Fetches the public settings (no token needed) and applies them. */
export async function loadSettings() {
  applySettings(await apiJson('/api/settings'));
}

/** Applies settings to the page; the chat panel re-reads welcome text and prompts from state.settings. */
export function applySettings(settings) {
  state.settings = settings;
  const name = settings.app_name || 'RAG Assistant';
  byId('brand-name').textContent = name;
  document.title = name;
  byId('brand-icon').textContent = ICONS[settings.app_icon] ?? ICONS.sparkles;
  document.documentElement.dataset.theme = settings.theme_preset || 'minimal';
  const root = document.documentElement.style;
  if (HEX_COLOR.test(settings.primary_color ?? '')) root.setProperty('--primary', settings.primary_color);
  if (HEX_COLOR.test(settings.accent_color ?? '')) root.setProperty('--accent', settings.accent_color);
  const favicon = byId('favicon');
  favicon.href =
    typeof settings.app_favicon === 'string' && settings.app_favicon.startsWith('data:image/')
      ? settings.app_favicon
      : 'data:,';
  emit('settings-changed', settings);
}

/** Wires the admin branding form. */
export function setUpBranding() {
  const form = byId('branding-form');
  const message = byId('branding-message');
  // undefined = unchanged; '' = remove; a data: URL = new favicon
  let faviconChange;

  byId('setting-favicon-file').addEventListener('change', async (event) => {
    const file = event.target.files?.[0];
    if (!file) return;
    faviconChange = await readAsDataUrl(file);
  });
  byId('favicon-clear').addEventListener('click', () => {
    faviconChange = '';
    byId('setting-favicon-file').value = '';
  });

  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    const changes = {};
    for (const key of TEXT_FIELDS) {
      const value = form.elements[key].value;
      if (value !== (state.settings?.[key] ?? '')) changes[key] = value;
    }
    if (faviconChange !== undefined) changes.app_favicon = faviconChange;
    showMessage(message, '');
    try {
      const saved = await apiJson('/api/settings', { method: 'POST', json: changes });
      faviconChange = undefined;
      applySettings(saved);
      fillForm(saved);
      showMessage(message, 'Branding saved.', 'success');
    } catch (error) {
      showMessage(message, error.message);
    }
  });
}

/** Puts the current settings into the form (when the admin opens the tab). */
export function fillForm(settings = state.settings) {
  if (!settings) return;
  const form = byId('branding-form');
  for (const key of TEXT_FIELDS) {
    if (settings[key] !== undefined && settings[key] !== null) form.elements[key].value = settings[key];
  }
}

function readAsDataUrl(file) {
  return new Promise((resolve, reject) => {
    const reader = new FileReader();
    reader.addEventListener('load', () => resolve(String(reader.result)));
    reader.addEventListener('error', () => reject(reader.error));
    reader.readAsDataURL(file);
  });
}
