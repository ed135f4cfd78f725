// Documents of the selected store (spec §3.4): drag-and-drop / file-input uploads with per-file progress, live
// indexing status from op-status polling, error text with a retry (re-index) button, download of the original,
// deletion and the chunk viewer.
import { ApiError, apiJson, downloadFile, uploadWithProgress } from './api.js';
import { byId, confirmButton, el, formatBytes, showMessage } from './dom.js';
import { emit, on, selectedStore, state } from './state.js';

const POLL_MS = 1000;
const CHUNK_PAGE = 20;
const ACTIVE = new Set(['PENDING', 'RUNNING']);

const tableBody = byId('document-table').querySelector('tbody');
const message = byId('documents-message');
const uploadList = byId('upload-list');

// ---- op-status polling: one poller per document, any number of listeners -------------------------------------

const watchers = new Map();

/** Calls `listener(opStatus)` on every poll of the document until it is DONE or ERROR (or gone). */
function watchDocument(documentId, listener) {
  let watcher = watchers.get(documentId);
  if (!watcher) {
    watcher = { listeners: new Set(), timer: null };
    watchers.set(documentId, watcher);
    schedulePoll(documentId, watcher, 0);
  }
  watcher.listeners.add(listener);
}

function schedulePoll(documentId, watcher, delay) {
  watcher.timer = setTimeout(async () => {
    let status;
    try {
      status = await apiJson(`/api/upload/op-status/doc-${documentId}`);
    } catch (error) {
      if (error instanceof ApiError && (error.status === 404 || error.status === 401)) {
        watchers.delete(documentId);
        return;
      }
      schedulePoll(documentId, watcher, POLL_MS * 2);
      return;
    }
    for (const listener of watcher.listeners) listener(status);
    if (ACTIVE.has(status.status)) {
      schedulePoll(documentId, watcher, POLL_MS);
    } else {
      watchers.delete(documentId);
      emit('documents-changed', documentId);
    }
  }, delay);
}

export function stopWatching() {
  for (const watcher of watchers.values()) clearTimeout(watcher.timer);
  watchers.clear();
}

// ---- status display shared by the upload rows and the table ----------------------------------------------------

function statusBadge(status) {
  return el('span', { className: `status status-${status.toLowerCase()}`, text: status });
}

function statusLine(opStatus) {
  if (opStatus.status === 'DONE') {
    const chunks = opStatus.chunk_count ?? 0;
    return `Indexed: ${chunks} chunk${chunks === 1 ? '' : 's'}`;
  }
  if (opStatus.status === 'ERROR') return opStatus.error ?? 'Indexing failed';
  if (opStatus.status === 'RUNNING') return 'Indexing…';
  return 'Waiting to be indexed…';
}

async function reindex(documentId, onStatus) {
  showMessage(message, '');
  try {
    await apiJson(`/api/documents/${documentId}/reindex`, { method: 'POST' });
    onStatus?.({ status: 'PENDING', error: null });
    watchDocument(documentId, (status) => onStatus?.(status));
    await loadDocuments();
  } catch (error) {
    showMessage(message, error.message);
  }
}

// ---- uploads ----------------------------------------------------------------------------------------------------

function uploadFiles(files) {
  const store = selectedStore();
  if (!store) return;
  for (const file of files) uploadOne(store, file);
}

