/**
 * Bearer tokens: 256 random bits, shown once; only their SHA-256 hash is stored. A slow hash adds
 * nothing for a secret with 256 bits of entropy, and SHA-256 keeps each request's check cheap.
 */
import { randomBytes } from "node:crypto";

export const TOKEN_PREFIX = "scimd_";

export function newToken(): string {
  return TOKEN_PREFIX + randomBytes(32).toString("base64url");
}

export function hashToken(token: string): string {
  return Bun.SHA256.hash(token, "hex");
}
