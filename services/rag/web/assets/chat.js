// The chat (spec §3.7): streamed answers read from the SSE body with fetch + ReadableStream, `[n]` markers shown
// as "Source N" chips, the citation panel (title, page, snippet with highlights, the original file), and the
// session list with rename and delete.
import { ApiError, apiFetch, apiJson, downloadFile } from './api.js';
import { byId, confirmButton, el, formatUsd, showMessage } from './dom.js';
import { citationNumber, highlightRanges, readSseFrames, splitCitations } from './sse.js';
import { emit, on, selectedStore, state } from './state.js';

const messageList = byId('messages');
const chatMessage = byId('chat-message');
const questionInput = byId('question');
const sendButton = byId('send');
const stopButton = byId('stop');
const sessionList = byId('session-list');
const citationList = byId('citation-list');

let sessionId = null;
let streaming = null;

// ---- rendering --------------------------------------------------------------------------------------------------

/** Fills `target` with the answer text, each `[n]` replaced by a "Source N" chip. */
function renderAnswer(target, text, entry) {
  target.replaceChildren(
    ...splitCitations(text).map((piece) =>
      typeof piece === 'number'
        ? el('button', {
            type: 'button',
            className: 'source-chip',
            text: `Source ${piece}`,
            dataset: { source: piece },
            on: { click: () => showSources(entry, piece) },
          })
        : document.createTextNode(piece),
    ),
  );
}

function addUserMessage(text) {
  const item = el('li', { className: 'message user' }, [
    el('span', { className: 'message-role', text: 'You' }),
    el('p', { className: 'message-text', text }),
  ]);
  messageList.append(item);
  updateWelcome();
  return item;
}

/** An assistant message entry: its element, text and sources (source-document frames). */
function addAssistantMessage(text = '', sources = []) {
  const body = el('p', { className: 'message-text' });
  const meta = el('p', { className: 'message-meta muted' });
  const item = el('li', { className: 'message assistant' }, [
    el('span', { className: 'message-role', text: 'Assistant' }),
    body,
    meta,
  ]);
  const entry = { item, body, meta, text, sources };
  renderAnswer(body, text, entry);
  messageList.append(item);
  updateWelcome();
  return entry;
}

function showSources(entry, highlighted = null) {
  byId('citation-empty').hidden = entry.sources.length > 0;
  byId('citation-empty').textContent = entry.sources.length > 0 ? '' : 'This answer cites no sources.';
  citationList.replaceChildren(...entry.sources.map((source, index) => citationItem(source, index)));
  for (const element of messageList.querySelectorAll('.message.showing-sources'))
    element.classList.remove('showing-sources');
  entry.item.classList.add('showing-sources');
  if (highlighted !== null) {
    const item = citationList.querySelector(`li[data-source="${highlighted}"]`);
    if (item) {
      for (const element of citationList.querySelectorAll('li.active')) element.classList.remove('active');
      item.classList.add('active');
      item.scrollIntoView({ block: 'nearest' });
    }
  }
}

function citationItem(source, index) {
  const number = citationNumber(source, index);
  const snippet = el('p', { className: 'citation-snippet' });
  for (const piece of highlightRanges(String(source.snippet ?? ''), source.highlights)) {
    snippet.append(
      piece.highlighted ? el('mark', { text: piece.text }) : document.createTextNode(piece.text),
    );
  }
  const details = [];
  if (source.page !== null && source.page !== undefined) details.push(`Page ${source.page}`);
  if (source.filename && source.filename !== source.title) details.push(source.filename);
  const link = el('a', {
    href: `/api/documents/${source.documentId}/file`,
    className: 'citation-file',
    text: 'Open original file',
    on: {
      click: (event) => {
        event.preventDefault();
        downloadFile(`/api/documents/${source.documentId}/file`, source.filename || source.title).catch(
          (error) => showMessage(chatMessage, error.message),
        );
      },
    },
  });
  return el('li', { className: 'citation', dataset: { source: number, documentId: source.documentId } }, [
    el('p', { className: 'citation-number', text: `Source ${number}` }),
    el('p', { className: 'citation-title', text: source.title }),
    details.length > 0 ? el('p', { className: 'citation-page muted', text: details.join(' · ') }) : null,
    snippet,
    link,
  ]);
}

