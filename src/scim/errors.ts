/**
 * The one SCIM error type (RFC 7644 §3.12): an HTTP status, an optional scimType and a detail a
 * human can act on. One factory per scimType; the HTTP layer renders every error through
 * `toErrorBody`, so a client never sees anything but the SCIM Error schema.
 */
export const ERROR_SCHEMA = "urn:ietf:params:scim:api:messages:2.0:Error";

export type ScimType =
  | "invalidFilter"
  | "tooMany"
  | "uniqueness"
  | "mutability"
  | "invalidSyntax"
  | "invalidPath"
  | "noTarget"
  | "invalidValue"
  | "invalidVers"
  | "sensitive";

export class ScimError extends Error {
  readonly status: number;
  readonly scimType?: ScimType;
  readonly headers?: Record<string, string>;
  constructor(status: number, detail: string, scimType?: ScimType, headers?: Record<string, string>) {
    super(detail);
    this.name = "ScimError";
    this.status = status;
    this.scimType = scimType;
    this.headers = headers;
  }
  get detail(): string {
    return this.message;
  }
}

export interface ScimErrorBody {
  schemas: [typeof ERROR_SCHEMA];
  status: string;
  scimType?: ScimType;
  detail: string;
}

export function toErrorBody(e: ScimError): ScimErrorBody {
  const body: ScimErrorBody = { schemas: [ERROR_SCHEMA], status: String(e.status), detail: e.detail };
  if (e.scimType) body.scimType = e.scimType;
  return body;
}

export const invalidFilter = (detail: string) => new ScimError(400, detail, "invalidFilter");
/** RFC 7644 §3.12: the filter yields more than the service provider is willing to calculate or process. */
export const tooMany = (detail: string) => new ScimError(400, detail, "tooMany");
export const uniqueness = (detail: string) => new ScimError(409, detail, "uniqueness");
export const mutability = (detail: string) => new ScimError(400, detail, "mutability");
export const invalidSyntax = (detail: string) => new ScimError(400, detail, "invalidSyntax");
export const invalidPath = (detail: string) => new ScimError(400, detail, "invalidPath");
export const noTarget = (detail: string) => new ScimError(400, detail, "noTarget");
export const invalidValue = (detail: string) => new ScimError(400, detail, "invalidValue");
export const notFound = (detail: string) => new ScimError(404, detail);
export const preconditionFailed = (detail: string) => new ScimError(412, detail);
export const unauthorized = (detail: string) =>
  new ScimError(401, detail, undefined, { "WWW-Authenticate": 'Bearer realm="scimd"' });
/**
 * 401 for a secret that existed and expired: RFC 6750 §3.1's invalid_token, so a client that reads the
 * header (not only the body) knows a new token is needed, not a retry.
 */
export const expiredToken = (detail: string) =>
  new ScimError(401, detail, undefined, { "WWW-Authenticate": 'Bearer realm="scimd", error="invalid_token", error_description="the token expired"' });
/** 403 for a valid token whose scope does not allow the request (RFC 6750 §3.1 insufficient_scope, naming the scope needed). */
export const insufficientScope = (detail: string, needed: string) =>
  new ScimError(403, detail, undefined, { "WWW-Authenticate": `Bearer realm="scimd", error="insufficient_scope", scope="${needed}"` });
export const methodNotAllowed = (detail: string) => new ScimError(405, detail);
export const unsupportedMediaType = (detail: string) => new ScimError(415, detail);
export const payloadTooLarge = (detail: string) => new ScimError(413, detail);
export const tooManyRequests = (detail: string, retryAfterSeconds: number) =>
  new ScimError(429, detail, undefined, { "Retry-After": String(retryAfterSeconds) });
