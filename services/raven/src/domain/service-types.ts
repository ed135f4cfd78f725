// The contract between the Raven Zero service layer (domain/uploads.ts) and its callers (HTTP routes, jobs).
// Nothing here knows about HTTP: outcomes are plain values; HTTP status codes are chosen by the routes.
import type { Readable } from 'node:stream';

/** Upload options, already validated against the configured bounds. */
export interface UploadOptions {
  expiryMinutes: number;
  uses: number;
  /** null = no password (an empty form value means none) */
  password: string | null;
}

/** What a finished upload reports (the 201 body is built from it). */
export interface UploadReceipt {
  key: string;
  filename: string;
  size: number;
  sha256: string;
  mimeType: string;
  createdAt: Date;
  expiresAt: Date;
  uses: number;
  passwordProtected: boolean;
}

/** Reasons an upload is refused while or after streaming (all leave nothing on disk or in the store). */
export type UploadRefusal =
  | { kind: 'too_large'; receivedBytes: number; maxBytes: number }
  | { kind: 'type_not_allowed'; mimeType: string }
  | { kind: 'empty' }
  | { kind: 'storage_full' }
  | { kind: 'store_unavailable' }
  | { kind: 'saturated' };

/** Thrown by the service for a refused upload. */
export class UploadRefusedError extends Error {
  override readonly name = 'UploadRefusedError';
  constructor(readonly refusal: UploadRefusal) {
    super(refusal.kind);
  }
}

/**
 * One upload in progress. The route feeds the file bytes as they arrive (`write`), learns of a refusal as soon
 * as it is known (size cap, then type once 4,096 bytes or the whole file are in), and calls `finish` with the
 * options once the whole body is read — or `abort` on any failure, which removes everything written so far.
 */
export interface UploadSession {
  /** resolves when the chunk is accepted (backpressure); rejects with UploadRefusedError */
  write(chunk: Buffer): Promise<void>;
  /** all file bytes are in: encrypt the rest, store the blob and the record, return the receipt */
  finish(options: UploadOptions, filename: string): Promise<UploadReceipt>;
  /** discard everything (partial blob, temp file); safe to call twice or after finish failed */
  abort(): Promise<void>;
}

/** Outcomes of a key lookup that are not a success. */
export type LookupFailure =
  | { kind: 'not_found' } // unknown, malformed or expired key: counts as a failed attempt
  | { kind: 'burned' } // tombstone or no uses left: 410, not a failure
  | { kind: 'already_previewed' } // preview only: 404, not a failure
  | { kind: 'password_required' } // 401, a failure
  | { kind: 'invalid_password' } // 401, a failure
  | { kind: 'blocked'; retryAfterSeconds: number } // 429, checked before any lookup
  | { kind: 'store_unavailable' } // 503
  | { kind: 'saturated' }; // 503 (KDF queue or transfer limit)

export interface PreviewInfo {
  key: string;
  filename: string;
  size: number;
  mimeType: string;
  sha256: string;
  createdAt: Date;
  expiresAt: Date;
  /** remaining downloads */
  uses: number;
  usesTotal: number;
  passwordProtected: boolean;
}

export interface DownloadStream {
  key: string;
  filename: string;
  size: number;
  mimeType: string;
  sha256: string;
  /** the plaintext, chunk 0 already authenticated; ends early (error) if a later chunk fails authentication */
  body: Readable;
  /** true when this download used the last use (the blob is shredded once `body` ends or is destroyed) */
  burned: boolean;
}

export interface StatusInfo {
  key: string;
  status: 'active' | 'burned' | 'expired';
  remainingUses: number;
  expiresAt: Date;
  usesTotal: number;
  previewed: boolean;
  passwordRequired: boolean;
}

export type Outcome<T> = { ok: true; value: T } | { ok: false; failure: LookupFailure };

/** The operations of Raven Zero. `client` is the client identity (IP or IPv6 prefix) for failures and blocks. */
export interface RavenService {
  beginUpload(): Promise<UploadSession>;
  preview(rawKey: string, password: string | null, client: string): Promise<Outcome<PreviewInfo>>;
  /** integrity failure of chunk 0 throws IntegrityError (the use stays consumed) */
  download(rawKey: string, password: string | null, client: string): Promise<Outcome<DownloadStream>>;
  /** unknown keys give `null` (and count as a failure) */
  status(rawKey: string, client: string): Promise<Outcome<StatusInfo | null>>;
  remove(rawKey: string, password: string | null, client: string): Promise<Outcome<void>>;
  /** the normalized form of a key (echoed in bodies) */
  normalize(rawKey: string): string;
  /** shutdown: abort every upload still in progress, removing its partial files */
  abortOpenUploads(): Promise<void>;
}

/** The stored blob failed authentication before anything was sent. */
export class IntegrityError extends Error {
  override readonly name = 'IntegrityError';
}
