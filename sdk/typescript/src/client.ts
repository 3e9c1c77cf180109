import { Hosts } from "./hosts.js";
import { Transport, type WrennOptions } from "./http.js";
import { Sandbox } from "./sandbox.js";
import type {
  APIKey,
  AuthResponse,
  CallOptions,
  CreateSandboxRequest,
  CreateSnapshotRequest,
  SandboxStats,
  SandboxStatus,
  StatsRange,
  Template,
  TemplateType,
  Usage,
} from "./types.js";

/** What listSandboxes keeps. */
export interface ListSandboxesOptions extends CallOptions {
  /** Only sandboxes in these statuses; none is every status but stopped. */
  status?: SandboxStatus[];
  /** Only sandboxes whose metadata holds every pair. */
  metadata?: Record<string, string>;
}

/**
 * A client of one Wrenn server:
 *
 *     const wrenn = new Wrenn({ baseUrl: "http://localhost:8080", apiKey });
 *     const sb = await wrenn.createSandbox({ template: "minimal" });
 *
 * Account calls (API keys) need a token from signup or login; sandbox,
 * file and snapshot calls an API key (or a token). Every call takes an
 * AbortSignal; every error the API answers is thrown as a WrennError.
 */
export class Wrenn {
  /** The registry of hosts (needs a token). */
  readonly hosts: Hosts;

  private readonly t: Transport;
  private readonly opts: WrennOptions;

  constructor(opts: WrennOptions) {
    this.opts = { ...opts };
    this.t = new Transport(opts);
    this.hosts = new Hosts(this.t);
  }

  /** The server's address. */
  get baseUrl(): string {
    return this.t.baseUrl;
  }

  /** A copy of this client with opts on top, as after a login: wrenn.with({ token }). */
  with(opts: Partial<WrennOptions>): Wrenn {
    return new Wrenn({ ...this.opts, ...opts });
  }

  /** Creates an account (and its team). A taken email is a conflict; a bad email or short password, invalid. */
  signup(email: string, password: string, opts: CallOptions = {}): Promise<AuthResponse> {
    return this.t.call("post", "/v1/auth/signup", { body: { email, password }, signal: opts.signal });
  }

  /** Logs in; bad credentials are unauthorized. */
  login(email: string, password: string, opts: CallOptions = {}): Promise<AuthResponse> {
    return this.t.call("post", "/v1/auth/login", { body: { email, password }, signal: opts.signal });
  }

  /** Makes an API key for the team (needs a token); its plaintext `key` is shown only now. */
  createAPIKey(name?: string, opts: CallOptions = {}): Promise<APIKey> {
    return this.t.call("post", "/v1/api-keys", { body: name ? { name } : {}, signal: opts.signal });
  }

  /** Lists the team's API keys, without their plaintext (needs a token). */
  listAPIKeys(opts: CallOptions = {}): Promise<APIKey[]> {
    return this.t.call("get", "/v1/api-keys", { signal: opts.signal });
  }

  /** Deletes one of the team's API keys (needs a token). */
  async deleteAPIKey(id: string, opts: CallOptions = {}): Promise<void> {
    await this.t.call("delete", "/v1/api-keys/{id}", { path: { id }, signal: opts.signal });
  }

  /** Starts a sandbox and returns it running. */
  async createSandbox(req: CreateSandboxRequest = {}, opts: CallOptions = {}): Promise<Sandbox> {
    const info = await this.t.call("post", "/v1/sandboxes", { body: req, signal: opts.signal });
    return new Sandbox(this.t, info.id ?? "", info);
  }

  /** Reads one of the team's sandboxes; another team's, or none, is not_found. */
  async getSandbox(id: string, opts: CallOptions = {}): Promise<Sandbox> {
    return new Sandbox(this.t, id).refresh(opts);
  }

  /** A sandbox by its ID alone, without asking the server. */
  sandbox(id: string): Sandbox {
    return new Sandbox(this.t, id);
  }

  /** Lists the team's sandboxes, newest first. */
  async listSandboxes(opts: ListSandboxesOptions = {}): Promise<Sandbox[]> {
    const query: { status?: string; metadata?: string } = {};
    if (opts.status?.length) {
      query.status = opts.status.join(",");
    }
    if (opts.metadata && Object.keys(opts.metadata).length > 0) {
      // A query string of its own, escaped once more in the URL, as the API wants.
      query.metadata = new URLSearchParams(opts.metadata).toString();
    }
    const out = await this.t.call("get", "/v1/sandboxes", { query, signal: opts.signal });
    return out.map((info) => new Sandbox(this.t, info.id ?? "", info));
  }

  /** Turns a running sandbox into a snapshot template; the sandbox is destroyed. */
  createSnapshot(req: CreateSnapshotRequest, opts: CallOptions = {}): Promise<Template> {
    const { overwrite, ...body } = req;
    return this.t.call("post", "/v1/snapshots", {
      query: overwrite ? { overwrite: "true" } : {},
      body,
      signal: opts.signal,
    });
  }

  /** Lists the templates the team can use, of one type or all. */
  listSnapshots(type?: TemplateType, opts: CallOptions = {}): Promise<Template[]> {
    return this.t.call("get", "/v1/snapshots", { query: { type }, signal: opts.signal });
  }

  /** Deletes one of the team's snapshot templates. */
  async deleteSnapshot(name: string, opts: CallOptions = {}): Promise<void> {
    await this.t.call("delete", "/v1/snapshots/{name}", { path: { name }, signal: opts.signal });
  }

  /** The team's running sandboxes now, their 30-day peaks and a series over range ("1h" by default). */
  stats(range?: StatsRange, opts: CallOptions = {}): Promise<SandboxStats> {
    return this.t.call("get", "/v1/sandboxes/stats", { query: { range }, signal: opts.signal });
  }

  /** The team's reserved CPU and memory per UTC day, from and to YYYY-MM-DD (both included). */
  usage(range: { from?: string; to?: string } = {}, opts: CallOptions = {}): Promise<Usage> {
    return this.t.call("get", "/v1/sandboxes/usage", { query: range, signal: opts.signal });
  }
}
