// End-to-end flows against the real `raven-zero serve` process (§8 cases 4, 10, 12, 28, 33): every assertion is
// on what a client sees (HTTP answers, CLI output) or on the storage directory.
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BIN, PDF, type RunningRaven, startRaven, upload } from '../http/harness.js';

interface Created {
  key: string;
  expiry: string;
  uses: number;
  size: number;
  sha256: string;
  download_url: string;
  created_at: string;
}

interface Status {
  key: string;
  status: string;
  remaining_uses: number;
  expires_at: string | null;
  is_accessible: boolean;
  uses_total?: number;
  previewed?: boolean;
  password_required?: boolean;
  seconds_left?: number;
}

async function create(
  raven: RunningRaven,
  fields: Record<string, string> = {},
  data: Buffer = PDF,
): Promise<Created> {
  const response = await upload(raven.url, [
    { name: 'file', filename: 'doc.pdf', contentType: 'application/pdf', data },
    ...Object.entries(fields).map(([name, value]) => ({ name, value })),
  ]);
  expect(response.status).toBe(201);
  return (await response.json()) as Created;
}

async function status(raven: RunningRaven, key: string): Promise<Status> {
  const response = await fetch(`${raven.url}/status/${key}`);
  expect(response.status).toBe(200);
  return (await response.json()) as Status;
}

async function download(
  raven: RunningRaven,
  key: string,
  headers: Record<string, string> = {},
): Promise<{ status: number; body: Buffer; json?: unknown }> {
  const response = await fetch(`${raven.url}/download/${key}`, { headers });
  const body = Buffer.from(await response.arrayBuffer());
  if (response.status !== 200)
    return { status: response.status, body, json: JSON.parse(body.toString('utf8')) };
  return { status: response.status, body };
}

/** A PDF-looking payload large enough to span several blob chunks. */
function pdfPayload(size: number): Buffer {
  const content = randomBytes(size);
  PDF.copy(content, 0, 0, 8);
  return content;
}

describe('download, preview and status flows', () => {
  let raven: RunningRaven;
  beforeAll(async () => {
    raven = await startRaven();
  });
  afterAll(async () => {
    expect(await raven.stop()).toBe(0);
  });

  it('removes the blob within 2 s of the last download and reports burned (case 4)', async () => {
    const content = pdfPayload(200_000);
    const created = await create(raven, { uses: '2' }, content);
    const before = raven.storedFiles();
    expect(before).toHaveLength(1);
    const blob = before[0] as string;

    const first = await download(raven, created.key);
    expect(first.status).toBe(200);
    expect(first.body.equals(content)).toBe(true);
    expect(raven.storedFiles()).toContain(blob);

    const last = await download(raven, created.key);
    expect(last.status).toBe(200);
    expect(last.body.equals(content)).toBe(true);
    const doneAt = Date.now();
    while (raven.storedFiles().includes(blob) && Date.now() - doneAt < 2000) {
      await new Promise((r) => setTimeout(r, 25));
    }
    expect(raven.storedFiles()).not.toContain(blob);

    const after = await status(raven, created.key);
    expect(after.status).toBe('burned');
    expect(after.remaining_uses).toBe(0);
    expect(after.is_accessible).toBe(false);
    const again = await download(raven, created.key);
    expect(again.status).toBe(410);
    expect(again.json).toEqual({ detail: 'Download limit has been reached' });
  });

  it('previews once with the remaining uses, then 404s; the download still works (case 10)', async () => {
    const created = await create(raven, { uses: '3', expiry: '10' });
    expect((await download(raven, created.key)).status).toBe(200);

    const response = await fetch(`${raven.url}/preview/${created.key}`);
    expect(response.status).toBe(200);
    const preview = (await response.json()) as Record<string, unknown>;
    expect(preview.key).toBe(created.key);
    expect(preview.uses).toBe(2);
    expect(preview.uses_total).toBe(3);
    expect(preview.mime_type).toBe('application/pdf');
    expect(preview.filename).toBe('doc.pdf');
    expect(preview.size).toBe(PDF.length);
    expect(preview.sha256).toBe(created.sha256);
    expect(preview.expiry).toBe(created.expiry);
    expect(preview.download_url).toBe(created.download_url);
    expect(preview.curl_example).toBe(`curl -OJ ${created.download_url}`);
    expect(preview.password_protected).toBe(false);
    const secondsLeft = preview.seconds_left as number;
    expect(Number.isInteger(secondsLeft)).toBe(true);
    expect(secondsLeft).toBeGreaterThan(540);
    expect(secondsLeft).toBeLessThanOrEqual(600);
    expect(preview.minutes_left).toBe(Math.floor(secondsLeft / 60));

    const second = await fetch(`${raven.url}/preview/${created.key}`);
    expect(second.status).toBe(404);
    expect(await second.json()).toEqual({
      detail: 'This file preview has already been accessed and is no longer available for security reasons.',
    });

    const after = await download(raven, created.key);
    expect(after.status).toBe(200);
    expect(after.body.equals(PDF)).toBe(true);
    const state = await status(raven, created.key);
    expect(state.previewed).toBe(true);
    expect(state.remaining_uses).toBe(1);
    expect(state.status).toBe('active');
  });

  it('reports an active upload and the not-found shape for an unknown key (case 12)', async () => {
    const created = await create(raven, { uses: '3', expiry: '10' });
    const state = await status(raven, created.key);
    expect(state).toMatchObject({
      key: created.key,
      status: 'active',
      remaining_uses: 3,
      expires_at: created.expiry,
      is_accessible: true,
      uses_total: 3,
      previewed: false,
      password_required: false,
    });
    expect(state.seconds_left).toBeGreaterThan(540);
    expect(state.seconds_left).toBeLessThanOrEqual(600);
    // status never consumes anything
    expect((await status(raven, created.key)).remaining_uses).toBe(3);

    const unknown = await fetch(`${raven.url}/status/abacus-abdomen-abide`);
    expect(unknown.status).toBe(200);
    expect(await unknown.json()).toEqual({
      key: 'abacus-abdomen-abide',
      status: 'expired_or_burned',
      remaining_uses: 0,
      expires_at: null,
      is_accessible: false,
    });
  });

  it('asks for the password, refuses a wrong one, serves the right one; failures cost no use (case 28)', async () => {
    const content = pdfPayload(150_000);
    const created = await create(raven, { uses: '2', password: 'correct horse battery' }, content);
    expect((created as unknown as { password_protected: boolean }).password_protected).toBe(true);
    expect((await status(raven, created.key)).password_required).toBe(true);

    const missing = await download(raven, created.key);
    expect(missing.status).toBe(401);
    expect(missing.json).toEqual({ detail: 'Password required' });
    const wrong = await download(raven, created.key, { 'x-password': 'wrong horse' });
    expect(wrong.status).toBe(401);
    expect(wrong.json).toEqual({ detail: 'Invalid password' });
    const previewMissing = await fetch(`${raven.url}/preview/${created.key}`);
    expect(previewMissing.status).toBe(401);
    expect(await previewMissing.json()).toEqual({ detail: 'Password required' });
    expect((await status(raven, created.key)).remaining_uses).toBe(2);

    const right = await download(raven, created.key, { 'x-password': 'correct horse battery' });
    expect(right.status).toBe(200);
    expect(right.body.equals(content)).toBe(true);
    const state = await status(raven, created.key);
    expect(state.remaining_uses).toBe(1);
    expect(state.previewed).toBe(false);
  });
});

