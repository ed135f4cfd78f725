// Remediation advice (spec §3.5 `POST /api/advise`, §3.6 `advise` and the remediation catalogue): one catalogue
// and one suggestion rule for the CLI and HTTP — the permit's action for the species first (trailing period
// removed), else the catalogue entry.
import { ALERT_LEVELS, type Alert, type AlertLevel, type Permit } from './types.js';

export type Priority = 'HIGH' | 'MED' | 'LOW';

export interface CatalogueEntry {
  action: string;
  priority: Priority;
}

/** Alerts as callers hold them: typed alerts, or JSON objects read from a file or a request body. */
export type AlertInput = Alert | Readonly<Record<string, unknown>>;

export const REMEDIATION_CATALOGUE: Readonly<Record<string, CatalogueEntry>> = Object.freeze({
  SO4: {
    action: 'Increase lime dosing; verify gypsum precipitation; reduce discharge rate',
    priority: 'MED',
  },
  As: { action: 'Adjust pH to 7-8; add ferric coagulant; check filter performance', priority: 'HIGH' },
  Ni: {
    action: 'Increase ion exchange cycle; ensure resin regeneration; check chelation dosing',
    priority: 'MED',
  },
  Cu: {
    action:
      'Raise pH to 9-10 for hydroxide precipitation; check sulfide or chelant dose; verify clarifier solids capture',
    priority: 'MED',
  },
  Zn: {
    action:
      'Raise pH to 9-9.5 for hydroxide precipitation; add polymer to improve settling; inspect the sludge blanket',
    priority: 'MED',
  },
  Pb: {
    action:
      'Hold pH 9-10 for precipitation; add ferric coagulant for co-precipitation; check filters for breakthrough',
    priority: 'HIGH',
  },
  Cd: {
    action: 'Increase sulfide precipitant dose; hold pH near 9; check filter integrity',
    priority: 'HIGH',
  },
  Cr: {
    action:
      'Confirm hexavalent chromium reduction (pH 2-3 with bisulfite, ORP setpoint) before neutralisation',
    priority: 'HIGH',
  },
  Hg: {
    action:
      'Dose a sulfide or organosulfide precipitant; check the activated-carbon polisher; isolate the source stream',
    priority: 'HIGH',
  },
  CN: {
    action: 'Check alkaline chlorination: pH above 10 and first-stage ORP setpoint; extend retention time',
    priority: 'HIGH',
  },
  NH4: {
    action: 'Check nitrification: dissolved oxygen, alkalinity and temperature; reduce the ammonia load',
    priority: 'MED',
  },
  F: { action: 'Increase calcium dose for fluorite precipitation; add alum polishing', priority: 'MED' },
  Se: {
    action: 'Check ferric co-precipitation dose; consider biological or ion-exchange polishing',
    priority: 'HIGH',
  },
  Mn: {
    action: 'Raise pH or dose permanganate to precipitate manganese; check filter media',
    priority: 'LOW',
  },
  Fe: {
    action: 'Aerate or dose oxidant and raise pH to precipitate iron; check the clarifier',
    priority: 'LOW',
  },
  TSS: {
    action: 'Check coagulant and polymer dose; inspect clarifier and filters for carry-over',
    priority: 'LOW',
  },
});

/** The rationale reported with `provider: "catalogue"`. */
export const CATALOGUE_RATIONALE =
  "Actions come from the permit's actions for each species, else from the built-in remediation catalogue.";

export const NO_ALERTS_MESSAGE = 'No alerts detected - no remediation required';

/** The catalogue entry of a species: unknown species get a generic review, a missing species a generic step. */
export function catalogueEntry(species: string | undefined): CatalogueEntry {
  if (species === undefined || species === '')
    return { action: 'Increase treatment intensity', priority: 'LOW' };
  if (Object.hasOwn(REMEDIATION_CATALOGUE, species)) return REMEDIATION_CATALOGUE[species] as CatalogueEntry;
  return { action: `Review ${species} treatment process and verify setpoints`, priority: 'LOW' };
}

/** The alert's species when it is a string, else '' (absent). */
export function alertSpecies(alert: AlertInput): string {
  const species = (alert as Record<string, unknown>).species;
  return typeof species === 'string' ? species : '';
}

/**
 * The alert's level: a known level (case-insensitive), default `info`. An unknown level string is treated as
 * `info` so that every alert has a place in the level ordering.
 */
export function alertLevel(alert: AlertInput): AlertLevel {
  const level = (alert as Record<string, unknown>).level;
  if (typeof level !== 'string') return 'info';
  const lower = level.toLowerCase();
  return (ALERT_LEVELS as readonly string[]).includes(lower) ? (lower as AlertLevel) : 'info';
}

function levelIndex(level: AlertLevel): number {
  return ALERT_LEVELS.indexOf(level);
}

function withoutTrailingPeriod(text: string): string {
  return text.trimEnd().replace(/\.+$/, '');
}

/** The action for one species: the permit's action (trailing period removed), else the catalogue's. */
export function speciesSuggestion(species: string, permit: Permit): string {
  const permitted =
    species !== '' && Object.hasOwn(permit.actions, species) ? permit.actions[species] : undefined;
  if (typeof permitted === 'string') {
    const text = withoutTrailingPeriod(permitted);
    if (text.trim() !== '') return text;
  }
  return catalogueEntry(species).action;
}

export function suggestionFor(alert: AlertInput, permit: Permit): string {
  return speciesSuggestion(alertSpecies(alert), permit);
}

export interface SpeciesAdvice {
  species: string;
  alert_count: number;
  highest_level: AlertLevel;
  priority: Priority;
  action: string;
}

