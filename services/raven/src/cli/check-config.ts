// `raven-zero check-config` — validates the environment and prints the effective configuration (no secrets).
import { ConfigError } from '@quintet/kernel/config';
import type { Command } from 'commander';
import { environmentWithEnvFile, loadConfig, publicConfig, startupRefusal } from '../config.js';
import { loadWordlist, resolveWordlistPath } from '../domain/wordlist.js';

function checkConfig(): void {
  try {
    const config = loadConfig(environmentWithEnvFile(process.env));
    const refusal = startupRefusal(config);
    if (refusal !== null) throw new Error(refusal);
    loadWordlist(resolveWordlistPath(config.dicewareWordlistPath, process.cwd()));
    process.stdout.write(`${JSON.stringify(publicConfig(config), null, 2)}\n`);
    for (const warning of config.warnings) process.stderr.write(`WARNING: ${warning}\n`);
  } catch (error) {
    const message = error instanceof ConfigError || error instanceof Error ? error.message : String(error);
    process.stderr.write(`ERROR: ${message}\n`);
    process.exitCode = 1;
  }
}

export function registerCheckConfigCommand(program: Command): void {
  program
    .command('check-config')
    .description('validate the configuration and print it (secrets masked)')
    .action(() => checkConfig());
}
