// The console's client of the Wrenn API (api/openapi.yaml). Every call
// carries the logged-in user's JWT; every failure is an ApiError holding
// the error envelope's words.

export interface Session {
  token: string;
  user_id: string;
  team_id: string;
  email: string;
}

export interface APIKey {
  id: string;
  team_id: string;
  name: string;
  key_prefix: string;
  created_at: string;
  last_used?: string | null;
  key?: string | null;
}

// missing: its host stopped heartbeating (host loss); running again if the
// host comes back in time, error if not.
export type SandboxStatus = "pending" | "running" | "paused" | "stopped" | "error" | "missing";

export interface Sandbox {
  id: string;
  status: SandboxStatus;
  template: string;
  vcpus: number;
  memory_mb: number;
  timeout_sec: number;
  guest_ip?: string;
  host_ip?: string;
  created_at: string;
  started_at?: string | null;
  last_active_at?: string | null;
  last_updated?: string;
  auto_pause?: boolean;
  metadata?: Record<string, string>;
  allow_internet_access?: boolean;
  network?: { allow_out?: string[]; deny_out?: string[] };
}

export interface CreateSandboxRequest {
  template?: string;
  vcpus?: number;
  memory_mb?: number;
  timeout_sec?: number;
  auto_pause?: boolean;
  envs?: Record<string, string>;
  metadata?: Record<string, string>;
  allow_internet_access?: boolean;
  network?: { allow_out?: string[]; deny_out?: string[] };
}

export interface Template {
  name: string;
  type: "base" | "snapshot";
  vcpus?: number | null;
  memory_mb?: number | null;
  size_bytes?: number;
  created_at?: string;
}

export interface FileEntry {
  name: string;
  path: string;
  type: "file" | "directory" | "symlink";
  size: number;
  mode: number;
  permissions: string;
  owner: string;
  group: string;
  modified_at: number;
  symlink_target?: string | null;
}

export interface MetricPoint {
  timestamp_unix: number;
  cpu_pct: number;
  mem_bytes: number;
  disk_bytes: number;
}

export interface SandboxMetrics {
  sandbox_id: string;
  range: string;
  points: MetricPoint[];
}

/** An answer of the API other than success, in the envelope's words. */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
    this.name = "ApiError";
  }
}

const sessionKey = "wrenn.session";

export function loadSession(): Session | null {
  try {
    const s = JSON.parse(localStorage.getItem(sessionKey) ?? "null");
    return s && typeof s.token === "string" ? (s as Session) : null;
  } catch {
    return null;
  }
}

export function saveSession(s: Session | null) {
  if (s) localStorage.setItem(sessionKey, JSON.stringify(s));
  else localStorage.removeItem(sessionKey);
}

/** Called when the API refuses the stored token (expired, revoked). */
let onUnauthorized: (message: string) => void = () => {};
export function setUnauthorizedHandler(f: (message: string) => void) {
  onUnauthorized = f;
}

/** errorFrom turns a failed response into an ApiError, reading its envelope. */
export async function errorFrom(res: Response): Promise<ApiError> {
  const text = await res.text().catch(() => "");
  return envelopeError(res.status, res.statusText, text);
}

function envelopeError(status: number, statusText: string, text: string): ApiError {
  try {
    const body = JSON.parse(text);
    if (body && body.error && typeof body.error.message === "string") {
      return new ApiError(status, body.error.code ?? "", body.error.message);
    }
  } catch {
    // not the envelope; fall through
  }
  const detail = text.trim().slice(0, 200);
  return new ApiError(status, "", `${status} ${statusText}${detail ? ": " + detail : ""}`);
}

function authHeaders(): Record<string, string> {
  const s = loadSession();
  return s ? { Authorization: `Bearer ${s.token}` } : {};
}

/** raw sends a request with the JWT and returns the response if it succeeded. */
export async function raw(method: string, path: string, body?: unknown, init?: RequestInit): Promise<Response> {
  const headers: Record<string, string> = { ...authHeaders() };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  let res: Response;
  try {
    res = await fetch(path, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      ...init,
    });
  } catch (e) {
    throw new ApiError(0, "network", `Cannot reach the Wrenn server: ${(e as Error).message}`);
  }
  if (!res.ok) {
    const err = await errorFrom(res);
    if (res.status === 401 && headers.Authorization) onUnauthorized(err.message);
    throw err;
  }
  return res;
}

async function json<T>(method: string, path: string, body?: unknown): Promise<T> {
  const res = await raw(method, path, body);
  if (res.status === 204) return undefined as T;
  return (await res.json()) as T;
}

const enc = encodeURIComponent;

