// Embedded pictures of a PDF (spec §3.7). pdf.js hands out decoded pixels, never the JPEG stream as stored,
// so this module reads the PDF objects itself: a tolerant scan for `n g obj` (object streams included), the
// pages' XObject resources (inherited resources and nested forms followed), and for each image XObject either
// the DCTDecode stream as it is or, for Flate-compressed RGB/Gray samples, a PNG made from the raw bitmap.
import { constants, inflateRawSync, inflateSync } from 'node:zlib';
import sharp from 'sharp';
import type { EmbeddedImage } from '../extract.js';

class PdfName {
  constructor(readonly name: string) {}
}

class PdfRef {
  constructor(
    readonly num: number,
    readonly gen: number,
  ) {}
}

/** A string object; its content is not needed here, only that it is skipped correctly. */
class PdfString {}

type PdfValue = number | boolean | null | PdfName | PdfRef | PdfString | PdfValue[] | PdfDict;
type PdfDict = Map<string, PdfValue>;

interface PdfObject {
  value: PdfValue;
  /** byte range of the stream data in the file, when the object is a stream */
  stream: { start: number; end: number } | null;
}

/** Where an object is defined; `position` orders definitions (a later one replaces an earlier one). */
type ObjectLocation =
  | { kind: 'file'; position: number; object: PdfObject }
  | { kind: 'objstm'; position: number; container: number; offset: number };

const MAX_NESTING = 64;
const MAX_OBJECT_STREAM_BYTES = 64 * 1024 * 1024;
const MAX_PARENT_DEPTH = 32;

function isWhitespace(code: number): boolean {
  return code === 32 || code === 10 || code === 13 || code === 9 || code === 12 || code === 0;
}

/** ( ) < > [ ] { } / % */
function isDelimiter(code: number): boolean {
  return (
    code === 40 ||
    code === 41 ||
    code === 60 ||
    code === 62 ||
    code === 91 ||
    code === 93 ||
    code === 123 ||
    code === 125 ||
    code === 47 ||
    code === 37
  );
}

/** Reads PDF values from a latin1 string (one character per byte). */
class Lexer {
  constructor(
    readonly text: string,
    public position: number,
  ) {}

  skipWhitespace(): void {
    const text = this.text;
    while (this.position < text.length) {
      const code = text.charCodeAt(this.position);
      if (isWhitespace(code)) this.position++;
      else if (code === 37 /* % */) {
        while (this.position < text.length && !/[\r\n]/.test(text[this.position] as string)) this.position++;
      } else return;
    }
  }

