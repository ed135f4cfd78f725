// The ingestion worker thread (see ingest-worker.ts): analyses one document per message, handing its chunks over
// as they are ready (their typed arrays transferred rather than copied), and answers with the document's summary.
import { serveThreadTasks, transferableBuffers } from '@quintet/kernel/thread-pool';
import {
  type AnalyseRequest,
  analyseDocument,
  type DocumentSummary,
  type PackedChunks,
  packChunks,
} from './ingest-worker.js';

serveThreadTasks<AnalyseRequest, DocumentSummary, PackedChunks>((request, emit) =>
  analyseDocument(request, (chunks) => {
    const packed = packChunks(chunks);
    emit(packed, transferableBuffers(packed.fields, packed.embeddings));
  }),
);
