// The analysis worker thread (see analysis.ts). Result buffers are transferred, not copied.
import { serveThreadTasks, transferableBuffers } from '@quintet/kernel/thread-pool';
import { type AnalysisResult, type AnalysisTask, runAnalysisTask } from './analysis.js';

serveThreadTasks<AnalysisTask, AnalysisResult>(runAnalysisTask, (result) =>
  'image' in result
    ? transferableBuffers(
        result.image.normalisedJpeg,
        result.image.thumbnailJpeg,
        result.image.small.data,
        result.builtinEmbedding,
      )
    : transferableBuffers(
        ...(result.embeddings ?? []),
        ...result.document.images.map((image) => image.bytes),
      ),
);
