// The VLM circuit breaker (spec §3.6.7: opens after 5 consecutive failures for 60 s).
import { describe, expect, it } from 'vitest';
import { CircuitBreaker } from '../../src/domain/labels/circuit-breaker.js';

function breakerWithClock(failureThreshold = 5, openMs = 60_000) {
  const clock = { now: 1_000_000 };
  const breaker = new CircuitBreaker({ failureThreshold, openMs, now: () => clock.now });
  return { breaker, clock };
}

describe('CircuitBreaker', () => {
  it('stays closed below the threshold and opens at the 5th consecutive failure', () => {
    const { breaker } = breakerWithClock();
    for (let failure = 1; failure <= 4; failure += 1) {
      breaker.recordFailure();
      expect(breaker.state).toBe('closed');
      expect(breaker.allowRequest()).toBe(true);
    }
    breaker.recordFailure();
    expect(breaker.state).toBe('open');
    expect(breaker.allowRequest()).toBe(false);
  });

  it('counts only consecutive failures: a success resets the count', () => {
    const { breaker } = breakerWithClock();
    for (let failure = 0; failure < 4; failure += 1) breaker.recordFailure();
    breaker.recordSuccess();
    for (let failure = 0; failure < 4; failure += 1) breaker.recordFailure();
    expect(breaker.state).toBe('closed');
    breaker.recordFailure();
    expect(breaker.state).toBe('open');
  });

  it('turns half-open after openMs and lets exactly one trial through', () => {
    const { breaker, clock } = breakerWithClock();
    for (let failure = 0; failure < 5; failure += 1) breaker.recordFailure();
    clock.now += 59_999;
    expect(breaker.state).toBe('open');
    expect(breaker.allowRequest()).toBe(false);
    clock.now += 1;
    expect(breaker.state).toBe('half_open');
    expect(breaker.allowRequest()).toBe(true);
    expect(breaker.allowRequest()).toBe(false);
    breaker.recordSuccess();
    expect(breaker.state).toBe('closed');
    expect(breaker.allowRequest()).toBe(true);
  });

  it('re-opens for another openMs when the half-open trial fails', () => {
    const { breaker, clock } = breakerWithClock();
    for (let failure = 0; failure < 5; failure += 1) breaker.recordFailure();
    clock.now += 60_000;
    expect(breaker.allowRequest()).toBe(true);
    breaker.recordFailure();
    expect(breaker.state).toBe('open');
    clock.now += 59_999;
    expect(breaker.allowRequest()).toBe(false);
    clock.now += 1;
    expect(breaker.state).toBe('half_open');
    expect(breaker.allowRequest()).toBe(true);
  });

  it('hands out a new trial when the previous one never reported back within openMs', () => {
    const { breaker, clock } = breakerWithClock(1, 1000);
    breaker.recordFailure();
    clock.now += 1000;
    expect(breaker.allowRequest()).toBe(true);
    clock.now += 999;
    expect(breaker.allowRequest()).toBe(false);
    clock.now += 1;
    expect(breaker.allowRequest()).toBe(true);
  });

  it('rejects nonsensical options', () => {
    expect(() => new CircuitBreaker({ failureThreshold: 0, openMs: 1000 })).toThrow(RangeError);
    expect(() => new CircuitBreaker({ failureThreshold: 2.5, openMs: 1000 })).toThrow(RangeError);
    expect(() => new CircuitBreaker({ failureThreshold: 5, openMs: -1 })).toThrow(RangeError);
  });
});
