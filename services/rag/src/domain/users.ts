// Users (spec §3.2, §3.9): lookups, registration, dev-login creation and the admin role/active switches.
// Emails are stored trimmed and lower-cased; uniqueness is case-insensitive (unique index on lower(email)).
import { isUniqueViolation } from '@quintet/kernel/db';
import { type Kysely, type Selectable, sql } from 'kysely';
import type { RagDatabase, UsersTable } from './schema.js';

export type UserRow = Selectable<UsersTable>;

/** The email as stored and compared: trimmed, lower-cased. */
export function normalizeEmail(email: string): string {
  return email.trim().toLowerCase();
}

// A practical check (one @, a dotted domain, no spaces): the email is an identifier, never sent mail to here.
const EMAIL = /^[^\s@]+@[^\s@]+\.[^\s@.]+$/;

/** True when a normalized email has a local part, an `@` and a dotted domain. */
export function isValidEmail(email: string): boolean {
  return email.length <= 320 && EMAIL.test(email);
}

/** Registration refused because the email is taken (HTTP 400 `Email already registered`). */
export class EmailTakenError extends Error {
  override readonly name = 'EmailTakenError';
  constructor() {
    super('Email already registered');
  }
}

export function findUserById(db: Kysely<RagDatabase>, id: number): Promise<UserRow | undefined> {
  return db.selectFrom('users').selectAll().where('id', '=', id).executeTakeFirst();
}

/**
 * The user with this id and whether the token id `jti` is revoked in the `revoked_tokens` table, in one round
 * trip (the authentication of every request without Redis).
 */
export async function findUserWithRevocation(
  db: Kysely<RagDatabase>,
  id: number,
  jti: string,
  now = new Date(),
): Promise<{ revoked: boolean; user: UserRow | undefined }> {
  const { rows } = await sql<UserRow & { revoked: boolean }>`
    select exists(select 1 from revoked_tokens where jti = ${jti} and expires_at > ${now}) as revoked, u.*
    from (select 1) as one left join users u on u.id = ${id}`.execute(db);
  const row = rows[0];
  if (row === undefined) return { revoked: false, user: undefined };
  const { revoked, ...user } = row;
  // The left join yields a row of nulls when the user does not exist.
  return { revoked, user: user.id === null ? undefined : user };
}

export function findUserByEmail(db: Kysely<RagDatabase>, email: string): Promise<UserRow | undefined> {
  return db
    .selectFrom('users')
    .selectAll()
    .where((eb) => eb(eb.fn('lower', ['email']), '=', normalizeEmail(email)))
    .executeTakeFirst();
}

/** Inserts a user; EmailTakenError when the email exists in any letter case. */
export async function createUser(
  db: Kysely<RagDatabase>,
  user: { email: string; hashedPassword?: string; isAdmin?: boolean; emailVerified?: boolean },
): Promise<UserRow> {
  try {
    return await db
      .insertInto('users')
      .values({
        email: normalizeEmail(user.email),
        hashed_password: user.hashedPassword ?? '',
        is_admin: user.isAdmin ?? false,
        email_verified: user.emailVerified ?? false,
      })
      .returningAll()
      .executeTakeFirstOrThrow();
  } catch (error) {
    if (isUniqueViolation(error)) throw new EmailTakenError();
    throw error;
  }
}

/** The user with this email, created (no password, not admin) when absent — the dev login. */
export async function findOrCreateUser(db: Kysely<RagDatabase>, email: string): Promise<UserRow> {
  const existing = await findUserByEmail(db, email);
  if (existing !== undefined) return existing;
  try {
    return await createUser(db, { email });
  } catch (error) {
    // Two dev logins racing for one new email: the loser reads the winner's row.
    if (!(error instanceof EmailTakenError)) throw error;
    const row = await findUserByEmail(db, email);
    if (row === undefined) throw error;
    return row;
  }
}

export async function updateUser(
  db: Kysely<RagDatabase>,
  id: number,
  changes: { is_admin?: boolean; is_active?: boolean; admin_notes?: string | null },
): Promise<UserRow | undefined> {
  return db.updateTable('users').set(changes).where('id', '=', id).returningAll().executeTakeFirst();
}
