import { describe, expect, it } from 'vitest';
import { clientIp, constantTimeEqual, newRequestId, trustedProxyList } from '../src/security.js';

describe('security', () => {
  it('compares secrets of any length', () => {
    expect(constantTimeEqual('abc', 'abc')).toBe(true);
    expect(constantTimeEqual('abc', 'abcd')).toBe(false);
  });

  it('makes 32-char lowercase hex request ids', () => {
    expect(newRequestId()).toMatch(/^[0-9a-f]{32}$/);
    expect(newRequestId()).not.toBe(newRequestId());
  });

  it('believes X-Forwarded-For only from trusted proxies', () => {
    const trusted = trustedProxyList(['10.0.0.0/8', '127.0.0.1']);
    expect(clientIp('203.0.113.9', '1.2.3.4', trusted)).toBe('203.0.113.9');
    expect(clientIp('127.0.0.1', '1.2.3.4', trusted)).toBe('1.2.3.4');
    expect(clientIp('::ffff:127.0.0.1', '1.2.3.4, 10.1.1.1', trusted)).toBe('1.2.3.4');
    expect(clientIp('127.0.0.1', '1.2.3.4', null)).toBe('127.0.0.1');
  });
});
