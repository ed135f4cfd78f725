// `openworld-chem simulate-stream` through the compiled bin (spec §3.6, §4 items 14 and 27; acceptance cases 17
// and 18): JSON Lines to a file or stdout, and publishing to a running dashboard without drops.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { createLogger } from '@quintet/kernel/log';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { WebSocket } from 'ws';
import { loadConfig } from '../../src/config.js';
import { type RunningDashboard, startDashboard } from '../../src/server.js';
import { finished, humanStderr, ledgerRecords, type Workspace, workspace } from './cli-harness.js';

let ws: Workspace;
beforeAll(() => {
  ws = workspace();
});
afterAll(() => ws.cleanup());

describe('simulate-stream to files and stdout', () => {
  it('writes one JSON line per reading in time order; wide input becomes tidy records (case 17)', () => {
    const tidy = ws.input(
      'tidy.csv',
      'time,species,concentration\n3,SO4,230\n1,As,<0.005\n1,SO4,200\n2,Ni,0.05\n',
    );
    const out = join(ws.state, 'replay', 'tidy.jsonl');
    const result = ws.run(['-q', 'simulate-stream', '-s', tidy, '--out', out]);
    expect(result.status).toBe(0);
    expect(result.stdout).toBe('');
    expect(readFileSync(out, 'utf8')).toBe(
      [
        '{"time":1,"species":"As","concentration":0.005}',
        '{"time":1,"species":"SO4","concentration":200}',
        '{"time":2,"species":"Ni","concentration":0.05}',
        '{"time":3,"species":"SO4","concentration":230}',
        '',
      ].join('\n'),
    );
    expect(ledgerRecords(ws.provenanceLedger).at(-1)).toMatchObject({
      step: 'simulate_stream',
      outputs: [out],
    });

    const wide = ws.input(
      'wide.csv',
      'time,SO4_mgL,As_mgL\n2024-01-01T01:00:00Z,240,\n2024-01-01T00:00:00Z,210,0.02\n',
    );
    const printed = ws.run(['-q', 'simulate-stream', '-s', wide, '-d', '0']);
    expect(printed.status).toBe(0);
    expect(
      printed.stdout
        .trim()
        .split('\n')
        .map((line) => JSON.parse(line)),
    ).toEqual([
      { time: '2024-01-01T00:00:00Z', species: 'SO4', concentration: 210 },
      { time: '2024-01-01T00:00:00Z', species: 'As', concentration: 0.02 },
      { time: '2024-01-01T01:00:00Z', species: 'SO4', concentration: 240 },
    ]);
  });

  it('exits 4 on a bad CSV and 5 when the WebSocket is unreachable', () => {
    const bad = ws.run(['-q', 'simulate-stream', '-s', ws.input('bad.csv', 'time,species\n1,SO4\n')]);
    expect(bad.status).toBe(4);
    const csv = ws.input('one.csv', 'time,species,concentration\n1,SO4,1\n');
    const refused = ws.run([
      '-q',
      'simulate-stream',
      '-s',
      csv,
      '--publish-ws',
      'ws://127.0.0.1:9/ws/effluent',
    ]);
    expect(refused.status).toBe(5);
    expect(refused.stderr).toMatch(
      /^error: cannot connect to ws:\/\/127\.0\.0\.1:9\/ws\/effluent: .*ECONNREFUSED/,
    );
  });
});

describe('simulate-stream --publish-ws to a running dashboard', () => {
  const token = 'stream-test-token';
  let dashboard: RunningDashboard;

  beforeAll(async () => {
    const config = loadConfig({
      ...ws.env,
      OW_SC_DATA_DIR: join(ws.state, 'server-data'),
      OW_SC_WS_MSGS_PER_SEC: '20',
      OW_SC_API_TOKEN: token,
      OW_SC_JOB_WORKERS: '1',
      OW_SC_SHUTDOWN_TIMEOUT_S: '1',
      PORT: '0',
    });
    dashboard = await startDashboard(config, {
      logger: createLogger({ name: 'owsc', level: 'silent' }),
      workers: 1,
      signals: false,
    });
  }, 30_000);
  afterAll(async () => {
    await dashboard?.close();
  });

  it('delivers all 60 records, in time order, to a listening client at the default pacing (case 18)', async () => {
    // File order is reverse time order: the replay must sort.
    const rows = Array.from({ length: 60 }, (_, index) => `${59 - index},SO4,${100 + (59 - index)}`);
    const csv = ws.input('sixty.csv', `time,species,concentration\n${rows.join('\n')}\n`);
    const wsUrl = `${dashboard.url.replace('http', 'ws')}/ws/effluent`;
    const listener = new WebSocket(wsUrl, { headers: { Authorization: `Bearer ${token}` } });
    const received: Record<string, unknown>[] = [];
    listener.on('message', (data) => received.push(JSON.parse(String(data)) as Record<string, unknown>));
    await new Promise((resolve, reject) => {
      listener.once('open', resolve);
      listener.once('error', reject);
    });

    const started = Date.now();
    const publisher = ws.spawn(['simulate-stream', '-s', csv, '-d', '0', '--publish-ws', wsUrl], {
      env: { OW_SC_WS_MSGS_PER_SEC: '20', OW_SC_API_TOKEN: token },
    });
    const result = await finished(publisher);
    const elapsed = Date.now() - started;
    expect(result.status, result.stderr).toBe(0);
    expect(humanStderr(result.stderr)).toContain('published 60 record(s)');
    expect(result.stderr).not.toContain(token);
    // 0.9 × 20 = 18 messages/s: 59 gaps of 1/18 s.
    expect(elapsed).toBeGreaterThan(3000);

    const deadline = Date.now() + 2000;
    while (received.length < 60 && Date.now() < deadline)
      await new Promise((resolve) => setTimeout(resolve, 20));
    listener.close();
    expect(received).toHaveLength(60);
    expect(received.map((message) => message.time)).toEqual(Array.from({ length: 60 }, (_, index) => index));
    expect(
      received.every((message) => message.species === 'SO4' && typeof message.timestamp === 'number'),
    ).toBe(true);
    expect(received.some((message) => message.type === 'error')).toBe(false);
  }, 20_000);

  it('exits 5 naming the close code when the server refuses the token with 1008', async () => {
    const csv = ws.input('two.csv', 'time,species,concentration\n1,SO4,1\n2,SO4,2\n');
    const wsUrl = `${dashboard.url.replace('http', 'ws')}/ws/effluent`;
    const result = await finished(
      ws.spawn([
        '-q',
        'simulate-stream',
        '-s',
        csv,
        '-d',
        '0',
        '--publish-ws',
        wsUrl,
        '--token',
        'wrong-token',
      ]),
    );
    expect(result.status).toBe(5);
    expect(result.stderr).toMatch(/^error: WebSocket closed by the server: 1008 Unauthorized\n$/);
    expect(result.stderr).not.toContain('wrong-token');
  });
});
