import { randomInt } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { isAbsolute, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

/** Number of unique entries in the EFF large wordlist; any other count refuses to start. */
export const WORDLIST_SIZE = 7776;
export const DEFAULT_WORDLIST_PATH = 'data/diceware_words.txt';
export const MIN_KEY_WORDS = 3;
export const MAX_KEY_WORDS = 10;
export const MAX_KEY_LENGTH = 200;

/** The wordlist file is missing, unreadable or does not hold exactly 7,776 unique words. */
export class WordlistError extends Error {
  override name = 'WordlistError';
}

const SEPARATORS = /[-_.+\s]+/;
const ENTRY_LINE = /^(?:\d+\s+)?(\S+)$/;

/** The passphrase vocabulary: membership checks for received keys and CSPRNG generation of new ones. */
export class Wordlist {
  readonly size: number;
  private readonly words: ReadonlySet<string>;
  // Entries containing a separator (drop-down, t-shirt, ...) would split into other parts on normalization.
  private readonly generable: readonly string[];

  constructor(words: Iterable<string>) {
    this.words = new Set(words);
    this.size = this.words.size;
    this.generable = [...this.words].filter((word) => !SEPARATORS.test(word));
    if (this.generable.length === 0) throw new WordlistError('wordlist has no entries usable in keys');
  }

  has(word: string): boolean {
    return this.words.has(word);
  }

  /** A new key of `words` list words chosen with crypto.randomInt, joined by `-`. */
  generateKey(words: number): string {
    if (!Number.isInteger(words) || words < MIN_KEY_WORDS || words > MAX_KEY_WORDS) {
      throw new RangeError(`key word count must be an integer from ${MIN_KEY_WORDS} to ${MAX_KEY_WORDS}`);
    }
    const parts: string[] = [];
    for (let i = 0; i < words; i++) {
      parts.push(this.generable[randomInt(this.generable.length)] as string);
    }
    return parts.join('-');
  }
}

/** Parses a wordlist file: `NNNNN<TAB>word` or `word` lines, blank lines and `#` comments ignored. */
export function loadWordlist(path: string): Wordlist {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    const reason = (err as NodeJS.ErrnoException).code ?? String(err);
    throw new WordlistError(`cannot read wordlist ${path}: ${reason}`);
  }
  const words = new Set<string>();
  const lines = text.split(/\r?\n/);
  for (let i = 0; i < lines.length; i++) {
    const line = (lines[i] as string).trim();
    if (line === '' || line.startsWith('#')) continue;
    const match = ENTRY_LINE.exec(line);
    if (!match) {
      throw new WordlistError(`wordlist ${path} line ${i + 1}: expected "NNNNN<TAB>word" or "word"`);
    }
    words.add((match[1] as string).toLowerCase());
  }
  if (words.size !== WORDLIST_SIZE) {
    throw new WordlistError(
      `wordlist ${path} has ${words.size} unique words; exactly ${WORDLIST_SIZE} are required (EFF large wordlist)`,
    );
  }
  return new Wordlist(words);
}

// services/raven/ both from src/domain (tests) and dist/domain (built bin).
const PACKAGE_ROOT = fileURLToPath(new URL('../../', import.meta.url));

/** Absolute path of the wordlist: a relative path is tried against `cwd` first, then the package root. */
export function resolveWordlistPath(configured: string | undefined, cwd: string): string {
  const wanted = configured === undefined || configured.trim() === '' ? DEFAULT_WORDLIST_PATH : configured;
  if (isAbsolute(wanted)) return wanted;
  const fromCwd = resolve(cwd, wanted);
  if (existsSync(fromCwd)) return fromCwd;
  const fromPackage = resolve(PACKAGE_ROOT, wanted);
  return existsSync(fromPackage) ? fromPackage : fromCwd;
}

/** URL-decodes (bad escapes keep the raw text), trims, lower-cases and re-joins the parts with `-`. */
export function normalizeKey(raw: string): string {
  let decoded = raw;
  try {
    decoded = decodeURIComponent(raw);
  } catch {
    decoded = raw;
  }
  return decoded
    .trim()
    .toLowerCase()
    .split(SEPARATORS)
    .filter((part) => part !== '')
    .join('-');
}

/** 3–10 parts, each a list word, at most 200 characters. Cheap: no KDF work for anything else. */
export function isWellFormedKey(normalized: string, wordlist: Wordlist): boolean {
  if (normalized.length === 0 || normalized.length > MAX_KEY_LENGTH) return false;
  const parts = normalized.split('-');
  if (parts.length < MIN_KEY_WORDS || parts.length > MAX_KEY_WORDS) return false;
  return parts.every((part) => wordlist.has(part));
}
