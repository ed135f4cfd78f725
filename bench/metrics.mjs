// Prometheus text parsing for the benchmarks: one histogram's cumulative buckets (optionally filtered by
// labels) and its quantiles, interpolated within the bucket as PromQL's histogram_quantile does.

function parseLabels(text) {
  const labels = {};
  for (const match of text.matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)) labels[match[1]] = match[2];
  return labels;
}

/**
 * The histogram `name` summed over series whose labels include `where`: { buckets: [{le, count}] (cumulative,
 * +Inf last), count, sum }.
 */
export function histogram(metricsText, name, where = {}) {
  const byLe = new Map();
  let count = 0;
  let sum = 0;
  const matches = (labels) => Object.entries(where).every(([key, value]) => labels[key] === value);
  for (const line of metricsText.split('\n')) {
    if (!line.startsWith(name)) continue;
    const match = /^(\w+)(?:\{(.*)\})?\s+(\S+)/.exec(line);
    if (!match) continue;
    const [, metric, labelText = '', valueText] = match;
    const labels = parseLabels(labelText);
    if (!matches(labels)) continue;
    const value = Number(valueText);
    if (metric === `${name}_bucket`) {
      const le = labels.le === '+Inf' ? Number.POSITIVE_INFINITY : Number(labels.le);
      byLe.set(le, (byLe.get(le) ?? 0) + value);
    } else if (metric === `${name}_count`) count += value;
    else if (metric === `${name}_sum`) sum += value;
  }
  const buckets = [...byLe.entries()].sort((a, b) => a[0] - b[0]).map(([le, c]) => ({ le, count: c }));
  return { buckets, count, sum };
}

/** The q-quantile (0..1) of a histogram, linear within the bucket (histogram_quantile); null when empty. */
export function histogramQuantile(hist, q) {
  const { buckets } = hist;
  const total = buckets.at(-1)?.count ?? 0;
  if (total === 0) return null;
  const rank = q * total;
  let previousLe = 0;
  let previousCount = 0;
  for (const { le, count } of buckets) {
    if (count >= rank) {
      if (le === Number.POSITIVE_INFINITY) return previousLe;
      if (count === previousCount) return le;
      return previousLe + ((le - previousLe) * (rank - previousCount)) / (count - previousCount);
    }
    previousLe = le;
    previousCount = count;
  }
  return previousLe;
}

/** The difference of two snapshots of one histogram (what happened between them). */
export function histogramDelta(after, before) {
  const beforeByLe = new Map(before.buckets.map((bucket) => [bucket.le, bucket.count]));
  return {
    buckets: after.buckets.map(({ le, count }) => ({ le, count: count - (beforeByLe.get(le) ?? 0) })),
    count: after.count - before.count,
    sum: after.sum - before.sum,
  };
}

/** Buckets as `{ "≤0.1": n, … }` (non-cumulative counts), for the report. */
export function bucketCounts(hist) {
  const out = {};
  let previous = 0;
  for (const { le, count } of hist.buckets) {
    out[le === Number.POSITIVE_INFINITY ? '>last' : `<=${le}`] = count - previous;
    previous = count;
  }
  return out;
}
