// Branding settings (spec §3.9): defaults merged with the `app_settings` overrides; updates validated key by key
// with the exact 400 messages of the spec.
import type { Kysely } from 'kysely';
import type { RagDatabase } from './schema.js';

export const DEFAULT_SETTINGS = {
  app_name: 'RAG Assistant',
  app_icon: 'sparkles',
  theme_preset: 'minimal',
  primary_color: '#2563EB',
  accent_color: '#6366F1',
  app_favicon: '',
  welcome_message: "Hi! I'm your RAG assistant. Ask me anything about your documents.",
  suggested_prompt_1: 'Summarize the key findings from my uploads.',
  suggested_prompt_2: 'What are the main risks or open questions?',
  suggested_prompt_3: 'Create an outline using the latest documents.',
} as const;

export type SettingKey = keyof typeof DEFAULT_SETTINGS;
export type AppSettings = Record<SettingKey, string>;

const MAX_LENGTHS: Record<SettingKey, number> = {
  app_name: 100,
  app_icon: 50,
  theme_preset: 50,
  primary_color: 7,
  accent_color: 7,
  app_favicon: 200_000,
  welcome_message: 255,
  suggested_prompt_1: 180,
  suggested_prompt_2: 180,
  suggested_prompt_3: 180,
};
const ICONS = ['bolt', 'book', 'bot', 'compass', 'file', 'sparkles'];
const THEMES = ['classic', 'gradient', 'minimal'];
const HEX_COLOR = /^#[0-9A-Fa-f]{6}$/;

/** An invalid settings update: HTTP 400 with this message. */
export class SettingsValidationError extends Error {
  override readonly name = 'SettingsValidationError';
}

function isSettingKey(key: string): key is SettingKey {
  return Object.hasOwn(DEFAULT_SETTINGS, key);
}

/** Validates an update body (an object) and returns the trimmed changes; throws SettingsValidationError. */
export function validateSettings(body: Record<string, unknown>): Partial<AppSettings> {
  const changes: Partial<AppSettings> = {};
  for (const [key, raw] of Object.entries(body)) {
    if (!isSettingKey(key)) throw new SettingsValidationError(`Unknown setting: ${key}`);
    if (typeof raw !== 'string') throw new SettingsValidationError(`Setting ${key} must be a string`);
    const value = raw.trim();
    if ([...value].length > MAX_LENGTHS[key] && key !== 'primary_color' && key !== 'accent_color') {
      throw new SettingsValidationError(`Setting ${key} is too long (max ${MAX_LENGTHS[key]} chars)`);
    }
    if ((key === 'primary_color' || key === 'accent_color') && !HEX_COLOR.test(value)) {
      throw new SettingsValidationError(`${key} must be a 6-digit hex color (e.g., #2563EB)`);
    }
    if (key === 'app_icon' && !ICONS.includes(value)) {
      throw new SettingsValidationError(`app_icon must be one of: ${ICONS.join(', ')}`);
    }
    if (key === 'theme_preset' && !THEMES.includes(value)) {
      throw new SettingsValidationError(`theme_preset must be one of: ${THEMES.join(', ')}`);
    }
    if (key === 'app_favicon' && value !== '' && !value.startsWith('data:image/')) {
      throw new SettingsValidationError('app_favicon must be empty or a data:image/ URL');
    }
    changes[key] = value;
  }
  return changes;
}

/** The defaults merged with the stored overrides. */
export async function getSettings(db: Kysely<RagDatabase>): Promise<AppSettings> {
  const rows = await db.selectFrom('app_settings').select(['key', 'value']).execute();
  const settings: AppSettings = { ...DEFAULT_SETTINGS };
  for (const row of rows) if (isSettingKey(row.key)) settings[row.key] = row.value;
  return settings;
}

/** Stores the changes (upsert per key). */
export async function saveSettings(db: Kysely<RagDatabase>, changes: Partial<AppSettings>): Promise<void> {
  const entries = Object.entries(changes) as [SettingKey, string][];
  if (entries.length === 0) return;
  await db
    .insertInto('app_settings')
    .values(entries.map(([key, value]) => ({ key, value, updated_at: new Date() })))
    .onConflict((conflict) =>
      conflict.column('key').doUpdateSet((eb) => ({
        value: eb.ref('excluded.value'),
        updated_at: eb.ref('excluded.updated_at'),
      })),
    )
    .execute();
}

/** The audit metadata of an update: the changed keys and values, the favicon as `<n chars>`. */
export function settingsAuditMetadata(changes: Partial<AppSettings>): Record<string, unknown> {
  const values: Record<string, string> = {};
  for (const [key, value] of Object.entries(changes)) {
    values[key] = key === 'app_favicon' ? `<${[...value].length} chars>` : value;
  }
  return { changed_keys: Object.keys(changes), values };
}
