// The CLI client (spec §3.1, §5 B4, §8 case 33) against a fake server speaking just enough of §3.9.
import { createHash } from 'node:crypto';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough, Readable } from 'node:stream';
import { Command } from 'commander';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { registerClientCommands } from '../../src/cli/client.js';
import { resolveServer, resolveTarget } from '../../src/domain/client.js';

const KEY = 'abacus-abdomen-abide';

interface StoredFile {
  name: string;
  content: Buffer;
  uses: number;
  fields: Record<string, string>;
}

interface Fake {
  server: Server;
  base: string;
  requests: { method: string; url: string; password?: string | undefined }[];
  files: Map<string, StoredFile>;
  wrongHash: boolean;
}

function json(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
  res.end(text);
}

function parseMultipart(
  req: IncomingMessage,
  body: Buffer,
): { fields: Record<string, string>; file?: StoredFile } {
  const boundary = /boundary=(.+)$/.exec(req.headers['content-type'] ?? '')?.[1];
  if (boundary === undefined) return { fields: {} };
  const fields: Record<string, string> = {};
  let file: StoredFile | undefined;
  const text = body.toString('latin1');
  for (const part of text.split(`--${boundary}`).slice(1, -1)) {
    const split = part.indexOf('\r\n\r\n');
    const head = part.slice(0, split);
    const value = part.slice(split + 4, -2);
    const name = /name="([^"]*)"/.exec(head)?.[1] ?? '';
    const filename = /filename="([^"]*)"/.exec(head)?.[1];
    if (filename !== undefined && name === 'file') {
      file = {
        name: Buffer.from(filename, 'latin1').toString('utf8'),
        content: Buffer.from(value, 'latin1'),
        uses: 1,
        fields,
      };
    } else {
      fields[name] = Buffer.from(value, 'latin1').toString('utf8');
    }
  }
  return file === undefined ? { fields } : { fields, file };
}

async function startFake(): Promise<Fake> {
  const fake: Fake = {
    server: createServer(),
    base: '',
    requests: [],
    files: new Map(),
    wrongHash: false,
  };
  fake.server.on('request', (req: IncomingMessage, res: ServerResponse) => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => {
      const method = req.method ?? 'GET';
      const url = new URL(req.url ?? '/', 'http://x');
      const password = req.headers['x-password'] as string | undefined;
      fake.requests.push({ method, url: url.pathname, password });
      const route = /^\/(upload|download|status|files)\/(.*)$/.exec(url.pathname);
      const key = decodeURIComponent(route?.[2] ?? '');
      const stored = fake.files.get(key);
      if (method === 'POST' && route?.[1] === 'upload') {
        const { fields, file } = parseMultipart(req, Buffer.concat(chunks));
        if (file === undefined) {
          json(res, 422, {
            detail: [{ type: 'missing', loc: ['body', 'file'], msg: 'Field required', input: null }],
          });
          return;
        }
        file.uses = Number(fields.uses ?? '1');
        fake.files.set(KEY, file);
        json(res, 201, {
          key: KEY,
          preview_url: `${fake.base}/preview/${KEY}`,
          download_url: `${fake.base}/download/${KEY}`,
          expiry: new Date(Date.now() + 600_000).toISOString(),
          uses: file.uses,
          filename: file.name,
          size: file.content.length,
          created_at: new Date().toISOString(),
          sha256: createHash('sha256').update(file.content).digest('hex'),
          share_url: `${fake.base}/d#${KEY}`,
          status_url: `${fake.base}/status/${KEY}`,
          delete_url: `${fake.base}/files/${KEY}`,
          expires_in_seconds: 600,
          password_protected: false,
        });
        return;
      }
      if (method === 'GET' && route?.[1] === 'download') {
        if (stored === undefined) return json(res, 404, { detail: 'File not found' });
        if (stored.uses <= 0) return json(res, 410, { detail: 'Download limit has been reached' });
        if (stored.fields.password !== undefined && password !== stored.fields.password) {
          return json(res, 401, {
            detail: password === undefined ? 'Password required' : 'Invalid password',
          });
        }
        stored.uses -= 1;
        const hash = createHash('sha256')
          .update(fake.wrongHash ? Buffer.from('something else') : stored.content)
          .digest('hex');
        res.writeHead(200, {
          'content-type': 'application/octet-stream',
          'content-length': stored.content.length,
          'content-disposition': `attachment; filename="${stored.name}"`,
          'x-sha256': hash,
        });
        res.end(stored.content);
        return;
      }
      if (method === 'GET' && route?.[1] === 'status') {
        if (stored === undefined) {
          return json(res, 200, {
            key,
            status: 'expired_or_burned',
            remaining_uses: 0,
            expires_at: null,
            is_accessible: false,
          });
        }
        return json(res, 200, {
          key,
          status: stored.uses > 0 ? 'active' : 'burned',
          remaining_uses: stored.uses,
          expires_at: '2030-01-01T00:00:00.000Z',
          is_accessible: stored.uses > 0,
          uses_total: 1,
          previewed: false,
          password_required: false,
          seconds_left: 600,
        });
      }
      if (method === 'DELETE' && route?.[1] === 'files') {
        if (stored === undefined) return json(res, 404, { detail: 'File not found' });
        stored.uses = 0;
        res.writeHead(204).end();
        return;
      }
      json(res, 404, { detail: 'Not Found' });
    });
  });
  await new Promise<void>((resolve) => fake.server.listen(0, '127.0.0.1', resolve));
  fake.base = `http://127.0.0.1:${(fake.server.address() as AddressInfo).port}`;
  return fake;
}

