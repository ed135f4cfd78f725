import { describe, expect, it } from 'vitest';
import {
  basicAuthMatches,
  bearerMatches,
  parseBasicAuthHeader,
  parseBasicCredentials,
  parseBearerToken,
} from '../src/auth.js';

const basic = (text: string) => `Basic ${Buffer.from(text).toString('base64')}`;

describe('auth', () => {
  it('parses configured credentials at the first colon and refuses empty sides', () => {
    expect(parseBasicCredentials('u:p:q')).toEqual({ user: 'u', password: 'p:q' });
    expect(parseBasicCredentials('nocolon')).toBeNull();
    expect(parseBasicCredentials(':p')).toBeNull();
    expect(parseBasicCredentials('u:')).toBeNull();
  });

  it('matches basic headers case-insensitively on the scheme, with colons in the password', () => {
    const expected = { user: 'docops', password: 'a:b' };
    expect(basicAuthMatches(basic('docops:a:b'), expected)).toBe(true);
    expect(basicAuthMatches(`basic ${Buffer.from('docops:a:b').toString('base64')}`, expected)).toBe(true);
    expect(basicAuthMatches(basic('docops:wrong'), expected)).toBe(false);
    expect(basicAuthMatches(undefined, expected)).toBe(false);
    expect(basicAuthMatches('Basic !!!notbase64', expected)).toBe(false);
    expect(parseBasicAuthHeader(basic('nocolon'))).toBeNull();
  });

  it('reads and matches bearer tokens', () => {
    expect(parseBearerToken('Bearer abc')).toBe('abc');
    expect(parseBearerToken('bearer abc')).toBe('abc');
    expect(parseBearerToken('Basic abc')).toBeNull();
    expect(bearerMatches('Bearer s3cret', 's3cret')).toBe(true);
    expect(bearerMatches('Bearer nope', 's3cret')).toBe(false);
  });
});
