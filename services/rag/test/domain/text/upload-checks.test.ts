import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  checkFileContent,
  inferMimeType,
  LEGACY_OFFICE_MESSAGE,
  MIME,
  PROFILE_MIMES,
  resolveUploadMime,
  SUPPORTED_MIMES,
  safeFilename,
  unsupportedMimeMessage,
} from '../../../src/domain/text/upload-checks.js';
import {
  docxBytes,
  odtBytes,
  pdfBytes,
  pptxBytes,
  wordParagraph,
  writeFixture,
  xlsxBytes,
  zipBytes,
} from './fixtures.js';

describe('safeFilename', () => {
  it('reduces a client path to a safe basename (spec example)', () => {
    expect(safeFilename('../../My report (v2).pdf')).toBe('My_report__v2_.pdf');
  });

  it('treats backslashes as separators, removes leading dots, caps at 128 chars, falls back to "file"', () => {
    expect(safeFilename('C:\\Users\\me\\Q1 data.csv')).toBe('Q1_data.csv');
    expect(safeFilename('  ..hidden.txt ')).toBe('hidden.txt');
    expect(safeFilename('Résumé—final?.docx')).toBe('R_sum_final_.docx');
    expect(safeFilename(`${'a'.repeat(200)}.txt`)).toBe('a'.repeat(128));
    expect(safeFilename('../..')).toBe('file');
    expect(safeFilename('')).toBe('file');
  });
});

describe('MIME types', () => {
  it('infers types from extensions, including source code, case-insensitively', () => {
    const cases: Record<string, string | undefined> = {
      'a.PDF': MIME.pdf,
      'a.txt': 'text/plain',
      'a.md': 'text/markdown',
      'a.markdown': 'text/markdown',
      'a.csv': 'text/csv',
      'a.tsv': 'text/tab-separated-values',
      'a.docx': MIME.docx,
      'a.xlsx': MIME.xlsx,
      'a.pptx': MIME.pptx,
      'a.odt': MIME.odt,
      'a.json': 'application/json',
      'a.xml': 'application/xml',
      'a.html': 'text/html',
      'a.htm': 'text/html',
      'a.rtf': 'text/rtf',
      'main.py': 'text/x-python',
      'run.sh': 'application/x-sh',
      'app.js': 'text/javascript',
      'app.ts': 'application/typescript',
      'App.java': 'text/x-java',
      'lib.c': 'text/x-c',
      'lib.h': 'text/x-c',
      'main.go': 'text/x-go',
      'lib.rs': 'text/x-rust',
      'ci.yml': 'text/yaml',
      'schema.sql': 'application/sql',
      'old.doc': 'application/msword',
      'old.xls': 'application/vnd.ms-excel',
      'archive.zip': undefined,
      README: undefined,
    };
    for (const [name, type] of Object.entries(cases))
      expect([name, inferMimeType(name)]).toEqual([name, type]);
    for (const type of Object.values(cases)) {
      if (type !== undefined && type !== MIME.doc && type !== MIME.xls)
        expect(SUPPORTED_MIMES.has(type)).toBe(true);
    }
  });

  it('uses the part type unless it is missing or application/octet-stream', () => {
    expect(resolveUploadMime('Text/Plain; charset=utf-8', 'x.pdf')).toBe('text/plain');
    expect(resolveUploadMime('application/octet-stream', 'x.pdf')).toBe('application/pdf');
    expect(resolveUploadMime(undefined, 'x.md')).toBe('text/markdown');
    expect(resolveUploadMime(undefined, 'x.bin')).toBe('application/octet-stream');
  });

  it('lists the profiles of spec §3.4, sorted', () => {
    expect(PROFILE_MIMES.safe).toEqual([
      'application/pdf',
      'text/csv',
      'text/markdown',
      'text/plain',
      'text/tab-separated-values',
    ]);
    expect(PROFILE_MIMES.office).toHaveLength(10);
    expect(PROFILE_MIMES.office).toContain(
      'application/vnd.openxmlformats-officedocument.wordprocessingml.template',
    );
    expect(PROFILE_MIMES['all-supported']).toHaveLength(25);
    expect(PROFILE_MIMES['all-supported']).toEqual([...PROFILE_MIMES['all-supported']].sort());
  });

  it('builds the 415 messages, with the legacy Office one for .doc/.xls', () => {
    expect(unsupportedMimeMessage('application/zip', 'safe', PROFILE_MIMES.safe)).toBe(
      "Unsupported media type 'application/zip'. Allowed types (profile=safe): application/pdf, text/csv, text/markdown, text/plain, text/tab-separated-values",
    );
    expect(
      unsupportedMimeMessage('application/msword', 'all-supported', PROFILE_MIMES['all-supported']),
    ).toBe(LEGACY_OFFICE_MESSAGE);
    expect(LEGACY_OFFICE_MESSAGE).toBe(
      'Legacy binary Office formats (.doc/.xls) are not supported; save as .docx/.xlsx',
    );
  });
});

