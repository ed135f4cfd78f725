// `openworld-chem advise` (spec §3.6): remediation suggestions per alert — permit actions first, then the
// catalogue; with OW_SC_ADVICE_PROVIDER=openai the hosted provider's actions, falling back to the catalogue on
// any failure. Output as a table, JSON or text on stdout.
import { type Command, Option } from 'commander';
import type { OwscConfig } from '../config.js';
import type { Advice, AlertInput } from '../domain/remediation.js';
import {
  adviceJson,
  adviceTable,
  adviceText,
  adviseAlerts,
  withHostedActions,
} from '../domain/remediation.js';
import { type RunContext, runCommand } from './context.js';
import { readAlerts, readPermit } from './inputs.js';

interface AdviseOptions {
  alerts: string;
  site?: string;
  format: 'table' | 'json' | 'text';
  permit?: string;
}

/** The hosted provider's actions replace the per-alert suggestions when it answers; else the catalogue stays. */
async function withHostedAdvice(
  context: RunContext,
  config: OwscConfig,
  advice: Advice,
  alerts: readonly AlertInput[],
  site: string | undefined,
): Promise<Advice> {
  if (config.adviceProvider !== 'openai' || config.openaiApiKey === undefined || alerts.length === 0)
    return advice;
  const [{ OpenAiAdviceProvider }, { createLogger }] = await Promise.all([
    import('../domain/advice-provider.js'),
    import('@quintet/kernel/log'),
  ]);
  // The provider logs through pino; its lines are re-emitted by the run's logger (same fields, corr_id).
  const logger = createLogger({
    name: 'owsc',
    level: context.logger.enabled('debug') ? 'debug' : 'info',
    loggerField: false,
    destination: {
      write: (line: string) => context.logger.record(JSON.parse(line) as Record<string, unknown>),
    },
  });
  const provider = new OpenAiAdviceProvider({
    apiKey: config.openaiApiKey,
    baseUrl: config.openaiBaseUrl,
    model: config.openaiModel,
    logger,
  });
  const hosted = await provider.advise(alerts, site);
  context.logger.info('advice_provided', 'remediation advice ready', {
    provider: hosted === null ? 'catalogue' : 'openai',
    alert_count: alerts.length,
  });
  return hosted === null ? advice : withHostedActions(advice, hosted.actions);
}

export function registerAdviseCommand(program: Command): void {
  program
    .command('advise')
    .description('remediation suggestions for an alerts file')
    .requiredOption('-a, --alerts <json>', 'alerts file: a list of alerts or an object with an "alerts" list')
    .option('-s, --site <name>', 'site name for the heading')
    .addOption(
      new Option('-f, --format <format>', 'output format')
        .choices(['table', 'json', 'text'])
        .default('table'),
    )
    .option(
      '-p, --permit <json>',
      'permit whose actions come first (default: OW_SC_PERMIT_FILE, else the default permit)',
    )
    .action((options: AdviseOptions, command: Command) =>
      runCommand(command, async (context) => {
        const config = await context.config();
        const permit = await readPermit(context, options.permit);
        const { alerts } = await readAlerts(options.alerts);
        const advice = await withHostedAdvice(
          context,
          config,
          adviseAlerts(alerts, permit),
          alerts,
          options.site,
        );
        const output =
          options.format === 'json'
            ? JSON.stringify(adviceJson(advice, options.site), null, 2)
            : options.format === 'text'
              ? adviceText(advice, options.site)
              : adviceTable(advice);
        context.stdout(`${output}\n`);
        return undefined;
      }),
    );
}
