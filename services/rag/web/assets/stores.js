// The store list (spec §3.3): create, select, delete (soft, two clicks). Names are shown as text.
import { apiJson } from './api.js';
import { byId, confirmButton, el, showMessage } from './dom.js';
import { emit, on, state } from './state.js';

const list = byId('store-list');
const message = byId('store-message');

/** Reloads the caller's stores, keeping the selection when the store still exists. */
export async function loadStores({ announceSelection = false } = {}) {
  const previous = state.selectedStoreId;
  state.stores = await apiJson('/api/stores');
  if (!state.stores.some((store) => store.id === state.selectedStoreId)) {
    state.selectedStoreId = state.stores[0]?.id ?? null;
  }
  render();
  emit('stores-changed', state.stores);
  if (announceSelection || state.selectedStoreId !== previous) emit('store-selected', state.selectedStoreId);
}

export function selectStore(id) {
  if (state.selectedStoreId === id) return;
  state.selectedStoreId = id;
  render();
  emit('store-selected', id);
}

function render() {
  list.replaceChildren(
    ...state.stores.map((store) => {
      const selected = store.id === state.selectedStoreId;
      const count = store.document_count ?? 0;
      return el('li', { className: selected ? 'store selected' : 'store', dataset: { storeId: store.id } }, [
        el(
          'button',
          {
            type: 'button',
            className: 'store-select',
            attrs: { 'aria-pressed': String(selected) },
            on: { click: () => selectStore(store.id) },
          },
          [
            el('span', { className: 'store-name', text: store.display_name }),
            el('span', {
              className: 'store-count muted',
              text: `${count} document${count === 1 ? '' : 's'}`,
            }),
          ],
        ),
        confirmButton('Delete', () => deleteStore(store), 'danger small store-delete'),
      ]);
    }),
  );
  byId('store-empty').hidden = state.stores.length > 0;
}

async function deleteStore(store) {
  showMessage(message, '');
  try {
    await apiJson(`/api/stores/${store.id}`, { method: 'DELETE' });
    await loadStores();
  } catch (error) {
    showMessage(message, error.message);
  }
}

export function setUpStores() {
  const form = byId('store-form');
  const input = byId('store-name');
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    showMessage(message, '');
    try {
      const store = await apiJson('/api/stores', { method: 'POST', json: { display_name: input.value } });
      input.value = '';
      await loadStores();
      selectStore(store.id);
    } catch (error) {
      showMessage(message, error.message);
    }
  });
  // nothing of the previous user stays on screen
  on('signed-out', () => {
    state.stores = [];
    state.selectedStoreId = null;
    render();
    emit('store-selected', null);
  });
  // document counts change with uploads and deletions
  on('documents-changed', () => {
    loadStores().catch(() => {});
  });
}
