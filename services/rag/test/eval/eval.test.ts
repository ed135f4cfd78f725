// Spec §5 / acceptance case 33: the bundled labelled set, indexed into in-memory PGlite with the real ingestion
// pipeline, meets every retrieval and answer threshold.
import { extname } from 'node:path';
import { Writable } from 'node:stream';
import { createLogger } from '@quintet/kernel/log';
import { beforeAll, describe, expect, it } from 'vitest';
import {
  computeMetrics,
  containsFact,
  DEFAULT_EVAL_DATASET,
  type EvalReport,
  failingMetrics,
  loadEvalDataset,
  runEvaluation,
} from '../../src/domain/eval.js';
import { testConfig } from '../domain/rag-fixtures.js';

const quietLogger = createLogger({
  name: 'rag',
  level: 'warn',
  destination: new Writable({ write: (_c, _e, done) => done() }),
});

describe('bundled evaluation set', () => {
  let report: EvalReport;
  beforeAll(async () => {
    report = await runEvaluation({ config: testConfig(), logger: quietLogger });
  }, 30_000);

  it('has the size and formats the spec asks for', async () => {
    const dataset = await loadEvalDataset(DEFAULT_EVAL_DATASET);
    expect(dataset.documentFiles.length).toBeGreaterThanOrEqual(10);
    const extensions = new Set(dataset.documentFiles.map((name) => extname(name)));
    for (const extension of ['.pdf', '.csv', '.docx', '.md', '.txt']) expect(extensions).toContain(extension);
    expect(dataset.questions.filter((question) => question.answerable).length).toBeGreaterThanOrEqual(60);
    expect(dataset.questions.filter((question) => !question.answerable).length).toBeGreaterThanOrEqual(15);
    // every document indexed, including every page of the multi-page PDF
    expect(report.documents).toBe(dataset.documentFiles.length);
  });

  it('meets every threshold of spec §5', () => {
    expect(report.metrics.recallAtK).toBeGreaterThanOrEqual(0.9);
    expect(report.metrics.mrrAt10).toBeGreaterThanOrEqual(0.75);
    expect(report.metrics.unanswerableRefusedRate).toBeGreaterThanOrEqual(0.95);
    expect(report.metrics.answerableRefusedRate).toBeLessThanOrEqual(0.05);
    expect(report.metrics.factContainmentRate).toBeGreaterThanOrEqual(0.9);
    expect(report.failedMetrics).toEqual([]);
    expect(report.passed).toBe(true);
  });

  it('answers from the PDF with citations of its later pages', () => {
    const mtbf = report.outcomes.find((outcome) => outcome.question.includes('MTBF'));
    expect(mtbf?.retrieved[0]).toBe('tg-400-gateway-spec.pdf');
    expect(mtbf?.answer).toContain('180,000 hours');
    expect(mtbf?.answer).toMatch(/\[1\]/);
  });

  it('refuses unanswerable questions with an empty answer', () => {
    for (const outcome of report.outcomes.filter((item) => !item.answerable && item.refused)) {
      expect(outcome.answer).toBe('');
      expect(outcome.retrieved).toEqual([]);
    }
  });
});

describe('evaluation metrics', () => {
  const outcome = (overrides: Partial<Parameters<typeof computeMetrics>[0][number]>) => ({
    id: 'x',
    question: 'q',
    answerable: true,
    document: 'a.md',
    rank: 1,
    refused: false,
    answer: 'a',
    factFound: true,
    retrieved: ['a.md'],
    ...overrides,
  });

  it('computes recall@k, MRR@10 and the refusal rates, and names the metrics below threshold', () => {
    const metrics = computeMetrics(
      [
        outcome({ rank: 1 }),
        outcome({ rank: 2, factFound: false }),
        outcome({ rank: 7 }),
        outcome({ rank: null, refused: true, answer: '', factFound: false, retrieved: [] }),
        outcome({ answerable: false, document: null, rank: null, refused: true, factFound: null }),
        outcome({ answerable: false, document: null, rank: null, refused: false, factFound: null }),
      ],
      5,
    );
    expect(metrics.recallAtK).toBe(0.5);
    expect(metrics.mrrAt10).toBeCloseTo((1 + 0.5 + 1 / 7) / 4, 10);
    expect(metrics.unanswerableRefusedRate).toBe(0.5);
    expect(metrics.answerableRefusedRate).toBe(0.25);
    expect(metrics.factContainmentRate).toBe(0.5);
    expect(failingMetrics(metrics)).toEqual([
      'recallAtK',
      'mrrAt10',
      'unanswerableRefusedRate',
      'answerableRefusedRate',
      'factContainmentRate',
    ]);
  });

  it('matches facts case- and whitespace-insensitively after NFKC', () => {
    expect(containsFact('The unit weighs  148\nkg. [1]', '148 kg')).toBe(true);
    expect(containsFact('Refrigerant R290 [1]', 'r290')).toBe(true);
    expect(containsFact('14 days', '41 days')).toBe(false);
    expect(containsFact('anything', '')).toBe(false);
  });
});
