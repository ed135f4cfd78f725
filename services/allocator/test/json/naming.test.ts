import { describe, expect, it } from 'vitest';
import { analyseDocuments } from '../../src/domain/json/analysis.js';
import {
  baseColumnName,
  chooseSchemaName,
  columnNames,
  isLikelyForeignKey,
  sanitiseNameHint,
  TABLE_NAME_PATTERN,
} from '../../src/domain/json/naming.js';

const HASH = '4b05bfed633ceb1b4a4d9147ffeab6a76afe99e6338cff3ef54b60d5da863600';
const nothingTaken = (): boolean => false;

describe('sanitiseNameHint', () => {
  it('lower-cases, turns spaces and dashes into underscores and drops other characters', () => {
    expect(sanitiseNameHint('Customer Orders-2024')).toBe('customer_orders_2024');
    expect(sanitiseNameHint('Café Menü!')).toBe('caf_men');
    expect(sanitiseNameHint('users; DROP TABLE x; --')).toBe('users_drop_table_x___');
    expect(sanitiseNameHint('_private')).toBe('_private');
  });

  it('truncates to 48 characters', () => {
    expect(sanitiseNameHint('a'.repeat(60))).toBe('a'.repeat(48));
    expect(sanitiseNameHint(`${'b'.repeat(47)}é${'c'.repeat(5)}`)).toBe(`${'b'.repeat(47)}c`);
  });

  it('gives no hint when empty or starting with a digit', () => {
    expect(sanitiseNameHint(null)).toBeNull();
    expect(sanitiseNameHint(undefined)).toBeNull();
    expect(sanitiseNameHint('')).toBeNull();
    expect(sanitiseNameHint('!!!')).toBeNull();
    expect(sanitiseNameHint('東京')).toBeNull();
    expect(sanitiseNameHint('2024 sales')).toBeNull();
  });
});

describe('chooseSchemaName', () => {
  it('names a hint-less batch after its structure hash', () => {
    const analysis = analyseDocuments([{ name: 'a', age: 1 }], { sampleSize: 128, maxDepth: 2 });
    expect(chooseSchemaName(null, 'sql', analysis.structureHash, nothingTaken)).toBe('table_4b05bfed');
    expect(chooseSchemaName(null, 'jsonb', analysis.structureHash, nothingTaken)).toBe('docs_4b05bfed');
    expect(chooseSchemaName('2024', 'sql', HASH, nothingTaken)).toBe('table_4b05bfed');
  });

  it('uses the sanitised hint', () => {
    expect(chooseSchemaName('Stable Users', 'sql', HASH, nothingTaken)).toBe('stable_users');
  });

  it('appends the hash prefix when the name is taken', () => {
    const taken = new Set(['stable_users', 'table_4b05bfed']);
    const isTaken = (name: string): boolean => taken.has(name);
    expect(chooseSchemaName('stable users', 'sql', HASH, isTaken)).toBe('stable_users_4b05bfed');
    expect(chooseSchemaName(null, 'sql', HASH, isTaken)).toBe('table_4b05bfed_4b05bfed');
    taken.add('stable_users_4b05bfed');
    expect(chooseSchemaName('stable users', 'sql', HASH, isTaken)).toBe('stable_users_4b05bfed_2');
  });

  it('always yields a name the approval pattern accepts', () => {
    for (const hint of [null, 'x', '_', 'a'.repeat(100), 'Mixed Case-Name']) {
      const name = chooseSchemaName(hint, 'jsonb', HASH, (candidate) => !candidate.endsWith('4b05bfed'));
      expect(name).toMatch(TABLE_NAME_PATTERN);
    }
  });
});

