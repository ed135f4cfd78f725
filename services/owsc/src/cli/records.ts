// Provenance and lineage records of successful runs (spec §3.13): written after the outputs, never under
// --dry-run, never for a failed command (an exit 9 from --fail-on is not a failure).
import type { ChemistryFit } from '../domain/types.js';
import { serviceVersion } from '../version.js';
import type { RunContext } from './context.js';
import { writeFileAtomic } from './output.js';

export interface ProvenanceStep {
  step: string;
  params: Record<string, unknown>;
  /** paths as given on the command line */
  inputs: string[];
  outputs: string[];
}

export async function recordProvenance(context: RunContext, entry: ProvenanceStep): Promise<void> {
  const { provenanceLedger } = await context.config();
  if (context.dryRun) {
    context.wouldDo(`append a ${entry.step} record to ${provenanceLedger}`);
    return;
  }
  const { appendProvenance } = await import('../domain/ledger.js');
  const record = await appendProvenance(provenanceLedger, { ...entry, codeVersion: serviceVersion() });
  context.logger.debug('provenance_recorded', 'provenance record appended', {
    ledger: provenanceLedger,
    step: entry.step,
    digest: record.digest,
  });
}

export async function recordLineage(
  context: RunContext,
  entry: { fit: ChemistryFit; file: string; fileSha256: string },
): Promise<void> {
  const { lineageLedger } = await context.config();
  if (context.dryRun) {
    context.wouldDo(`append a lineage record to ${lineageLedger}`);
    return;
  }
  const { appendLineage } = await import('../domain/ledger.js');
  const record = await appendLineage(lineageLedger, {
    species: entry.fit.species,
    model: entry.fit.model,
    calibration: entry.fit,
    file: entry.file,
    fileSha256: entry.fileSha256,
  });
  context.logger.debug('lineage_recorded', 'lineage record appended', {
    ledger: lineageLedger,
    digest: record.digest,
  });
}

/** Writes an output file atomically, or under --dry-run says where it would have gone. */
export async function writeOutput(
  context: RunContext,
  path: string,
  data: string | Uint8Array,
): Promise<void> {
  context.finishJob();
  if (context.dryRun) {
    context.wouldDo(
      `write ${path} (${typeof data === 'string' ? Buffer.byteLength(data) : data.byteLength} bytes)`,
    );
    return;
  }
  await writeFileAtomic(path, data);
  context.note(`wrote ${path}`);
}
