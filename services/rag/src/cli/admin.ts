// `rag-assistant create-first-admin <email> <password>` (spec §3.11): the password policy of §3.2; exit 2 on an
// invalid password or email, 0 when the admin was created or the email already exists (nothing changed then).
import type { Command } from 'commander';
import { createCommandLogger, ExitCode, loadCliConfig, runCommand, say, withDatabase } from './runtime.js';

async function createFirstAdmin(rawEmail: string, password: string): Promise<void> {
  await runCommand(async () => {
    const { hashPassword, passwordPolicyViolation } = await import('../domain/passwords.js');
    const { createUser, EmailTakenError, findUserByEmail, isValidEmail, normalizeEmail } = await import(
      '../domain/users.js'
    );
    const email = normalizeEmail(rawEmail);
    if (!isValidEmail(email)) {
      process.stderr.write(
        `Invalid email: ${rawEmail}\nusage: rag-assistant create-first-admin <email> <password>\n`,
      );
      return ExitCode.USAGE;
    }
    const violation = passwordPolicyViolation(password);
    if (violation !== null) {
      process.stderr.write(`Invalid password: ${violation}\n`);
      return ExitCode.USAGE;
    }
    const config = await loadCliConfig();
    const logger = createCommandLogger(config);
    return withDatabase(config, logger, async (db) => {
      if ((await findUserByEmail(db.kysely, email)) !== undefined) {
        say(`User ${email} already exists.`);
        return ExitCode.OK;
      }
      try {
        await createUser(db.kysely, {
          email,
          hashedPassword: await hashPassword(password),
          isAdmin: true,
          emailVerified: true,
        });
      } catch (error) {
        // Created by someone else between the lookup and the insert.
        if (!(error instanceof EmailTakenError)) throw error;
        say(`User ${email} already exists.`);
        return ExitCode.OK;
      }
      say(`Admin ${email} created successfully.`);
      return ExitCode.OK;
    });
  });
}

export function registerAdminCommands(program: Command): void {
  program
    .command('create-first-admin')
    .description('create an active, verified admin (exit 2: invalid password or usage)')
    .argument('<email>', 'the admin email')
    .argument(
      '<password>',
      'a password meeting the policy (upper, lower, digit, special character, 6-72 bytes)',
    )
    .action((email: string, password: string) => createFirstAdmin(email, password));
}
