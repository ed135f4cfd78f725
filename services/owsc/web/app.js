// The operator dashboard (GET /): live charts per species from /ws/effluent, alerts and incidents from
// /ws/alerts, the connection state, the token prompt and the batch upload. No inline script: the CSP
// allows scripts from 'self' only.
import { AlertList, IncidentList } from './alerts.js';
import { apiJson, getToken, onUnauthorized, setToken, UnauthorizedError } from './api.js';
import { ChartBoard } from './charts.js';
import { ReconnectingSocket } from './connection.js';
import { formatNumber } from './format.js';
import { setUpUpload } from './upload.js';

const STREAM_SEED_LIMIT = 500;
const ALERT_SEED_LIMIT = 50;

const $ = (id) => document.getElementById(id);
const stateIndicator = $('connection-state');
const tokenForm = $('token-form');
const tokenInput = $('token');
const permitSummary = $('permit-summary');

const charts = new ChartBoard($('charts'), $('charts-empty'));
const alerts = new AlertList($('alerts'), $('alerts-empty'));
const incidents = new IncidentList($('incidents'), $('incidents-empty'));

let unauthorized = false;
let everLive = false;
// Set once the API has answered with the current token since the effluent socket opened: a refused socket
// opens and closes (1008) at once, and the page must not call that live.
let apiAnswered = false;

const STATE_TEXT = {
  connecting: 'Connecting…',
  live: 'Live',
  reconnecting: 'Connection lost — reconnecting…',
  unauthorized: 'API token required',
};

function showState() {
  let state;
  if (unauthorized) state = 'unauthorized';
  else if (apiAnswered && effluent.status === 'open' && alertStream.status === 'open') state = 'live';
  else state = everLive ? 'reconnecting' : 'connecting';
  if (state === 'live') everLive = true;
  if (stateIndicator.dataset.state !== state) {
    stateIndicator.dataset.state = state;
    stateIndicator.textContent = STATE_TEXT[state];
  }
}

/** Runs an API load; a refused token is handled by the 401 hook, other failures leave the view as it is. */
async function load(task) {
  try {
    await task();
  } catch (failure) {
    if (!(failure instanceof UnauthorizedError)) console.warn('dashboard: load failed:', failure.message);
  }
}

async function applyPermit() {
  const permit = await apiJson('/api/permit');
  const limits = permit.limits_mgL ?? {};
  charts.setLimits(limits);
  const entries = Object.entries(limits).map(([species, limit]) => `${species} ${formatNumber(limit)} mg/L`);
  permitSummary.textContent = `Permit limits (${permit.source ?? 'active'}): ${entries.join(', ')}`;
  permitSummary.dataset.loaded = 'true';
}

function loadStreams() {
  return load(async () => {
    const streams = await apiJson(`/api/streams?limit=${STREAM_SEED_LIMIT}`);
    for (const message of streams.data ?? []) charts.addMessage(message);
  });
}

function loadAlertsAndIncidents() {
  return Promise.all([
    load(async () =>
      alerts.seed((await apiJson(`/api/alerts?source=stream&limit=${ALERT_SEED_LIMIT}`)).items ?? []),
    ),
    load(async () => incidents.seed((await apiJson('/api/incidents?state=open&limit=100')).items ?? [])),
  ]);
}

function onAlertFrame(frame) {
  if (frame.type === 'alert' && frame.alert) {
    alerts.add(frame.alert);
    incidents.noteAlert(frame.alert);
  } else if (frame.type === 'incident') {
    incidents.applyEvent(frame.event, frame.incident);
  }
}

// Each (re)connection reloads what the socket may have missed while it was down.
const effluent = new ReconnectingSocket({
  path: '/ws/effluent',
  onMessage: (message) => charts.addMessage(message),
  onOpen: () => {
    load(async () => {
      await applyPermit();
      apiAnswered = true;
      showState();
    });
    loadStreams();
  },
  onStatus: (status) => {
    if (status !== 'open') apiAnswered = false;
    showState();
  },
});

const alertStream = new ReconnectingSocket({
  path: '/ws/alerts',
  onMessage: onAlertFrame,
  onOpen: loadAlertsAndIncidents,
  onStatus: showState,
});

/**
 * Asks for the permit first, so that a missing or wrong token shows the token form before any socket opens;
 * when the server cannot be reached yet the sockets start anyway and retry with backoff.
 */
async function connect() {
  showState();
  try {
    await applyPermit();
  } catch (failure) {
    if (failure instanceof UnauthorizedError) return;
  }
  if (unauthorized) return;
  effluent.start();
  alertStream.start();
}

onUnauthorized(() => {
  if (unauthorized) return;
  unauthorized = true;
  effluent.stop();
  alertStream.stop();
  tokenForm.hidden = false;
  // A token that was sent and refused is wrong or expired; none sent is simply missing.
  $('token-message').hidden = getToken() === '';
  tokenInput.value = getToken();
  if (permitSummary.dataset.loaded !== 'true')
    permitSummary.textContent = 'Permit limits: shown once connected.';
  tokenInput.focus();
  showState();
});

tokenForm.addEventListener('submit', (event) => {
  event.preventDefault();
  const token = tokenInput.value.trim();
  if (token === '') {
    tokenInput.focus();
    return;
  }
  setToken(token);
  unauthorized = false;
  tokenForm.hidden = true;
  connect();
});

setUpUpload();
connect();