describe('TABLE_NAME_PATTERN', () => {
  it('accepts lower-case identifiers of up to 63 characters', () => {
    expect(TABLE_NAME_PATTERN.test('orders_2024')).toBe(true);
    expect(TABLE_NAME_PATTERN.test('_x')).toBe(true);
    expect(TABLE_NAME_PATTERN.test(`a${'b'.repeat(62)}`)).toBe(true);
    expect(TABLE_NAME_PATTERN.test(`a${'b'.repeat(63)}`)).toBe(false);
    expect(TABLE_NAME_PATTERN.test('1orders')).toBe(false);
    expect(TABLE_NAME_PATTERN.test('Orders')).toBe(false);
    expect(TABLE_NAME_PATTERN.test('a-b')).toBe(false);
    expect(TABLE_NAME_PATTERN.test('x; drop table y')).toBe(false);
    expect(TABLE_NAME_PATTERN.test('')).toBe(false);
  });
});

describe('columnNames', () => {
  it('turns SQL-ish and odd field names into safe identifiers', () => {
    const long = `${'Very_Long_Field_Name_'.repeat(3)}xxxxxxx`; // 70 characters
    expect(long).toHaveLength(70);
    const names = columnNames([
      '"; DROP TABLE x; --',
      'select',
      'id',
      'Index',
      '2fa_enabled',
      long,
      '',
      'user-name',
      'user name',
      'User_Name',
      'extra',
      'asset_id',
      'created_at',
      'updated_at',
      'key',
      'value',
      'left',
      'system_user',
      'ключ',
      'emoji😀',
    ]);
    expect(Object.fromEntries(names)).toEqual({
      '"; DROP TABLE x; --': '___drop_table_x____',
      select: 'select_col',
      id: 'id_col',
      Index: 'index_col',
      '2fa_enabled': 'col_2fa_enabled',
      [long]: 'very_long_field_name_very_long_field_name_very_long_field_n',
      '': 'col',
      'user-name': 'user_name',
      'user name': 'user_name_2',
      User_Name: 'user_name_3',
      extra: 'extra_col',
      asset_id: 'asset_id_col',
      created_at: 'created_at_col',
      updated_at: 'updated_at_col',
      key: 'key_col',
      value: 'value_col',
      left: 'left_col',
      system_user: 'system_user_col',
      ключ: '____',
      'emoji😀': 'emoji_',
    });
    for (const column of names.values()) expect(column).toMatch(/^[a-z_][a-z0-9_]{0,62}$/);
  });

  it('numbers duplicates after truncation and never reuses a name', () => {
    const prefix = 'p'.repeat(59);
    const names = columnNames([`${prefix}a`, `${prefix}b`, `${prefix}c`, 'id', 'id_col', 'a', 'A', 'a_2']);
    expect([...names.values()]).toEqual([
      prefix,
      `${prefix}_2`,
      `${prefix}_3`,
      'id_col',
      'id_col_2',
      'a',
      'a_2',
      'a_2_2',
    ]);
    expect(new Set(names.values()).size).toBe(names.size);
  });

  it('keeps every reserved word of the specification from being a bare column', () => {
    for (const word of [
      'all',
      'analyse',
      'order',
      'group',
      'user',
      'where',
      'with',
      'true',
      'null',
      'table',
    ]) {
      expect(baseColumnName(word)).toBe(`${word}_col`);
      expect(baseColumnName(word.toUpperCase())).toBe(`${word}_col`);
    }
    expect(baseColumnName('username')).toBe('username');
    expect(baseColumnName('orders')).toBe('orders');
  });
});

describe('isLikelyForeignKey', () => {
  it('recognises id, *_id, *_key and camel-case Id/Key', () => {
    for (const name of [
      'id',
      'ID',
      'Id',
      'user_id',
      'USER_ID',
      'api_key',
      'Api_Key',
      'orderKey',
      'userId',
      'item2Id',
    ]) {
      expect(isLikelyForeignKey(name), name).toBe(true);
    }
  });

  it('does not take words that merely end in "id" or "key"', () => {
    for (const name of [
      'width',
      'video',
      'paid',
      'valid',
      'idle',
      'key',
      'monkey',
      'turkey',
      'userID',
      'ids',
      'Key',
    ]) {
      expect(isLikelyForeignKey(name), name).toBe(false);
    }
  });
});
