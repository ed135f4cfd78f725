// PDF export through LibreOffice (§5 item 4): `soffice --headless --convert-to pdf` with a per-job profile.
import { spawn } from 'node:child_process';
import { accessSync, constants, statSync } from 'node:fs';
import { mkdir, open, rm } from 'node:fs/promises';
import { basename, delimiter, extname, isAbsolute, join } from 'node:path';
import { pathToFileURL } from 'node:url';

export type PdfConversionResult = { status: 'ok' } | { status: 'failed'; error: string };

export interface ConvertDocxToPdfOptions {
  /** the rendered document, normally `<workspace>/out.docx` */
  docxPath: string;
  /** where LibreOffice writes `<name>.pdf`, normally the directory of `docxPath` */
  outDir: string;
  /** from `findSoffice` */
  sofficePath: string;
  /**
   * LibreOffice user profile for this job (created when missing). The caller owns it: put it inside the
   * job's workspace, which the caller removes on success, failure and timeout alike, so no profile is ever
   * left behind. A private profile lets concurrent conversions run without sharing LibreOffice's lock.
   */
  profileDir: string;
}

/**
 * The LibreOffice binary: `DOCOPS_SOFFICE_PATH` when set and executable, else the first `soffice`, then
 * `libreoffice`, found on `PATH`; null when there is none (PDF export unavailable).
 */
export function findSoffice(env: NodeJS.ProcessEnv): string | null {
  const configured = env.DOCOPS_SOFFICE_PATH?.trim();
  if (configured && isExecutableFile(configured)) return configured;
  const dirs = (env.PATH ?? '').split(delimiter).filter((dir) => dir !== '' && isAbsolute(dir));
  for (const name of ['soffice', 'libreoffice']) {
    for (const dir of dirs) {
      const candidate = join(dir, name);
      if (isExecutableFile(candidate)) return candidate;
    }
  }
  return null;
}

/** Where LibreOffice writes the PDF: it names the output after the input (`out.docx` → `out.pdf`). */
export function pdfOutputPath(docxPath: string, outDir: string): string {
  return join(outDir, `${basename(docxPath, extname(docxPath))}.pdf`);
}

/**
 * Converts `docxPath` to `<outDir>/<name>.pdf`. LibreOffice runs as a plain child of this process, in its
 * process group (not detached): a render process is its group's leader, so the job-timeout kill of that
 * group takes LibreOffice (and the soffice.bin it starts) with it. Never throws; a failure's `error` is a
 * short message without filesystem paths.
 */
export async function convertDocxToPdf(options: ConvertDocxToPdfOptions): Promise<PdfConversionResult> {
  const { docxPath, outDir, sofficePath, profileDir } = options;
  try {
    await mkdir(profileDir, { recursive: true });
    await mkdir(outDir, { recursive: true });
    // A stale PDF must not pass for this conversion's output.
    await rm(pdfOutputPath(docxPath, outDir), { force: true });
  } catch (error) {
    return { status: 'failed', error: `could not prepare the conversion (${errorCode(error)})` };
  }
  const args = [
    '--headless',
    '--norestore',
    `-env:UserInstallation=${pathToFileURL(profileDir).href}`,
    '--convert-to',
    'pdf',
    '--outdir',
    outDir,
    docxPath,
  ];
  const exit = await runSoffice(sofficePath, args, profileDir);
  if (exit.kind === 'spawn_error')
    return { status: 'failed', error: `soffice could not be started (${exit.code})` };
  if (exit.kind === 'signal') return { status: 'failed', error: `soffice was killed by ${exit.signal}` };
  if (exit.code !== 0) return { status: 'failed', error: `soffice exited with code ${exit.code}` };
  if (!(await startsWithPdfMagic(pdfOutputPath(docxPath, outDir)))) {
    return { status: 'failed', error: 'soffice produced no PDF' };
  }
  return { status: 'ok' };
}

type SofficeExit =
  | { kind: 'exit'; code: number }
  | { kind: 'signal'; signal: string }
  | { kind: 'spawn_error'; code: string };

function runSoffice(sofficePath: string, args: string[], profileDir: string): Promise<SofficeExit> {
  return new Promise((resolve) => {
    // LibreOffice also writes under $HOME; a service user may have none, so fall back to the job profile.
    const env = { ...process.env, HOME: process.env.HOME || profileDir };
    let settled = false;
    const child = spawn(sofficePath, args, { stdio: 'ignore', env });
    child.once('error', (error) => {
      if (settled) return;
      settled = true;
      resolve({ kind: 'spawn_error', code: errorCode(error) });
    });
    child.once('close', (code, signal) => {
      if (settled) return;
      settled = true;
      resolve(signal ? { kind: 'signal', signal } : { kind: 'exit', code: code ?? 1 });
    });
  });
}

async function startsWithPdfMagic(path: string): Promise<boolean> {
  try {
    const handle = await open(path, 'r');
    try {
      const head = Buffer.alloc(5);
      const { bytesRead } = await handle.read(head, 0, 5, 0);
      return bytesRead === 5 && head.toString('latin1') === '%PDF-';
    } finally {
      await handle.close();
    }
  } catch {
    return false;
  }
}

function isExecutableFile(path: string): boolean {
  try {
    if (!statSync(path).isFile()) return false;
    accessSync(path, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

function errorCode(error: unknown): string {
  const code = (error as NodeJS.ErrnoException | null)?.code;
  return typeof code === 'string' ? code : 'error';
}