async function uploadOne(store, file) {
  const progress = el('progress', { max: 100, value: 0 });
  const stateText = el('span', { className: 'upload-state', text: 'Uploading 0%' });
  const error = el('p', { className: 'upload-error message', hidden: true, attrs: { role: 'alert' } });
  const actions = el('span', { className: 'upload-actions' });
  const row = el('li', { className: 'upload', dataset: { status: 'UPLOADING' } }, [
    el('span', { className: 'upload-name', text: file.name }),
    progress,
    stateText,
    actions,
    error,
  ]);
  uploadList.prepend(row);

  const form = new FormData();
  form.append('storeId', String(store.id));
  form.append('file', file, file.name);
  let result;
  try {
    result = await uploadWithProgress('/api/upload', form, (fraction) => {
      progress.value = Math.round(fraction * 100);
      stateText.textContent = fraction < 1 ? `Uploading ${progress.value}%` : 'Uploaded';
    });
  } catch (failure) {
    row.dataset.status = 'FAILED';
    stateText.textContent = 'Upload failed';
    showMessage(error, failure.message);
    actions.append(
      el('button', {
        type: 'button',
        className: 'secondary small',
        text: 'Dismiss',
        on: { click: () => row.remove() },
      }),
    );
    return;
  }
  row.dataset.documentId = String(result.document_id);
  const update = (opStatus) => {
    row.dataset.status = opStatus.status;
    stateText.replaceChildren(
      statusBadge(opStatus.status),
      ` ${opStatus.status === 'ERROR' ? '' : statusLine(opStatus)}`,
    );
    if (opStatus.status === 'ERROR') {
      showMessage(error, statusLine(opStatus));
      actions.replaceChildren(
        el('button', {
          type: 'button',
          className: 'small retry',
          text: 'Retry',
          on: { click: () => reindex(result.document_id, update) },
        }),
      );
    } else {
      showMessage(error, '');
      actions.replaceChildren();
    }
  };
  update({ status: 'PENDING', error: null });
  watchDocument(result.document_id, update);
  emit('documents-changed', result.document_id);
}

// ---- documents table --------------------------------------------------------------------------------------------

/** Reloads the table for the selected store and starts watching documents that are still being indexed. */
export async function loadDocuments() {
  const store = selectedStore();
  const hasStore = store !== null;
  byId('documents-hint').hidden = hasStore;
  byId('documents-body').hidden = !hasStore;
  if (!hasStore) {
    tableBody.replaceChildren();
    return;
  }
  byId('drop-store-name').textContent = store.display_name;
  byId('documents-title').textContent = `Documents — ${store.display_name}`;
  let documents;
  try {
    documents = await apiJson(`/api/documents/store/${store.id}`);
  } catch (error) {
    showMessage(message, error.message);
    return;
  }
  if (state.selectedStoreId !== store.id) return;
  tableBody.replaceChildren(...documents.map(documentRow));
  byId('documents-empty').hidden = documents.length > 0;
  for (const doc of documents) {
    if (ACTIVE.has(doc.status)) watchDocument(doc.id, (status) => updateRow(doc.id, status));
  }
}

function documentRow(doc) {
  const title = doc.display_name || doc.filename;
  const statusCell = el('td', { className: 'status-cell' }, [statusBadge(doc.status)]);
  if (doc.status === 'ERROR' && doc.last_error) {
    statusCell.append(el('p', { className: 'doc-error message', text: doc.last_error }));
  }
  const actions = [
    el('button', {
      type: 'button',
      className: 'secondary small',
      text: 'Chunks',
      disabled: doc.status !== 'DONE',
      on: { click: () => openChunks(doc, 0) },
    }),
    el('button', {
      type: 'button',
      className: 'secondary small',
      text: 'Download',
      on: {
        click: () =>
          downloadFile(`/api/documents/${doc.id}/file`, doc.filename).catch((error) =>
            showMessage(message, error.message),
          ),
      },
    }),
  ];
  if (!ACTIVE.has(doc.status)) {
    actions.push(
      el('button', {
        type: 'button',
        className: doc.status === 'ERROR' ? 'small retry' : 'secondary small reindex',
        text: doc.status === 'ERROR' ? 'Retry' : 'Re-index',
        on: { click: () => reindex(doc.id) },
      }),
    );
  }
  actions.push(confirmButton('Delete', () => deleteDocument(doc), 'danger small'));
  return el('tr', { dataset: { documentId: doc.id, status: doc.status } }, [
    el('td', {}, [
      el('span', { className: 'doc-title', text: title }),
      title !== doc.filename
        ? el('span', { className: 'muted doc-filename', text: ` ${doc.filename}` })
        : null,
    ]),
    statusCell,
    el('td', { className: 'doc-chunks', text: doc.chunk_count ?? '—' }),
    el('td', { text: doc.page_count ?? '—' }),
    el('td', { text: formatBytes(doc.size_bytes) }),
    el('td', { className: 'actions' }, actions),
  ]);
}

