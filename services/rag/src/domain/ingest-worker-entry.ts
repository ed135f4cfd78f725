// The ingestion worker thread (see ingest-worker.ts): analyses one document per message and answers with the
// result, its typed arrays transferred rather than copied.
import { serveThreadTasks, transferableBuffers } from '@quintet/kernel/thread-pool';
import { type AnalyseRequest, analyseDocument, type PackedDocument, packDocument } from './ingest-worker.js';

serveThreadTasks<AnalyseRequest, PackedDocument>(
  async (request) => packDocument(await analyseDocument(request)),
  (document) => transferableBuffers(document.fields, document.embeddings),
);
