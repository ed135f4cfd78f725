// One uPlot chart per species: the live readings, the permit limit as a dashed horizontal series and the
// readings above it as highlighted points. Charts are created on the first reading of a species.

import { EPOCH_SECONDS_FLOOR, formatNumber, formatTime, textElement } from './format.js';
import uPlot from './vendor/uplot.esm.js';

export const MAX_POINTS = 500;
export const COLORS = Object.freeze({
  reading: '#1a73e8',
  limit: '#d93025',
  above: '#f29900',
  axis: '#6b7280',
  grid: 'rgba(107, 114, 128, 0.2)',
});
const PLOT_HEIGHT = 220;

/**
 * A reading from a stream message (`/api/streams` item or `/ws/effluent` frame): a string `species`, a finite
 * `concentration` (alias `value`) ≥ 0, and an x from `time` (number, or ISO string → epoch seconds), else the
 * server's `timestamp`. `key` identifies the message so a reseed does not draw it twice. Null when not a reading.
 */
export function readingFromMessage(message) {
  if (message === null || typeof message !== 'object') return null;
  const { species, time, timestamp } = message;
  const value = message.concentration ?? message.value;
  if (typeof species !== 'string' || species === '') return null;
  if (typeof value !== 'number' || !Number.isFinite(value) || value < 0) return null;
  let x = null;
  let epoch = true;
  if (typeof time === 'number' && Number.isFinite(time)) {
    x = time;
    epoch = time >= EPOCH_SECONDS_FLOOR;
  } else if (typeof time === 'string' && Number.isFinite(Date.parse(time))) {
    x = Date.parse(time) / 1000;
  } else if (typeof timestamp === 'number' && Number.isFinite(timestamp)) {
    x = timestamp;
  }
  if (x === null) return null;
  return { species, value, x, epoch, time: time ?? timestamp, key: JSON.stringify([timestamp, time, value]) };
}

/** First index whose x is greater than `x` (readings with equal x keep arrival order). */
function insertionIndex(xs, x) {
  let low = 0;
  let high = xs.length;
  while (low < high) {
    const middle = (low + high) >>> 1;
    if (xs[middle] <= x) low = middle + 1;
    else high = middle;
  }
  return low;
}

/**
 * Readings all at one instant leave no x range (uPlot would widen a time axis by years): show a minute around
 * them on a time axis, one unit on a numeric one.
 */
function singleInstantRange(plot, min, max, epoch) {
  const xs = plot.data[0];
  if (xs.length === 0 || xs[0] !== xs[xs.length - 1]) return [min, max];
  const pad = epoch ? 60 : 1;
  return [xs[0] - pad, xs[0] + pad];
}

class SpeciesChart {
  #xs = [];
  #ys = [];
  #keys = new Set();
  #keyOrder = [];
  #limit;
  #plot;
  #meta;
  #last = null;

  constructor(parent, species, limit, epoch) {
    this.#limit = limit;
    this.element = document.createElement('figure');
    this.element.className = 'chart';
    this.element.dataset.species = species;
    const caption = document.createElement('figcaption');
    caption.append(textElement('span', 'chart-species', species));
    this.#meta = textElement('span', 'chart-meta', '');
    caption.append(this.#meta);
    const plotArea = document.createElement('div');
    plotArea.className = 'chart-plot';
    this.element.append(caption, plotArea);
    parent.append(this.element);

    this.#plot = new uPlot(
      {
        width: Math.max(plotArea.clientWidth, 200),
        height: PLOT_HEIGHT,
        scales: { x: { time: epoch, range: (plot, min, max) => singleInstantRange(plot, min, max, epoch) } },
        axes: [
          { stroke: COLORS.axis, grid: { stroke: COLORS.grid }, ticks: { stroke: COLORS.grid } },
          {
            stroke: COLORS.axis,
            grid: { stroke: COLORS.grid },
            ticks: { stroke: COLORS.grid },
            label: 'mg/L',
          },
        ],
        series: [
          { label: epoch ? 'Time' : 't' },
          { label: 'mg/L', stroke: COLORS.reading, width: 2, points: { size: 5 } },
          { label: 'Limit', stroke: COLORS.limit, width: 2, dash: [8, 5], points: { show: false } },
          {
            label: 'Above limit',
            stroke: COLORS.above,
            paths: () => null,
            points: { show: true, size: 10, width: 2, stroke: COLORS.above, fill: COLORS.above },
          },
        ],
      },
      this.#data(),
      plotArea,
    );
    this.#observeWidth(plotArea);
    this.#render();
  }

