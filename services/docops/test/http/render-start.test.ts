// Render processes start from the startup snapshot built at install time (render-start.ts), and fall back to
// the plain entry when the snapshot does not match the code.
import { readFileSync } from 'node:fs';
import { unzipSync } from 'fflate';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildDocx } from '../../src/domain/docx/build.js';
import { loadSkillRegistry } from '../../src/domain/skills.js';
import { WARM_UP_ENV } from '../../src/render-job.js';
import { buildRenderSnapshot, RENDER_SNAPSHOT_BLOB, renderProcessLaunch } from '../../src/render-start.js';
import { descendantPids } from '../helpers/contract.js';
import { readZip, runForm } from '../helpers/http.js';
import { type DocopsProcess, startDocops } from '../helpers/server.js';

const skills = loadSkillRegistry();
let server: DocopsProcess;

beforeAll(async () => {
  // `npm ci` / `npm run build` build it; after a source change only `tsc -b` may have run since.
  if (!renderProcessLaunch(skills, 'spawn').snapshot) await buildRenderSnapshot(skills);
  server = await startDocops({ DOCOPS_MP_START: 'spawn', DOCOPS_MAX_CONCURRENCY: '2' });
}, 60_000);

afterAll(async () => {
  await server?.stop();
});

describe('render process start', () => {
  it('uses the snapshot built for this code and this Node binary, without warm-up material', () => {
    const launch = renderProcessLaunch(skills, 'spawn');
    expect(launch.snapshot).toBe(true);
    expect(launch.execArgv).toEqual(['--snapshot-blob', RENDER_SNAPSHOT_BLOB]);
    expect(launch.env[WARM_UP_ENV]).toBeUndefined();
    expect(
      Object.keys(launch.env).every((name) => ['PATH', 'LANG', 'LC_ALL', 'TZ', 'HOME'].includes(name)),
    ).toBe(true);
  });

  it('a spawn-mode server renders with processes started from the snapshot', async () => {
    const commandLines = descendantPids(server.child.pid as number).map((pid) =>
      readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0'),
    );
    expect(commandLines.length).toBeGreaterThan(0);
    for (const argv of commandLines) expect(argv).toContain('--snapshot-blob');

    const template = buildDocx({ paragraphs: ['Title: 【MEETING_TITLE】', 'Attendees: 【ATTENDEES】'] });
    const task = {
      task_type: 'meeting_notice',
      payload: { meeting_title: 'Snapshot', attendees: ['A', 'B'] },
    };
    for (let round = 0; round < 3; round++) {
      const response = await fetch(`${server.baseUrl}/v1/run`, {
        method: 'POST',
        body: runForm({ template, task }),
      });
      expect(response.status).toBe(200);
      expect(response.headers.get('x-docops-exit-code')).toBe('0');
      const zip = await readZip(response);
      expect(zip.names).toContain('out.docx');
      // The filled document: the placeholder's value is in its body XML.
      const document = unzipSync(zip.files['out.docx'] as Uint8Array)['word/document.xml'] as Uint8Array;
      expect(new TextDecoder().decode(document)).toContain('Snapshot');
    }
  });
});
