// `openworld-chem cert` (spec §3.6): the compliance certificate of an alerts file, as self-contained HTML or as
// PDF (by --format, else by the output's extension), with the sha256 of the alerts file; provenance step
// `certificate`.
import { extname, join } from 'node:path';
import { type Command, Option } from 'commander';
import { runCommand } from './context.js';
import { readAlerts } from './inputs.js';
import { recordProvenance, writeOutput } from './records.js';

interface CertOptions {
  alerts: string;
  site: string;
  out?: string;
  period?: string;
  format?: 'html' | 'pdf';
}

/** --format wins; else `.pdf` means PDF and anything else HTML. */
export function certificateFormat(options: Pick<CertOptions, 'out' | 'format'>): 'html' | 'pdf' {
  if (options.format !== undefined) return options.format;
  return options.out !== undefined && extname(options.out).toLowerCase() === '.pdf' ? 'pdf' : 'html';
}

export function registerCertCommand(program: Command): void {
  program
    .command('cert')
    .description('write a compliance certificate (HTML or PDF) for an alerts file')
    .requiredOption('-a, --alerts <json>', 'alerts file: a list of alerts or an object with an "alerts" list')
    .requiredOption('-s, --site <name>', 'site name shown on the certificate')
    .option('-o, --out <path>', 'certificate file (default: $OW_SC_REPORTS_DIR/compliance.html, or .pdf)')
    .option('--period <text>', 'reporting period shown on the certificate (default: Current)')
    .addOption(
      new Option('--format <format>', 'html or pdf (default: from the extension of --out)').choices([
        'html',
        'pdf',
      ]),
    )
    .action((options: CertOptions, command: Command) =>
      runCommand(command, async (context) => {
        const config = await context.config();
        const format = certificateFormat(options);
        const out = options.out ?? join(config.reportsDir, `compliance.${format}`);
        const { alerts, sha256 } = await readAlerts(options.alerts);
        const input = {
          alerts,
          site: options.site,
          ...(options.period === undefined ? {} : { period: options.period }),
          generatedAt: new Date(),
          alertsSha256: sha256,
        };
        const certificate = await import('../domain/certificate.js');
        const document =
          format === 'pdf' ? await certificate.certificatePdf(input) : certificate.certificateHtml(input);
        await writeOutput(context, out, document);
        await recordProvenance(context, {
          step: 'certificate',
          params: { site: options.site, period: options.period ?? null, format },
          inputs: [options.alerts],
          outputs: [out],
        });
        const status = alerts.length === 0 ? 'COMPLIANT' : `NON-COMPLIANT: ${alerts.length} alert(s)`;
        context.logger.info('certificate_written', 'certificate written', {
          out,
          format,
          alert_count: alerts.length,
        });
        context.stdout(`${status}\n`);
        return undefined;
      }),
    );
}
