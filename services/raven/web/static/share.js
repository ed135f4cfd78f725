// Share page (GET /d#<key>): the key lives in the URL fragment, which browsers never send to the server.
// Nothing is requested when the page loads; status and download happen only on an explicit click, so a chat
// app's link preview (or a prefetching browser) cannot consume anything.

(() => {
  const $ = (id) => document.getElementById(id);
  const keyView = $('key');
  const keyForm = $('key-form');
  const keyInput = $('key-input');
  const passwordBox = $('password-box');
  const passwordInput = $('password');
  const downloadButton = $('download');
  const statusButton = $('status');
  const message = $('message');
  const errorBox = $('error');
  const details = $('status-details');

  function show(element, visible) {
    element.classList.toggle('hidden', !visible);
  }

  function setMessage(text) {
    message.textContent = text;
  }

  function showError(text) {
    errorBox.textContent = text;
    show(errorBox, text !== '');
  }

  // Same normalization as the server: decode, trim, lower-case, runs of - _ . + or spaces become one -.
  function normalizeKey(raw) {
    let text = raw;
    try {
      text = decodeURIComponent(raw);
    } catch {
      text = raw;
    }
    return text
      .trim()
      .toLowerCase()
      .split(/[-_.+\s]+/)
      .filter((part) => part !== '')
      .join('-');
  }

  function keyFromHash() {
    return normalizeKey(window.location.hash.replace(/^#/, ''));
  }

  function currentKey() {
    const fromHash = keyFromHash();
    return fromHash !== '' ? fromHash : normalizeKey(keyInput.value);
  }

  function renderKey() {
    const key = keyFromHash();
    keyView.textContent = key !== '' ? key : '(none in the link)';
    show(keyForm, key === '');
  }

  function detailText(detail) {
    if (typeof detail === 'string') return detail;
    if (Array.isArray(detail)) return detail.map((entry) => String(entry.msg)).join('; ');
    if (detail && typeof detail === 'object') {
      const text = String(detail.error || detail.message || JSON.stringify(detail));
      return typeof detail.retry_after_seconds === 'number'
        ? `${text} Try again in ${Math.ceil(detail.retry_after_seconds / 60)} minute(s).`
        : text;
    }
    return 'Unexpected error';
  }

  async function errorFrom(response) {
    const body = await response.json().catch(() => ({}));
    return `${detailText(body.detail)} (${response.status})`;
  }

  function passwordHeaders() {
    const password = passwordInput.value;
    if (password === '') return {};
    // Header values carry bytes: send the password's UTF-8 bytes, as the command-line client does.
    const bytes = new TextEncoder().encode(password.normalize('NFC'));
    let latin1 = '';
    for (const byte of bytes) latin1 += String.fromCharCode(byte);
    return { 'X-Password': latin1 };
  }

  async function fetchStatus(key) {
    const response = await fetch(`/status/${encodeURIComponent(key)}`, {
      credentials: 'omit',
      cache: 'no-store',
    });
    if (!response.ok) throw new Error(await errorFrom(response));
    return response.json();
  }

  function renderStatus(status) {
    details.replaceChildren();
    const rows = [
      ['Status', status.status],
      ['Downloads left', status.remaining_uses],
      ['Expires', status.expires_at ? new Date(status.expires_at).toLocaleString() : '—'],
      ['Password', status.password_required ? 'required' : 'no'],
    ];
    for (const [name, value] of rows) {
      const dt = document.createElement('dt');
      dt.textContent = name;
      const dd = document.createElement('dd');
      dd.textContent = value === undefined || value === null ? '—' : String(value);
      details.append(dt, dd);
    }
    show(details, true);
  }

  function filenameFrom(disposition) {
    if (!disposition) return 'download';
    const extended = /filename\*\s*=\s*UTF-8''([^;]+)/i.exec(disposition);
    if (extended) {
      try {
        return decodeURIComponent(extended[1].trim());
      } catch {
        // fall through to the ASCII name
      }
    }
    const plain = /filename\s*=\s*"((?:[^"\\]|\\.)*)"/i.exec(disposition);
    return plain ? plain[1].replace(/\\(.)/g, '$1') : 'download';
  }

  async function sha256Hex(blob) {
    if (!window.crypto?.subtle) return null; // not a secure context: cannot verify
    const digest = await window.crypto.subtle.digest('SHA-256', await blob.arrayBuffer());
    return Array.from(new Uint8Array(digest), (byte) => byte.toString(16).padStart(2, '0')).join('');
  }

  function save(blob, filename) {
    const url = URL.createObjectURL(blob);
    const link = document.createElement('a');
    link.href = url;
    link.download = filename;
    link.rel = 'noopener';
    document.body.append(link);
    link.click();
    link.remove();
    setTimeout(() => URL.revokeObjectURL(url), 60_000);
  }

  function busy(on) {
    downloadButton.disabled = on;
    statusButton.disabled = on;
  }

  async function onStatus() {
    showError('');
    const key = currentKey();
    if (key === '') {
      showError('Enter the key first.');
      return;
    }
    busy(true);
    try {
      renderStatus(await fetchStatus(key));
      setMessage('');
    } catch (error) {
      showError(error instanceof Error ? error.message : String(error));
    } finally {
      busy(false);
    }
  }

  async function onDownload() {
    showError('');
    const key = currentKey();
    if (key === '') {
      showError('Enter the key first.');
      return;
    }
    busy(true);
    try {
      // Status first (it consumes nothing): an exhausted link or a missing password is reported without
      // attempting the download.
      const status = await fetchStatus(key);
      renderStatus(status);
      if (!status.is_accessible) {
        setMessage('This file is no longer available: it expired, was deleted or has been downloaded.');
        return;
      }
      if (status.password_required && passwordInput.value === '') {
        show(passwordBox, true);
        passwordInput.focus();
        setMessage('Enter the password, then click Download again.');
        return;
      }
      setMessage('Downloading…');
      const response = await fetch(`/download/${encodeURIComponent(key)}`, {
        headers: passwordHeaders(),
        credentials: 'omit',
        cache: 'no-store',
      });
      if (!response.ok) {
        if (response.status === 401) show(passwordBox, true);
        setMessage('');
        showError(await errorFrom(response));
        return;
      }
      const blob = await response.blob();
      const expected = (response.headers.get('X-SHA256') || '').toLowerCase();
      const actual = await sha256Hex(blob);
      if (expected !== '' && actual !== null && actual !== expected) {
        setMessage('');
        showError('The download failed its integrity check (SHA-256 mismatch) and was not saved.');
        return;
      }
      const filename = filenameFrom(response.headers.get('Content-Disposition'));
      save(blob, filename);
      setMessage(
        `Saved ${filename} (${blob.size.toLocaleString()} bytes${actual !== null ? ', SHA-256 verified' : ''}).`,
      );
    } catch (error) {
      setMessage('');
      showError(error instanceof Error ? error.message : 'The server could not be reached.');
    } finally {
      busy(false);
    }
  }

  downloadButton.addEventListener('click', onDownload);
  statusButton.addEventListener('click', onStatus);
  keyForm.addEventListener('submit', (event) => {
    event.preventDefault();
    onDownload();
  });
  passwordInput.addEventListener('keydown', (event) => {
    if (event.key === 'Enter') onDownload();
  });
  window.addEventListener('hashchange', renderKey);
  renderKey();
})();
