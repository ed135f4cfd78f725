// Retrieval and answer quality on a labelled question set (spec §5, `rag-assistant eval`): the documents next to
// the questions are indexed into a throwaway embedded database with the real ingestion pipeline, then every
// question runs through the same retrieval and offline answerer as chat. Metrics: recall@k and MRR@10 of the
// labelled document among the chunks that pass the relevance gate, the refusal rates of unanswerable and
// answerable questions, and how often the answer contains the labelled fact.
import { createHash } from 'node:crypto';
import { readdir, readFile, stat } from 'node:fs/promises';
import { basename, dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Logger } from '@quintet/kernel/log';
import type { RagConfig } from '../config-types.js';
import { openRagDatabase, type RagDb } from './database.js';
import { indexDocument } from './ingestion.js';
import { type Candidate, retrievalSettings, searchCandidates } from './retrieval.js';
import { type ContextChunk, extractiveAnswer } from './text/answer.js';
import { localEmbedding } from './text/embedding.js';
import { inferMimeType } from './text/upload-checks.js';

/** One labelled question of the JSONL dataset. */
export interface EvalQuestion {
  id: string;
  question: string;
  answerable: boolean;
  /** file name (in `documents/` next to the dataset) holding the answer; answerable questions only */
  document?: string;
  /** exact text the answer must contain; answerable questions only */
  fact?: string;
}

export interface EvalDataset {
  path: string;
  documentsDir: string;
  /** every file in documentsDir, sorted (all are indexed: the others are distractors) */
  documentFiles: string[];
  questions: EvalQuestion[];
}

export interface EvalMetrics {
  recallAtK: number;
  mrrAt10: number;
  unanswerableRefusedRate: number;
  answerableRefusedRate: number;
  factContainmentRate: number;
}

/** Spec §5: recall@5 ≥ 0.90, MRR@10 ≥ 0.75, ≥ 95 % of unanswerable refused, ≤ 5 % of answerable refused, facts ≥ 90 %. */
export const EVAL_THRESHOLDS = {
  recallAtK: { min: 0.9 },
  mrrAt10: { min: 0.75 },
  unanswerableRefusedRate: { min: 0.95 },
  answerableRefusedRate: { max: 0.05 },
  factContainmentRate: { min: 0.9 },
} as const satisfies Record<keyof EvalMetrics, { min: number } | { max: number }>;

export interface QuestionOutcome {
  id: string;
  question: string;
  answerable: boolean;
  document: string | null;
  /** 1-based rank of the first passing chunk of the labelled document within the top 10; null if absent */
  rank: number | null;
  refused: boolean;
  answer: string;
  /** null for unanswerable questions */
  factFound: boolean | null;
  /** filenames of the passing chunks, best first (top k) */
  retrieved: string[];
}

export interface EvalReport {
  dataset: string;
  k: number;
  documents: number;
  chunks: number;
  answerableQuestions: number;
  unanswerableQuestions: number;
  metrics: EvalMetrics;
  /** names of the metrics that miss their threshold */
  failedMetrics: (keyof EvalMetrics)[];
  passed: boolean;
  outcomes: QuestionOutcome[];
}

/** The bundled set: services/rag/test/eval/questions.jsonl (same path from src/domain and dist/domain). */
export const DEFAULT_EVAL_DATASET = fileURLToPath(
  new URL('../../test/eval/questions.jsonl', import.meta.url),
);

const MRR_DEPTH = 10;

export class EvalDatasetError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'EvalDatasetError';
  }
}