interface RunResult {
  code: number | undefined;
  stdout: Buffer;
  stderr: string;
}

async function cli(
  args: string[],
  options: { cwd: string; stdin?: Buffer; env?: NodeJS.ProcessEnv },
): Promise<RunResult> {
  const stdout = new PassThrough();
  const stderr = new PassThrough();
  const out: Buffer[] = [];
  const err: Buffer[] = [];
  stdout.on('data', (chunk: Buffer) => out.push(chunk));
  stderr.on('data', (chunk: Buffer) => err.push(chunk));
  let code: number | undefined;
  const program = new Command().exitOverride();
  registerClientCommands(program, {
    stdin: Readable.from(options.stdin === undefined ? [] : [options.stdin]),
    stdout,
    stderr,
    env: options.env ?? {},
    cwd: () => options.cwd,
    setExitCode: (value) => {
      code = value;
    },
  });
  await program.parseAsync(args, { from: 'user' });
  await new Promise((resolve) => setImmediate(resolve));
  return { code, stdout: Buffer.concat(out), stderr: Buffer.concat(err).toString('utf8') };
}

let fake: Fake;
let dir: string;

beforeAll(async () => {
  fake = await startFake();
});
afterAll(async () => {
  await new Promise((resolve) => fake.server.close(resolve));
});
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'raven-cli-'));
  fake.requests.length = 0;
  fake.files.clear();
  fake.wrongHash = false;
});
afterEach(() => {
  rmSync(dir, { recursive: true, force: true });
});

function seed(content: Buffer, name = 'report.pdf', uses = 1): void {
  fake.files.set(KEY, { name, content, uses, fields: {} });
}

describe('upload', () => {
  it('streams a file from disk and prints key and links', async () => {
    const content = Buffer.from('%PDF-1.7 hello raven\n');
    writeFileSync(join(dir, 'doc.pdf'), content);
    const result = await cli(['upload', 'doc.pdf', '--server', fake.base, '--expiry', '5', '--uses', '2'], {
      cwd: dir,
    });
    expect(result.stderr).toBe('');
    expect(result.code).toBe(0);
    const stored = fake.files.get(KEY);
    expect(stored?.name).toBe('doc.pdf');
    expect(stored?.content.equals(content)).toBe(true);
    expect(stored?.fields).toMatchObject({ expiry: '5', uses: '2' });
    const text = result.stdout.toString('utf8');
    expect(text).toContain(`key:          ${KEY}`);
    expect(text).toContain(`share_url:    ${fake.base}/d#${KEY}`);
    expect(text).toContain(`download_url: ${fake.base}/download/${KEY}`);
    expect(text).toMatch(/expires: +\d{4}-/);
  });

  it('reads stdin with --name and --json prints the 201 body as one JSON object', async () => {
    const content = Buffer.from([0, 1, 2, 3, 255, 254, 13, 10, 45, 45]);
    const result = await cli(['upload', '-', '--name', 'f.bin', '--json'], {
      cwd: dir,
      stdin: content,
      env: { RAVEN_SERVER: fake.base },
    });
    expect(result.code).toBe(0);
    const body = JSON.parse(result.stdout.toString('utf8')) as Record<string, unknown>;
    expect(body.key).toBe(KEY);
    expect(body.filename).toBe('f.bin');
    expect(body.sha256).toBe(createHash('sha256').update(content).digest('hex'));
    expect(result.stdout.toString('utf8').trim().split('\n')).toHaveLength(1);
  });

  it('names a stdin upload stdin.bin by default', async () => {
    const result = await cli(['upload', '-', '--server', fake.base], { cwd: dir, stdin: Buffer.from('x') });
    expect(result.code).toBe(0);
    expect(fake.files.get(KEY)?.name).toBe('stdin.bin');
  });

  it('fails locally (exit 1) for a missing file without any request', async () => {
    const result = await cli(['upload', 'nope.txt', '--server', fake.base], { cwd: dir });
    expect(result.code).toBe(1);
    expect(result.stderr).toMatch(/^raven-zero: cannot read .*nope\.txt/);
    expect(fake.requests).toHaveLength(0);
  });
});