describe('checkFileContent', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'rag-checks-'));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });
  const check = async (name: string, content: string | Uint8Array, type: string) =>
    checkFileContent(await writeFixture(dir, name, content), type);

  it('PDF: %PDF- magic and %%EOF within the last 2048 bytes', async () => {
    expect(await check('ok.pdf', await pdfBytes([['hello']]), MIME.pdf)).toBe(true);
    expect(await check('text.pdf', 'just some text %%EOF', MIME.pdf)).toBe(false);
    expect(await check('noeof.pdf', '%PDF-1.7\n1 0 obj', MIME.pdf)).toBe(false);
    expect(await check('late.pdf', `%PDF-1.7 %%EOF${' '.repeat(3000)}`, MIME.pdf)).toBe(false);
    expect(await check('tiny.pdf', '%PD', MIME.pdf)).toBe(false);
  });

  it('OOXML/ODF: a zip containing the main part', async () => {
    expect(await check('ok.docx', docxBytes(wordParagraph('hi')), MIME.docx)).toBe(true);
    expect(await check('ok.dotx', docxBytes(wordParagraph('hi')), MIME.dotx)).toBe(true);
    expect(await check('ok.xlsx', xlsxBytes([{ name: 'S', rows: '' }], []), MIME.xlsx)).toBe(true);
    expect(await check('ok.pptx', pptxBytes([['a']]), MIME.pptx)).toBe(true);
    expect(await check('ok.odt', odtBytes('<text:p>a</text:p>'), MIME.odt)).toBe(true);
    expect(await check('wrong.docx', xlsxBytes([{ name: 'S', rows: '' }], []), MIME.docx)).toBe(false);
    expect(await check('plain.zip.docx', zipBytes({ 'a.txt': 'a' }), MIME.docx)).toBe(false);
    expect(await check('notzip.xlsx', 'PK but not really', MIME.xlsx)).toBe(false);
  });

  it('text: UTF-8 (or UTF-16 with a BOM) without NUL characters', async () => {
    expect(await check('ok.txt', 'plain ünïcode text', MIME.text)).toBe(true);
    expect(await check('bom.md', Buffer.from('\uFEFF# title', 'utf8'), MIME.markdown)).toBe(true);
    const utf16 = Buffer.concat([Buffer.from([0xff, 0xfe]), Buffer.from('a,b\n1,2', 'utf16le')]);
    expect(await check('utf16.csv', utf16, MIME.csv)).toBe(true);
    expect(await check('utf16-nobom.csv', Buffer.from('a,b\n1,2', 'utf16le'), MIME.csv)).toBe(false);
    const utf16Nul = Buffer.concat([Buffer.from([0xff, 0xfe]), Buffer.from('a\0b', 'utf16le')]);
    expect(await check('nul16.txt', utf16Nul, MIME.text)).toBe(false);
    expect(await check('nul.txt', 'a\0b', MIME.text)).toBe(false);
    expect(await check('latin1.txt', Buffer.from([0x63, 0x61, 0x66, 0xe9]), MIME.text)).toBe(false);
    expect(await check('pdf-as-text.txt', await pdfBytes([['x']]), MIME.text)).toBe(false);
    expect(await check('code.py', 'print("hi")\n', MIME.python)).toBe(true);
  });

  it('unknown types never match', async () => {
    expect(await check('x.zip', zipBytes({ a: 'a' }), 'application/zip')).toBe(false);
  });
});