/** Reads and checks the JSONL questions; documents are the files of `documents/` beside the dataset file. */
export async function loadEvalDataset(path: string): Promise<EvalDataset> {
  const datasetPath = resolve(path);
  const text = await readFile(datasetPath, 'utf8');
  const documentsDir = join(dirname(datasetPath), 'documents');
  const documentFiles = [];
  for (const name of (await readdir(documentsDir)).sort()) {
    if ((await stat(join(documentsDir, name))).isFile()) documentFiles.push(name);
  }
  const available = new Set(documentFiles);
  const questions: EvalQuestion[] = [];
  const ids = new Set<string>();
  text.split('\n').forEach((line, index) => {
    if (line.trim() === '') return;
    const where = `${basename(datasetPath)} line ${index + 1}`;
    let value: unknown;
    try {
      value = JSON.parse(line);
    } catch {
      throw new EvalDatasetError(`${where}: not valid JSON`);
    }
    const question = parseQuestion(value, where);
    if (ids.has(question.id)) throw new EvalDatasetError(`${where}: duplicate id "${question.id}"`);
    ids.add(question.id);
    if (question.document !== undefined && !available.has(question.document))
      throw new EvalDatasetError(`${where}: document "${question.document}" is not in ${documentsDir}`);
    questions.push(question);
  });
  if (questions.length === 0) throw new EvalDatasetError(`${basename(datasetPath)} holds no questions`);
  return { path: datasetPath, documentsDir, documentFiles, questions };
}

function parseQuestion(value: unknown, where: string): EvalQuestion {
  if (typeof value !== 'object' || value === null || Array.isArray(value))
    throw new EvalDatasetError(`${where}: expected a JSON object`);
  const record = value as Record<string, unknown>;
  const { id, question, answerable, document, fact } = record;
  if (typeof id !== 'string' || id === '')
    throw new EvalDatasetError(`${where}: "id" must be a non-empty string`);
  if (typeof question !== 'string' || question.trim() === '')
    throw new EvalDatasetError(`${where}: "question" must be a non-empty string`);
  if (typeof answerable !== 'boolean')
    throw new EvalDatasetError(`${where}: "answerable" must be true or false`);
  if (!answerable) return { id, question, answerable };
  if (typeof document !== 'string' || document === '')
    throw new EvalDatasetError(`${where}: an answerable question needs "document"`);
  if (typeof fact !== 'string' || fact === '')
    throw new EvalDatasetError(`${where}: an answerable question needs "fact"`);
  return { id, question, answerable, document, fact };
}

export interface RunEvaluationOptions {
  config: RagConfig;
  logger: Logger;
  /** default: the bundled set */
  datasetPath?: string;
  /** recall cut-off (default 5) */
  k?: number;
}

/**
 * Indexes the dataset's documents into a fresh in-memory database (never the configured one: the evaluation
 * must not write into a live deployment) and evaluates every question.
 */
export async function runEvaluation(options: RunEvaluationOptions): Promise<EvalReport> {
  const dataset = await loadEvalDataset(options.datasetPath ?? DEFAULT_EVAL_DATASET);
  const config: RagConfig = { ...options.config, databaseUrl: undefined, runMigrations: true };
  const db = await openRagDatabase(config, options.logger, { inMemory: true });
  try {
    const scope = await indexEvalDocuments({ db, config, logger: options.logger }, dataset);
    return await evaluateQuestions(db, config, scope, dataset, options.k ?? 5);
  } finally {
    await db.close();
  }
}

export interface EvalScope {
  userId: number;
  storeIds: number[];
  documents: number;
  chunks: number;
}

/**
 * Creates an evaluation user and store, registers every document of the dataset (stored where it lies: the
 * originals are read in place) and indexes them with the ingestion pipeline. A document that does not reach
 * DONE fails the run: an evaluation over a partial index would be meaningless.
 */