function clearSources() {
  citationList.replaceChildren();
  byId('citation-empty').hidden = false;
  byId('citation-empty').textContent = 'Sources of an answer appear here.';
}

function updateWelcome() {
  byId('welcome').hidden = messageList.children.length > 0;
}

function renderWelcome() {
  const settings = state.settings ?? {};
  byId('welcome-text').textContent = settings.welcome_message ?? '';
  const prompts = [
    settings.suggested_prompt_1,
    settings.suggested_prompt_2,
    settings.suggested_prompt_3,
  ].filter((prompt) => typeof prompt === 'string' && prompt.trim() !== '');
  byId('suggested-prompts').replaceChildren(
    ...prompts.map((prompt) =>
      el('button', {
        type: 'button',
        className: 'secondary prompt',
        text: prompt,
        on: { click: () => ask(prompt) },
      }),
    ),
  );
}

// ---- streaming --------------------------------------------------------------------------------------------------

async function ask(question) {
  const store = selectedStore();
  if (!store || streaming) return;
  showMessage(chatMessage, '');
  addUserMessage(question);
  const entry = addAssistantMessage();
  entry.item.classList.add('streaming');
  const controller = new AbortController();
  streaming = controller;
  sendButton.disabled = true;
  stopButton.hidden = false;
  try {
    const body = { storeIds: [store.id], question };
    if (sessionId !== null) body.sessionId = sessionId;
    const response = await apiFetch('/api/chat', { method: 'POST', json: body, signal: controller.signal });
    const newSession = response.headers.get('X-Session-Id');
    if (newSession) sessionId = newSession;
    for await (const frame of readSseFrames(response.body)) handleFrame(entry, frame);
  } catch (error) {
    if (error.name === 'AbortError') {
      entry.meta.textContent = 'Stopped.';
    } else {
      entry.item.classList.add('failed');
      entry.meta.textContent = '';
      showMessage(chatMessage, error instanceof ApiError ? error.message : `Chat failed: ${error.message}`);
      if (entry.text === '') entry.item.remove();
    }
  } finally {
    entry.item.classList.remove('streaming');
    streaming = null;
    sendButton.disabled = false;
    stopButton.hidden = true;
    updateWelcome();
    loadSessions();
    emit('spend-changed');
  }
}

function handleFrame(entry, frame) {
  switch (frame.type) {
    case 'text-delta':
      entry.text += frame.delta ?? '';
      renderAnswer(entry.body, entry.text, entry);
      break;
    case 'source-document':
      entry.sources.push(frame);
      break;
    case 'finish': {
      entry.item.dataset.grounded = String(frame.grounded);
      const figures = [];
      if (frame.provider) figures.push(frame.provider);
      if (frame.usage?.model) figures.push(frame.usage.model);
      if (typeof frame.costUsd === 'number') figures.push(formatUsd(frame.costUsd));
      entry.meta.textContent = figures.join(' · ');
      if (entry.sources.length > 0) showSources(entry);
      break;
    }
    case 'error':
      entry.item.classList.add('failed');
      entry.item.dataset.errorCode = frame.code ?? 'error';
      showMessage(chatMessage, frame.message ?? frame.errorText ?? 'The answer failed.');
      break;
    default:
      break;
  }
}

// ---- sessions ---------------------------------------------------------------------------------------------------

async function loadSessions() {
  const store = selectedStore();
  if (!store) {
    sessionList.replaceChildren();
    byId('session-empty').hidden = false;
    return;
  }
  let sessions;
  try {
    sessions = await apiJson(`/api/chat/sessions?storeId=${store.id}&limit=50`);
  } catch (error) {
    showMessage(chatMessage, error.message);
    return;
  }
  if (state.selectedStoreId !== store.id) return;
  sessionList.replaceChildren(...sessions.map(sessionItem));
  byId('session-empty').hidden = sessions.length > 0;
}