export interface Advice {
  alert_count: number;
  /** one action text per alert, in input order */
  suggestions: string[];
  levels: AlertLevel[];
  /** each alert's species ('' when absent) */
  species: string[];
  /** ordered by highest level (critical first), then species */
  by_species: SpeciesAdvice[];
}

export function adviseAlerts(alerts: readonly AlertInput[], permit: Permit): Advice {
  const suggestions: string[] = [];
  const levels: AlertLevel[] = [];
  const species: string[] = [];
  const groups = new Map<string, SpeciesAdvice>();
  for (const alert of alerts) {
    const name = alertSpecies(alert);
    const level = alertLevel(alert);
    const suggestion = speciesSuggestion(name, permit);
    suggestions.push(suggestion);
    levels.push(level);
    species.push(name);
    const group = groups.get(name);
    if (group) {
      group.alert_count += 1;
      if (levelIndex(level) > levelIndex(group.highest_level)) group.highest_level = level;
    } else {
      groups.set(name, {
        species: name,
        alert_count: 1,
        highest_level: level,
        priority: catalogueEntry(name).priority,
        action: suggestion,
      });
    }
  }
  const bySpecies = [...groups.values()].sort(
    (a, b) =>
      levelIndex(b.highest_level) - levelIndex(a.highest_level) ||
      (a.species < b.species ? -1 : a.species > b.species ? 1 : 0),
  );
  return { alert_count: alerts.length, suggestions, levels, species, by_species: bySpecies };
}

/**
 * Replaces the per-alert suggestions with a hosted provider's actions (one per alert sent; alerts beyond
 * the ones sent keep the catalogue's). The per-species summary keeps the permit/catalogue actions.
 */
export function withHostedActions(advice: Advice, actions: readonly string[]): Advice {
  const suggestions = advice.suggestions.map((suggestion, index) => actions[index] ?? suggestion);
  return { ...advice, suggestions };
}

export type AdviceProviderName = 'catalogue' | 'openai';

export interface HttpAdviceBody {
  alert_count: number;
  actions: string[];
  recommendations: { species: string; action: string }[];
  by_species: SpeciesAdvice[];
  provider: AdviceProviderName;
  rationale: string;
}

function adviceLine(advice: Advice, index: number): string {
  const level = (advice.levels[index] ?? 'info').toUpperCase();
  return `[${level}] ${advice.species[index] ?? ''}: ${advice.suggestions[index] ?? ''}`;
}

/** The `POST /api/advise` response body (spec §3.5). */
export function httpAdviceResponse(
  advice: Advice,
  provider: AdviceProviderName,
  rationale: string,
): HttpAdviceBody {
  const actions = advice.suggestions.map((_, index) => adviceLine(advice, index));
  return {
    alert_count: advice.alert_count,
    actions,
    recommendations: actions.map((line, index) => ({ species: advice.species[index] ?? '', action: line })),
    by_species: advice.by_species,
    provider,
    rationale,
  };
}

export interface AdviceJsonBody {
  site: string;
  alert_count: number;
  actions: string[];
  detailed_recommendations: { species: string; suggestion: string }[];
  by_species: SpeciesAdvice[];
}

/** The `advise --format json` body (spec §3.6). */
export function adviceJson(advice: Advice, site: string | undefined): AdviceJsonBody {
  return {
    site: site === undefined || site === '' ? 'Unknown' : site,
    alert_count: advice.alert_count,
    actions: [...advice.suggestions],
    detailed_recommendations: advice.suggestions.map((suggestion, index) => ({
      species: advice.species[index] ?? '',
      suggestion,
    })),
    by_species: advice.by_species,
  };
}

/** The `advise --format text` output, lines joined by `\n` without a final newline. */
export function adviceText(advice: Advice, site: string | undefined): string {
  if (advice.alert_count === 0) return NO_ALERTS_MESSAGE;
  const title =
    site === undefined || site === ''
      ? 'REMEDIATION RECOMMENDATIONS'
      : `REMEDIATION RECOMMENDATIONS FOR ${site.toUpperCase()}`;
  return [
    title,
    '='.repeat(50),
    `Alerts processed: ${advice.alert_count}`,
    `Recommendations: ${advice.suggestions.length}`,
    '',
    ...advice.suggestions.map(
      (suggestion, index) => `${index + 1}. ${advice.species[index] ?? ''}: ${suggestion}`,
    ),
  ].join('\n');
}

/**
 * The `advise --format table` output: one row per species (in `by_species` order) with aligned columns
 * SPECIES, ACTION, PRIORITY, then a totals line; no final newline. A missing species shows as `-`.
 */
export function adviceTable(advice: Advice): string {
  if (advice.alert_count === 0) return NO_ALERTS_MESSAGE;
  const rows = advice.by_species.map((entry) => [
    entry.species === '' ? '-' : entry.species,
    entry.action,
    entry.priority,
  ]);
  const header = ['SPECIES', 'ACTION', 'PRIORITY'];
  const widths = header.map((title, column) =>
    Math.max(title.length, ...rows.map((row) => (row[column] ?? '').length)),
  );
  const format = (cells: readonly string[]): string =>
    cells
      .map((cell, column) => (column === cells.length - 1 ? cell : cell.padEnd(widths[column] ?? 0)))
      .join('  ');
  const alerts = advice.alert_count === 1 ? '1 alert' : `${advice.alert_count} alerts`;
  const species = advice.by_species.length === 1 ? '1 species' : `${advice.by_species.length} species`;
  return [
    format(header),
    format(widths.map((width) => '-'.repeat(width))),
    ...rows.map(format),
    '',
    `Total: ${alerts}, ${species}`,
  ].join('\n');
}
