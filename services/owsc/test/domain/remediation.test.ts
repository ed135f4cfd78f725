import { describe, expect, it } from 'vitest';
import {
  adviceJson,
  adviceTable,
  adviceText,
  adviseAlerts,
  CATALOGUE_RATIONALE,
  catalogueEntry,
  httpAdviceResponse,
  REMEDIATION_CATALOGUE,
  suggestionFor,
  withHostedActions,
} from '../../src/domain/remediation.js';
import type { Permit } from '../../src/domain/types.js';

const permit: Permit = {
  limits_mgL: { SO4: 250, As: 0.01, Ni: 0.1 },
  rolling_window: 3,
  actions: {
    SO4: 'Increase lime dosing; verify gypsum precipitation; reduce discharge rate.',
    As: 'Adjust pH to 7-8; add ferric coagulant; check filter performance.',
    Ni: 'Increase ion exchange cycle; ensure resin regeneration; check chelation dosing.',
  },
  daily_max_limits_mgL: {},
  monthly_average_limits_mgL: {},
  timezone: 'UTC',
};

const noActions: Permit = { ...permit, actions: {} };

describe('remediation catalogue', () => {
  it('holds the 16 species of the spec with their priorities', () => {
    expect(Object.keys(REMEDIATION_CATALOGUE)).toEqual([
      'SO4',
      'As',
      'Ni',
      'Cu',
      'Zn',
      'Pb',
      'Cd',
      'Cr',
      'Hg',
      'CN',
      'NH4',
      'F',
      'Se',
      'Mn',
      'Fe',
      'TSS',
    ]);
    expect(catalogueEntry('As')).toEqual({
      action: 'Adjust pH to 7-8; add ferric coagulant; check filter performance',
      priority: 'HIGH',
    });
    expect(catalogueEntry('Cr')).toEqual({
      action:
        'Confirm hexavalent chromium reduction (pH 2-3 with bisulfite, ORP setpoint) before neutralisation',
      priority: 'HIGH',
    });
    expect(catalogueEntry('TSS').priority).toBe('LOW');
    expect(catalogueEntry('NH4').priority).toBe('MED');
  });

  it('falls back for unknown and missing species', () => {
    expect(catalogueEntry('Co')).toEqual({
      action: 'Review Co treatment process and verify setpoints',
      priority: 'LOW',
    });
    expect(catalogueEntry('')).toEqual({ action: 'Increase treatment intensity', priority: 'LOW' });
    expect(catalogueEntry(undefined)).toEqual({ action: 'Increase treatment intensity', priority: 'LOW' });
    // Inherited object keys are not catalogue entries.
    expect(catalogueEntry('toString').action).toBe('Review toString treatment process and verify setpoints');
  });

  it('prefers the permit action without its trailing period', () => {
    const custom: Permit = { ...permit, actions: { Cu: 'Call the shift chemist.', Zn: '   ' } };
    expect(suggestionFor({ species: 'Cu' }, custom)).toBe('Call the shift chemist');
    expect(suggestionFor({ species: 'Zn' }, custom)).toBe(REMEDIATION_CATALOGUE.Zn?.action);
    expect(suggestionFor({ species: 'SO4' }, permit)).toBe(
      'Increase lime dosing; verify gypsum precipitation; reduce discharge rate',
    );
    expect(suggestionFor({}, permit)).toBe('Increase treatment intensity');
  });
});

