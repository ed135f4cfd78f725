// Reading the chat's Server-Sent Events (`data: <json>\n\n` frames, `: keepalive` comments, `data: [DONE]`)
// from a fetch() response body, and splitting answers at their `[n]` citation markers.

/**
 * Yields each JSON frame of an SSE body in order; returns after `data: [DONE]` or at the end of the body.
 * Comment lines (keepalives) and frames without data are skipped.
 */
export async function* readSseFrames(body) {
  const reader = body.getReader();
  const decoder = new TextDecoder();
  let buffer = '';
  try {
    while (true) {
      const { value, done } = await reader.read();
      buffer += decoder.decode(value ?? new Uint8Array(), { stream: !done });
      buffer = buffer.replace(/\r\n?/g, '\n');
      let boundary = buffer.indexOf('\n\n');
      while (boundary !== -1) {
        const block = buffer.slice(0, boundary);
        buffer = buffer.slice(boundary + 2);
        const data = eventData(block);
        if (data === '[DONE]') return;
        if (data !== null) yield JSON.parse(data);
        boundary = buffer.indexOf('\n\n');
      }
      if (done) {
        const data = eventData(buffer);
        if (data !== null && data !== '[DONE]') yield JSON.parse(data);
        return;
      }
    }
  } finally {
    reader.releaseLock();
  }
}

/** The joined `data:` lines of one event block, or null when it has none. */
function eventData(block) {
  const lines = block.split('\n').filter((line) => line.startsWith('data:'));
  if (lines.length === 0) return null;
  return lines.map((line) => line.slice(line.startsWith('data: ') ? 6 : 5)).join('\n');
}

/** Splits an answer into text pieces and citation numbers: "a [1] b" → ['a ', 1, ' b']. */
export function splitCitations(text) {
  const pieces = [];
  let last = 0;
  for (const match of text.matchAll(/\[(\d{1,3})\]/g)) {
    if (match.index > last) pieces.push(text.slice(last, match.index));
    pieces.push(Number(match[1]));
    last = match.index + match[0].length;
  }
  if (last < text.length) pieces.push(text.slice(last));
  return pieces;
}

/** The citation number of a source frame (`sourceId` "cit-<n-1>"), or its position + 1 as a fallback. */
export function citationNumber(source, index) {
  const match = /^cit-(\d+)$/.exec(String(source.sourceId ?? ''));
  return match ? Number(match[1]) + 1 : index + 1;
}

/**
 * Splits a snippet at its `[start, end)` highlight offsets: [{text, highlighted}] in order. Offsets outside
 * the snippet or overlapping an earlier one are ignored.
 */
export function highlightRanges(snippet, highlights) {
  const pieces = [];
  let position = 0;
  const sorted = [...(highlights ?? [])]
    .filter((range) => Array.isArray(range) && range.length === 2)
    .sort((a, b) => a[0] - b[0]);
  for (const [start, end] of sorted) {
    if (start < position || end <= start || end > snippet.length) continue;
    if (start > position) pieces.push({ text: snippet.slice(position, start), highlighted: false });
    pieces.push({ text: snippet.slice(start, end), highlighted: true });
    position = end;
  }
  if (position < snippet.length) pieces.push({ text: snippet.slice(position), highlighted: false });
  return pieces;
}
