import { describe, expect, it } from 'vitest';
import { paragraphXml, runXml, tableXml } from '../../../src/domain/docx/build.js';
import { inspectTemplate } from '../../../src/domain/docx/inspect.js';
import { openBuilt } from './fixtures/helpers.js';

const p = (...runs: string[]): string => `<w:p>${runs.join('')}</w:p>`;
const r = (text: string, rPr?: string): string => runXml(text, rPr);

const meetingSkill = {
  name: 'meeting_notice',
  fields: [
    { key: 'meeting_title', placeholder: 'MEETING_TITLE', required: true },
    { key: 'meeting_date', placeholder: 'MEETING_DATE', required: true },
    { key: 'meeting_time', placeholder: 'MEETING_TIME', required: true },
    { key: 'attendees', placeholder: 'ATTENDEES', required: false },
  ],
};

describe('inspectTemplate', () => {
  it('lists placeholders by first occurrence with every occurrence, and unsupported tokens', async () => {
    const pkg = await openBuilt({
      body:
        paragraphXml('Date: 【MEETING_DATE】') +
        p(r('【MEETING_'), r('TITLE】')) +
        paragraphXml('again 【MEETING_DATE】 【bad】') +
        tableXml([['【EXTRA】']]),
      headers: { header1: paragraphXml('【MEETING_TITLE】 Hello】') },
    });
    const result = inspectTemplate(pkg, null);
    expect(result.placeholders).toEqual([
      {
        field_name: 'MEETING_DATE',
        occurrences: [
          { paragraph_path: 'p0', run_id: 'p0:r0', merged_runs: null },
          { paragraph_path: 'p2', run_id: 'p2:r0', merged_runs: null },
        ],
      },
      {
        field_name: 'MEETING_TITLE',
        occurrences: [
          { paragraph_path: 'p1', run_id: 'p1:r0', merged_runs: ['p1:r0', 'p1:r1'] },
          { paragraph_path: 'header1.p0', run_id: 'header1.p0:r0', merged_runs: null },
        ],
      },
      {
        field_name: 'EXTRA',
        occurrences: [{ paragraph_path: 't0.r0.c0.p0', run_id: 't0.r0.c0.p0:r0', merged_runs: null }],
      },
    ]);
    expect(result.unsupported).toEqual([
      { kind: 'invalid_format', text: '【bad】', run_id: 'p2:r0', paragraph_path: 'p2', start: 21, end: 26 },
      {
        kind: 'stray_close',
        text: '】',
        run_id: 'header1.p0:r0',
        paragraph_path: 'header1.p0',
        start: 21,
        end: 22,
      },
    ]);
    expect(result.fingerprint).toMatch(/^[0-9a-f]{64}$/);
    expect(result.skill).toBeNull();
  });

  it('compares the template with a skill, in placeholder names', async () => {
    const pkg = await openBuilt({
      body:
        paragraphXml('【MEETING_TITLE】 【ATTENDEES】 【ROOM】') + p(r('【MEETING_'), r('DATE】', '<w:b/>')),
    });
    expect(inspectTemplate(pkg, meetingSkill).skill).toEqual({
      name: 'meeting_notice',
      // a placeholder split over differently formatted runs is in the template (and listed as unsupported)
      known_fields: ['ATTENDEES', 'MEETING_DATE', 'MEETING_TITLE'],
      unknown_placeholders: ['ROOM'],
      required_fields_absent_from_template: ['MEETING_TIME'],
    });
  });
});

describe('template fingerprint', () => {
  const fingerprint = async (body: string, extra: Parameters<typeof openBuilt>[0] = {}): Promise<string> =>
    inspectTemplate(await openBuilt({ ...extra, body }), null).fingerprint;

  it('does not depend on how the text is split into runs', async () => {
    const whole = await fingerprint(
      paragraphXml('Title: 【MEETING_TITLE】 on 【MEETING_DATE】') + tableXml([['cell 【A】']]),
    );
    const split = await fingerprint(
      p(
        '<w:r w:rsidR="001"><w:t>Title: 【MEE</w:t></w:r>',
        '<w:proofErr w:type="spellStart"/>',
        '<w:r w:rsidR="002"><w:rPr><w:lang w:val="en-GB"/></w:rPr><w:t>TING_TITLE】 o</w:t></w:r>',
        r('n 【MEETING_DATE】'),
      ) + tableXml([['cell 【A】']]),
    );
    const crossRun = await fingerprint(
      p(r('Title: 【MEETING_'), r('TITLE】 on 【MEETING_DATE】', '<w:b/>')) + tableXml([['cell 【A】']]),
    );
    expect(split).toBe(whole);
    expect(crossRun).toBe(whole);
  });

  it('changes with the text, a placeholder or the structure', async () => {
    const base = await fingerprint(paragraphXml('Title: 【MEETING_TITLE】'));
    expect(await fingerprint(paragraphXml('Title: 【MEETING_TITLE】'))).toBe(base);
    expect(await fingerprint(paragraphXml('Title:  【MEETING_TITLE】'))).not.toBe(base);
    expect(await fingerprint(paragraphXml('Title: 【MEETING_DATE】'))).not.toBe(base);
    expect(await fingerprint(tableXml([['Title: 【MEETING_TITLE】']]))).not.toBe(base);
    expect(
      await fingerprint(paragraphXml('Title: 【MEETING_TITLE】'), {
        headers: { header1: paragraphXml('h') },
      }),
    ).not.toBe(base);
  });
});
