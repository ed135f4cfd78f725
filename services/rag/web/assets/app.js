// RAG Assistant web UI entry point: sign-in (password, registration, dev login when the server has it), the
// tabs, and start-up (branding from GET /api/settings, a kept token restored). No inline script anywhere, so
// a strict CSP (`script-src 'self'`) works.
import { loadAdmin, setUpAdmin } from './admin.js';
import { ApiError, apiJson, getToken, onUnauthorized, setToken } from './api.js';
import { fillForm, loadSettings, setUpBranding } from './branding.js';
import { setUpChat } from './chat.js';
import { loadCosts } from './costs.js';
import { setUpDocuments, stopWatching } from './documents.js';
import { byId, showMessage } from './dom.js';
import { emit, on, state } from './state.js';
import { loadStores, setUpStores } from './stores.js';

const ADMIN_TABS = new Set(['admin', 'branding']);
let currentTab = 'documents';

// ---- tabs -------------------------------------------------------------------------------------------------------

function showTab(name) {
  if (ADMIN_TABS.has(name) && !state.user?.is_admin) name = 'documents';
  currentTab = name;
  for (const button of document.querySelectorAll('.tabs [data-tab]')) {
    button.setAttribute('aria-selected', String(button.dataset.tab === name));
  }
  for (const panel of document.querySelectorAll('.tab-panel')) panel.hidden = panel.id !== `tab-${name}`;
  if (name === 'costs') loadCosts();
  if (name === 'admin') loadAdmin();
  if (name === 'branding') fillForm();
}

// ---- signing in and out -----------------------------------------------------------------------------------------

async function signedIn() {
  state.user = await apiJson('/api/auth/me');
  byId('user-email').textContent = state.user.email;
  byId('user-role').hidden = !state.user.is_admin;
  for (const button of document.querySelectorAll('.tabs [data-tab]')) {
    if (ADMIN_TABS.has(button.dataset.tab)) button.hidden = !state.user.is_admin;
  }
  byId('login-view').hidden = true;
  byId('user-box').hidden = false;
  byId('app-view').hidden = false;
  showTab('documents');
  emit('signed-in', state.user);
  await loadStores({ announceSelection: true });
}

function showLogin(notice = '') {
  stopWatching();
  state.user = null;
  state.stores = [];
  state.selectedStoreId = null;
  byId('app-view').hidden = true;
  byId('user-box').hidden = true;
  byId('login-view').hidden = false;
  showMessage(byId('login-message'), notice, 'warning');
  emit('signed-out');
}

async function useToken(tokenAnswer, messageElement) {
  setToken(tokenAnswer.access_token);
  try {
    await signedIn();
  } catch (error) {
    setToken('');
    showMessage(messageElement, error.message);
  }
}

/** Whether POST /api/auth/token exists: it answers 404 when dev login is disabled, 422 to an empty body otherwise. */
async function devLoginEnabled() {
  try {
    const response = await fetch('/api/auth/token', {
      method: 'POST',
      headers: { 'Content-Type': 'application/json', 'X-Requested-With': 'XMLHttpRequest' },
      body: '{}',
      cache: 'no-store',
    });
    return response.status === 400 || response.status === 422;
  } catch {
    return false;
  }
}

function setUpAuth() {
  const loginMessage = byId('login-message');
  byId('login-form').addEventListener('submit', async (event) => {
    event.preventDefault();
    showMessage(loginMessage, '');
    try {
      const answer = await apiJson('/api/auth/login', {
        method: 'POST',
        json: { email: byId('login-email').value, password: byId('login-password').value },
      });
      byId('login-password').value = '';
      await useToken(answer, loginMessage);
    } catch (error) {
      showMessage(loginMessage, error.message);
    }
  });

  byId('dev-login-form').addEventListener('submit', async (event) => {
    event.preventDefault();
    showMessage(loginMessage, '');
    try {
      const answer = await apiJson('/api/auth/token', {
        method: 'POST',
        json: { email: byId('dev-email').value },
      });
      await useToken(answer, loginMessage);
    } catch (error) {
      showMessage(loginMessage, error.message);
    }
  });

  const registerMessage = byId('register-message');
  byId('register-form').addEventListener('submit', async (event) => {
    event.preventDefault();
    showMessage(registerMessage, '');
    const email = byId('register-email').value;
    try {
      await apiJson('/api/auth/register', {
        method: 'POST',
        json: { email, password: byId('register-password').value },
      });
      byId('register-password').value = '';
      byId('login-email').value = email;
      showMessage(registerMessage, 'Account created. You can sign in now.', 'success');
    } catch (error) {
      showMessage(registerMessage, error.message);
    }
  });

  byId('logout').addEventListener('click', async () => {
    try {
      await apiJson('/api/auth/logout', { method: 'POST' });
    } catch {
      // the token is dropped either way
    }
    setToken('');
    showLogin();
  });

  onUnauthorized(() => {
    setToken('');
    showLogin('Your session has ended. Please sign in again.');
  });
}

// ---- start-up ---------------------------------------------------------------------------------------------------

async function start() {
  setUpAuth();
  setUpStores();
  setUpDocuments();
  setUpChat();
  setUpAdmin();
  setUpBranding();
  for (const button of document.querySelectorAll('.tabs [data-tab]')) {
    button.addEventListener('click', () => showTab(button.dataset.tab));
  }
  on('spend-changed', () => {
    if (currentTab === 'costs') loadCosts();
  });

  const [, devLogin] = await Promise.all([
    loadSettings().catch((error) =>
      showMessage(byId('global-message'), `Could not load settings: ${error.message}`),
    ),
    devLoginEnabled(),
  ]);
  byId('dev-login-form').hidden = !devLogin;

  if (getToken() !== '') {
    try {
      await signedIn();
      document.body.dataset.ready = 'true';
      return;
    } catch (error) {
      setToken('');
      if (!(error instanceof ApiError) || error.status !== 401) {
        showMessage(byId('global-message'), error.message);
      }
    }
  }
  showLogin();
  document.body.dataset.ready = 'true';
}

start();
