import { describe, expect, it } from 'vitest';
import { canonicalJson, sha256Hex } from '../../src/domain/json/canonical.js';

describe('canonicalJson', () => {
  it('sorts keys at every level and writes no whitespace', () => {
    const value = { b: 1, a: { d: [3, { z: true, y: null }], c: 'x' } };
    expect(canonicalJson(value)).toBe('{"a":{"c":"x","d":[3,{"y":null,"z":true}]},"b":1}');
  });

  it('orders keys by UTF-16 code units, not by code points or locale', () => {
    // U+1F600 is stored as the surrogates D83D DE00, so it sorts before U+FFFF; uppercase before lowercase.
    const value = { '\uFFFF': 1, '😀': 2, a: 3, Z: 4, é: 5 };
    expect(canonicalJson(value)).toBe('{"Z":4,"a":3,"é":5,"😀":2,"\uFFFF":1}');
  });

  it('leaves non-ASCII unescaped and escapes what JSON requires', () => {
    expect(canonicalJson({ name: 'Zoë "q" \\ \n 東京' })).toBe('{"name":"Zoë \\"q\\" \\\\ \\n 東京"}');
  });

  it('prints numbers as JavaScript does', () => {
    expect(canonicalJson([1.0, 0.1, -0, 1e21, 1.5e-7, 123456789012345680000])).toBe(
      '[1,0.1,0,1e+21,1.5e-7,123456789012345680000]',
    );
  });

  it('keeps array order and drops undefined members like JSON.stringify', () => {
    expect(canonicalJson({ b: undefined, a: [3, 1, 2] })).toBe('{"a":[3,1,2]}');
    expect(canonicalJson([undefined])).toBe('[null]');
    expect(() => canonicalJson(undefined)).toThrow(TypeError);
  });

  it('gives equal text for documents differing only in key order', () => {
    expect(canonicalJson({ x: 1, y: { b: 2, a: 1 } })).toBe(canonicalJson({ y: { a: 1, b: 2 }, x: 1 }));
  });
});

describe('sha256Hex', () => {
  it('hashes the UTF-8 bytes', () => {
    expect(sha256Hex('abc')).toBe('ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad');
    expect(sha256Hex('é')).toBe('4a99557e4033c3539de2eb65472017cad5f9557f7a0625a09f1c3f6e2ba69c4c');
  });

  it('hashes the canonical structure of the specification example', () => {
    expect(canonicalJson({ name: 'string', age: 'integer' })).toBe('{"age":"integer","name":"string"}');
    expect(sha256Hex('{"age":"integer","name":"string"}')).toBe(
      '4b05bfed633ceb1b4a4d9147ffeab6a76afe99e6338cff3ef54b60d5da863600',
    );
  });
});