interface Run {
  code: number | null;
  stdout: Buffer;
  stderr: string;
}

/** Runs a shell command line (the CLI as a user types it) to completion. */
function sh(command: string, env: Record<string, string>, cwd: string): Promise<Run> {
  return new Promise((done, reject) => {
    const child = spawn('sh', ['-c', command], {
      cwd,
      env: { PATH: process.env.PATH ?? '', HOME: cwd, ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const out: Buffer[] = [];
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => out.push(chunk));
    child.stderr.on('data', (chunk: Buffer) => {
      stderr += chunk.toString('utf8');
    });
    child.once('error', reject);
    child.once('close', (code) => done({ code, stdout: Buffer.concat(out), stderr }));
  });
}

describe('raven-zero CLI against the live server (case 33)', () => {
  let raven: RunningRaven;
  let dir: string;
  beforeAll(async () => {
    raven = await startRaven();
    dir = mkdtempSync(join(tmpdir(), 'raven-e2e-cli-'));
  });
  afterAll(async () => {
    rmSync(dir, { recursive: true, force: true });
    expect(await raven.stop()).toBe(0);
  });

  it('uploads from stdin and downloads identical bytes to stdout; status --json prints the object', async () => {
    const content = randomBytes(700_000);
    writeFileSync(join(dir, 'f'), content);
    const env = { NODE: process.execPath, RAVEN: BIN, SERVER: raven.url };

    const up = await sh('cat f | "$NODE" "$RAVEN" upload - --name f.bin --server "$SERVER" --json', env, dir);
    expect(up.stderr).toBe('');
    expect(up.code).toBe(0);
    const created = JSON.parse(up.stdout.toString('utf8')) as Created & { filename: string };
    expect(created.filename).toBe('f.bin');
    expect(created.size).toBe(content.length);

    const before = await sh(`"$NODE" "$RAVEN" status ${created.key} --server "$SERVER" --json`, env, dir);
    expect(before.code).toBe(0);
    const active = JSON.parse(before.stdout.toString('utf8')) as Status;
    expect(active).toMatchObject({
      key: created.key,
      status: 'active',
      remaining_uses: 1,
      is_accessible: true,
    });

    const down = await sh(`"$NODE" "$RAVEN" download "${created.download_url}" -o -`, env, dir);
    expect(down.stderr).toBe('');
    expect(down.code).toBe(0);
    expect(down.stdout.length).toBe(content.length);
    expect(down.stdout.equals(content)).toBe(true);

    const after = await sh(`"$NODE" "$RAVEN" status "${created.download_url}" --json`, env, dir);
    expect(after.code).toBe(0);
    const text = after.stdout.toString('utf8').trim();
    expect(text.split('\n')).toHaveLength(1);
    expect(JSON.parse(text)).toMatchObject({ key: created.key, status: 'burned', remaining_uses: 0 });

    const gone = await sh(`"$NODE" "$RAVEN" download "${created.download_url}" -o -`, env, dir);
    expect(gone.code).toBe(2);
    expect(gone.stdout.length).toBe(0);
  }, 30_000);
});
