// Multipart requests and zip responses for DocOps contract tests.
import { unzipSync } from 'fflate';

export interface RunParts {
  template?: Uint8Array | string | null;
  templateName?: string;
  task?: unknown;
  taskName?: string;
  fields?: Record<string, string>;
}

/** A multipart form with `template` and `task` files (JSON-encoded unless given as a string or bytes) and text parts. */
export function runForm(parts: RunParts): FormData {
  const form = new FormData();
  if (parts.template !== null && parts.template !== undefined) {
    form.append('template', new Blob([parts.template as BlobPart]), parts.templateName ?? 'template.docx');
  }
  if (parts.task !== undefined) {
    const body =
      typeof parts.task === 'string' || parts.task instanceof Uint8Array
        ? parts.task
        : JSON.stringify(parts.task);
    form.append('task', new Blob([body as BlobPart]), parts.taskName ?? 'task.json');
  }
  for (const [name, value] of Object.entries(parts.fields ?? {})) form.append(name, value);
  return form;
}

export async function postRun(baseUrl: string, parts: RunParts, path = '/v1/run'): Promise<Response> {
  return fetch(`${baseUrl}${path}`, { method: 'POST', body: runForm(parts) });
}

export interface ZipEntries {
  names: string[];
  files: Record<string, Uint8Array>;
  json(name: string): Record<string, unknown>;
  text(name: string): string;
}

/** Reads a zip response body: entry names in order and their bytes. */
export async function readZip(response: Response): Promise<ZipEntries> {
  const bytes = new Uint8Array(await response.arrayBuffer());
  const files = unzipSync(bytes);
  const names = zipEntryOrder(bytes);
  const decoder = new TextDecoder();
  return {
    names,
    files,
    json: (name) => JSON.parse(decoder.decode(files[name])) as Record<string, unknown>,
    text: (name) => decoder.decode(files[name]),
  };
}

/** Entry names in central-directory order (unzipSync returns an object, whose key order is not a promise). */
export function zipEntryOrder(bytes: Uint8Array): string[] {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  let eocd = bytes.length - 22;
  while (eocd >= 0 && view.getUint32(eocd, true) !== 0x06054b50) eocd--;
  const count = view.getUint16(eocd + 10, true);
  let offset = view.getUint32(eocd + 16, true);
  const names: string[] = [];
  const decoder = new TextDecoder();
  for (let index = 0; index < count; index++) {
    const nameLength = view.getUint16(offset + 28, true);
    const extraLength = view.getUint16(offset + 30, true);
    const commentLength = view.getUint16(offset + 32, true);
    names.push(decoder.decode(bytes.subarray(offset + 46, offset + 46 + nameLength)));
    offset += 46 + nameLength + extraLength + commentLength;
  }
  return names;
}

/** The text of every `w:t` of word/document.xml, per paragraph. */
export function documentParagraphTexts(docx: Uint8Array): string[] {
  const xml = new TextDecoder().decode(unzipSync(docx)['word/document.xml']);
  return [...xml.matchAll(/<w:p[ >][\s\S]*?<\/w:p>/g)].map((match) =>
    [...match[0].matchAll(/<w:t(?: [^>]*)?>([^<]*)<\/w:t>/g)].map((t) => t[1]).join(''),
  );
}