function sessionItem(session) {
  const item = el('li', {
    className: session.id === sessionId ? 'session current' : 'session',
    dataset: { sessionId: session.id },
  });
  const showView = () => {
    item.replaceChildren(
      el('button', {
        type: 'button',
        className: 'session-open',
        text: session.title || 'Untitled',
        on: { click: () => openSession(session.id) },
      }),
      el('span', { className: 'session-actions' }, [
        el('button', {
          type: 'button',
          className: 'secondary small session-rename',
          text: 'Rename',
          on: { click: showRename },
        }),
        confirmButton('Delete', () => deleteSession(session.id), 'danger small session-delete'),
      ]),
    );
  };
  const showRename = () => {
    const input = el('input', {
      className: 'session-title-input',
      value: session.title ?? '',
      maxLength: 200,
      required: true,
      attrs: { 'aria-label': 'Session title' },
    });
    const form = el('form', { className: 'inline session-rename-form' }, [
      input,
      el('button', { type: 'submit', className: 'small', text: 'Save' }),
      el('button', { type: 'button', className: 'secondary small', text: 'Cancel', on: { click: showView } }),
    ]);
    form.addEventListener('submit', async (event) => {
      event.preventDefault();
      try {
        const updated = await apiJson(`/api/chat/sessions/${encodeURIComponent(session.id)}`, {
          method: 'PATCH',
          json: { title: input.value.trim() },
        });
        session.title = updated?.title ?? input.value.trim();
        showView();
      } catch (error) {
        showMessage(chatMessage, error.message);
      }
    });
    item.replaceChildren(form);
    input.focus();
  };
  showView();
  return item;
}

async function openSession(id) {
  if (streaming) return;
  let messages;
  try {
    messages = await apiJson(`/api/chat/sessions/${encodeURIComponent(id)}/messages`);
  } catch (error) {
    showMessage(chatMessage, error.message);
    return;
  }
  resetConversation();
  sessionId = id;
  let lastAssistant = null;
  for (const message of messages) {
    if (message.role === 'user') addUserMessage(message.content);
    else
      lastAssistant = addAssistantMessage(
        message.content,
        Array.isArray(message.sources) ? message.sources : [],
      );
  }
  if (lastAssistant && lastAssistant.sources.length > 0) showSources(lastAssistant);
  for (const item of sessionList.querySelectorAll('li.session'))
    item.classList.toggle('current', item.dataset.sessionId === id);
}

async function deleteSession(id) {
  try {
    await apiJson(`/api/chat/sessions/${encodeURIComponent(id)}`, { method: 'DELETE' });
    if (sessionId === id) resetConversation();
    await loadSessions();
  } catch (error) {
    showMessage(chatMessage, error.message);
  }
}

function resetConversation() {
  sessionId = null;
  messageList.replaceChildren();
  clearSources();
  showMessage(chatMessage, '');
  updateWelcome();
}

// ---- wiring -----------------------------------------------------------------------------------------------------

function updateScope() {
  const store = selectedStore();
  byId('chat-scope').textContent = store
    ? `Asking the documents of ${store.display_name}`
    : 'Select a store to chat with its documents.';
  sendButton.disabled = store === null || streaming !== null;
}

export function setUpChat() {
  byId('chat-form').addEventListener('submit', (event) => {
    event.preventDefault();
    const question = questionInput.value.trim();
    if (question === '') return;
    questionInput.value = '';
    ask(question);
  });
  questionInput.addEventListener('keydown', (event) => {
    if (event.key === 'Enter' && !event.shiftKey) {
      event.preventDefault();
      byId('chat-form').requestSubmit();
    }
  });
  stopButton.addEventListener('click', () => streaming?.abort());
  byId('new-chat').addEventListener('click', () => {
    if (!streaming) resetConversation();
  });
  on('store-selected', () => {
    streaming?.abort();
    resetConversation();
    updateScope();
    loadSessions();
  });
  on('stores-changed', updateScope);
  on('settings-changed', renderWelcome);
  on('signed-out', () => {
    streaming?.abort();
    resetConversation();
  });
  renderWelcome();
  updateWelcome();
}
