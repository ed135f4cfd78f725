// Display helpers shared by the page's modules. Everything they return is plain text for textContent.

/** Epoch seconds from here on are shown as dates; smaller numbers are the analyser's own time unit. */
export const EPOCH_SECONDS_FLOOR = 1e8;

/** A reading or alert time: numeric stream time, epoch seconds or an ISO 8601 string. */
export function formatTime(value) {
  if (typeof value === 'number' && Number.isFinite(value)) {
    return value >= EPOCH_SECONDS_FLOOR ? formatDate(new Date(value * 1000)) : `t = ${formatNumber(value)}`;
  }
  if (typeof value === 'string') {
    // Date-times are shown in local time; plain dates and months as written.
    if (value.includes('T')) {
      const ms = Date.parse(value);
      if (Number.isFinite(ms)) return formatDate(new Date(ms));
    }
    return value;
  }
  return '';
}

export function formatDate(date) {
  return date.toLocaleString(undefined, {
    year: 'numeric',
    month: '2-digit',
    day: '2-digit',
    hour: '2-digit',
    minute: '2-digit',
    second: '2-digit',
  });
}

export function formatNumber(value) {
  if (typeof value !== 'number' || !Number.isFinite(value)) return String(value ?? '');
  return value.toLocaleString(undefined, { maximumFractionDigits: 3 });
}

/** An element with a class and text (never parsed as HTML). */
export function textElement(tag, className, text) {
  const element = document.createElement(tag);
  if (className) element.className = className;
  element.textContent = text;
  return element;
}

export const LEVELS = ['info', 'watch', 'warning', 'critical'];

/** The level as a class-safe name (unknown levels fall back to info). */
export function levelName(level) {
  return LEVELS.includes(level) ? level : 'info';
}