export const api = {
  signup: (email: string, password: string) => json<Session>("POST", "/v1/auth/signup", { email, password }),
  login: (email: string, password: string) => json<Session>("POST", "/v1/auth/login", { email, password }),

  listKeys: () => json<APIKey[]>("GET", "/v1/api-keys"),
  createKey: (name: string) => json<APIKey>("POST", "/v1/api-keys", name ? { name } : {}),
  deleteKey: (id: string) => json<void>("DELETE", `/v1/api-keys/${enc(id)}`),

  listSandboxes: (status?: string) =>
    json<Sandbox[]>("GET", "/v1/sandboxes" + (status ? `?status=${enc(status)}` : "")),
  getSandbox: (id: string) => json<Sandbox>("GET", `/v1/sandboxes/${enc(id)}`),
  createSandbox: (req: CreateSandboxRequest) => json<Sandbox>("POST", "/v1/sandboxes", req),
  destroySandbox: (id: string) => json<void>("DELETE", `/v1/sandboxes/${enc(id)}`),
  pauseSandbox: (id: string) => json<Sandbox>("POST", `/v1/sandboxes/${enc(id)}/pause`),
  resumeSandbox: (id: string) => json<Sandbox>("POST", `/v1/sandboxes/${enc(id)}/resume`),
  metrics: (id: string, range: string) =>
    json<SandboxMetrics>("GET", `/v1/sandboxes/${enc(id)}/metrics?range=${enc(range)}`),

  listFiles: (id: string, path: string) =>
    json<{ entries: FileEntry[] }>("POST", `/v1/sandboxes/${enc(id)}/files/list`, { path, depth: 1 }),
  removeFile: (id: string, path: string) => json<void>("POST", `/v1/sandboxes/${enc(id)}/files/remove`, { path }),
  makeDir: (id: string, path: string) =>
    json<{ entry: FileEntry }>("POST", `/v1/sandboxes/${enc(id)}/files/mkdir`, { path }),
  readFile: (id: string, path: string) => raw("POST", `/v1/sandboxes/${enc(id)}/files/read`, { path }),

  listTemplates: (type?: "base" | "snapshot") =>
    json<Template[]>("GET", "/v1/snapshots" + (type ? `?type=${type}` : "")),
  createSnapshot: (sandbox_id: string, name: string) =>
    json<Template>("POST", "/v1/snapshots", name ? { sandbox_id, name } : { sandbox_id }),
  deleteSnapshot: (name: string) => json<void>("DELETE", `/v1/snapshots/${enc(name)}`),
};

/**
 * upload sends file to path in the sandbox through the streaming upload
 * (multipart/form-data: path, then file), reporting progress as a
 * fraction. XMLHttpRequest, because fetch reports no upload progress.
 */
export function upload(
  id: string,
  path: string,
  file: File,
  onProgress: (fraction: number) => void,
): { done: Promise<void>; abort: () => void } {
  const xhr = new XMLHttpRequest();
  const done = new Promise<void>((resolve, reject) => {
    xhr.open("POST", `/v1/sandboxes/${enc(id)}/files/stream/write`);
    const h = authHeaders();
    for (const k in h) xhr.setRequestHeader(k, h[k]);
    xhr.upload.onprogress = (e) => {
      if (e.lengthComputable && e.total > 0) onProgress(e.loaded / e.total);
    };
    xhr.onload = () => {
      if (xhr.status >= 200 && xhr.status < 300) {
        onProgress(1);
        resolve();
        return;
      }
      const err = envelopeError(xhr.status, xhr.statusText, xhr.responseText);
      if (xhr.status === 401) onUnauthorized(err.message);
      reject(err);
    };
    xhr.onerror = () => reject(new ApiError(0, "network", "The upload failed: the connection to the server was lost"));
    xhr.onabort = () => reject(new ApiError(0, "aborted", "Upload cancelled"));
    const form = new FormData();
    form.append("path", path);
    form.append("file", file, file.name);
    xhr.send(form);
  });
  return { done, abort: () => xhr.abort() };
}

/** openSocket opens one of the API's WebSockets, credentials as subprotocols. */
export function openSocket(path: string): WebSocket {
  const s = loadSession();
  const proto = location.protocol === "https:" ? "wss:" : "ws:";
  const protocols = ["wrenn"];
  if (s) protocols.push(`wrenn.bearer.${s.token}`);
  return new WebSocket(`${proto}//${location.host}${path}`, protocols);
}

/** probe asks what a plain GET of a WebSocket route answers, to explain a refused upgrade. */
export async function probe(path: string): Promise<ApiError | null> {
  try {
    await raw("GET", path);
    return null;
  } catch (e) {
    return e instanceof ApiError ? e : null;
  }
}

// Base64 of raw bytes both ways (terminal data is not UTF-8).
export function bytesToBase64(b: Uint8Array): string {
  let s = "";
  for (let i = 0; i < b.length; i += 0x8000) s += String.fromCharCode(...b.subarray(i, i + 0x8000));
  return btoa(s);
}

export function base64ToBytes(s: string): Uint8Array {
  const bin = atob(s);
  const out = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
  return out;
}

export function formatBytes(n: number | null | undefined): string {
  if (n == null) return "—";
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let i = 0;
  let v = n;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return `${i === 0 ? v : v.toFixed(v < 10 ? 1 : 0)} ${units[i]}`;
}

export function formatAge(iso: string | null | undefined): string {
  if (!iso) return "—";
  const t = Date.parse(iso);
  if (isNaN(t)) return "—";
  const s = Math.max(0, Math.round((Date.now() - t) / 1000));
  if (s < 60) return `${s}s ago`;
  if (s < 3600) return `${Math.floor(s / 60)}m ago`;
  if (s < 86400) return `${Math.floor(s / 3600)}h ago`;
  return `${Math.floor(s / 86400)}d ago`;
}
