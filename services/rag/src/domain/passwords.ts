// The password policy of spec §3.2 (register and create-first-admin) and bcrypt hashing (cost 12).
import bcrypt from 'bcryptjs';

export const BCRYPT_COST = 12;
const SPECIAL_CHARACTERS = '!@#$%^&*()_+-=[]{}|;:,.<>?/~`';

/** The first failing rule's message (HTTP 400 / CLI exit 2), or null when the password is acceptable. */
export function passwordPolicyViolation(password: string): string | null {
  if (password === '') return 'Password cannot be empty.';
  if ([...password].length < 6) return 'Password too short: minimum 6 characters.';
  if (Buffer.byteLength(password, 'utf8') > 72) return 'Password too long: must be 72 bytes or fewer.';
  if (!/[a-z]/.test(password) || !/[A-Z]/.test(password) || !/\d/.test(password)) {
    return 'Weak password: require upper, lower, digit';
  }
  if (![...password].some((character) => SPECIAL_CHARACTERS.includes(character))) {
    return 'Weak password: require a special character';
  }
  return null;
}

let hashCost = BCRYPT_COST;

/**
 * Test hook: a lower bcrypt cost for test suites that register many users. Production code never calls it;
 * the cost is not configurable from the environment.
 */
export function setPasswordHashCostForTests(cost: number): void {
  hashCost = cost;
}

export function hashPassword(password: string): Promise<string> {
  return bcrypt.hash(password, hashCost);
}

/** False for an empty stored hash (dev-login users have no password) or a mismatch. */
export async function verifyPassword(password: string, hashed: string): Promise<boolean> {
  if (hashed === '' || password === '') return false;
  try {
    return await bcrypt.compare(password, hashed);
  } catch {
    return false;
  }
}
