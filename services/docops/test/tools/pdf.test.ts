import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { chmod, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildDocx } from '../../src/domain/docx/build.js';
import { convertDocxToPdf, findSoffice, pdfOutputPath } from '../../src/domain/pdf.js';

let dir: string;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'docops-pdf-'));
});

afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

async function fakeExecutable(path: string): Promise<string> {
  await mkdir(join(path, '..'), { recursive: true });
  await writeFile(path, '#!/bin/sh\nexit 0\n');
  await chmod(path, 0o755);
  return path;
}

describe('findSoffice', () => {
  it('prefers an executable DOCOPS_SOFFICE_PATH', async () => {
    const configured = await fakeExecutable(join(dir, 'custom', 'my-soffice'));
    const onPath = await fakeExecutable(join(dir, 'bin1', 'soffice'));
    expect(findSoffice({ DOCOPS_SOFFICE_PATH: configured, PATH: join(dir, 'bin1') })).toBe(configured);
    expect(findSoffice({ DOCOPS_SOFFICE_PATH: join(dir, 'nope'), PATH: join(dir, 'bin1') })).toBe(onPath);
  });

  it('searches PATH for soffice first, then libreoffice', async () => {
    const libreoffice = await fakeExecutable(join(dir, 'bin2', 'libreoffice'));
    const soffice = await fakeExecutable(join(dir, 'bin3', 'soffice'));
    expect(findSoffice({ PATH: [join(dir, 'bin2'), join(dir, 'bin3')].join(':') })).toBe(soffice);
    expect(findSoffice({ PATH: join(dir, 'bin2') })).toBe(libreoffice);
  });

  it('ignores files that are not executable and returns null when nothing is found', async () => {
    await mkdir(join(dir, 'bin4'), { recursive: true });
    await writeFile(join(dir, 'bin4', 'soffice'), 'not executable');
    expect(findSoffice({ PATH: join(dir, 'bin4') })).toBeNull();
    expect(findSoffice({ PATH: '' })).toBeNull();
    expect(findSoffice({})).toBeNull();
  });
});

describe('convertDocxToPdf failures', () => {
  it('reports a soffice that exits non-zero with a short message and no path', async () => {
    const failing = join(dir, 'failing', 'soffice');
    await mkdir(join(dir, 'failing'), { recursive: true });
    await writeFile(failing, '#!/bin/sh\necho "cannot open $0" >&2\nexit 3\n');
    await chmod(failing, 0o755);
    const work = join(dir, 'job-fail');
    const result = await convertDocxToPdf({
      docxPath: join(work, 'out.docx'),
      outDir: work,
      sofficePath: failing,
      profileDir: join(work, 'lo-profile'),
    });
    expect(result).toEqual({ status: 'failed', error: 'soffice exited with code 3' });
  });

  it('reports a soffice that produces nothing', async () => {
    const silent = await fakeExecutable(join(dir, 'silent', 'soffice'));
    const work = join(dir, 'job-silent');
    const result = await convertDocxToPdf({
      docxPath: join(work, 'out.docx'),
      outDir: work,
      sofficePath: silent,
      profileDir: join(work, 'lo-profile'),
    });
    expect(result).toEqual({ status: 'failed', error: 'soffice produced no PDF' });
  });

  it('reports a binary that cannot be started', async () => {
    const work = join(dir, 'job-missing');
    const result = await convertDocxToPdf({
      docxPath: join(work, 'out.docx'),
      outDir: work,
      sofficePath: join(dir, 'does-not-exist', 'soffice'),
      profileDir: join(work, 'lo-profile'),
    });
    expect(result.status).toBe('failed');
    if (result.status === 'failed') {
      expect(result.error).toBe('soffice could not be started (ENOENT)');
      expect(result.error).not.toContain(dir);
    }
  });
});

const soffice = findSoffice(process.env);
// The group-kill test runs the module in a separate plain Node process: the compiled copy.
const pdfModuleUrl = pathToFileURL(join(import.meta.dirname, '../../dist/domain/pdf.js')).href;
const hasPdftotext = spawnSync('pdftotext', ['-v']).error === undefined;
if (!soffice) console.warn('pdf.test: LibreOffice (soffice) not found on PATH: real conversion test skipped');

describe.skipIf(!soffice)('convertDocxToPdf with LibreOffice', () => {
  // LibreOffice start-up with a fresh profile takes several seconds.
  it('converts out.docx to out.pdf holding the text', { timeout: 120_000 }, async () => {
    const work = join(dir, 'job-real');
    await mkdir(work, { recursive: true });
    const docxPath = join(work, 'out.docx');
    await writeFile(docxPath, buildDocx({ paragraphs: ['Title: Kickoff meeting', 'Location: Room 4'] }));
    const result = await convertDocxToPdf({
      docxPath,
      outDir: work,
      sofficePath: soffice as string,
      profileDir: join(work, 'lo-profile'),
    });
    expect(result).toEqual({ status: 'ok' });
    const pdfPath = pdfOutputPath(docxPath, work);
    expect(pdfPath).toBe(join(work, 'out.pdf'));
    const pdf = await readFile(pdfPath);
    expect(pdf.subarray(0, 5).toString('latin1')).toBe('%PDF-');
    if (hasPdftotext) {
      const text = execFileSync('pdftotext', [pdfPath, '-'], { encoding: 'utf8' });
      expect(text).toContain('Title: Kickoff meeting');
      expect(text).toContain('Location: Room 4');
    } else {
      console.warn('pdf.test: pdftotext not found: PDF text not checked');
    }
  });

  it("runs LibreOffice in the caller's process group, so killing the group ends the conversion", {
    timeout: 120_000,
  }, async () => {
    const work = join(dir, 'job-killed');
    await mkdir(work, { recursive: true });
    const docxPath = join(work, 'out.docx');
    await writeFile(docxPath, buildDocx({ paragraphs: ['Killed before it finishes'] }));
    const profileDir = join(work, 'lo-profile');
    // A stand-in for a render process: the leader of its own group, converting with LibreOffice.
    const script = `import(${JSON.stringify(pdfModuleUrl)}).then((m) => m.convertDocxToPdf(${JSON.stringify({
      docxPath,
      outDir: work,
      sofficePath: soffice,
      profileDir,
    })}))`;
    const leader = spawn(process.execPath, ['-e', script], { detached: true, stdio: 'ignore' });
    const leaderPid = leader.pid as number;
    // LibreOffice's own processes (oosplash, soffice.bin) carry the profile URL; the leader does not.
    const profileArg = `-env:UserInstallation=${pathToFileURL(profileDir).href}`;
    const office = () => processesMentioning(profileArg);
    try {
      await waitFor(() => processesMentioning('soffice.bin').some((pid) => office().includes(pid)), 60_000);
      expect(office().length).toBeGreaterThan(0);
    } finally {
      process.kill(-leaderPid, 'SIGKILL');
    }
    // SIGKILL is immediate: anything still there after a second escaped the group.
    await waitFor(() => office().length === 0, 1_000);
    expect(office()).toEqual([]);
  });
});

/** pids whose command line contains `text` (Linux /proc). */
function processesMentioning(text: string): number[] {
  const pids: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      if (readFileSync(`/proc/${entry}/cmdline`, 'utf8').includes(text)) pids.push(Number(entry));
    } catch {
      // gone meanwhile
    }
  }
  return pids;
}

async function waitFor(condition: () => boolean, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition() && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 50));
}