describe('download', () => {
  it('writes the server filename in the cwd after verifying X-SHA256', async () => {
    const content = Buffer.from('the document body');
    seed(content);
    const result = await cli(['download', KEY, '--server', fake.base], { cwd: dir });
    expect(result.code).toBe(0);
    expect(readFileSync(join(dir, 'report.pdf')).equals(content)).toBe(true);
    expect(readdirSync(dir)).toEqual(['report.pdf']);
  });

  it('streams to stdout with -o - (upload from stdin then download by URL gives identical bytes)', async () => {
    const content = Buffer.alloc(300_000);
    for (let i = 0; i < content.length; i += 1) content[i] = (i * 31) % 251;
    const up = await cli(['upload', '-', '--name', 'f.bin', '--json', '--server', fake.base], {
      cwd: dir,
      stdin: content,
    });
    const { download_url: downloadUrl } = JSON.parse(up.stdout.toString('utf8')) as { download_url: string };
    const down = await cli(['download', downloadUrl, '-o', '-'], { cwd: dir });
    expect(down.code).toBe(0);
    expect(down.stdout.equals(content)).toBe(true);
    expect(readdirSync(dir)).toEqual([]);
  });

  it('refuses to overwrite an existing file without --force, before any request', async () => {
    seed(Buffer.from('new'));
    writeFileSync(join(dir, 'out.txt'), 'old');
    const result = await cli(['download', KEY, '-o', 'out.txt', '--server', fake.base], { cwd: dir });
    expect(result.code).toBe(1);
    expect(result.stderr).toMatch(/refusing to overwrite out\.txt/);
    expect(fake.requests).toHaveLength(0);
    expect(fake.files.get(KEY)?.uses).toBe(1);
    expect(readFileSync(join(dir, 'out.txt'), 'utf8')).toBe('old');
  });

  it('an output directory that does not exist is a local error before any request', async () => {
    seed(Buffer.from('x'));
    const result = await cli(['download', KEY, '-o', 'missing/out.bin', '--server', fake.base], { cwd: dir });
    expect(result.code).toBe(1);
    expect(result.stderr).toMatch(/^raven-zero: no such directory: .*missing\n$/);
    expect(fake.requests).toHaveLength(0);
  });

  it('overwrites with --force', async () => {
    seed(Buffer.from('new'));
    writeFileSync(join(dir, 'out.txt'), 'old');
    const result = await cli(['download', KEY, '-o', 'out.txt', '--force', '--server', fake.base], {
      cwd: dir,
    });
    expect(result.code).toBe(0);
    expect(readFileSync(join(dir, 'out.txt'), 'utf8')).toBe('new');
  });

  it('never clobbers when the default name is taken: picks a free name', async () => {
    seed(Buffer.from('new'));
    writeFileSync(join(dir, 'report.pdf'), 'old');
    const result = await cli(['download', KEY, '--server', fake.base], { cwd: dir });
    expect(result.code).toBe(0);
    expect(readFileSync(join(dir, 'report.pdf'), 'utf8')).toBe('old');
    expect(readFileSync(join(dir, 'report (1).pdf'), 'utf8')).toBe('new');
  });

  it('a wrong X-SHA256 exits 3 and leaves no output file behind', async () => {
    seed(Buffer.from('tampered in transit'));
    fake.wrongHash = true;
    const result = await cli(['download', KEY, '-o', 'out.bin', '--server', fake.base], { cwd: dir });
    expect(result.code).toBe(3);
    expect(result.stderr).toMatch(/^raven-zero: integrity check failed/);
    expect(result.stderr.trim().split('\n')).toHaveLength(1);
    expect(existsSync(join(dir, 'out.bin'))).toBe(false);
    expect(readdirSync(dir)).toEqual([]);
  });

  it('a wrong X-SHA256 with --force keeps the previous file intact', async () => {
    seed(Buffer.from('tampered'));
    fake.wrongHash = true;
    writeFileSync(join(dir, 'out.bin'), 'previous');
    const result = await cli(['download', KEY, '-o', 'out.bin', '--force', '--server', fake.base], {
      cwd: dir,
    });
    expect(result.code).toBe(3);
    expect(readFileSync(join(dir, 'out.bin'), 'utf8')).toBe('previous');
    expect(readdirSync(dir)).toEqual(['out.bin']);
  });

  it('exit 2 on 404 and 410 with the server detail on one line', async () => {
    const missing = await cli(['download', 'apple-banana-cherry', '--server', fake.base], { cwd: dir });
    expect(missing.code).toBe(2);
    expect(missing.stderr).toBe('raven-zero: server answered 404: File not found\n');
    seed(Buffer.from('x'), 'a.txt', 0);
    const gone = await cli(['download', KEY, '--server', fake.base], { cwd: dir });
    expect(gone.code).toBe(2);
    expect(gone.stderr).toBe('raven-zero: server answered 410: Download limit has been reached\n');
    expect(readdirSync(dir)).toEqual([]);
  });

  it('sends the password as X-Password; a missing one is a refusal (exit 2)', async () => {
    fake.files.set(KEY, {
      name: 'a.txt',
      content: Buffer.from('secret'),
      uses: 1,
      fields: { password: 'pw' },
    });
    const without = await cli(['download', KEY, '-o', '-', '--server', fake.base], { cwd: dir });
    expect(without.code).toBe(2);
    expect(without.stderr).toContain('Password required');
    const withPassword = await cli(['download', KEY, '-o', '-', '--password', 'pw', '--server', fake.base], {
      cwd: dir,
    });
    expect(withPassword.code).toBe(0);
    expect(withPassword.stdout.toString('utf8')).toBe('secret');
  });

  it('exit 3 when the server cannot be reached', async () => {
    const closed = createServer();
    await new Promise<void>((resolve) => closed.listen(0, '127.0.0.1', resolve));
    const port = (closed.address() as AddressInfo).port;
    await new Promise((resolve) => closed.close(resolve));
    const result = await cli(['download', KEY, '-o', 'x.bin', '--server', `http://127.0.0.1:${port}`], {
      cwd: dir,
    });
    expect(result.code).toBe(3);
    expect(result.stderr).toMatch(/^raven-zero: cannot reach http:\/\/127\.0\.0\.1:\d+: ECONNREFUSED\n$/);
    expect(readdirSync(dir)).toEqual([]);
  });
});