export async function indexEvalDocuments(
  deps: { db: RagDb; config: RagConfig; logger: Logger },
  dataset: EvalDataset,
): Promise<EvalScope> {
  const { kysely } = deps.db;
  const user = await kysely
    .insertInto('users')
    .values({ email: 'eval@example.com', is_active: true, email_verified: true })
    .returning('id')
    .executeTakeFirstOrThrow();
  const store = await kysely
    .insertInto('stores')
    .values({
      user_id: user.id,
      display_name: 'Evaluation',
      fs_name: `fileSearchStores/local-${createHash('md5').update(dataset.path).digest('hex')}`,
      backend: 'gemini_hosted',
    })
    .returning('id')
    .executeTakeFirstOrThrow();
  const embed = async (texts: string[]) =>
    texts.map((text) => localEmbedding(text, deps.config.embeddingDim));
  const signal = new AbortController().signal;
  for (const name of dataset.documentFiles) {
    const path = join(dataset.documentsDir, name);
    const bytes = await readFile(path);
    const document = await kysely
      .insertInto('documents')
      .values({
        store_id: store.id,
        filename: name,
        display_name: name,
        mime_type: inferMimeType(name) ?? 'text/plain',
        size_bytes: bytes.length,
        sha256: createHash('sha256').update(bytes).digest('hex'),
        storage_path: path,
        status: 'PENDING',
        status_updated_at: new Date(),
      })
      .returning('id')
      .executeTakeFirstOrThrow();
    await indexDocument({ ...deps, embed }, document.id, signal);
    const row = await kysely
      .selectFrom('documents')
      .select(['status', 'last_error'])
      .where('id', '=', document.id)
      .executeTakeFirstOrThrow();
    if (row.status !== 'DONE')
      throw new Error(`Indexing ${name} for the evaluation failed: ${row.last_error ?? row.status}`);
  }
  const chunks = await kysely
    .selectFrom('chunks')
    .select((eb) => eb.fn.countAll<number>().as('count'))
    .where('store_id', '=', store.id)
    .executeTakeFirstOrThrow();
  return {
    userId: user.id,
    storeIds: [store.id],
    documents: dataset.documentFiles.length,
    chunks: Number(chunks.count),
  };
}

/** Runs every question through retrieval and the offline answerer and computes the §5 metrics. */
export async function evaluateQuestions(
  db: RagDb,
  config: RagConfig,
  scope: EvalScope,
  dataset: EvalDataset,
  k: number,
): Promise<EvalReport> {
  const settings = retrievalSettings(config, Math.max(k, MRR_DEPTH, config.ragTopK));
  const outcomes: QuestionOutcome[] = [];
  for (const question of dataset.questions) {
    const search = await searchCandidates(db, {
      userId: scope.userId,
      storeIds: scope.storeIds,
      query: question.question,
      config: settings,
      ...(db.vectorEnabled ? { queryEmbedding: localEmbedding(question.question, config.embeddingDim) } : {}),
    });
    const passing = search.candidates.filter((candidate) => candidate.passesGate);
    const context = passing.slice(0, config.ragTopK).map(toContextChunk);
    const answer =
      context.length === 0
        ? ''
        : extractiveAnswer(question.question, context, search.idf, { sentences: config.ragAnswerSentences })
            .parts.join('')
            .trim();
    const rankIndex = passing
      .slice(0, MRR_DEPTH)
      .findIndex((candidate) => candidate.filename === question.document);
    const refused = answer === '';
    outcomes.push({
      id: question.id,
      question: question.question,
      answerable: question.answerable,
      document: question.document ?? null,
      rank: question.answerable && rankIndex >= 0 ? rankIndex + 1 : null,
      refused,
      answer,
      factFound: question.answerable ? containsFact(answer, question.fact ?? '') : null,
      retrieved: passing.slice(0, k).map((candidate) => candidate.filename),
    });
  }
  const metrics = computeMetrics(outcomes, k);
  const failedMetrics = failingMetrics(metrics);
  return {
    dataset: dataset.path,
    k,
    documents: scope.documents,
    chunks: scope.chunks,
    answerableQuestions: outcomes.filter((outcome) => outcome.answerable).length,
    unanswerableQuestions: outcomes.filter((outcome) => !outcome.answerable).length,
    metrics,
    failedMetrics,
    passed: failedMetrics.length === 0,
    outcomes,
  };
}

function toContextChunk(candidate: Candidate): ContextChunk {
  return {
    chunkId: candidate.chunkId,
    documentId: candidate.documentId,
    storeId: candidate.storeId,
    title: candidate.title,
    filename: candidate.filename,
    mimeType: candidate.mimeType,
    page: candidate.page,
    text: candidate.text,
    score: candidate.fused,
  };
}

/** Case- and whitespace-insensitive containment after NFKC (the pipeline normalises document text). */
export function containsFact(answer: string, fact: string): boolean {
  const normalise = (text: string) => text.normalize('NFKC').replace(/\s+/g, ' ').trim().toLowerCase();
  const wanted = normalise(fact);
  return wanted !== '' && normalise(answer).includes(wanted);
}