  get limit() {
    return this.#limit;
  }

  setLimit(limit) {
    if (limit === this.#limit) return;
    this.#limit = limit;
    this.#render();
  }

  /** Adds a reading unless already drawn; keeps the last MAX_POINTS by time. */
  add(reading) {
    if (this.#keys.has(reading.key)) return;
    this.#keys.add(reading.key);
    this.#keyOrder.push(reading.key);
    if (this.#keyOrder.length > MAX_POINTS * 4) this.#keys.delete(this.#keyOrder.shift());
    const at = insertionIndex(this.#xs, reading.x);
    if (at === this.#xs.length) this.#last = reading;
    this.#xs.splice(at, 0, reading.x);
    this.#ys.splice(at, 0, reading.value);
    if (this.#xs.length > MAX_POINTS) {
      this.#xs.splice(0, this.#xs.length - MAX_POINTS);
      this.#ys.splice(0, this.#ys.length - MAX_POINTS);
    }
    this.#render();
  }

  #data() {
    const limit = this.#limit;
    const hasLimit = typeof limit === 'number';
    return [
      this.#xs,
      this.#ys,
      this.#xs.map(() => (hasLimit ? limit : null)),
      this.#ys.map((y) => (hasLimit && y > limit ? y : null)),
    ];
  }

  #render() {
    this.#plot.setData(this.#data());
    const hasLimit = typeof this.#limit === 'number';
    if (hasLimit) this.element.dataset.limit = String(this.#limit);
    else delete this.element.dataset.limit;
    const above = hasLimit ? this.#ys.filter((y) => y > this.#limit).length : 0;
    this.element.classList.toggle('has-exceedance', above > 0);
    const parts = [hasLimit ? `limit ${formatNumber(this.#limit)} mg/L` : 'no permit limit'];
    if (this.#last !== null) {
      parts.push(`last ${formatNumber(this.#last.value)} mg/L at ${formatTime(this.#last.time)}`);
    }
    parts.push(`${this.#xs.length} point${this.#xs.length === 1 ? '' : 's'}`);
    if (above > 0) parts.push(`${above} above limit`);
    this.#meta.textContent = parts.join(' · ');
  }

  #observeWidth(plotArea) {
    if (typeof ResizeObserver !== 'function') return;
    let width = plotArea.clientWidth;
    new ResizeObserver(() => {
      if (plotArea.clientWidth === width || plotArea.clientWidth === 0) return;
      width = plotArea.clientWidth;
      this.#plot.setSize({ width: Math.max(width, 200), height: PLOT_HEIGHT });
    }).observe(plotArea);
  }
}

/** The charts of every species seen, under `container`; `emptyNote` shows until the first chart. */
export class ChartBoard {
  #container;
  #emptyNote;
  #charts = new Map();
  #limits = {};

  constructor(container, emptyNote) {
    this.#container = container;
    this.#emptyNote = emptyNote;
  }

  /** The permit's `limits_mgL`; charts of species without a limit draw none. */
  setLimits(limits) {
    this.#limits = limits && typeof limits === 'object' ? limits : {};
    for (const [species, chart] of this.#charts) chart.setLimit(this.#limitOf(species));
  }

  #limitOf(species) {
    const limit = Object.hasOwn(this.#limits, species) ? Number(this.#limits[species]) : Number.NaN;
    return Number.isFinite(limit) ? limit : undefined;
  }

  /** Plots a stream message when it is a reading; returns whether it was one. */
  addMessage(message) {
    const reading = readingFromMessage(message);
    if (reading === null) return false;
    let chart = this.#charts.get(reading.species);
    if (chart === undefined) {
      chart = new SpeciesChart(
        this.#container,
        reading.species,
        this.#limitOf(reading.species),
        reading.epoch,
      );
      this.#charts.set(reading.species, chart);
      this.#emptyNote.hidden = true;
    }
    chart.add(reading);
    return true;
  }
}