  #regularToken(): string {
    const start = this.position;
    const text = this.text;
    while (this.position < text.length) {
      const code = text.charCodeAt(this.position);
      if (isWhitespace(code) || isDelimiter(code)) break;
      this.position++;
    }
    return text.slice(start, this.position);
  }

  value(depth = 0): PdfValue {
    if (depth > MAX_NESTING) throw new Error('PDF object nested too deeply');
    this.skipWhitespace();
    const text = this.text;
    if (this.position >= text.length) throw new Error('Unexpected end of PDF object');
    const code = text.charCodeAt(this.position);
    if (code === 60 /* < */ && text.charCodeAt(this.position + 1) === 60) return this.#dict(depth);
    if (code === 60) {
      const end = text.indexOf('>', this.position);
      this.position = end < 0 ? text.length : end + 1;
      return new PdfString();
    }
    if (code === 91 /* [ */) {
      this.position++;
      const items: PdfValue[] = [];
      for (;;) {
        this.skipWhitespace();
        if (this.position >= text.length) throw new Error('Unterminated PDF array');
        if (text.charCodeAt(this.position) === 93) {
          this.position++;
          return items;
        }
        items.push(this.value(depth + 1));
      }
    }
    if (code === 40 /* ( */) return this.#literalString();
    if (code === 47 /* / */) {
      this.position++;
      return new PdfName(
        this.#regularToken().replace(/#([0-9a-fA-F]{2})/g, (_, hex: string) =>
          String.fromCharCode(Number.parseInt(hex, 16)),
        ),
      );
    }
    if (isDelimiter(code)) {
      // a stray `)`, `>`, `]`, `{` or `}`: skip it rather than loop
      this.position++;
      return null;
    }
    const token = this.#regularToken();
    if (/^[+-]?(\d+\.?\d*|\.\d+)$/.test(token)) {
      const number = Number(token);
      if (/^\d+$/.test(token)) {
        const reference = /^\s+(\d+)\s+R(?=[\s()<>[\]{}/%]|$)/.exec(
          text.slice(this.position, this.position + 32),
        );
        if (reference !== null) {
          this.position += reference[0].length;
          return new PdfRef(number, Number(reference[1]));
        }
      }
      return number;
    }
    if (token === 'true') return true;
    if (token === 'false') return false;
    return null;
  }

  #dict(depth: number): PdfDict {
    const text = this.text;
    this.position += 2;
    const dict: PdfDict = new Map();
    for (;;) {
      this.skipWhitespace();
      if (this.position >= text.length) throw new Error('Unterminated PDF dictionary');
      if (text.startsWith('>>', this.position)) {
        this.position += 2;
        return dict;
      }
      const key = this.value(depth + 1);
      if (!(key instanceof PdfName)) continue;
      dict.set(key.name, this.value(depth + 1));
    }
  }

  #literalString(): PdfString {
    const text = this.text;
    let nesting = 0;
    while (this.position < text.length) {
      const code = text.charCodeAt(this.position++);
      if (code === 92 /* \ */) this.position++;
      else if (code === 40) nesting++;
      else if (code === 41 && --nesting === 0) break;
    }
    return new PdfString();
  }
}

function isDict(value: PdfValue | undefined): value is PdfDict {
  return value instanceof Map;
}

function nameOf(value: PdfValue | undefined): string | null {
  return value instanceof PdfName ? value.name : null;
}

/** Decompresses a FlateDecode stream, tolerating a missing or damaged end as pdf readers do. */
function inflatePdf(data: Uint8Array, maxOutputLength: number): Buffer {
  const options = { finishFlush: constants.Z_SYNC_FLUSH, maxOutputLength: Math.max(1, maxOutputLength) };
  try {
    return inflateSync(data, options);
  } catch (error) {
    if ((error as { code?: unknown }).code === 'ERR_BUFFER_TOO_LARGE') throw error;
    // a wrong zlib header or checksum: the deflate data itself is often fine
    return inflateRawSync(data.subarray(2), options);
  }
}

/** Undoes PNG row predictors (DecodeParms /Predictor ≥ 10). */
function unpredictPng(data: Buffer, columns: number, colors: number, bitsPerComponent: number): Buffer {
  const bytesPerPixel = Math.max(1, Math.ceil((colors * bitsPerComponent) / 8));
  const rowLength = Math.ceil((colors * bitsPerComponent * columns) / 8);
  const rows = Math.floor(data.length / (rowLength + 1));
  const output = Buffer.alloc(rows * rowLength);
  for (let row = 0; row < rows; row++) {
    const filter = data[row * (rowLength + 1)];
    const source = row * (rowLength + 1) + 1;
    const target = row * rowLength;
    for (let index = 0; index < rowLength; index++) {
      const raw = data[source + index] as number;
      const left = index >= bytesPerPixel ? (output[target + index - bytesPerPixel] as number) : 0;
      const up = row > 0 ? (output[target - rowLength + index] as number) : 0;
      const upLeft =
        row > 0 && index >= bytesPerPixel
          ? (output[target - rowLength + index - bytesPerPixel] as number)
          : 0;
      let predicted = 0;
      if (filter === 1) predicted = left;
      else if (filter === 2) predicted = up;
      else if (filter === 3) predicted = (left + up) >> 1;
      else if (filter === 4) {
        const estimate = left + up - upLeft;
        const toLeft = Math.abs(estimate - left);
        const toUp = Math.abs(estimate - up);
        const toUpLeft = Math.abs(estimate - upLeft);
        predicted = toLeft <= toUp && toLeft <= toUpLeft ? left : toUp <= toUpLeft ? up : upLeft;
      }
      output[target + index] = (raw + predicted) & 0xff;
    }
  }
  return output;
}