function updateRow(documentId, opStatus) {
  const row = tableBody.querySelector(`tr[data-document-id="${documentId}"]`);
  if (!row) return;
  row.dataset.status = opStatus.status;
  const cell = row.querySelector('.status-cell');
  cell.replaceChildren(statusBadge(opStatus.status));
  if (opStatus.status === 'ERROR' && opStatus.error)
    cell.append(el('p', { className: 'doc-error message', text: opStatus.error }));
  if (!ACTIVE.has(opStatus.status)) loadDocuments();
}

async function deleteDocument(doc) {
  showMessage(message, '');
  try {
    await apiJson(`/api/documents/${doc.id}`, { method: 'DELETE' });
    await loadDocuments();
    emit('documents-changed', doc.id);
  } catch (error) {
    showMessage(message, error.message);
  }
}

// ---- chunk viewer -----------------------------------------------------------------------------------------------

let chunkDocument = null;
let chunkOffset = 0;

async function openChunks(doc, offset) {
  const viewer = byId('chunk-viewer');
  chunkDocument = doc;
  chunkOffset = offset;
  byId('chunk-title').textContent = `Chunks of ${doc.display_name || doc.filename}`;
  let page;
  try {
    page = await apiJson(`/api/documents/${doc.id}/chunks?offset=${offset}&limit=${CHUNK_PAGE}`);
  } catch (error) {
    showMessage(message, error.message);
    return;
  }
  viewer.hidden = false;
  const last = Math.min(offset + page.chunks.length, page.total);
  byId('chunk-range').textContent =
    page.total === 0 ? 'No chunks.' : `Chunks ${offset + 1}–${last} of ${page.total}`;
  byId('chunk-list').replaceChildren(
    ...page.chunks.map((chunk) =>
      el('li', { className: 'chunk', dataset: { ordinal: chunk.ordinal } }, [
        el('p', {
          className: 'chunk-meta muted',
          text: `#${chunk.ordinal}${chunk.page === null ? '' : ` · page ${chunk.page}`} · ${chunk.token_count} tokens`,
        }),
        el('p', { className: 'chunk-text', text: chunk.text }),
      ]),
    ),
  );
  byId('chunk-prev').disabled = offset === 0;
  byId('chunk-next').disabled = last >= page.total;
  viewer.scrollIntoView({ block: 'nearest' });
}

// ---- wiring -----------------------------------------------------------------------------------------------------

export function setUpDocuments() {
  const dropZone = byId('drop-zone');
  const fileInput = byId('file-input');
  fileInput.addEventListener('change', () => {
    uploadFiles([...fileInput.files]);
    fileInput.value = '';
  });
  for (const name of ['dragenter', 'dragover']) {
    dropZone.addEventListener(name, (event) => {
      event.preventDefault();
      dropZone.classList.add('dragging');
    });
  }
  dropZone.addEventListener('dragleave', () => dropZone.classList.remove('dragging'));
  dropZone.addEventListener('drop', (event) => {
    event.preventDefault();
    dropZone.classList.remove('dragging');
    uploadFiles([...(event.dataTransfer?.files ?? [])]);
  });
  byId('chunk-close').addEventListener('click', () => {
    byId('chunk-viewer').hidden = true;
  });
  byId('chunk-prev').addEventListener('click', () =>
    openChunks(chunkDocument, Math.max(0, chunkOffset - CHUNK_PAGE)),
  );
  byId('chunk-next').addEventListener('click', () => openChunks(chunkDocument, chunkOffset + CHUNK_PAGE));

  on('store-selected', () => {
    byId('chunk-viewer').hidden = true;
    uploadList.replaceChildren();
    showMessage(message, '');
    loadDocuments();
  });
  on('documents-changed', () => loadDocuments());
}
