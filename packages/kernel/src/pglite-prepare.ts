// The short-lived child process of `prepareEmbeddedDatabase` (db.ts): reads { options, namespaces } as JSON on
// stdin, creates the embedded database if needed, applies the migrations, closes it and prints
// { applied } as JSON on stdout. A failure is one line on stderr and exit code 1.
import { text } from 'node:stream/consumers';
import { type Migration, type OpenDatabaseOptions, openDatabase } from './db.js';

interface PrepareInput {
  options: Pick<OpenDatabaseOptions, 'dataDir' | 'vector' | 'sharedBuffers' | 'templatePath'>;
  namespaces: { namespace: string; migrations: Migration[] }[];
}

try {
  const input = JSON.parse(await text(process.stdin)) as PrepareInput;
  // In this thread: a worker thread would only add its own start-up to a process that does nothing else.
  const database = await openDatabase({ ...input.options, thread: false });
  try {
    const applied: string[] = [];
    for (const { namespace, migrations } of input.namespaces)
      applied.push(...(await database.migrate(namespace, migrations)));
    process.stdout.write(JSON.stringify({ applied }));
  } finally {
    await database.close();
  }
} catch (error) {
  process.stderr.write(`${error instanceof Error ? error.message : String(error)}\n`);
  process.exitCode = 1;
}
