// Upload page (GET /): sends the file to POST /upload/ and shows the key and links. No request is made
// before the user submits the form.

(() => {
  const $ = (id) => document.getElementById(id);
  const form = $('upload-form');
  const fileInput = $('file');
  const dropZone = $('drop-zone');
  const dropLabel = $('drop-label');
  const button = $('upload-button');
  const progress = $('progress');
  const errorBox = $('error');
  const result = $('result');
  let droppedFile = null;

  function show(element, visible) {
    element.classList.toggle('hidden', !visible);
  }

  function showError(text) {
    errorBox.textContent = text;
    show(errorBox, text !== '');
  }

  function detailText(detail) {
    if (typeof detail === 'string') return detail;
    if (Array.isArray(detail)) {
      return detail
        .map((entry) => {
          const field = Array.isArray(entry.loc) ? entry.loc[entry.loc.length - 1] : '';
          return field ? `${field}: ${entry.msg}` : String(entry.msg);
        })
        .join('; ');
    }
    if (detail && typeof detail === 'object')
      return String(detail.error || detail.message || JSON.stringify(detail));
    return 'Unexpected error';
  }

  function selectedFile() {
    if (droppedFile) return droppedFile;
    return fileInput.files && fileInput.files.length > 0 ? fileInput.files[0] : null;
  }

  function describeSelection() {
    const file = selectedFile();
    dropLabel.textContent = file
      ? `${file.name} (${file.size.toLocaleString()} bytes)`
      : 'Choose a file or drop it here';
  }

  fileInput.addEventListener('change', () => {
    droppedFile = null;
    describeSelection();
  });

  for (const type of ['dragenter', 'dragover']) {
    dropZone.addEventListener(type, (event) => {
      event.preventDefault();
      dropZone.classList.add('dragging');
    });
  }
  for (const type of ['dragleave', 'drop']) {
    dropZone.addEventListener(type, () => dropZone.classList.remove('dragging'));
  }
  dropZone.addEventListener('drop', (event) => {
    event.preventDefault();
    const files = event.dataTransfer ? event.dataTransfer.files : null;
    if (files && files.length > 0) {
      droppedFile = files[0];
      describeSelection();
    }
  });

  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    showError('');
    const file = selectedFile();
    if (!file) {
      showError('Choose a file first.');
      return;
    }
    const body = new FormData();
    const expiry = $('expiry').value.trim();
    const uses = $('uses').value.trim();
    const password = $('password').value;
    if (expiry !== '') body.append('expiry', expiry);
    if (uses !== '') body.append('uses', uses);
    if (password !== '') body.append('password', password);
    body.append('file', file, file.name);

    button.disabled = true;
    show(progress, true);
    progress.removeAttribute('value');
    try {
      const response = await fetch('/upload/', {
        method: 'POST',
        body,
        credentials: 'omit',
        cache: 'no-store',
      });
      const data = await response.json().catch(() => ({}));
      if (response.status !== 201) {
        showError(`Upload failed (${response.status}): ${detailText(data.detail)}`);
        return;
      }
      $('result-key').textContent = data.key;
      $('result-share').textContent = data.share_url;
      $('result-download').textContent = data.download_url;
      const expires = new Date(data.expiry);
      $('result-summary').textContent =
        `${data.filename} · ${Number(data.size).toLocaleString()} bytes · ${data.uses} download(s) · ` +
        `expires ${expires.toLocaleString()}${data.password_protected ? ' · password required' : ''}`;
      show(form, false);
      show(result, true);
    } catch {
      showError('Upload failed: the server could not be reached.');
    } finally {
      button.disabled = false;
      show(progress, false);
    }
  });

  for (const copy of document.querySelectorAll('button.copy')) {
    copy.addEventListener('click', async () => {
      const source = $(copy.dataset.copy);
      const text = source ? source.textContent : '';
      try {
        await navigator.clipboard.writeText(text);
      } catch {
        const range = document.createRange();
        range.selectNodeContents(source);
        const selection = window.getSelection();
        selection.removeAllRanges();
        selection.addRange(range);
        document.execCommand('copy');
      }
      copy.textContent = 'Copied';
      setTimeout(() => {
        copy.textContent = 'Copy';
      }, 1500);
    });
  }

  $('another').addEventListener('click', () => {
    form.reset();
    droppedFile = null;
    describeSelection();
    show(result, false);
    show(form, true);
  });
})();
