/**
 * Bearer tokens: 256 random bits, shown once; only their SHA-256 hash is stored. A slow hash adds
 * nothing for a secret with 256 bits of entropy, and SHA-256 keeps each request's check cheap.
 */
import { randomBytes } from "node:crypto";
import { formatDuration } from "./config";
import type { TokenRecord } from "./store/store";

export const TOKEN_PREFIX = "scimd_";

export function newToken(): string {
  return TOKEN_PREFIX + randomBytes(32).toString("base64url");
}

export function hashToken(token: string): string {
  return Bun.SHA256.hash(token, "hex");
}

/** How long before a token's lifetime ends `tokens list` and `serve` start warning about it. */
export const EXPIRY_WARNING_MS = 14 * 86_400_000;

/** A token whose lifetime ends soon or has ended, while nothing else (a rotation, a revocation) replaced it. */
export interface ExpiringToken {
  name: string;
  id: string;
  expiresAt: string;
  /** Milliseconds left; 0 or less once it has expired. */
  leftMs: number;
}

/**
 * The tokens to warn about: a name's current secret (not rotated out, not revoked) whose lifetime ends
 * within `withinMs`, or has ended (clients using it get 401 until it is rotated or revoked). A
 * rotated-out secret ending is the rotation working, not something to warn about. Soonest first.
 */
export function expiringTokens(tokens: readonly TokenRecord[], now = Date.now(), withinMs = EXPIRY_WARNING_MS): ExpiringToken[] {
  return tokens
    .filter((t) => t.revoked === undefined && t.rotated === undefined && t.expiresAt !== null && Date.parse(t.expiresAt) - now <= withinMs)
    .map((t) => ({ name: t.name, id: t.id, expiresAt: t.expiresAt!, leftMs: Date.parse(t.expiresAt!) - now }))
    .sort((a, b) => a.leftMs - b.leftMs);
}

/** One line for people about an expiring (or expired) token; the caller adds the command that rotates it. */
export function expiryWarning(t: ExpiringToken): string {
  return t.leftMs > 0
    ? `token '${t.name}' expires at ${t.expiresAt} (in ${formatDuration(t.leftMs)}); rotate it before then and put the new secret into its client`
    : `token '${t.name}' expired at ${t.expiresAt}; its client gets 401 until you rotate it and put the new secret into the client (or revoke it if it is no longer used)`;
}
