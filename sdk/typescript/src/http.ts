import { errorFrom } from "./error.js";
import type {
  CallOptions,
  JsonAnswer,
  JsonBody,
  MethodOf,
  Operation,
  Path,
  PathParams,
  QueryParams,
} from "./types.js";

/** How a Wrenn client reaches its server. */
export interface WrennOptions {
  /** The server's address, such as "http://localhost:8080". */
  baseUrl: string;
  /** An API key ("wrn_…") for sandbox, file and snapshot calls, sent as X-API-Key. */
  apiKey?: string;
  /** A JWT from signup or login, sent as "Authorization: Bearer"; API-key calls need it. */
  token?: string;
  /** The fetch to use; the global one by default. */
  fetch?: typeof fetch;
  /**
   * The WebSocket class to use. By default the global one (browsers, Node 22
   * and later) and in Node 20 the `ws` package, loaded when first needed.
   * A standard WebSocket cannot send headers: it authenticates with the
   * subprotocols `wrenn` and `wrenn.key.<key>` (or `wrenn.bearer.<JWT>`).
   */
  WebSocket?: WebSocketConstructorLike;
}

/** A standard WebSocket constructor, as browsers have it. */
export type WebSocketConstructorLike = new (url: string, protocols?: string | string[]) => object;

type Never<T> = [T] extends [never] ? true : [T] extends [undefined] ? true : false;

/** The arguments of one operation: path and query parameters, body, signal. */
export type CallArgs<O> = CallOptions &
  (Never<PathParams<O>> extends true ? { path?: undefined } : { path: PathParams<O> }) &
  (Never<QueryParams<O>> extends true ? { query?: undefined } : { query?: QueryParams<O> }) &
  (Never<JsonBody<O>> extends true ? { body?: undefined } : { body: JsonBody<O> });

/** The HTTP side of a client: URLs, credentials, requests and their errors. */
export class Transport {
  readonly baseUrl: string;
  readonly apiKey: string | undefined;
  readonly token: string | undefined;
  readonly fetch: typeof fetch;
  readonly WebSocket: WebSocketConstructorLike | undefined;

  constructor(opts: WrennOptions) {
    let u: URL;
    try {
      u = new URL(opts.baseUrl);
    } catch {
      throw new TypeError(`base URL ${JSON.stringify(opts.baseUrl)}: not a URL`);
    }
    if (u.protocol !== "http:" && u.protocol !== "https:") {
      throw new TypeError(`base URL ${JSON.stringify(opts.baseUrl)}: want http:// or https:// and a host`);
    }
    this.baseUrl = u.origin + u.pathname.replace(/\/+$/, "");
    this.apiKey = opts.apiKey || undefined;
    this.token = opts.token || undefined;
    this.fetch = opts.fetch ?? globalThis.fetch.bind(globalThis);
    this.WebSocket = opts.WebSocket;
  }

  /** The URL of path (already escaped) with the query's set values. */
  url(path: string, query?: Record<string, unknown>): string {
    let u = this.baseUrl + path;
    if (query) {
      const q = new URLSearchParams();
      for (const [k, v] of Object.entries(query)) {
        if (v !== undefined && v !== null && v !== "") {
          q.set(k, String(v));
        }
      }
      const s = q.toString();
      if (s !== "") {
        u += "?" + s;
      }
    }
    return u;
  }

  /** The credential headers. */
  headers(): Record<string, string> {
    const h: Record<string, string> = {};
    if (this.apiKey) {
      h["X-API-Key"] = this.apiKey;
    }
    if (this.token) {
      h["Authorization"] = "Bearer " + this.token;
    }
    return h;
  }

  /**
   * Sends a request and returns its response when the status is 2xx; any
   * other status is thrown as a WrennError.
   */
  async send(
    method: string,
    url: string,
    init: { body?: BodyInit; contentType?: string; signal?: AbortSignal | undefined } = {},
  ): Promise<Response> {
    const headers = this.headers();
    if (init.contentType) {
      headers["Content-Type"] = init.contentType;
    }
    const req: RequestInit & { duplex?: "half" } = { method, headers };
    if (init.body !== undefined) {
      req.body = init.body;
      if (typeof ReadableStream !== "undefined" && init.body instanceof ReadableStream) {
        req.duplex = "half"; // a streamed body: fetch requires saying so
      }
    }
    if (init.signal) {
      req.signal = init.signal;
    }
    const resp = await this.fetch(url, req);
    if (resp.status < 200 || resp.status > 299) {
      throw await errorFrom(resp);
    }
    return resp;
  }

  /** Sends body as JSON to path and returns the 2xx response. */
  sendJSON(method: string, path: string, body: unknown, signal?: AbortSignal): Promise<Response> {
    return this.send(method, this.url(path), {
      body: JSON.stringify(body),
      contentType: "application/json",
      signal,
    });
  }

  /**
   * Calls the operation at the contract's path template and method, with
   * its parameters and JSON body, and returns its JSON answer (undefined
   * for a 204).
   */
  async call<P extends Path, M extends MethodOf<P>>(
    method: M,
    path: P,
    args: CallArgs<Operation<P, M>>,
  ): Promise<JsonAnswer<Operation<P, M>>> {
    const a = args as { path?: Record<string, string>; query?: Record<string, unknown>; body?: unknown; signal?: AbortSignal };
    const url = this.url(expand(path, a.path), a.query);
    const init: { body?: string; contentType?: string; signal?: AbortSignal } = {};
    if (a.body !== undefined) {
      init.body = JSON.stringify(a.body);
      init.contentType = "application/json";
    }
    if (a.signal) {
      init.signal = a.signal;
    }
    const resp = await this.send(method.toUpperCase(), url, init);
    const text = await resp.text();
    if (resp.status === 204 || text === "") {
      return undefined as JsonAnswer<Operation<P, M>>;
    }
    return JSON.parse(text) as JsonAnswer<Operation<P, M>>;
  }
}

/** The path template with its {parameters} filled in and escaped. */
export function expand(template: string, params?: Record<string, string>): string {
  return template.replace(/\{(\w+)\}/g, (_, name: string) => {
    const v = params?.[name];
    if (v === undefined) {
      throw new TypeError(`path parameter ${name} missing for ${template}`);
    }
    return encodeURIComponent(v);
  });
}
