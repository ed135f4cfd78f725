// `/api/auth` (spec §3.2): register, login (rate-limited per email before the password check), dev login,
// logout (revokes the token's jti until its expiry) and the caller's profile.
import { issueToken } from '@quintet/kernel/jwt';
import type { FastifyInstance } from 'fastify';
import { hashPassword, passwordPolicyViolation, verifyPassword } from '../domain/passwords.js';
import {
  createUser,
  EmailTakenError,
  findOrCreateUser,
  findUserByEmail,
  isValidEmail,
  normalizeEmail,
  type UserRow,
} from '../domain/users.js';
import type { RagContext } from './context.js';
import { detail, featureRateLimit, InputReader, requireUser } from './conventions.js';

export interface TokenOut {
  access_token: string;
  token_type: 'bearer';
  expires_in: number;
}

/** The public profile of a user (`GET /api/auth/me`). */
export function userOut(row: Pick<UserRow, 'id' | 'email' | 'is_admin' | 'is_active' | 'created_at'>) {
  return {
    id: row.id,
    email: row.email,
    is_admin: row.is_admin,
    is_active: row.is_active,
    created_at: row.created_at.toISOString(),
  };
}

/** Reads `email` (trimmed, lower-cased, checked) from a body reader. */
function readEmail(reader: InputReader): string | undefined {
  const raw = reader.string('email', { required: true });
  if (raw === undefined) return undefined;
  const email = normalizeEmail(raw);
  if (!isValidEmail(email)) {
    reader.fail('email', 'value is not a valid email address: The email address is not valid.');
    return undefined;
  }
  return email;
}

export function registerAuthRoutes(app: FastifyInstance, context: RagContext): void {
  const { config, db } = context;
  const devLoginEnabled = config.allowDevLogin && !config.strictEnvironment;

  const tokenFor = async (userId: number): Promise<TokenOut> => {
    const expiresIn = config.accessTokenExpireMinutes * 60;
    const { token } = await issueToken({
      secret: config.jwtSecret,
      subject: String(userId),
      issuer: config.jwtIssuer,
      audience: config.jwtAudience,
      expiresInSeconds: expiresIn,
    });
    return { access_token: token, token_type: 'bearer', expires_in: expiresIn };
  };

  /** What the login page may offer (the dev login button only when the route exists). */
  app.get('/api/auth/options', async () => ({
    dev_login: devLoginEnabled,
    registration: config.allowRegistration,
  }));

  app.post('/api/auth/register', async (request) => {
    if (!config.allowRegistration) throw detail(403, 'Registration is disabled');
    const reader = InputReader.body(request);
    const email = readEmail(reader);
    const password = reader.string('password', { required: true });
    reader.done();
    const violation = passwordPolicyViolation(password as string);
    if (violation !== null) throw detail(400, violation);
    if ((await findUserByEmail(db.kysely, email as string)) !== undefined)
      throw detail(400, 'Email already registered');
    try {
      await createUser(db.kysely, {
        email: email as string,
        hashedPassword: await hashPassword(password as string),
      });
    } catch (error) {
      if (error instanceof EmailTakenError) throw detail(400, error.message);
      throw error;
    }
    request.log.info({ event: 'user_registered' }, 'user_registered');
    return { ok: true };
  });

  app.post('/api/auth/login', async (request, reply) => {
    const reader = InputReader.body(request);
    const email = readEmail(reader);
    const password = reader.string('password', { required: true });
    reader.done();
    // Counted before the password check, so guessing is throttled whatever the answer.
    await featureRateLimit(context, request, reply, `login:${email}`, config.loginRateLimitPerMinute);
    const user = await findUserByEmail(db.kysely, email as string);
    const valid = user !== undefined && (await verifyPassword(password as string, user.hashed_password));
    if (!valid || !user.is_active) {
      request.log.info({ event: 'login_failed' }, 'login_failed');
      throw detail(401, 'Invalid credentials', { 'www-authenticate': 'Bearer' });
    }
    request.log.info({ event: 'login_succeeded', user_id: user.id }, 'login_succeeded');
    return tokenFor(user.id);
  });

  if (devLoginEnabled) {
    app.post('/api/auth/token', async (request, reply) => {
      const reader = InputReader.body(request);
      const email = readEmail(reader);
      reader.done();
      await featureRateLimit(context, request, reply, `login:${email}`, config.loginRateLimitPerMinute);
      const user = await findOrCreateUser(db.kysely, email as string);
      if (!user.is_active) throw detail(403, 'User is inactive');
      request.log.info({ event: 'dev_login', user_id: user.id }, 'dev_login');
      return tokenFor(user.id);
    });
  }

  app.post('/api/auth/logout', async (request) => {
    const user = await requireUser(request);
    await context.revocations.revoke(user.jti, user.tokenExpiresAt);
    request.log.info({ event: 'logout', user_id: user.id }, 'logout');
    return { ok: true, message: 'Logged out successfully' };
  });

  app.get('/api/auth/me', async (request) => userOut(await requireUser(request)));
}
