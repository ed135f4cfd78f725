// Branding settings (spec §3.9; acceptance 27).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DEFAULT_SETTINGS } from '../../src/domain/settings.js';
import { createUser, startTestServer, type TestServer } from './harness.js';

describe('settings', () => {
  let server: TestServer;
  beforeAll(async () => {
    server = await startTestServer();
  }, 30_000);
  afterAll(async () => server?.close());

  it('serves the defaults without auth, validates updates and audits them', async () => {
    const defaults = await server.request('GET', '/api/settings');
    expect(defaults.body).toEqual({
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
    });
    const user = await createUser(server, 'settings-user@example.com');
    expect(
      (await server.request('POST', '/api/settings', { token: user.token, body: { app_name: 'X' } })).status,
    ).toBe(403);
    const admin = await createUser(server, 'settings-admin@example.com', { admin: true });
    const post = (body: unknown) => server.request('POST', '/api/settings', { token: admin.token, body });
    const refusals: [unknown, string][] = [
      [{ primary_color: 'blue' }, 'primary_color must be a 6-digit hex color (e.g., #2563EB)'],
      [{ colour: '#000000' }, 'Unknown setting: colour'],
      [{ app_icon: 'rocket' }, 'app_icon must be one of: bolt, book, bot, compass, file, sparkles'],
      [{ theme_preset: 'dark' }, 'theme_preset must be one of: classic, gradient, minimal'],
      [
        { app_favicon: `data:image/png;base64,${'A'.repeat(200_001 - 22)}` },
        'Setting app_favicon is too long (max 200000 chars)',
      ],
    ];
    for (const [body, message] of refusals) {
      const response = await post(body);
      expect([response.status, response.body]).toEqual([400, { detail: message }]);
    }
    const favicon = `data:image/png;base64,${'A'.repeat(100)}`;
    const saved = await post({
      app_name: '  <b>Team</b> Docs  ',
      accent_color: '#00aa00',
      app_favicon: favicon,
    });
    expect(saved.body).toEqual({
      ...DEFAULT_SETTINGS,
      app_name: '<b>Team</b> Docs',
      accent_color: '#00aa00',
      app_favicon: favicon,
    });
    expect((await post({})).body).toEqual(saved.body);
    expect((await server.request('GET', '/api/settings')).body).toEqual(saved.body);
    const audit = (await server.request('GET', '/api/admin/audit', { token: admin.token })).body as {
      action: string;
      metadata_json: string;
    }[];
    expect(audit).toHaveLength(1);
    expect(audit[0]?.action).toBe('update_settings');
    const metadata = JSON.parse(audit[0]?.metadata_json as string);
    expect(metadata.changed_keys).toEqual(['app_name', 'accent_color', 'app_favicon']);
    expect(metadata.values.app_favicon).toBe(`<${favicon.length} chars>`);
  });
});
