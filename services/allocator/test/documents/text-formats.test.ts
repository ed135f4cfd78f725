import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type DocumentFormat, extractDocument, NO_TEXT_MESSAGE } from '../../src/domain/documents/extract.js';
import { PermanentProcessingError, TransientProcessingError } from '../../src/domain/errors.js';

let directory: string;
let fileCount = 0;

beforeAll(async () => {
  directory = await mkdtemp(join(tmpdir(), 'allocator-text-'));
});

afterAll(async () => {
  await rm(directory, { recursive: true, force: true });
});

async function extract(content: string | Uint8Array, format: DocumentFormat) {
  const path = join(directory, `file-${fileCount++}.${format}`);
  await writeFile(path, content);
  return extractDocument(path, format);
}

describe('plain text', () => {
  it('drops the BOM, replaces invalid bytes, normalises line breaks and removes control characters', async () => {
    const bytes = Buffer.concat([
      Buffer.from([0xef, 0xbb, 0xbf]),
      Buffer.from('Caf\u00e9 line one\r\nline '),
      Buffer.from([0xff, 0xfe, 0x41]),
      Buffer.from(' two\u0000\r\n\r\n\r\n\r\nlast\tline'),
    ]);
    const document = await extract(bytes, 'txt');
    expect(document).toEqual({
      title: null,
      pageCount: null,
      blocks: [{ kind: 'text', text: 'Café line one\nline \uFFFD\uFFFDA two\n\nlast\tline', page: null }],
      images: [],
    });
  });

  it('reads UTF-16 text marked by its BOM', async () => {
    const bytes = Buffer.concat([Buffer.from([0xff, 0xfe]), Buffer.from('Grüße aus Köln', 'utf16le')]);
    expect((await extract(bytes, 'txt')).blocks[0]?.text).toBe('Grüße aus Köln');
  });

  it('fails permanently for a file without text', async () => {
    const error = await extract(' \r\n\t\u0000 ', 'txt').catch((caught: unknown) => caught);
    expect(error).toBeInstanceOf(PermanentProcessingError);
    expect((error as Error).message).toBe(NO_TEXT_MESSAGE);
  });

  it('reports a missing file as a transient I/O failure without naming the path', async () => {
    const error = await extractDocument(join(directory, 'missing.txt'), 'txt').catch(
      (caught: unknown) => caught,
    );
    expect(error).toBeInstanceOf(TransientProcessingError);
    expect((error as Error).message).toBe('Cannot read the document file (ENOENT)');
  });
});

describe('Markdown', () => {
  it('turns ATX lines into headings with levels and keeps the rest as text', async () => {
    const markdown = [
      'Intro before any heading.',
      '# Main Title #',
      'First paragraph.',
      '',
      'Second paragraph with a #hashtag.',
      '#not a heading',
      '   ### Third level   ###',
      '```sh',
      '# a shell comment, not a heading',
      '```',
      '####### seven hashes is text',
      '##',
      '## Second level',
      'Closing words.',
    ].join('\n');
    const document = await extract(markdown, 'md');
    expect(document.title).toBe('Main Title');
    expect(document.blocks).toEqual([
      { kind: 'text', text: 'Intro before any heading.', page: null },
      { kind: 'heading', text: 'Main Title', page: null, level: 1 },
      {
        kind: 'text',
        text: 'First paragraph.\n\nSecond paragraph with a #hashtag.\n#not a heading',
        page: null,
      },
      { kind: 'heading', text: 'Third level', page: null, level: 3 },
      {
        kind: 'text',
        text: '```sh\n# a shell comment, not a heading\n```\n####### seven hashes is text',
        page: null,
      },
      { kind: 'heading', text: 'Second level', page: null, level: 2 },
      { kind: 'text', text: 'Closing words.', page: null },
    ]);
  });

  it('keeps the words of a file made only of headings as text', async () => {
    const document = await extract('# Shopping list\n## Groceries\n', 'md');
    expect(document.blocks).toEqual([
      { kind: 'text', text: 'Shopping list', page: null },
      { kind: 'text', text: 'Groceries', page: null },
    ]);
  });
});

describe('HTML', () => {
  it('reads the body text with h1–h6 headings, dropping head, scripts, styles and comments', async () => {
    const html = `<!DOCTYPE html>
<html><head><title>The  Page &amp; Title</title>
<meta charset="utf-8"><style>body { color: red }</style><script>var hidden = "<p>no</p>";</script></head>
<body>
  <h1>Welcome <em>home</em></h1>
  <p>First   paragraph
     spans lines.</p><!-- a comment that is not text -->
  <p>Caf&eacute; &amp; cr&egrave;me&nbsp;br&#xFB;l&#233;e &#8212; &copy 2024 &unknown; &lt;tag&gt;</p>
  <script type="module">console.log('<h2>not a heading</h2>')</script>
  <div>Line one<br>Line two</div>
  <h2 class="x">Details</h2>
  <ul><li>Alpha</li><li>Beta</li></ul>
  <table><tr><td>Cell A</td><td>Cell B</td></tr></table>
  <pre>  indented
    code</pre>
  <noscript>Enable scripts</noscript>
  <p>2 < 3 and unclosed
</body></html>`;
    const document = await extract(html, 'html');
    expect(document.title).toBe('The Page & Title');
    expect(document.blocks).toEqual([
      { kind: 'heading', text: 'Welcome home', page: null, level: 1 },
      {
        kind: 'text',
        text: 'First paragraph spans lines.\n\nCafé & crème\u00a0brûlée — © 2024 &unknown; <tag>\n\nLine one\nLine two',
        page: null,
      },
      { kind: 'heading', text: 'Details', page: null, level: 2 },
      {
        kind: 'text',
        text: 'Alpha\n\nBeta\n\nCell A Cell B\n\n  indented\n    code\n\n2 < 3 and unclosed',
        page: null,
      },
    ]);
  });

  it('takes the first h1 as title without <title>, and a fragment without <body> as body', async () => {
    const document = await extract('<h2>Intro</h2><p>Text</p><h1>Real Title</h1><p>More</p>', 'html');
    expect(document.title).toBe('Real Title');
    expect(document.blocks.map((block) => block.text)).toEqual(['Intro', 'Text', 'Real Title', 'More']);
  });

  it('starts the body at the first element that cannot be in <head>, as browsers do', async () => {
    const document = await extract(
      '<html><head><title>T</title><meta name="x"><p>Body text</p></html>',
      'html',
    );
    expect(document.title).toBe('T');
    expect(document.blocks).toEqual([{ kind: 'text', text: 'Body text', page: null }]);
  });

  it('decodes the charset a <meta> declares', async () => {
    const bytes = Buffer.concat([
      Buffer.from('<html><head><meta charset="windows-1252"></head><body><p>'),
      Buffer.from([0x93, 0x71, 0x75, 0x6f, 0x74, 0x65, 0x94, 0x20, 0xe9, 0x74, 0xe9]),
      Buffer.from('</p></body></html>'),
    ]);
    expect((await extract(bytes, 'html')).blocks).toEqual([
      { kind: 'text', text: '“quote” été', page: null },
    ]);
  });

  it('fails permanently when the body has no text', async () => {
    const error = await extract(
      '<html><head><title>Only a title</title></head><body><script>x()</script></body></html>',
      'html',
    ).catch((caught: unknown) => caught);
    expect(error).toBeInstanceOf(PermanentProcessingError);
  });
});
