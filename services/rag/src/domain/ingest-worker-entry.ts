// The ingestion worker thread (see ingest-worker.ts): analyses one document per message and answers with the
// result, the embeddings transferred rather than copied.
import { parentPort } from 'node:worker_threads';
import {
  type AnalyseRequest,
  analyseDocument,
  packDocument,
  serializeError,
  type WorkerReply,
} from './ingest-worker.js';

const port = parentPort;
if (port === null) throw new Error('ingest-worker-entry must run in a worker thread');

port.on('message', (request: AnalyseRequest) => {
  analyseDocument(request).then(
    (analysed) => {
      const document = packDocument(analysed);
      const transfer = [
        document.fields.buffer,
        ...(document.embeddings === null ? [] : [document.embeddings.buffer]),
      ];
      const reply: WorkerReply = { ok: true, document };
      port.postMessage(reply, transfer);
    },
    (error: unknown) => {
      const reply: WorkerReply = { ok: false, error: serializeError(error) };
      port.postMessage(reply);
    },
  );
});
