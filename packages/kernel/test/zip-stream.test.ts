import { randomBytes } from 'node:crypto';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { unzipSync } from 'fflate';
import { describe, expect, it } from 'vitest';
import { ZipStreamWriter } from '../src/zip-stream.js';

async function collect(writer: ZipStreamWriter): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of writer.stream) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

describe('ZipStreamWriter', () => {
  it('writes files and buffers as deflated entries in the order added', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'zip-stream-'));
    const big = randomBytes(3 * 1024 * 1024 + 17);
    writeFileSync(join(dir, 'big.bin'), big);
    const huge = Buffer.alloc(6 * 1024 * 1024, 7);
    writeFileSync(join(dir, 'huge.bin'), huge);
    writeFileSync(join(dir, 'empty.txt'), '');
    const writer = new ZipStreamWriter();
    const archive = collect(writer);
    await writer.addFile(join(dir, 'big.bin'), 'b/big.bin');
    await writer.addFile(join(dir, 'empty.txt'), 'empty.txt');
    await writer.addFile(join(dir, 'huge.bin'), 'huge.bin');
    await writer.addBuffer(Buffer.from('{"a":1}'), 'result.json');
    await writer.end();
    const bytes = await archive;
    const files = unzipSync(new Uint8Array(bytes));
    expect(Object.keys(files)).toEqual(['b/big.bin', 'empty.txt', 'huge.bin', 'result.json']);
    expect(Buffer.from(files['huge.bin'] as Uint8Array).equals(huge)).toBe(true);
    // the streamed entry really was deflated
    expect(bytes.length).toBeLessThan(big.length + 200_000);
    expect(Buffer.from(files['b/big.bin'] as Uint8Array).equals(big)).toBe(true);
    expect(files['empty.txt']?.length).toBe(0);
    expect(Buffer.from(files['result.json'] as Uint8Array).toString()).toBe('{"a":1}');
    // deflate (method 8) in the first local header
    expect(bytes.readUInt32LE(0)).toBe(0x04034b50);
    expect(bytes.readUInt16LE(8)).toBe(8);
  });

  it('stops waiting when the reader goes away', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'zip-stream-'));
    writeFileSync(join(dir, 'big.bin'), randomBytes(12 * 1024 * 1024));
    const writer = new ZipStreamWriter();
    const adding = writer.addFile(join(dir, 'big.bin'), 'big.bin');
    await new Promise((resolve) => setTimeout(resolve, 50));
    writer.stream.destroy();
    await expect(adding).rejects.toThrow(/closed/);
  });
});
