// Local embeddings by feature hashing (spec §3.6): no weights, deterministic across runs and machines.
//
// Recipe, for the content terms t1..tn of the text (analysis.ts):
// - features: every term (weight 1.0); every adjacent pair "ti ti+1" joined by one space (0.5); every
//   3-code-point window of "#" + term + "#" for each term occurrence (0.25);
// - a feature's hash is FNV-1a 32-bit over its UTF-8 bytes; features of one kind are counted per hash, and
//   each distinct (kind, hash) adds sign × weight × (1 + ln(tf)) to bucket `hash mod dim`, where the sign is
//   −1 when the hash's top bit is set and +1 otherwise;
// - the vector is L2-normalised (a text without content terms gives the zero vector).
import { contentTerms } from './analysis.js';

const FNV_OFFSET = 0x811c9dc5;
const FNV_PRIME = 0x01000193;
const TERM_WEIGHT = 1;
const BIGRAM_WEIGHT = 0.5;
const TRIGRAM_WEIGHT = 0.25;
const PAD = 35; // '#'
const SPACE = 32;

/** Continues an FNV-1a hash with the UTF-8 bytes of one code point. */
function hashCodePoint(hash: number, codePoint: number): number {
  let h = hash;
  if (codePoint < 0x80) return Math.imul(h ^ codePoint, FNV_PRIME);
  if (codePoint < 0x800) {
    h = Math.imul(h ^ (0xc0 | (codePoint >> 6)), FNV_PRIME);
  } else {
    if (codePoint < 0x10000) {
      h = Math.imul(h ^ (0xe0 | (codePoint >> 12)), FNV_PRIME);
    } else {
      h = Math.imul(h ^ (0xf0 | (codePoint >> 18)), FNV_PRIME);
      h = Math.imul(h ^ (0x80 | ((codePoint >> 12) & 0x3f)), FNV_PRIME);
    }
    h = Math.imul(h ^ (0x80 | ((codePoint >> 6) & 0x3f)), FNV_PRIME);
  }
  return Math.imul(h ^ (0x80 | (codePoint & 0x3f)), FNV_PRIME);
}

/** Continues an FNV-1a hash with the UTF-8 bytes of a string. */
function hashString(hash: number, text: string): number {
  let h = hash;
  for (let index = 0; index < text.length; index++) {
    let code = text.charCodeAt(index);
    if (code >= 0xd800 && code <= 0xdbff && index + 1 < text.length) {
      const low = text.charCodeAt(index + 1);
      if (low >= 0xdc00 && low <= 0xdfff) {
        code = ((code - 0xd800) << 10) + (low - 0xdc00) + 0x10000;
        index++;
      }
    }
    h = hashCodePoint(h, code);
  }
  return h;
}

/** FNV-1a 32-bit hash of the UTF-8 encoding of `text` (unsigned). */
export function fnv1a32(text: string): number {
  return hashString(FNV_OFFSET, text) >>> 0;
}

/**
 * Counts per 32-bit feature hash in an open-addressing table that is reused across calls: embedding a chunk
 * touches hundreds of features, and a Map per call would dominate the cost of indexing a large document.
 */
class HashCounter {
  #keys = new Uint32Array(1024);
  #counts = new Float64Array(1024);
  #stamps = new Uint32Array(1024);
  #stamp = 1;
  #slots: number[] = [];

  reset(): void {
    this.#slots.length = 0;
    this.#stamp++;
    if (this.#stamp === 0xffffffff) {
      this.#stamps.fill(0);
      this.#stamp = 1;
    }
  }

