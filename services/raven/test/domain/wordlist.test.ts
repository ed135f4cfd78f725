import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import {
  isWellFormedKey,
  loadWordlist,
  normalizeKey,
  resolveWordlistPath,
  Wordlist,
  WordlistError,
} from '../../src/domain/wordlist.js';

const PACKAGE_ROOT = fileURLToPath(new URL('../../', import.meta.url));
const LIST_PATH = join(PACKAGE_ROOT, 'data/diceware_words.txt');
const HYPHENATED = ['drop-down', 'felt-tip', 't-shirt', 'yo-yo'];
const scratch = mkdtempSync(join(tmpdir(), 'raven-wordlist-'));
afterAll(() => rmSync(scratch, { recursive: true, force: true }));

const list = loadWordlist(LIST_PATH);

function numbered(words: string[]): string {
  return `# comment\n\n${words.map((w, i) => `${String(i + 10000)}\t${w}`).join('\n')}\n`;
}

function syntheticWords(count: number): string[] {
  return Array.from({ length: count }, (_, i) => `w${i.toString(36)}`);
}

describe('loadWordlist', () => {
  it('loads the shipped EFF list with 7,776 words, including the four hyphenated entries', () => {
    expect(list.size).toBe(7776);
    expect(list.has('abacus')).toBe(true);
    expect(list.has('zoom')).toBe(true);
    for (const word of HYPHENATED) expect(list.has(word)).toBe(true);
    expect(list.has('notaword')).toBe(false);
  });

  it('accepts bare-word lines, blank lines and comments', () => {
    const path = join(scratch, 'bare.txt');
    writeFileSync(path, `# header\n\n${syntheticWords(7776).join('\r\n')}\n\n# trailer\n`);
    expect(loadWordlist(path).size).toBe(7776);
  });

  it('refuses a list with fewer words, naming the count', () => {
    const path = join(scratch, 'short.txt');
    writeFileSync(path, numbered(syntheticWords(7775)));
    expect(() => loadWordlist(path)).toThrow(WordlistError);
    expect(() => loadWordlist(path)).toThrow(/7775 unique words; exactly 7776/);
  });

  it('refuses a list with more words', () => {
    const path = join(scratch, 'long.txt');
    writeFileSync(path, numbered(syntheticWords(7777)));
    expect(() => loadWordlist(path)).toThrow(/7777 unique words/);
  });

  it('counts duplicates once', () => {
    const path = join(scratch, 'dupes.txt');
    const words = syntheticWords(7775);
    writeFileSync(path, numbered([...words, words[0] as string]));
    expect(() => loadWordlist(path)).toThrow(/7775 unique words/);
  });

  it('refuses malformed lines and missing files with a clear message', () => {
    const path = join(scratch, 'bad.txt');
    writeFileSync(path, '11111\tabacus extra\n');
    expect(() => loadWordlist(path)).toThrow(/line 1/);
    expect(() => loadWordlist(join(scratch, 'missing.txt'))).toThrow(/cannot read wordlist .*ENOENT/);
  });
});

describe('resolveWordlistPath', () => {
  it('defaults to the packaged list, also from an unrelated cwd', () => {
    expect(resolveWordlistPath(undefined, scratch)).toBe(LIST_PATH);
    expect(resolveWordlistPath('', scratch)).toBe(LIST_PATH);
  });

  it('prefers a relative path that exists under cwd', () => {
    writeFileSync(join(scratch, 'mine.txt'), 'x');
    expect(resolveWordlistPath('mine.txt', scratch)).toBe(join(scratch, 'mine.txt'));
    expect(resolveWordlistPath('data/diceware_words.txt', scratch)).toBe(LIST_PATH);
    mkdirSync(join(scratch, 'data'));
    writeFileSync(join(scratch, 'data/diceware_words.txt'), 'x');
    expect(resolveWordlistPath('data/diceware_words.txt', scratch)).toBe(
      join(scratch, 'data/diceware_words.txt'),
    );
  });

  it('keeps absolute paths and reports unresolvable relative ones against cwd', () => {
    expect(resolveWordlistPath('/etc/words.txt', scratch)).toBe('/etc/words.txt');
    expect(resolveWordlistPath('nope.txt', scratch)).toBe(resolve(scratch, 'nope.txt'));
  });
});

