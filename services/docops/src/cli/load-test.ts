import { mkdir, rename, rm, writeFile } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import type { Command } from 'commander';
import { loadSkillRegistry } from '../domain/skills.js';
import {
  buildLoadTestInputs,
  type LoadTestSkill,
  loadTestSummaryToJson,
  runLoadTest,
} from '../domain/tools/load-test.js';
import { newCommand, runAction, UsageError } from './common.js';

interface LoadTestCliOptions {
  baseUrl: string;
  skill: string;
  concurrency: string;
  requests: string;
  timeout: string;
  checkSubprocessLeaks?: boolean;
  leakGraceMs: string;
  failOnLeaks?: boolean;
  tmpRoot?: string;
  writeSummary?: string;
}

/**
 * `docops load-test` (§3.7.4): prints (and with --write-summary writes) the JSON summary; exits 1 only with
 * --fail-on-leaks when pids outlived their responses.
 */
export function registerLoadTestCommand(program: Command): void {
  const command = newCommand('load-test')
    .description('Send concurrent /v1/run requests to a DocOps server and check for leaked render processes')
    .option('--base-url <url>', 'server to test', 'http://127.0.0.1:8000')
    .option('--skill <name>', 'skill whose first required placeholder the template holds', 'meeting_notice')
    .option('--concurrency <n>', 'requests in flight at most', '8')
    .option('--requests <n>', 'requests to send', '20')
    .option('--timeout <seconds>', 'timeout of each request, response body included', '30')
    .option(
      '--check-subprocess-leaks',
      'check that the render pids of 200 responses are gone after the grace',
    )
    .option('--leak-grace-ms <ms>', 'how long pids (and the temp tree) may take to go away', '1500')
    .option('--fail-on-leaks', 'exit 1 when leaked pids are found')
    .option('--tmp-root <dir>', 'report the temp watermark of DIR before and after the run')
    .option('--write-summary <path>', 'also write the JSON summary to PATH')
    .action((options: LoadTestCliOptions) => runAction(() => loadTestAction(options)));
  program.addCommand(command);
}

async function loadTestAction(options: LoadTestCliOptions): Promise<number> {
  const baseUrl = parseBaseUrl(options.baseUrl);
  const concurrency = parseInteger('--concurrency', options.concurrency, 1);
  const requests = parseInteger('--requests', options.requests, 1);
  const leakGraceMs = parseInteger('--leak-grace-ms', options.leakGraceMs, 0);
  const timeoutSeconds = Number(options.timeout.trim());
  if (options.timeout.trim() === '' || !Number.isFinite(timeoutSeconds) || timeoutSeconds <= 0) {
    throw new UsageError(`--timeout must be a number of seconds > 0, got '${options.timeout}'`);
  }
  const skillName = options.skill.trim();
  const skill = resolveSkill(skillName);

  const { summary, transportErrors } = await runLoadTest({
    baseUrl,
    skill: skillName,
    concurrency,
    requests,
    timeoutSeconds,
    checkSubprocessLeaks: options.checkSubprocessLeaks === true,
    leakGraceMs,
    tmpRoot: options.tmpRoot ?? null,
    inputs: buildLoadTestInputs(skill),
  });

  const json = loadTestSummaryToJson(summary);
  if (options.writeSummary) await writeAtomically(options.writeSummary, `${json}\n`);
  process.stdout.write(`${json}\n`);
  if (transportErrors.length > 0) {
    process.stderr.write(`WARNING: transport failures (counted as 599): ${transportErrors.join(', ')}\n`);
  }
  if (summary.leaked_pids.length > 0) {
    process.stderr.write(`WARNING: leaked subprocess pids: ${summary.leaked_pids.join(', ')}\n`);
    if (options.failOnLeaks) return 1;
  }
  return 0;
}

/** The skill as this installation knows it (built-ins plus `DOCOPS_SKILLS_DIR`). */
function resolveSkill(name: string): LoadTestSkill {
  const skillsDir = process.env.DOCOPS_SKILLS_DIR?.trim();
  const skill = loadSkillRegistry(skillsDir ? skillsDir : undefined).get(name);
  if (!skill) throw new UsageError(`--skill: unknown skill '${name}'`);
  if (skill.fields.length === 0) throw new UsageError(`--skill: skill '${name}' has no fields`);
  return skill;
}

function parseBaseUrl(raw: string): string {
  const value = raw.trim();
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    throw new UsageError(`--base-url must be an http(s) URL, got '${raw}'`);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    throw new UsageError(`--base-url must be an http(s) URL, got '${raw}'`);
  }
  return value.replace(/\/+$/, '');
}

function parseInteger(option: string, raw: string, min: number): number {
  const value = raw.trim();
  if (!/^\d+$/.test(value) || Number(value) < min || !Number.isSafeInteger(Number(value))) {
    throw new UsageError(`${option} must be an integer >= ${min}, got '${raw}'`);
  }
  return Number(value);
}

async function writeAtomically(path: string, text: string): Promise<void> {
  const target = resolve(path);
  await mkdir(dirname(target), { recursive: true });
  const temp = join(dirname(target), `.${process.pid}.${Date.now()}.summary.tmp`);
  try {
    await writeFile(temp, text);
    await rename(temp, target);
  } catch (error) {
    await rm(temp, { force: true });
    throw error;
  }
}