describe('POST /api/advise body', () => {
  it('renders the spec examples line for line', () => {
    const advice = adviseAlerts(
      [{ species: 'SO4', level: 'critical' }, { species: 'Co' }, {}, { species: 'As', level: 'warning' }],
      permit,
    );
    const body = httpAdviceResponse(advice, 'catalogue', CATALOGUE_RATIONALE);
    expect(body.actions).toEqual([
      '[CRITICAL] SO4: Increase lime dosing; verify gypsum precipitation; reduce discharge rate',
      '[INFO] Co: Review Co treatment process and verify setpoints',
      '[INFO] : Increase treatment intensity',
      '[WARNING] As: Adjust pH to 7-8; add ferric coagulant; check filter performance',
    ]);
    expect(body.recommendations).toEqual([
      { species: 'SO4', action: body.actions[0] },
      { species: 'Co', action: body.actions[1] },
      { species: '', action: body.actions[2] },
      { species: 'As', action: body.actions[3] },
    ]);
    expect(body).toMatchObject({ alert_count: 4, provider: 'catalogue', rationale: CATALOGUE_RATIONALE });
  });

  it('orders by_species by highest level, then species (acceptance case 27)', () => {
    const advice = adviseAlerts(
      [
        { species: 'Ni', level: 'watch' },
        { species: 'Cu', level: 'info' },
        { species: 'As', level: 'watch' },
        { species: 'Ni', level: 'critical' },
        { species: 'Cu', level: 'warning' },
        { species: 'Zn' },
      ],
      permit,
    );
    expect(advice.by_species).toEqual([
      {
        species: 'Ni',
        alert_count: 2,
        highest_level: 'critical',
        priority: 'MED',
        action: 'Increase ion exchange cycle; ensure resin regeneration; check chelation dosing',
      },
      {
        species: 'Cu',
        alert_count: 2,
        highest_level: 'warning',
        priority: 'MED',
        action: REMEDIATION_CATALOGUE.Cu?.action,
      },
      {
        species: 'As',
        alert_count: 1,
        highest_level: 'watch',
        priority: 'HIGH',
        action: 'Adjust pH to 7-8; add ferric coagulant; check filter performance',
      },
      {
        species: 'Zn',
        alert_count: 1,
        highest_level: 'info',
        priority: 'MED',
        action: REMEDIATION_CATALOGUE.Zn?.action,
      },
    ]);
  });

  it('reads levels case-insensitively and treats unknown levels as info', () => {
    const advice = adviseAlerts(
      [
        { species: 'As', level: 'CRITICAL' },
        { species: 'As', level: 'severe' },
        { species: 'As', level: 3 },
      ],
      noActions,
    );
    expect(advice.levels).toEqual(['critical', 'info', 'info']);
    expect(httpAdviceResponse(advice, 'catalogue', '').actions[1]).toMatch(/^\[INFO\] As: /);
  });

  it('takes hosted actions per alert and keeps the catalogue for the rest', () => {
    const advice = withHostedActions(adviseAlerts([{ species: 'SO4' }, { species: 'As' }], permit), [
      'Dose more lime now',
    ]);
    const body = httpAdviceResponse(advice, 'openai', 'because');
    expect(body.actions).toEqual([
      '[INFO] SO4: Dose more lime now',
      '[INFO] As: Adjust pH to 7-8; add ferric coagulant; check filter performance',
    ]);
    expect(body.provider).toBe('openai');
  });
});

describe('advise CLI formats', () => {
  const alerts = [
    { species: 'SO4', level: 'warning' },
    { species: 'Hg', level: 'critical' },
  ];

  it('text: exact lines', () => {
    expect(adviceText(adviseAlerts(alerts, permit), 'North <Plant>').split('\n')).toEqual([
      'REMEDIATION RECOMMENDATIONS FOR NORTH <PLANT>',
      '='.repeat(50),
      'Alerts processed: 2',
      'Recommendations: 2',
      '',
      '1. SO4: Increase lime dosing; verify gypsum precipitation; reduce discharge rate',
      '2. Hg: Dose a sulfide or organosulfide precipitant; check the activated-carbon polisher; isolate the source stream',
    ]);
    expect(adviceText(adviseAlerts(alerts, permit), undefined).split('\n')[0]).toBe(
      'REMEDIATION RECOMMENDATIONS',
    );
  });

  it('json: suggestions without level prefix, site default Unknown', () => {
    const body = adviceJson(adviseAlerts(alerts, permit), undefined);
    expect(body).toEqual({
      site: 'Unknown',
      alert_count: 2,
      actions: [
        'Increase lime dosing; verify gypsum precipitation; reduce discharge rate',
        REMEDIATION_CATALOGUE.Hg?.action,
      ],
      detailed_recommendations: [
        {
          species: 'SO4',
          suggestion: 'Increase lime dosing; verify gypsum precipitation; reduce discharge rate',
        },
        { species: 'Hg', suggestion: REMEDIATION_CATALOGUE.Hg?.action },
      ],
      by_species: adviseAlerts(alerts, permit).by_species,
    });
    expect(JSON.parse(JSON.stringify(adviceJson(adviseAlerts([], permit), 'Site A')))).toEqual({
      site: 'Site A',
      alert_count: 0,
      actions: [],
      detailed_recommendations: [],
      by_species: [],
    });
  });

  it('table: aligned species/action/priority rows, then totals', () => {
    const lines = adviceTable(adviseAlerts([...alerts, {}], permit)).split('\n');
    const actionColumn = 'SPECIES  '.length;
    expect(lines[0]).toMatch(/^SPECIES {2}ACTION {2,}PRIORITY$/);
    expect(lines[2]).toBe(`Hg${' '.repeat(actionColumn - 2)}${REMEDIATION_CATALOGUE.Hg?.action}  HIGH`);
    expect(lines[3]?.startsWith(`SO4${' '.repeat(actionColumn - 3)}Increase lime dosing`)).toBe(true);
    expect(lines[3]?.endsWith('  MED')).toBe(true);
    expect(lines[4]?.startsWith(`-${' '.repeat(actionColumn - 1)}Increase treatment intensity`)).toBe(true);
    const priorityColumn = lines[0]?.indexOf('PRIORITY');
    for (const row of lines.slice(2, 5)) expect(row.lastIndexOf('  ') + 2).toBe(priorityColumn);
    expect(lines.at(-1)).toBe('Total: 3 alerts, 3 species');
  });

  it('says there is nothing to do when there are no alerts', () => {
    const advice = adviseAlerts([], permit);
    expect(adviceText(advice, 'Site')).toBe('No alerts detected - no remediation required');
    expect(adviceTable(advice)).toBe('No alerts detected - no remediation required');
  });
});
