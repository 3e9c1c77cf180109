import type { Transport } from "./http.js";
import type {
  CallOptions,
  CreateHostRequest,
  Host,
  HostCertificate,
  HostDeletePreview,
  HostToken,
  RegisterHostRequest,
  RegisteredHost,
} from "./types.js";

/**
 * The registry of hosts (/v1/hosts): `wrenn.hosts`. Calls need a token
 * (a login's JWT), and what they may do depends on who logged in: platform
 * admins manage every host, a team's owners its BYOC hosts.
 */
export class Hosts {
  private readonly t: Transport;

  constructor(t: Transport) {
    this.t = t;
  }

  /** Creates a pending host and returns it with its one-time registration token. */
  create(req: CreateHostRequest, opts: CallOptions = {}): Promise<HostToken> {
    return this.t.call("post", "/v1/hosts", { body: req, signal: opts.signal });
  }

  /** The hosts the caller sees: all for a platform admin, else their team's BYOC hosts. */
  list(opts: CallOptions = {}): Promise<Host[]> {
    return this.t.call("get", "/v1/hosts", { signal: opts.signal });
  }

  /** A host; one the caller does not see is not_found. */
  get(id: string, opts: CallOptions = {}): Promise<Host> {
    return this.t.call("get", "/v1/hosts/{id}", { path: { id }, signal: opts.signal });
  }

  /**
   * Deletes a host. While sandboxes live on it the answer is a WrennError
   * of code "host_has_sandboxes" naming them in sandboxIds, unless force:
   * then they are destroyed with it.
   */
  async delete(id: string, opts: CallOptions & { force?: boolean } = {}): Promise<void> {
    await this.t.call("delete", "/v1/hosts/{id}", {
      path: { id },
      query: opts.force ? { force: true } : {},
      signal: opts.signal,
    });
  }

  /** What a forced delete would destroy, changing nothing. */
  previewDelete(id: string, opts: CallOptions = {}): Promise<HostDeletePreview> {
    return this.t.call("get", "/v1/hosts/{id}/delete-preview", { path: { id }, signal: opts.signal });
  }

  /** Gives a pending host a new registration token; the old one stops working. */
  regenerateToken(id: string, opts: CallOptions = {}): Promise<HostToken> {
    return this.t.call("post", "/v1/hosts/{id}/token", { path: { id }, signal: opts.signal });
  }

  /** A host's tags, sorted. */
  listTags(id: string, opts: CallOptions = {}): Promise<string[]> {
    return this.t.call("get", "/v1/hosts/{id}/tags", { path: { id }, signal: opts.signal });
  }

  /** Tags a host; a tag it has is no change. */
  async addTag(id: string, tag: string, opts: CallOptions = {}): Promise<void> {
    await this.t.call("post", "/v1/hosts/{id}/tags", { path: { id }, body: { tag }, signal: opts.signal });
  }

  /** Removes a tag from a host; a tag it lacks is no change. */
  async removeTag(id: string, tag: string, opts: CallOptions = {}): Promise<void> {
    await this.t.call("delete", "/v1/hosts/{id}/tags/{tag}", { path: { id, tag }, signal: opts.signal });
  }

  /** Stops new sandboxes going to a host; those it has stay. */
  drain(id: string, opts: CallOptions = {}): Promise<Host> {
    return this.t.call("post", "/v1/hosts/{id}/drain", { path: { id }, signal: opts.signal });
  }

  // The agent link: what a host's agent calls on the control plane's fleet
  // listener (wrenn server --fleet-listen), not on the public API. It is
  // TLS: give the client a baseUrl there and a fetch that presents the
  // agent's certificate (none before registration) and trusts the fleet's CA.

  /** Registers an agent with its host's one-time registration token, which it uses up. */
  register(req: RegisterHostRequest, opts: CallOptions = {}): Promise<RegisteredHost> {
    return this.t.call("post", "/v1/hosts/register", { body: req, signal: opts.signal });
  }

  /** Tells the control plane host id's agent is alive (the host's certificate). */
  async heartbeat(id: string, opts: CallOptions = {}): Promise<void> {
    await this.t.call("post", "/v1/hosts/{id}/heartbeat", { path: { id }, signal: opts.signal });
  }

  /** Has a new CSR (PEM) certified for host id's agent (its current certificate). */
  renewCertificate(id: string, csr: string, opts: CallOptions = {}): Promise<HostCertificate> {
    return this.t.call("post", "/v1/hosts/{id}/certificate", { path: { id }, body: { csr }, signal: opts.signal });
  }

  /** Lets a drained host take new sandboxes again. */
  undrain(id: string, opts: CallOptions = {}): Promise<Host> {
    return this.t.call("post", "/v1/hosts/{id}/undrain", { path: { id }, signal: opts.signal });
  }
}
