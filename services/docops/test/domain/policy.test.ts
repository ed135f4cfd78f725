import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { defaultPolicy, loadPolicyFile, PolicyError, parsePolicy } from '../../src/domain/policy.js';

let dir: string;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'docops-policy-'));
});

afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

const DEFAULTS = {
  forbid_tables: true,
  forbid_numpr: true,
  numpr_direct_only: true,
  run_font_latin: 'Calibri',
  run_font_east_asia: '宋体',
  run_size_pt: 12,
  line_spacing_twips: 360,
  first_line_indent_twips: 420,
  twips_tolerance: 20,
  treat_inherited_as_error: false,
  trim_leading_spaces: true,
  trim_chars: [' ', '\t', '\u3000'],
};

function policyError(text: string): PolicyError {
  try {
    parsePolicy(text);
  } catch (error) {
    if (error instanceof PolicyError) return error;
    throw error;
  }
  throw new Error('expected a PolicyError');
}

describe('policy loader (case 39)', () => {
  it('loads the default', () => {
    expect(defaultPolicy()).toEqual(DEFAULTS);
    // callers get copies
    defaultPolicy().trim_chars.push('x');
    expect(defaultPolicy().trim_chars).toHaveLength(3);
  });

  it('loads the default from the compiled module too (bins run dist/)', async () => {
    const compiled = new URL('../../dist/domain/policy.js', import.meta.url);
    const module = (await import(
      pathToFileURL(compiled.pathname).href
    )) as typeof import('../../src/domain/policy.js');
    expect(module.defaultPolicy()).toEqual(DEFAULTS);
  });

  it('merges a partial policy onto the defaults', () => {
    expect(parsePolicy('forbid_tables: false\nfirst_line_indent_twips: null\n')).toEqual({
      ...DEFAULTS,
      forbid_tables: false,
      first_line_indent_twips: null,
    });
    expect(parsePolicy('')).toEqual(DEFAULTS);
    expect(parsePolicy('# only a comment\n')).toEqual(DEFAULTS);
  });

  it('resolves BUSINESS_DEFAULT_* font tokens', () => {
    const policy = parsePolicy(
      'run_font_latin: BUSINESS_DEFAULT_LATIN\nrun_font_east_asia: BUSINESS_DEFAULT_EAST_ASIA\n',
    );
    expect(policy.run_font_latin).toBe('Calibri');
    expect(policy.run_font_east_asia).toBe('宋体');
    expect(parsePolicy('run_font_latin: Arial').run_font_latin).toBe('Arial');
  });

  it('refuses an unknown BUSINESS_DEFAULT_ token', () => {
    const error = policyError('run_font_latin: BUSINESS_DEFAULT_X\n');
    expect(error.key).toBe('run_font_latin');
    expect(error.message).toContain('BUSINESS_DEFAULT_X');
  });

  it('refuses an unknown key naming it', () => {
    const error = policyError('forbid_tables: true\nfont_colour: red\n');
    expect(error.message).toContain('font_colour');
    expect(error.key).toBe('font_colour');
  });

  it.each([
    ['forbid_tables: yes', 'forbid_tables'],
    ['run_size_pt: 12.5', 'run_size_pt'],
    ['run_size_pt: "12"', 'run_size_pt'],
    ['line_spacing_twips: null', 'line_spacing_twips'],
    ['twips_tolerance: -1', 'twips_tolerance'],
    ['first_line_indent_twips: abc', 'first_line_indent_twips'],
    ['trim_chars: ["  "]', 'trim_chars'],
    ['trim_chars: " "', 'trim_chars'],
    ['run_font_east_asia: ""', 'run_font_east_asia'],
  ])('refuses a wrong type: %s', (text, key) => {
    expect(policyError(text).message).toContain(key);
  });

  it('refuses non-mappings and syntax errors naming the line', () => {
    expect(policyError('- a\n- b\n').message).toContain('mapping');
    expect(policyError('42').message).toContain('mapping');
    expect(policyError('forbid_tables: true\ntrim_chars: [" "\n').message).toMatch(/line \d+/);
    expect(policyError('a: 1\na: 2\n').message).toMatch(/line 2: duplicate key/);
  });

  it('refuses custom tags, too many aliases and texts over 64 KiB', () => {
    expect(policyError('forbid_tables: !evil true\n').message).toContain('!evil');
    expect(policyError('trim_chars: !!binary aGk=\n').message).toContain('not allowed');
    const anchors = Array.from({ length: 10 }, (_, i) => `a${i}: &x${i} [1]`).join('\n');
    const aliases = Array.from({ length: 101 }, (_, i) => `b${i}: *x${i % 10}`).join('\n');
    expect(policyError(`${anchors}\n${aliases}\n`).message).toContain('aliases');
    // a billion-laughs document fails on aliases, not memory
    const laughs = ['l0: &l0 [x, x, x, x, x, x, x, x, x]'];
    for (let i = 1; i < 9; i++)
      laughs.push(
        `l${i}: &l${i} [${Array(9)
          .fill(`*l${i - 1}`)
          .join(', ')}]`,
      );
    expect(() => parsePolicy(laughs.join('\n'))).toThrow(PolicyError);
    expect(policyError(`forbid_tables: true\n${'#'.repeat(70 * 1024)}\n`).message).toContain('65536');
  });

  it('never names a path; loadPolicyFile reads files and reports without the path', async () => {
    const path = join(dir, 'p.yaml');
    await writeFile(path, 'twips_tolerance: 40\n');
    expect((await loadPolicyFile(path)).twips_tolerance).toBe(40);
    await writeFile(path, 'bogus: 1\n');
    await expect(loadPolicyFile(path)).rejects.toThrow(/bogus/);
    await expect(loadPolicyFile(path)).rejects.not.toThrow(dir);
    await expect(loadPolicyFile(join(dir, 'missing.yaml'))).rejects.toThrow(/ENOENT/);
  });
});
