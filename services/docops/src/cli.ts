// The `docops` bin: `serve` and the service's own commands. Each command lives in src/cli/<name>.ts.
import { CommanderError } from 'commander';
import { newCommand } from './cli/common.js';
import { registerInspectCommand } from './cli/inspect.js';
import { registerLoadTestCommand } from './cli/load-test.js';
import { registerRunCommand } from './cli/run.js';
import { registerServeCommand } from './cli/serve.js';
import { registerSummarizeLogsCommand } from './cli/summarize-logs.js';
import { registerTmpWatermarkCommand } from './cli/tmp-watermark.js';
import { serviceVersion } from './version.js';

const program = newCommand('docops')
  .description('DocOps: fill Word templates from JSON tasks, check and fix their format')
  .version(serviceVersion(), '--version')
  .enablePositionalOptions();

for (const register of [
  registerServeCommand,
  registerRunCommand,
  registerInspectCommand,
  registerLoadTestCommand,
  registerTmpWatermarkCommand,
  registerSummarizeLogsCommand,
]) {
  register(program);
}

try {
  await program.parseAsync(process.argv);
} catch (error) {
  if (error instanceof CommanderError) {
    // --help and --version exit 0; every usage error exits 1 (2 means "missing required fields").
    process.exitCode = error.exitCode === 0 ? 0 : 1;
  } else {
    process.stderr.write(`ERROR: ${error instanceof Error ? error.message : String(error)}\n`);
    process.exitCode = 1;
  }
}
