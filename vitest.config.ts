import { defineConfig } from 'vitest/config';

const shared = {
  testTimeout: 30_000,
  hookTimeout: 60_000,
  pool: 'forks',
} as const;

export default defineConfig({
  test: {
    projects: [
      {
        test: {
          ...shared,
          name: 'all',
          include: ['packages/*/test/**/*.test.ts', 'services/*/test/**/*.test.ts'],
        },
      },
      {
        // The Raven acceptance files again, every server on the Redis store (see services/raven/test/http/harness.ts).
        test: {
          ...shared,
          name: 'raven-redis',
          include: [
            'services/raven/test/http/**/*.test.ts',
            'services/raven/test/e2e/**/*.test.ts',
            'services/raven/test/web/browser.test.ts',
          ],
          env: { RAVEN_TEST_STORE: 'redis' },
        },
      },
      {
        // The RAG HTTP acceptance files again on the embedded database (PGlite), which `all` runs on PostgreSQL
        // whenever the test server answers (see services/rag/test/http/harness.ts).
        test: {
          ...shared,
          name: 'rag-embedded',
          include: ['services/rag/test/http/**/*.test.ts'],
          env: { RAG_TEST_STORE: 'embedded' },
        },
      },
    ],
  },
});
