// The offline chunk embedder `builtin-hash-v1` (spec §3.7): feature hashing over the search tokens of §3.9.2
// and their adjacent bigrams. No weights to load, and identical vectors on every machine and run.
import { tokenize } from '../tokens.js';

export const BUILTIN_TEXT_MODEL = 'builtin-hash-v1';
export const TEXT_DIMENSION = 768;

const FNV_OFFSET_BASIS = 0x811c9dc5;
const FNV_PRIME = 0x01000193;
const SIGN_BIT = 0x80000000;
const utf8 = new TextEncoder();

/** FNV-1a 32-bit over the UTF-8 bytes of `text`, as an unsigned integer. */
export function fnv1a32(text: string): number {
  let hash = FNV_OFFSET_BASIS;
  for (const byte of utf8.encode(text)) hash = Math.imul(hash ^ byte, FNV_PRIME);
  return hash >>> 0;
}

/** §3.7 builtin-hash-v1: tokens + adjacent bigrams, FNV-1a 32-bit → index mod 768, sign from bit 31, weight 1+ln(tf), L2. */
export function embedTextHashed(text: string): Float32Array {
  const tokens = tokenize(text);
  const termFrequencies = new Map<string, number>();
  const count = (feature: string) => termFrequencies.set(feature, (termFrequencies.get(feature) ?? 0) + 1);
  for (let index = 0; index < tokens.length; index++) {
    count(tokens[index] as string);
    // tokens never contain a space, so "a b" cannot collide with a single token
    if (index > 0) count(`${tokens[index - 1]} ${tokens[index]}`);
  }
  const sums = new Float64Array(TEXT_DIMENSION);
  for (const [feature, frequency] of termFrequencies) {
    const hash = fnv1a32(feature);
    const sign = (hash & SIGN_BIT) !== 0 ? -1 : 1;
    const index = hash % TEXT_DIMENSION;
    sums[index] = (sums[index] as number) + sign * (1 + Math.log(frequency));
  }
  let squares = 0;
  for (const value of sums) squares += value * value;
  const vector = new Float32Array(TEXT_DIMENSION);
  // a text without tokens (or whose features cancel out) has no direction: the zero vector
  if (squares === 0) return vector;
  const norm = Math.sqrt(squares);
  for (let index = 0; index < TEXT_DIMENSION; index++) vector[index] = (sums[index] as number) / norm;
  return vector;
}
