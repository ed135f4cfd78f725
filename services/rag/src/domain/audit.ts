// The admin audit trail (spec §3.9): every admin mutation writes an `admin_audit_logs` row and a log line.
import type { Kysely, Selectable } from 'kysely';
import type { AdminAuditLogsTable, RagDatabase } from './schema.js';

export interface AuditEntry {
  adminUserId: number;
  action: string;
  targetType: string | null;
  targetId: string | number | null;
  metadata?: Record<string, unknown>;
}

export type AuditRow = Selectable<AdminAuditLogsTable>;

export async function writeAudit(
  db: Kysely<RagDatabase>,
  logger: { info(fields: object, message: string): void },
  entry: AuditEntry,
): Promise<void> {
  await db
    .insertInto('admin_audit_logs')
    .values({
      admin_user_id: entry.adminUserId,
      action: entry.action,
      target_type: entry.targetType,
      target_id: entry.targetId === null ? null : String(entry.targetId),
      metadata_json: entry.metadata === undefined ? null : JSON.stringify(entry.metadata),
    })
    .execute();
  logger.info(
    {
      event: `admin_${entry.action}`,
      admin_user_id: entry.adminUserId,
      target_type: entry.targetType,
      target_id: entry.targetId,
    },
    `admin_${entry.action}`,
  );
}

/** Newest first. */
export function listAudit(db: Kysely<RagDatabase>, limit: number): Promise<AuditRow[]> {
  return db.selectFrom('admin_audit_logs').selectAll().orderBy('id', 'desc').limit(limit).execute();
}
