import { Writable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { createLogger, namedLogger } from '../src/log.js';

function capture() {
  const lines: Record<string, unknown>[] = [];
  const destination = new Writable({
    write(chunk, _encoding, callback) {
      for (const line of String(chunk).split('\n').filter(Boolean)) lines.push(JSON.parse(line));
      callback();
    },
  });
  return { lines, destination };
}

describe('log', () => {
  it('writes level labels, ISO time, logger and msg; named children replace the logger name', () => {
    const { lines, destination } = capture();
    const root = createLogger({ name: 'svc', destination });
    root.info({ a: 1 }, 'hello');
    namedLogger(root, 'svc.api', { request_id: 'r1' }).child({ b: 2 }).warn('careful');
    expect(lines[0]).toMatchObject({ level: 'info', logger: 'svc', a: 1, msg: 'hello' });
    expect(String(lines[0]?.time)).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
    expect(lines[1]).toMatchObject({
      level: 'warn',
      logger: 'svc.api',
      request_id: 'r1',
      b: 2,
      msg: 'careful',
    });
  });

  it('redacts secrets', () => {
    const { lines, destination } = capture();
    const root = createLogger({ name: 'svc', destination, redact: ['detail.secret_value'] });
    root.info(
      { authorization: 'Basic abc', headers: { authorization: 'x' }, detail: { secret_value: 'y' } },
      'm',
    );
    const text = JSON.stringify(lines[0]);
    expect(text).not.toContain('Basic abc');
    expect(text).not.toContain('"y"');
  });
});