  add(key: number, by: number): void {
    if ((this.#slots.length + 1) * 2 > this.#keys.length) this.#grow();
    const mask = this.#keys.length - 1;
    let slot = (Math.imul(key, 0x9e3779b1) >>> 0) & mask;
    while (this.#stamps[slot] === this.#stamp) {
      if (this.#keys[slot] === key) {
        this.#counts[slot] = (this.#counts[slot] as number) + by;
        return;
      }
      slot = (slot + 1) & mask;
    }
    this.#stamps[slot] = this.#stamp;
    this.#keys[slot] = key;
    this.#counts[slot] = by;
    this.#slots.push(slot);
  }

  /** Adds sign × weight × (1 + ln(tf)) of every counted feature to its bucket. */
  accumulateInto(vector: Float64Array, weight: number): void {
    const dim = vector.length;
    for (const slot of this.#slots) {
      const hash = this.#keys[slot] as number;
      const value = weight * (1 + Math.log(this.#counts[slot] as number));
      const bucket = hash % dim;
      vector[bucket] = (vector[bucket] as number) + (hash >= 0x80000000 ? -value : value);
    }
  }

  #grow(): void {
    const slots = this.#slots.map(
      (slot) => [this.#keys[slot] as number, this.#counts[slot] as number] as const,
    );
    const size = this.#keys.length * 2;
    this.#keys = new Uint32Array(size);
    this.#counts = new Float64Array(size);
    this.#stamps = new Uint32Array(size);
    this.#stamp = 1;
    this.#slots = [];
    for (const [key, count] of slots) this.add(key, count);
  }
}

/** A term's own hash and the hashes of its padded trigrams, cached: vocabularies repeat a lot. */
interface TermFeatures {
  hash: number;
  trigrams: Uint32Array;
}

const featureCache = new Map<string, TermFeatures>();
const FEATURE_CACHE_LIMIT = 100_000;
let paddedCodePoints = new Int32Array(64);

function computeTermFeatures(term: string): TermFeatures {
  const needed = term.length + 2;
  if (paddedCodePoints.length < needed) paddedCodePoints = new Int32Array(needed * 2);
  const codePoints = paddedCodePoints;
  let size = 0;
  codePoints[size++] = PAD;
  for (const character of term) codePoints[size++] = character.codePointAt(0) as number;
  codePoints[size++] = PAD;
  const trigrams = new Uint32Array(Math.max(0, size - 2));
  for (let index = 0; index + 3 <= size; index++) {
    let hash = hashCodePoint(FNV_OFFSET, codePoints[index] as number);
    hash = hashCodePoint(hash, codePoints[index + 1] as number);
    hash = hashCodePoint(hash, codePoints[index + 2] as number);
    trigrams[index] = hash >>> 0;
  }
  return { hash: hashString(FNV_OFFSET, term) >>> 0, trigrams };
}

function termFeatures(term: string): TermFeatures {
  let features = featureCache.get(term);
  if (features === undefined) {
    features = computeTermFeatures(term);
    if (featureCache.size >= FEATURE_CACHE_LIMIT) featureCache.clear();
    featureCache.set(term, features);
  }
  return features;
}

const termCounts = new HashCounter();
const bigramCounts = new HashCounter();
const trigramCounts = new HashCounter();

/** The spec §3.6 local embedding of already analysed content terms. */
export function localEmbeddingOfTerms(terms: readonly string[], dim: number): Float32Array {
  if (!Number.isInteger(dim) || dim < 1) throw new RangeError(`Invalid embedding dimension: ${dim}`);
  termCounts.reset();
  bigramCounts.reset();
  trigramCounts.reset();
  let previousHash = -1;
  for (let index = 0; index < terms.length; index++) {
    const term = terms[index] as string;
    const features = termFeatures(term);
    termCounts.add(features.hash, 1);
    const trigrams = features.trigrams;
    for (let trigram = 0; trigram < trigrams.length; trigram++)
      trigramCounts.add(trigrams[trigram] as number, 1);
    if (previousHash >= 0) {
      // "previous next": the previous term's hash continued with a space and this term
      bigramCounts.add(hashString(hashCodePoint(previousHash, SPACE), term) >>> 0, 1);
    }
    previousHash = features.hash;
  }
  const vector = new Float64Array(dim);
  termCounts.accumulateInto(vector, TERM_WEIGHT);
  bigramCounts.accumulateInto(vector, BIGRAM_WEIGHT);
  trigramCounts.accumulateInto(vector, TRIGRAM_WEIGHT);
  let squares = 0;
  for (let index = 0; index < dim; index++) squares += (vector[index] as number) ** 2;
  const result = new Float32Array(dim);
  if (squares === 0) return result;
  const scale = 1 / Math.sqrt(squares);
  for (let index = 0; index < dim; index++) result[index] = (vector[index] as number) * scale;
  return result;
}

/** The spec §3.6 local embedding of `text`: feature hashing into `dim` dimensions, L2-normalised. */
export function localEmbedding(text: string, dim: number): Float32Array {
  return localEmbeddingOfTerms(contentTerms(text), dim);
}

let pgVectorBuffer = Buffer.allocUnsafe(8192);
const PG_VECTOR_SCALE = 1e8;

/**
 * pgvector text form `[0.1,-0.25,0]`, components rounded to 8 decimals (below float32 resolution for unit
 * vectors). Written byte by byte: formatting numbers one by one is the slowest step of indexing otherwise.
 */
export function toPgVector(vector: Float32Array): string {
  const needed = vector.length * 24 + 2;
  if (pgVectorBuffer.length < needed) pgVectorBuffer = Buffer.allocUnsafe(needed * 2);
  const out = pgVectorBuffer;
  let position = 0;
  out[position++] = 91; // [
  for (let index = 0; index < vector.length; index++) {
    if (index > 0) out[position++] = 44; // ,
    const value = vector[index] as number;
    if (!Number.isFinite(value)) throw new RangeError('Embedding has a non-finite component');
    let scaled = Math.round(Math.abs(value) * PG_VECTOR_SCALE);
    if (scaled === 0) {
      out[position++] = 48;
      continue;
    }
    if (value < 0) out[position++] = 45; // -
    const whole = Math.floor(scaled / PG_VECTOR_SCALE);
    scaled -= whole * PG_VECTOR_SCALE;
    position += out.write(String(whole), position, 'latin1');
    if (scaled > 0) {
      out[position++] = 46; // .
      let digits = 8;
      while (scaled % 10 === 0) {
        scaled /= 10;
        digits--;
      }
      for (let digit = position + digits - 1; digit >= position; digit--) {
        out[digit] = 48 + (scaled % 10);
        scaled = Math.floor(scaled / 10);
      }
      position += digits;
    }
  }
  out[position++] = 93; // ]
  return out.toString('latin1', 0, position);
}
