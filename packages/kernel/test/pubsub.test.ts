import { spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createLogger } from '../src/log.js';
import { createRedisPubSub, MemoryPubSub, type PubSub, pubSubReconnectDelayMs } from '../src/pubsub.js';
import { connectRedis, type Redis, waitForRedis } from '../src/redis.js';
import { testRedisUrl } from '../src/testing.js';

const redisUrl = await testRedisUrl();

/** Resolves with the first `count` messages `pubsub` receives on `channel` (rejects after `timeoutMs`). */
async function collect(pubsub: PubSub, channel: string, count: number, timeoutMs = 3000): Promise<string[]> {
  const received: string[] = [];
  let done: (messages: string[]) => void = () => {};
  const finished = new Promise<string[]>((resolve) => {
    done = resolve;
  });
  await pubsub.subscribe(channel, (message) => {
    received.push(message);
    if (received.length === count) done(received);
  });
  return Promise.race([
    finished,
    new Promise<string[]>((_, reject) =>
      setTimeout(
        () => reject(new Error(`received ${JSON.stringify(received)} of ${count}`)),
        timeoutMs,
      ).unref(),
    ),
  ]);
}

async function until(condition: () => boolean, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

function capturingLogger() {
  const lines: Array<Record<string, unknown>> = [];
  const logger = createLogger({
    name: 'test',
    level: 'debug',
    destination: { write: (line: string) => lines.push(JSON.parse(line) as Record<string, unknown>) },
  });
  return { logger, lines };
}

describe('MemoryPubSub', () => {
  it('delivers between instances of one hub, the publisher included, and not across hubs', async () => {
    const hub = MemoryPubSub.hub();
    const a = new MemoryPubSub(hub);
    const b = new MemoryPubSub(hub);
    const elsewhere = new MemoryPubSub();
    const atB = collect(b, 'readings', 2);
    const atA = collect(a, 'readings', 2);
    const lost: string[] = [];
    await elsewhere.subscribe('readings', (message) => lost.push(message));
    await a.publish('readings', 'one');
    await b.publish('readings', 'two');
    await a.publish('other-channel', 'ignored');
    expect(await atB).toEqual(['one', 'two']);
    expect(await atA).toEqual(['one', 'two']);
    await new Promise((resolve) => setImmediate(resolve));
    expect(lost).toEqual([]);
    expect(a.connected).toBe(true);
  });

  it('delivers after publish returns, like a broker, to every handler of the channel', async () => {
    const pubsub = new MemoryPubSub();
    const seen: string[] = [];
    await pubsub.subscribe('c', (message) => seen.push(`first ${message}`));
    await pubsub.subscribe('c', (message) => seen.push(`second ${message}`));
    await pubsub.publish('c', 'm');
    expect(seen).toEqual([]);
    await new Promise((resolve) => setImmediate(resolve));
    expect(seen).toEqual(['first m', 'second m']);
  });

  it('logs a failing handler and keeps delivering to the others', async () => {
    const { logger, lines } = capturingLogger();
    const pubsub = new MemoryPubSub(MemoryPubSub.hub(), { logger });
    await pubsub.subscribe('c', () => {
      throw new Error('handler broke');
    });
    const received = collect(pubsub, 'c', 2);
    await pubsub.publish('c', '1');
    await pubsub.publish('c', '2');
    expect(await received).toEqual(['1', '2']);
    const failures = lines.filter((line) => line.msg === 'pub/sub message handler failed');
    expect(failures).toHaveLength(2);
    expect(failures[0]).toMatchObject({ level: 'error', channel: 'c', err: { message: 'handler broke' } });
  });

  it('stops delivering to a closed instance and rejects its publishes', async () => {
    const hub = MemoryPubSub.hub();
    const open = new MemoryPubSub(hub);
    const closed = new MemoryPubSub(hub);
    const seen: string[] = [];
    await closed.subscribe('c', (message) => seen.push(message));
    await closed.close();
    await expect(closed.publish('c', 'x')).rejects.toThrow('pub/sub is closed');
    await expect(closed.subscribe('c', () => {})).rejects.toThrow('pub/sub is closed');
    await open.publish('c', 'after close');
    await new Promise((resolve) => setImmediate(resolve));
    expect(seen).toEqual([]);
  });
});

describe('pubSubReconnectDelayMs', () => {
  it('starts at 0.1 s, doubles, and stays at 5 s', () => {
    expect([1, 2, 3, 4, 5, 6, 7, 8, 50].map(pubSubReconnectDelayMs)).toEqual([
      100, 200, 400, 800, 1600, 3200, 5000, 5000, 5000,
    ]);
  });
});

describe('Redis pub/sub without a server', () => {
  it('is down, and rejects a publish at once instead of queueing it', async () => {
    const pubsub = createRedisPubSub('redis://127.0.0.1:1/0');
    try {
      await pubsub.subscribe('c', () => {}); // registered for when the server comes
      const started = Date.now();
      await expect(pubsub.publish('c', 'lost')).rejects.toThrow();
      expect(Date.now() - started).toBeLessThan(500);
      expect(pubsub.connected).toBe(false);
    } finally {
      await pubsub.close();
    }
  });
});

describe.skipIf(!redisUrl)('Redis pub/sub', () => {
  const url = redisUrl ?? '';
  let admin: Redis;
  const opened: PubSub[] = [];

  function open(name: string): PubSub {
    const pubsub = createRedisPubSub(url, { name });
    opened.push(pubsub);
    return pubsub;
  }

  beforeAll(async () => {
    admin = connectRedis(url, { commandTimeoutMs: 2000, name: 'pubsub-test-admin' });
    await waitForRedis(admin, 3000);
  });

  afterAll(async () => {
    await Promise.all(opened.map((pubsub) => pubsub.close()));
    admin?.disconnect();
  });

  /** Kills the connection named `name` (and only it: other test files share the server). */
  async function killConnection(name: string): Promise<void> {
    const list = (await admin.call('CLIENT', 'LIST')) as string;
    const line = list.split('\n').find((entry) => entry.includes(` name=${name} `));
    const id = line === undefined ? undefined : /\bid=(\d+)/.exec(line)?.[1];
    if (id === undefined) throw new Error(`no connection named ${name}`);
    await admin.call('CLIENT', 'KILL', 'ID', id);
  }

  it('exchanges messages between two instances, each once', async () => {
    const channel = `test:${randomUUID()}`;
    const a = open(`a-${randomUUID()}`);
    const b = open(`b-${randomUUID()}`);
    const atB = collect(b, channel, 2);
    const atA = collect(a, channel, 2);
    await until(() => a.connected && b.connected);
    await a.publish(channel, 'from a');
    await b.publish(channel, 'from b');
    expect(await atB).toEqual(['from a', 'from b']);
    expect(await atA).toEqual(['from a', 'from b']);
  });

  it('goes down and up when the subscriber connection is killed, re-subscribes, and delivers again', async () => {
    const channel = `test:${randomUUID()}`;
    const name = `killed-${randomUUID()}`;
    const subscriber = open(name);
    const publisher = open(`publisher-${randomUUID()}`);
    const statuses: boolean[] = [];
    const received: string[] = [];
    await until(() => subscriber.connected && publisher.connected);
    await subscriber.subscribe(channel, (message) => received.push(message));
    subscriber.onStatus((up) => statuses.push(up));
    await publisher.publish(channel, 'before');
    await until(() => received.length === 1);

    await killConnection(`${name}:sub`);
    await until(() => statuses.length === 2);
    expect(statuses).toEqual([false, true]);
    expect(subscriber.connected).toBe(true);
    // The channel was subscribed again before "up" was reported: delivery resumes at once.
    await publisher.publish(channel, 'after');
    await until(() => received.length === 2);
    expect(received).toEqual(['before', 'after']);
  });

  it('subscribes channels registered while down once the connection is up', async () => {
    const channel = `test:${randomUUID()}`;
    const name = `late-${randomUUID()}`;
    const subscriber = open(name);
    const publisher = open(`publisher-${randomUUID()}`);
    await until(() => subscriber.connected);
    const events: boolean[] = [];
    subscriber.onStatus((up) => events.push(up));
    await killConnection(`${name}:sub`);
    await until(() => !subscriber.connected);
    const received = collect(subscriber, channel, 1);
    await until(() => subscriber.connected && publisher.connected);
    await publisher.publish(channel, 'hello');
    expect(await received).toEqual(['hello']);
    expect(events).toEqual([false, true]);
  });

  it('closes everything: a process that used it exits by itself', async () => {
    const channel = `exit-test:${randomUUID()}`;
    // Subscribes, receives its own message, closes, and must then exit without help.
    const script = `
      const { createRedisPubSub } = await import(${JSON.stringify(new URL('../src/pubsub.ts', import.meta.url).href)});
      const pubsub = createRedisPubSub(${JSON.stringify(url)});
      let received;
      const message = new Promise((resolve) => { received = resolve; });
      await pubsub.subscribe(${JSON.stringify(channel)}, received);
      while (!pubsub.connected) await new Promise((resolve) => setTimeout(resolve, 10));
      await pubsub.publish(${JSON.stringify(channel)}, 'x');
      await message;
      await pubsub.close();
      process.stdout.write('closed');
    `;
    const child = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let output = '';
    child.stdout.on('data', (chunk: Buffer) => {
      output += chunk.toString();
    });
    child.stderr.on('data', (chunk: Buffer) => {
      output += chunk.toString();
    });
    const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
    const code = await new Promise<number | null>((resolve) => child.on('exit', resolve));
    clearTimeout(timer);
    expect(output).toBe('closed');
    expect(code).toBe(0);
  });
});
