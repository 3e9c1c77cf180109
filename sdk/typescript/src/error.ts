import type { components } from "./schema.js";

type Envelope = components["schemas"]["Error"] | components["schemas"]["HostHasCapsulesError"];

/** Error codes of the API's error envelope; stable, so match on them. */
export const ErrorCode = {
  Invalid: "invalid_request", // 400
  Unauthorized: "unauthorized", // 401
  Forbidden: "forbidden", // 403
  NotFound: "not_found", // 404
  MethodNotAllowed: "method_not_allowed", // 405
  Conflict: "conflict", // 409
  TooLarge: "payload_too_large", // 413
  UnsupportedMedia: "unsupported_media_type", // 415
  RateLimited: "rate_limited", // 429
  QuotaExceeded: "quota_exceeded", // 429
  HostFull: "host_full", // 503
  HostAgent: "host_agent_error", // 502
  Internal: "internal", // 500
  /** 409: a host delete without force while sandboxes live on it; see sandboxIds. */
  HostHasSandboxes: "host_has_sandboxes",
  /** The SDK's own: a WebSocket stream ended with the server's error message (status 0). */
  Stream: "stream_error",
} as const;

/**
 * Every error the API answers with: the HTTP status and the envelope's code
 * and message, as the API words it. A body that is not the envelope (a
 * proxy's page) still becomes a WrennError, with a code derived from the
 * status and the body's start as the message. Errors sent on a stream have
 * status 0 and code "stream_error".
 */
export class WrennError extends Error {
  override readonly name = "WrennError";
  readonly status: number;
  readonly code: string;
  /** The Retry-After of a 429, in seconds, if the server sent one. */
  readonly retryAfter: number | undefined;
  /** Of "host_has_sandboxes": the sandboxes on the host. */
  readonly sandboxIds: string[] | undefined;

  constructor(status: number, code: string, message: string, retryAfter?: number, sandboxIds?: string[]) {
    super(message);
    this.status = status;
    this.code = code;
    this.retryAfter = retryAfter;
    this.sandboxIds = sandboxIds;
  }

  get isNotFound(): boolean {
    return this.code === ErrorCode.NotFound;
  }
  get isConflict(): boolean {
    return this.code === ErrorCode.Conflict;
  }
  get isInvalid(): boolean {
    return this.code === ErrorCode.Invalid;
  }
  get isUnauthorized(): boolean {
    return this.code === ErrorCode.Unauthorized;
  }
}

/** The error of a non-2xx response, read from its body. */
export async function errorFrom(resp: Response): Promise<WrennError> {
  let text = "";
  try {
    text = await resp.text();
  } catch {
    // the status says enough
  }
  let retryAfter: number | undefined;
  const ra = resp.headers.get("Retry-After");
  if (ra !== null && /^\d+$/.test(ra)) {
    retryAfter = Number(ra);
  }
  return parseError(resp.status, text, retryAfter, resp.statusText);
}

export function parseError(
  status: number,
  body: string,
  retryAfter?: number,
  statusText = "",
): WrennError {
  try {
    const env = JSON.parse(body) as Envelope;
    if (env.error?.code) {
      const ids = "sandbox_ids" in env.error ? env.error.sandbox_ids : undefined;
      return new WrennError(status, env.error.code, env.error.message ?? "", retryAfter, ids);
    }
  } catch {
    // not the envelope
  }
  let msg = body.trim().slice(0, 200);
  if (msg === "") {
    msg = statusText || `HTTP ${status}`;
  }
  return new WrennError(status, codeOf(status), msg, retryAfter);
}

/** The code a status stands for when the body does not say. */
function codeOf(status: number): string {
  switch (status) {
    case 400:
      return ErrorCode.Invalid;
    case 401:
      return ErrorCode.Unauthorized;
    case 403:
      return ErrorCode.Forbidden;
    case 404:
      return ErrorCode.NotFound;
    case 405:
      return ErrorCode.MethodNotAllowed;
    case 409:
      return ErrorCode.Conflict;
    case 413:
      return ErrorCode.TooLarge;
    case 415:
      return ErrorCode.UnsupportedMedia;
    case 429:
      return ErrorCode.RateLimited;
    case 503:
      return ErrorCode.HostFull;
    case 502:
      return ErrorCode.HostAgent;
  }
  return ErrorCode.Internal;
}