/** Undoes the TIFF predictor (DecodeParms /Predictor 2) for 8-bit samples; null for other depths. */
function unpredictTiff(
  data: Buffer,
  columns: number,
  colors: number,
  bitsPerComponent: number,
): Buffer | null {
  if (bitsPerComponent !== 8) return null;
  const rowLength = columns * colors;
  const output = Buffer.from(data);
  for (let rowStart = 0; rowStart + rowLength <= output.length; rowStart += rowLength) {
    for (let index = colors; index < rowLength; index++) {
      output[rowStart + index] =
        ((output[rowStart + index] as number) + (output[rowStart + index - colors] as number)) & 0xff;
    }
  }
  return output;
}

/** Samples of 1, 2, 4, 8 or 16 bits as one byte per sample (rows padded to whole bytes, as PDF stores them). */
function toEightBit(data: Buffer, width: number, height: number, channels: number, bits: number): Buffer {
  const samplesPerRow = width * channels;
  const rowBytes = Math.ceil((samplesPerRow * bits) / 8);
  if (bits === 8 && rowBytes === samplesPerRow) return data.subarray(0, samplesPerRow * height);
  const output = Buffer.alloc(samplesPerRow * height);
  const maxSample = 2 ** bits - 1;
  for (let row = 0; row < height; row++) {
    const rowStart = row * rowBytes;
    for (let sample = 0; sample < samplesPerRow; sample++) {
      let value: number;
      if (bits === 16) value = data[rowStart + sample * 2] as number;
      else if (bits === 8) value = data[rowStart + sample] as number;
      else {
        const bitOffset = sample * bits;
        const byte = data[rowStart + (bitOffset >> 3)] as number;
        const sampleValue = (byte >> (8 - bits - (bitOffset & 7))) & maxSample;
        value = Math.round((sampleValue * 255) / maxSample);
      }
      output[row * samplesPerRow + sample] = value;
    }
  }
  return output;
}

/** A budget of decoded bitmap bytes shared by all pictures of one document. */
export interface ByteBudget {
  remaining: number;
}

/** The objects of one PDF file, found by scanning rather than trusting the cross-reference table. */
class PdfObjects {
  readonly #bytes: Buffer;
  readonly #text: string;
  readonly #locations = new Map<number, ObjectLocation>();
  readonly #objectStreams = new Map<number, string | null>();

  constructor(bytes: Buffer) {
    this.#bytes = bytes;
    this.#text = bytes.toString('latin1');
    this.#index();
  }

