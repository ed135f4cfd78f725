// Token revocation without Redis (spec §3.2): the `revoked_tokens(jti, expires_at)` table, so logout works on
// one machine and survives restarts. Rows whose token has expired are useless and purged (hourly by serve).
import type { RevocationStore } from '@quintet/kernel/jwt';
import type { Kysely } from 'kysely';
import type { RagDatabase } from './schema.js';

export class DatabaseRevocationStore implements RevocationStore {
  constructor(private readonly db: Kysely<RagDatabase>) {}

  async revoke(jti: string, expiresAt: Date): Promise<void> {
    await this.db
      .insertInto('revoked_tokens')
      .values({ jti, expires_at: expiresAt })
      .onConflict((conflict) => conflict.column('jti').doUpdateSet({ expires_at: expiresAt }))
      .execute();
  }

  async isRevoked(jti: string): Promise<boolean> {
    const row = await this.db
      .selectFrom('revoked_tokens')
      .select('jti')
      .where('jti', '=', jti)
      .where('expires_at', '>', new Date())
      .executeTakeFirst();
    return row !== undefined;
  }

  /** Deletes rows of tokens that have expired anyway; returns how many. */
  async purgeExpired(now = new Date()): Promise<number> {
    const result = await this.db
      .deleteFrom('revoked_tokens')
      .where('expires_at', '<=', now)
      .executeTakeFirst();
    return Number(result.numDeletedRows);
  }
}