export function computeMetrics(outcomes: readonly QuestionOutcome[], k: number): EvalMetrics {
  const answerable = outcomes.filter((outcome) => outcome.answerable);
  const unanswerable = outcomes.filter((outcome) => !outcome.answerable);
  const share = (items: readonly QuestionOutcome[], test: (outcome: QuestionOutcome) => boolean) =>
    items.length === 0 ? 0 : items.filter(test).length / items.length;
  const mean = (values: number[]) =>
    values.length === 0 ? 0 : values.reduce((sum, value) => sum + value, 0) / values.length;
  return {
    recallAtK: share(answerable, (outcome) => outcome.rank !== null && outcome.rank <= k),
    mrrAt10: mean(answerable.map((outcome) => (outcome.rank === null ? 0 : 1 / outcome.rank))),
    // With no unanswerable questions there is nothing to refuse: the rate is vacuously met.
    unanswerableRefusedRate:
      unanswerable.length === 0 ? 1 : share(unanswerable, (outcome) => outcome.refused),
    answerableRefusedRate: share(answerable, (outcome) => outcome.refused),
    factContainmentRate: share(answerable, (outcome) => outcome.factFound === true),
  };
}

export function failingMetrics(metrics: EvalMetrics): (keyof EvalMetrics)[] {
  return (Object.keys(EVAL_THRESHOLDS) as (keyof EvalMetrics)[]).filter((name) => {
    const threshold: { min?: number; max?: number } = EVAL_THRESHOLDS[name];
    const value = metrics[name];
    return (
      (threshold.min !== undefined && value < threshold.min) ||
      (threshold.max !== undefined && value > threshold.max)
    );
  });
}

const METRIC_LABELS: Record<keyof EvalMetrics, (k: number) => string> = {
  recallAtK: (k) => `recall@${k}`,
  mrrAt10: () => 'MRR@10',
  unanswerableRefusedRate: () => 'unanswerable refused',
  answerableRefusedRate: () => 'answerable refused',
  factContainmentRate: () => 'answers with the fact',
};

/** The human report: the metrics table, then every question that misses (for tuning and review). */
export function formatEvalReport(report: EvalReport): string {
  const lines = [
    `Dataset: ${report.dataset}`,
    `Documents: ${report.documents}  chunks: ${report.chunks}  questions: ${report.answerableQuestions} answerable, ${report.unanswerableQuestions} unanswerable`,
    '',
    `${'metric'.padEnd(24)}${'value'.padStart(8)}  ${'threshold'.padEnd(10)} result`,
  ];
  for (const name of Object.keys(EVAL_THRESHOLDS) as (keyof EvalMetrics)[]) {
    const threshold: { min?: number; max?: number } = EVAL_THRESHOLDS[name];
    const bound =
      threshold.min !== undefined ? `>= ${threshold.min.toFixed(2)}` : `<= ${threshold.max?.toFixed(2)}`;
    const ok = !report.failedMetrics.includes(name);
    lines.push(
      `${METRIC_LABELS[name](report.k).padEnd(24)}${report.metrics[name].toFixed(3).padStart(8)}  ${bound.padEnd(10)} ${ok ? 'ok' : 'FAIL'}`,
    );
  }
  const misses = report.outcomes.filter(
    (outcome) =>
      (outcome.answerable &&
        (outcome.rank === null || outcome.rank > report.k || outcome.refused || !outcome.factFound)) ||
      (!outcome.answerable && !outcome.refused),
  );
  if (misses.length > 0) {
    lines.push('', 'Questions that miss:');
    for (const outcome of misses) {
      const what = outcome.answerable
        ? `${outcome.refused ? 'refused' : outcome.factFound ? 'fact ok' : 'fact missing'}, rank ${outcome.rank ?? '-'} (expected ${outcome.document})`
        : `answered from ${outcome.retrieved[0] ?? '?'}`;
      lines.push(`  ${outcome.id}: ${what}: ${outcome.question}`);
    }
  }
  lines.push(
    '',
    report.passed
      ? 'PASS: all thresholds met'
      : `FAIL: ${report.failedMetrics.map((name) => METRIC_LABELS[name](report.k)).join(', ')} below threshold`,
  );
  return `${lines.join('\n')}\n`;
}