  #index(): void {
    const text = this.#text;
    const pattern = /(\d+)\s+(\d+)\s+obj\b/g;
    const containers: { num: number; position: number }[] = [];
    for (let match = pattern.exec(text); match !== null; match = pattern.exec(text)) {
      const num = Number(match[1]);
      let object: PdfObject;
      try {
        object = this.#parseObject(match.index + match[0].length);
      } catch {
        continue;
      }
      this.#locations.set(num, { kind: 'file', position: match.index, object });
      if (object.stream !== null) {
        // never look for objects inside stream data
        pattern.lastIndex = Math.max(pattern.lastIndex, object.stream.end);
        if (isDict(object.value) && nameOf(object.value.get('Type')) === 'ObjStm') {
          containers.push({ num, position: match.index });
        }
      }
    }
    for (const container of containers) this.#indexObjectStream(container.num, container.position);
  }

  #indexObjectStream(num: number, position: number): void {
    const content = this.#objectStreamText(num);
    const location = this.#locations.get(num);
    if (content === null || location?.kind !== 'file' || !isDict(location.object.value)) return;
    const count = location.object.value.get('N');
    const first = location.object.value.get('First');
    if (typeof count !== 'number' || typeof first !== 'number') return;
    const lexer = new Lexer(content, 0);
    for (let index = 0; index < count; index++) {
      const objectNumber = lexer.value();
      const offset = lexer.value();
      if (typeof objectNumber !== 'number' || typeof offset !== 'number') return;
      const existing = this.#locations.get(objectNumber);
      if (existing === undefined || existing.position < position) {
        this.#locations.set(objectNumber, {
          kind: 'objstm',
          position,
          container: num,
          offset: first + offset,
        });
      }
    }
  }

  #objectStreamText(num: number): string | null {
    if (this.#objectStreams.has(num)) return this.#objectStreams.get(num) ?? null;
    let content: string | null = null;
    const location = this.#locations.get(num);
    if (location?.kind === 'file' && location.object.stream !== null) {
      try {
        const data = this.decodedStream(location.object, MAX_OBJECT_STREAM_BYTES);
        content = data === null ? null : data.toString('latin1');
      } catch {
        content = null;
      }
    }
    this.#objectStreams.set(num, content);
    return content;
  }

  /** The object value at `start` (just after `n g obj`) and the byte range of its stream data, if any. */
  #parseObject(start: number): PdfObject {
    const text = this.#text;
    const lexer = new Lexer(text, start);
    const value = lexer.value();
    lexer.skipWhitespace();
    if (!isDict(value) || !text.startsWith('stream', lexer.position)) return { value, stream: null };
    let dataStart = lexer.position + 6;
    if (text.charCodeAt(dataStart) === 13) dataStart++;
    if (text.charCodeAt(dataStart) === 10) dataStart++;
    const length = value.get('Length');
    if (typeof length === 'number' && this.#endsStream(dataStart + length)) {
      return { value, stream: { start: dataStart, end: dataStart + length } };
    }
    // an indirect or wrong /Length: the data ends at the end-of-line before `endstream`
    const keyword = text.indexOf('endstream', dataStart);
    let end = keyword < 0 ? text.length : keyword;
    if (text.charCodeAt(end - 1) === 10) end--;
    if (text.charCodeAt(end - 1) === 13) end--;
    return { value, stream: { start: dataStart, end: Math.max(dataStart, end) } };
  }

  #endsStream(position: number): boolean {
    if (position > this.#text.length) return false;
    const lexer = new Lexer(this.#text, position);
    lexer.skipWhitespace();
    return this.#text.startsWith('endstream', lexer.position);
  }

  object(num: number): PdfObject | null {
    const location = this.#locations.get(num);
    if (location === undefined) return null;
    if (location.kind === 'file') return location.object;
    const content = this.#objectStreamText(location.container);
    if (content === null) return null;
    try {
      return { value: new Lexer(content, location.offset).value(), stream: null };
    } catch {
      return null;
    }
  }

  resolve(value: PdfValue | undefined, depth = 0): PdfValue | undefined {
    if (!(value instanceof PdfRef)) return value;
    if (depth > MAX_NESTING) return undefined;
    return this.resolve(this.object(value.num)?.value ?? undefined, depth + 1);
  }

  /** The stored bytes of a stream, with an indirect /Length honoured when it fits. */
  rawStream(object: PdfObject): Buffer {
    const stream = object.stream as { start: number; end: number };
    const length = isDict(object.value) ? object.value.get('Length') : undefined;
    if (length instanceof PdfRef) {
      const resolved = this.resolve(length);
      if (typeof resolved === 'number' && resolved >= 0 && this.#endsStream(stream.start + resolved)) {
        return this.#bytes.subarray(stream.start, stream.start + resolved);
      }
    }
    return this.#bytes.subarray(stream.start, stream.end);
  }

  /** The stream with every filter undone, or null when a filter is not Flate (or unknown). */
  decodedStream(object: PdfObject, maxOutputLength: number, keepLastFilter = false): Buffer | null {
    if (!isDict(object.value)) return null;
    const filters = this.#list(object.value.get('Filter'));
    const parameters = this.#list(object.value.get('DecodeParms'));
    let data = this.rawStream(object);
    const applied = keepLastFilter ? filters.length - 1 : filters.length;
    for (let index = 0; index < applied; index++) {
      const filter = nameOf(filters[index]);
      if (filter !== 'FlateDecode' && filter !== 'Fl') return null;
      data = inflatePdf(data, maxOutputLength);
      const parameter = this.resolve(parameters[index]);
      if (isDict(parameter)) {
        const unpredicted = this.#unpredict(data, parameter);
        if (unpredicted === null) return null;
        data = unpredicted;
      }
    }
    return data;
  }

  #list(value: PdfValue | undefined): PdfValue[] {
    const resolved = this.resolve(value);
    if (resolved === undefined || resolved === null) return [];
    return Array.isArray(resolved) ? resolved.map((item) => this.resolve(item) ?? null) : [resolved];
  }

  #number(dict: PdfDict, key: string, fallback: number): number {
    const value = this.resolve(dict.get(key));
    return typeof value === 'number' ? value : fallback;
  }

  #unpredict(data: Buffer, parameters: PdfDict): Buffer | null {
    const predictor = this.#number(parameters, 'Predictor', 1);
    const colors = this.#number(parameters, 'Colors', 1);
    const bits = this.#number(parameters, 'BitsPerComponent', 8);
    const columns = this.#number(parameters, 'Columns', 1);
    if (predictor >= 10) return unpredictPng(data, columns, colors, bits);
    if (predictor === 2) return unpredictTiff(data, columns, colors, bits);
    return data;
  }

  /** Channels of an image colour space that is plain RGB or gray, else null (CMYK, indexed, separations…). */
  channelsOf(colorSpace: PdfValue | undefined): 1 | 3 | null {
    const resolved = this.resolve(colorSpace);
    const name = nameOf(resolved);
    if (name === 'DeviceRGB' || name === 'RGB' || name === 'CalRGB') return 3;
    if (name === 'DeviceGray' || name === 'G' || name === 'CalGray') return 1;
    if (!Array.isArray(resolved)) return null;
    const family = nameOf(this.resolve(resolved[0]));
    if (family === 'CalRGB') return 3;
    if (family === 'CalGray') return 1;
    if (family === 'ICCBased') {
      const profile = resolved[1] instanceof PdfRef ? this.object(resolved[1].num) : null;
      const components =
        profile !== null && isDict(profile.value) ? this.resolve(profile.value.get('N')) : null;
      if (components === 3) return 3;
      if (components === 1) return 1;
    }
    return null;
  }

  /** Resources of a page, inherited from its ancestors in the page tree when it has none itself. */
  pageResources(objectNumber: number): PdfDict | null {
    let node = this.resolve(new PdfRef(objectNumber, 0));
    for (let depth = 0; depth < MAX_PARENT_DEPTH && isDict(node); depth++) {
      const resources = this.resolve(node.get('Resources'));
      if (isDict(resources)) return resources;
      node = this.resolve(node.get('Parent'));
    }
    return null;
  }

  /** Image XObjects used by `resources`, through nested form XObjects; first use wins. */
  collectImages(
    resources: PdfDict,
    page: number,
    found: Map<number, number>,
    visitedForms: Set<number>,
  ): void {
    const xobjects = this.resolve(resources.get('XObject'));
    if (!isDict(xobjects)) return;
    for (const value of xobjects.values()) {
      if (!(value instanceof PdfRef)) continue;
      const object = this.object(value.num);
      if (object === null || object.stream === null || !isDict(object.value)) continue;
      const subtype = nameOf(this.resolve(object.value.get('Subtype')));
      if (subtype === 'Image') {
        if (!found.has(value.num)) found.set(value.num, page);
      } else if (subtype === 'Form' && !visitedForms.has(value.num)) {
        visitedForms.add(value.num);
        const formResources = this.resolve(object.value.get('Resources'));
        this.collectImages(isDict(formResources) ? formResources : resources, page, found, visitedForms);
      }
    }
  }

  /** One image XObject as an embedded picture, or null when it is not a JPEG or plain RGB/Gray bitmap. */
  async image(num: number, page: number, budget: ByteBudget): Promise<EmbeddedImage | null> {
    const object = this.object(num);
    if (object === null || object.stream === null || !isDict(object.value)) return null;
    const dict = object.value;
    if (this.resolve(dict.get('ImageMask')) === true) return null;
    const filters = this.#list(dict.get('Filter')).map((filter) => nameOf(filter));
    const last = filters.at(-1);
    if (last === 'DCTDecode' || last === 'DCT') {
      // JPEG data is passed on as stored; only a Flate wrapper around it (rare) is inflated, within the budget
      const jpeg = this.decodedStream(object, budget.remaining, true);
      if (jpeg === null || jpeg[0] !== 0xff || jpeg[1] !== 0xd8) return null;
      return {
        bytes: Buffer.from(jpeg),
        mime: 'image/jpeg',
        ext: '.jpg',
        page,
        name: `page-${page}-image-${num}.jpg`,
      };
    }
    if (!filters.every((filter) => filter === 'FlateDecode' || filter === 'Fl')) return null;
    const width = this.#number(dict, 'Width', 0);
    const height = this.#number(dict, 'Height', 0);
    const bits = this.#number(dict, 'BitsPerComponent', 8);
    const channels = this.channelsOf(dict.get('ColorSpace'));
    if (
      channels === null ||
      !Number.isInteger(width) ||
      !Number.isInteger(height) ||
      width < 1 ||
      height < 1
    ) {
      return null;
    }
    if (![1, 2, 4, 8, 16].includes(bits)) return null;
    const storedBytes = Math.ceil((width * channels * bits) / 8) * height;
    const pixelBytes = width * height * channels;
    // a bitmap beyond the budget is left out rather than decoded (bounded memory for picture bombs)
    if (storedBytes + pixelBytes > budget.remaining) return null;
    let data: Buffer | null;
    try {
      // PNG predictors add one byte per row
      data = this.decodedStream(object, storedBytes + height + 16);
    } catch {
      return null;
    }
    if (data === null || data.length < storedBytes) return null;
    budget.remaining -= storedBytes + pixelBytes;
    const pixels = toEightBit(data, width, height, channels, bits);
    const decode = this.#list(dict.get('Decode'));
    if (decode[0] === 1 && decode[1] === 0) {
      // /Decode [1 0 …]: the samples are stored inverted
      const inverted = Buffer.from(pixels);
      for (let index = 0; index < inverted.length; index++)
        inverted[index] = 255 - (inverted[index] as number);
      return this.#png(inverted, width, height, channels, page, num);
    }
    return this.#png(pixels, width, height, channels, page, num);
  }

  async #png(
    pixels: Buffer,
    width: number,
    height: number,
    channels: 1 | 3,
    page: number,
    num: number,
  ): Promise<EmbeddedImage | null> {
    try {
      const image = sharp(pixels, { raw: { width, height, channels }, limitInputPixels: false });
      // without the colour space, sharp would widen gray samples to RGB
      const bytes = await (channels === 1 ? image.toColourspace('b-w') : image).png().toBuffer();
      return { bytes, mime: 'image/png', ext: '.png', page, name: `page-${page}-image-${num}.png` };
    } catch {
      return null;
    }
  }
}

/**
 * Image XObjects of the pages whose object numbers are given (index = page number − 1; null when unknown),
 * each once, on the first page that uses it, in page order.
 */
export async function pdfImages(
  bytes: Buffer,
  pageObjectNumbers: readonly (number | null)[],
  budget: ByteBudget,
): Promise<EmbeddedImage[]> {
  const pdf = new PdfObjects(bytes);
  const found = new Map<number, number>();
  const visitedForms = new Set<number>();
  pageObjectNumbers.forEach((objectNumber, index) => {
    if (objectNumber === null) return;
    const resources = pdf.pageResources(objectNumber);
    if (resources !== null) pdf.collectImages(resources, index + 1, found, visitedForms);
  });
  const images: EmbeddedImage[] = [];
  for (const [num, page] of found) {
    let image: EmbeddedImage | null;
    try {
      image = await pdf.image(num, page, budget);
    } catch {
      // one damaged picture does not cost the document its text or its other pictures
      image = null;
    }
    if (image !== null) images.push(image);
  }
  return images;
}
