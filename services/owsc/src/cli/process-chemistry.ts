// `openworld-chem process-chemistry` (spec §3.6): fits first-order decay or pseudo-first-order sorption to one
// species' readings, writes the fit JSON (also printed on stdout), records provenance and lineage.
import { join } from 'node:path';
import { type Command, Option } from 'commander';
import { type FitModel, fitChemistry, fitOptionsProblem } from '../domain/chemistry.js';
import { runCommand } from './context.js';
import { readReadingsWithDigest } from './inputs.js';
import { positiveNumber } from './option-values.js';
import { CliError, ExitCode } from './output.js';
import { recordLineage, recordProvenance, writeOutput } from './records.js';

interface ProcessChemistryOptions {
  input: string;
  species: string;
  out?: string;
  model: FitModel;
  volumeL?: number;
  solidsKg?: number;
}

/** The fit request's option problem in the CLI's terms (flag names), or null. */
function optionsProblem(options: ProcessChemistryOptions): string | null {
  const problem = fitOptionsProblem({
    species: options.species,
    model: options.model,
    volumeL: options.volumeL,
    solidsKg: options.solidsKg,
  });
  return problem?.replaceAll('volume_l', '--volume-l').replaceAll('solids_kg', '--solids-kg') ?? null;
}

export function registerProcessChemistryCommand(program: Command): void {
  program
    .command('process-chemistry')
    .description('fit process-chemistry parameters (first-order decay or sorption) for one species')
    .requiredOption('-i, --input <csv>', 'readings CSV (tidy or wide)')
    .requiredOption('-s, --species <name>', 'species to fit')
    .option('-o, --out <path>', 'fit JSON (default: $OW_SC_ARTIFACTS_DIR/fit.json)')
    .addOption(new Option('--model <model>', 'fit model').choices(['decay', 'sorption']).default('decay'))
    .option('--volume-l <litres>', 'solution volume for Kd (sorption, with --solids-kg)', positiveNumber)
    .option('--solids-kg <kg>', 'sorbent mass for Kd (sorption, with --volume-l)', positiveNumber)
    .action((options: ProcessChemistryOptions, command: Command) =>
      runCommand(command, async (context) => {
        const problem = optionsProblem(options);
        if (problem !== null) throw new CliError(problem, ExitCode.USAGE);
        const config = await context.config();
        const out = options.out ?? join(config.artifactsDir, 'fit.json');
        const { parsed, sha256 } = await readReadingsWithDigest(context, options.input);
        const fit = fitChemistry(parsed, {
          species: options.species,
          model: options.model,
          volumeL: options.volumeL,
          solidsKg: options.solidsKg,
        });
        context.completeJob();
        context.logger.info('chemistry_fit_completed', 'chemistry fit completed', {
          species: fit.species,
          model: fit.model,
          n: fit.n,
          k: fit.k,
          Kd: fit.Kd,
        });
        const json = `${JSON.stringify(fit, null, 2)}\n`;
        await writeOutput(context, out, json);
        await recordProvenance(context, {
          step: 'process_chemistry',
          params: {
            species: options.species,
            model: options.model,
            volume_l: options.volumeL ?? null,
            solids_kg: options.solidsKg ?? null,
          },
          inputs: [options.input],
          outputs: [out],
        });
        await recordLineage(context, { fit, file: options.input, fileSha256: sha256 });
        context.stdout(json);
        return undefined;
      }),
    );
}