describe('status and delete', () => {
  it('status --json prints the status object; a share link gives server and key', async () => {
    seed(Buffer.from('x'));
    const result = await cli(['status', `${fake.base}/d#ABACUS_Abdomen.abide`, '--json'], { cwd: dir });
    expect(result.code).toBe(0);
    const body = JSON.parse(result.stdout.toString('utf8')) as Record<string, unknown>;
    expect(body).toMatchObject({ key: KEY, status: 'active', remaining_uses: 1, is_accessible: true });
    expect(fake.requests).toEqual([{ method: 'GET', url: `/status/${KEY}`, password: undefined }]);
  });

  it('status without --json prints one field per line', async () => {
    seed(Buffer.from('x'));
    const result = await cli(['status', KEY, '--server', fake.base], { cwd: dir });
    expect(result.code).toBe(0);
    expect(result.stdout.toString('utf8')).toMatch(/^status: +active$/m);
  });

  it('delete by preview link destroys the upload; a second delete of an unknown key exits 2', async () => {
    seed(Buffer.from('x'));
    const result = await cli(['delete', `${fake.base}/preview/${KEY}`], { cwd: dir });
    expect(result.code).toBe(0);
    expect(fake.files.get(KEY)?.uses).toBe(0);
    expect(fake.requests.at(-1)).toMatchObject({ method: 'DELETE', url: `/files/${KEY}` });
    fake.files.clear();
    const again = await cli(['delete', KEY, '--server', fake.base], { cwd: dir });
    expect(again.code).toBe(2);
  });
});

describe('key and link parsing', () => {
  it('accepts keys and every link form, with a path prefix kept in the server', () => {
    expect(resolveTarget('Apple Banana Cherry', 'http://s')).toEqual({
      server: 'http://s',
      key: 'apple-banana-cherry',
    });
    for (const route of ['download', 'preview', 'status', 'files']) {
      expect(resolveTarget(`https://h.example/raven/${route}/a-b-c`, 'http://s')).toEqual({
        server: 'https://h.example/raven',
        key: 'a-b-c',
      });
    }
    expect(resolveTarget('https://h.example/d#a-b-c', 'http://s')).toEqual({
      server: 'https://h.example',
      key: 'a-b-c',
    });
    expect(() => resolveTarget('https://h.example/other', 'http://s')).toThrow(/not a Raven Zero link/);
  });

  it('--server wins over RAVEN_SERVER, which wins over the default', () => {
    expect(resolveServer('http://a:1/', { RAVEN_SERVER: 'http://b:2' })).toBe('http://a:1');
    expect(resolveServer(undefined, { RAVEN_SERVER: 'http://b:2' })).toBe('http://b:2');
    expect(resolveServer(undefined, {})).toBe('http://127.0.0.1:8000');
    expect(() => resolveServer('ftp://x', {})).toThrow(/invalid server URL/);
  });
});