describe('normalizeKey', () => {
  it.each([
    ['apple-banana-cherry', 'apple-banana-cherry'],
    ['Apple Banana Cherry', 'apple-banana-cherry'],
    ['APPLE_banana.cherry', 'apple-banana-cherry'],
    ['%41pple-banana-cherry', 'apple-banana-cherry'],
    ['apple%20banana%2Bcherry', 'apple-banana-cherry'],
    ['  apple+banana\t\ncherry  ', 'apple-banana-cherry'],
    ['--apple__-..banana++  cherry-', 'apple-banana-cherry'],
    ['apple-banana-cherry%', 'apple-banana-cherry%'],
    ['%E0%A4%A-apple', '%e0%a4%a-apple'],
  ])('%j → %j', (raw, normalized) => {
    expect(normalizeKey(raw)).toBe(normalized);
  });
});

describe('isWellFormedKey', () => {
  it('accepts 3–10 list words', () => {
    expect(isWellFormedKey('abacus-abdomen-abide', list)).toBe(true);
    expect(isWellFormedKey(Array(10).fill('zoom').join('-'), list)).toBe(true);
  });

  it.each([
    ['', 'empty'],
    ['abacus-abdomen', 'two words'],
    [Array(11).fill('zoom').join('-'), 'eleven words'],
    ['abacus-abdomen-notaword', 'unknown word'],
    ['abacus-abdomen-Abide', 'not normalized'],
    ['abacus-abdomen-abide-', 'trailing separator'],
    [normalizeKey('../../etc/passwd'), 'path traversal'],
    [normalizeKey('abacus-abdomen-%00abide'), 'NUL byte'],
    [normalizeKey('abacus\u0007abdomen-abide'), 'control character'],
    ['abacus-'.repeat(2000), 'huge input'],
  ])('rejects %j (%s)', (key) => {
    expect(isWellFormedKey(key, list)).toBe(false);
  });

  it('rejects keys longer than 200 characters even when every part is a word', () => {
    const long = new Wordlist(['a'.repeat(30), 'b'.repeat(30), 'c'.repeat(30)]);
    const key = Array(7).fill('a'.repeat(30)).join('-');
    expect(key.length).toBeGreaterThan(200);
    expect(isWellFormedKey(key, long)).toBe(false);
    expect(isWellFormedKey(Array(6).fill('a'.repeat(30)).join('-'), long)).toBe(true);
  });
});

describe('Wordlist.generateKey', () => {
  it('generates well-formed keys of the requested length from non-hyphenated words', () => {
    const seen = new Set<string>();
    for (let i = 0; i < 20_000; i++) {
      const key = list.generateKey(3);
      const parts = key.split('-');
      expect(parts).toHaveLength(3);
      for (const part of parts) seen.add(part);
      expect(isWellFormedKey(normalizeKey(key), list)).toBe(true);
    }
    // 60,000 draws over 7,772 words: a fixed or tiny subset would show up here.
    expect(seen.size).toBeGreaterThan(7000);
    for (const word of HYPHENATED) expect(seen.has(word)).toBe(false);
  });

  it('never picks a hyphenated entry even when those are most of the list', () => {
    const small = new Wordlist([...HYPHENATED, 'alpha']);
    for (let i = 0; i < 500; i++) expect(small.generateKey(10)).toBe(Array(10).fill('alpha').join('-'));
  });

  it('honours the word count and rejects counts outside 3–10', () => {
    expect(list.generateKey(10).split('-')).toHaveLength(10);
    expect(() => list.generateKey(2)).toThrow(RangeError);
    expect(() => list.generateKey(11)).toThrow(RangeError);
    expect(() => list.generateKey(3.5)).toThrow(RangeError);
  });
});
