// Documents through the whole pipeline (spec §3.7): chunks with headings, the document filed under
// documents/, embedded images as child media assets (acceptance 32, 33).
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { PDFDocument } from 'pdf-lib';
import sharp from 'sharp';
import { afterAll, beforeAll, expect, test } from 'vitest';
import { startTestAllocator, type TestAllocator } from '../harness.js';

let allocator: TestAllocator;
beforeAll(async () => {
  allocator = await startTestAllocator();
});
afterAll(async () => allocator?.close());

test('a Markdown document → ≥ 4 chunks of ≤ 512 characters under its heading, filed under documents/ (acceptance 32)', async () => {
  const sentence =
    'The quarterly zephyrine inventory report lists every warehouse shelf and its stock level. ';
  const text = `# Heading\n\n${sentence.repeat(Math.ceil(2000 / sentence.length))}`;
  expect(text.length).toBeGreaterThan(2000);
  const response = await allocator.ingest([
    { filename: 'report.md', data: text, contentType: 'text/markdown' },
  ]);
  expect(response.statusCode).toBe(202);
  const {
    job_id: jobId,
    system_ids: [assetId],
  } = response.json();
  const status = await allocator.waitForJob(jobId);
  expect(status.status).toBe('done');
  const chunks = await allocator.runtime.catalog
    .selectFrom('document_chunk')
    .selectAll()
    .where('asset_id', '=', assetId)
    .orderBy('chunk_index')
    .execute();
  expect(chunks.length).toBeGreaterThanOrEqual(4);
  for (const chunk of chunks) {
    expect(chunk.text.length).toBeLessThanOrEqual(512);
    expect(chunk.parent_heading).toBe('Heading');
    expect(chunk.embedding_model).toBe('builtin-hash-v1');
  }
  expect(chunks.map((chunk) => chunk.chunk_index)).toEqual(chunks.map((_, index) => index));
  const asset = await allocator.runtime.catalog
    .selectFrom('asset')
    .selectAll()
    .where('id', '=', assetId)
    .executeTakeFirstOrThrow();
  expect(asset.uri).toBe(`fs://documents/${assetId}/${assetId}.md`);
  expect(readFileSync(join(allocator.storageDir, 'documents', assetId, `${assetId}.md`), 'utf8')).toBe(text);
  expect(asset.metadata).toMatchObject({
    document_chunk_count: chunks.length,
    document_parent_headings: ['Heading'],
    embedded_media_count: 0,
  });
});

test('a PDF with an embedded JPEG → a child media asset of the document, processed in the same job (acceptance 33)', async () => {
  const jpeg = await sharp({
    create: { width: 120, height: 80, channels: 3, background: { r: 220, g: 30, b: 30 } },
  })
    .jpeg({ quality: 90 })
    .toBuffer();
  const pdf = await PDFDocument.create();
  const page = pdf.addPage([400, 300]);
  page.drawText('Inspection photo of the red pump housing', { x: 20, y: 260, size: 14 });
  page.drawImage(await pdf.embedJpg(jpeg), { x: 20, y: 20, width: 120, height: 80 });
  const bytes = Buffer.from(await pdf.save());
  const response = await allocator.ingest([
    { filename: 'inspection.pdf', data: bytes, contentType: 'application/pdf' },
  ]);
  const {
    job_id: jobId,
    system_ids: [documentId],
  } = response.json();
  const status = await allocator.waitForJob(jobId);
  expect(status.status).toBe('done');
  const assets = status.assets as {
    system_id: string;
    kind: string;
    status: string;
    cluster_id: string | null;
  }[];
  expect(assets).toHaveLength(2);
  expect(assets[0]).toMatchObject({ system_id: documentId, kind: 'document', status: 'done' });
  expect(assets[1]).toMatchObject({ kind: 'media', status: 'done' });
  const child = await allocator.runtime.catalog
    .selectFrom('asset')
    .selectAll()
    .where('id', '=', assets[1]?.system_id as string)
    .executeTakeFirstOrThrow();
  expect(child.parent_asset_id).toBe(documentId);
  expect(child.metadata).toMatchObject({ extracted_from: documentId, page_number: 1 });
  // The embedded JPEG is kept byte for byte.
  const { createHash } = await import('node:crypto');
  expect(child.sha256).toBe(createHash('sha256').update(jpeg).digest('hex'));
  expect(existsSync(join(allocator.storageDir, (child.uri as string).replace('fs://', '')))).toBe(true);
  const document = await allocator.runtime.catalog
    .selectFrom('asset')
    .select('metadata')
    .where('id', '=', documentId)
    .executeTakeFirstOrThrow();
  expect(document.metadata).toMatchObject({ embedded_media_count: 1, page_count: 1 });
});

test('a document without text fails permanently and dead-letters its job', async () => {
  const pdf = await PDFDocument.create();
  pdf.addPage([200, 200]);
  const response = await allocator.ingest([
    { filename: 'blank.pdf', data: Buffer.from(await pdf.save()), contentType: 'application/pdf' },
  ]);
  const status = await allocator.waitForJob(response.json().job_id);
  expect(status).toMatchObject({ status: 'failed', dead_letter: true, retry_count: 0 });
  expect((status.assets as { error_message: string }[])[0]?.error_message).toBe(
    'Document has no extractable text',
  );
});
