// Shared page state and a small event bus between the panels.

export const state = {
  /** GET /api/auth/me, or null when signed out */
  user: null,
  /** [StoreOut] of the signed-in user */
  stores: [],
  selectedStoreId: null,
  /** GET /api/settings */
  settings: null,
};

const bus = new EventTarget();

/** Events: signed-in, signed-out, stores-changed, store-selected, documents-changed, spend-changed, settings-changed. */
export function emit(name, detail) {
  bus.dispatchEvent(new CustomEvent(name, { detail }));
}

export function on(name, handler) {
  bus.addEventListener(name, (event) => handler(event.detail));
}

export function selectedStore() {
  return state.stores.find((store) => store.id === state.selectedStoreId) ?? null;
}
