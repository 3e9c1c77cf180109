// WebSockets in browsers and in Node: the global WebSocket where there is
// one, else (Node 20) the `ws` package, imported only then so that browser
// bundles never need it.
import { errorFrom, parseError, WrennError } from "./error.js";
import type { Transport } from "./http.js";

/** What the SDK uses of a WebSocket, the browser's and `ws`'s alike. */
export interface WebSocketLike {
  readonly readyState: number;
  binaryType: string;
  send(data: string): void;
  close(code?: number, reason?: string): void;
  onopen: ((ev: unknown) => void) | null;
  onmessage: ((ev: { data: unknown }) => void) | null;
  onerror: ((ev: unknown) => void) | null;
  onclose: ((ev: { code: number; reason: string }) => void) | null;
}

/** The subset of the `ws` package's WebSocket the SDK uses beyond the standard. */
interface NodeWebSocket extends WebSocketLike {
  on(
    event: "unexpected-response",
    fn: (req: { destroy(): void; socket?: { destroy(): void } | null }, res: NodeResponse) => void,
  ): void;
}
interface NodeResponse {
  statusCode?: number;
  statusMessage?: string;
  headers: Record<string, string | string[] | undefined>;
  setEncoding(enc: string): void;
  on(event: "data", fn: (chunk: string) => void): void;
  on(event: "end" | "error" | "close", fn: () => void): void;
}
type NodeWebSocketConstructor = new (
  url: string,
  protocols: string[],
  options: { headers: Record<string, string>; maxPayload: number },
) => NodeWebSocket;

/** The server's messages carry at most 1 MiB of output; base64 grows it. */
const maxMessage = 8 << 20;

let nodeWs: Promise<NodeWebSocketConstructor> | undefined;

/** Imports `ws`, once. The specifier is a variable so bundlers leave it alone. */
function loadNodeWs(): Promise<NodeWebSocketConstructor> {
  if (!nodeWs) {
    const name = "ws";
    nodeWs = (import(/* webpackIgnore: true */ /* @vite-ignore */ name) as Promise<{ default: NodeWebSocketConstructor }>)
      .then((m) => m.default)
      .catch((err: unknown) => {
        nodeWs = undefined;
        throw new Error(
          "wrenn: this runtime has no global WebSocket; install the `ws` package (npm install ws)",
          { cause: err },
        );
      });
  }
  return nodeWs;
}

/** The subprotocols a standard WebSocket authenticates with. */
function subprotocols(t: Transport): string[] {
  const ps = ["wrenn"];
  if (t.apiKey) {
    ps.push("wrenn.key." + t.apiKey);
  } else if (t.token) {
    ps.push("wrenn.bearer." + t.token);
  }
  return ps;
}

/** Messages (and a close) that arrive before a Socket takes over its WebSocket. */
interface Early {
  messages: string[];
  close?: { code: number; reason: string };
}

function messageText(d: unknown): string {
  return typeof d === "string" ? d : new TextDecoder().decode(d as ArrayBuffer);
}

/**
 * One WebSocket of the API's streams, its text messages queued for one
 * reader. The server's normal close ends the queue; an abort, an error.
 */
export class Socket {
  private readonly ws: WebSocketLike;
  private readonly queue: string[] = [];
  private waiter: ((v: void) => void) | undefined;
  private ended = false;
  private failure: unknown;
  private closedByUs = false;
  private readonly signal: AbortSignal | undefined;
  private readonly onAbort: () => void;

  private constructor(ws: WebSocketLike, signal: AbortSignal | undefined, early: Early) {
    this.ws = ws;
    this.signal = signal;
    this.onAbort = () => this.fail(signal?.reason ?? new Error("aborted"));
    this.queue.push(...early.messages);
    ws.onmessage = (ev) => {
      this.queue.push(messageText(ev.data));
      this.wake();
    };
    const closed = (ev: { code: number; reason: string }) => {
      if (ev.code !== 1000 && ev.code !== 1005 && !this.closedByUs) {
        this.fail(new Error(`wrenn: stream closed abnormally (${ev.code}${ev.reason ? " " + ev.reason : ""})`));
      }
      this.end();
    };
    ws.onclose = closed;
    if (early.close) {
      closed(early.close);
    }
    ws.onerror = () => {
      // onclose follows with the code
    };
    signal?.addEventListener("abort", this.onAbort, { once: true });
  }

  /**
   * Opens a WebSocket at path (escaped) with query. A handshake the server
   * refuses is thrown as a WrennError with its status and message.
   */
  static async open(
    t: Transport,
    path: string,
    query: Record<string, unknown> | undefined,
    signal: AbortSignal | undefined,
  ): Promise<Socket> {
    signal?.throwIfAborted();
    const httpUrl = t.url(path, query);
    const url = httpUrl.replace(/^http/, "ws");
    const Ctor = t.WebSocket ?? (globalThis as { WebSocket?: unknown }).WebSocket;
    let ws: WebSocketLike;
    let refused: Promise<WrennError> | undefined;
    if (Ctor) {
      ws = new (Ctor as new (url: string, protocols: string[]) => WebSocketLike)(url, subprotocols(t));
    } else {
      const NodeWs = await loadNodeWs();
      const nws = new NodeWs(url, [], { headers: t.headers(), maxPayload: maxMessage });
      refused = new Promise((resolve) => {
        nws.on("unexpected-response", (req, res) => {
          let body = "";
          res.setEncoding("utf8");
          res.on("data", (c) => (body += c));
          const done = () => {
            const ra = res.headers["retry-after"];
            const n = typeof ra === "string" && /^\d+$/.test(ra) ? Number(ra) : undefined;
            resolve(parseError(res.statusCode ?? 0, body, n, res.statusMessage));
            // The response is over, but its connection stays open (and
            // keeps Node running) until destroyed.
            req.destroy();
            req.socket?.destroy();
          };
          res.on("end", done);
          res.on("error", done);
        });
      });
      ws = nws;
    }
    ws.binaryType = "arraybuffer";
    // What comes between the open event and the Socket taking over: the
    // `ws` package may emit messages (a replay the server sends at once)
    // and even the close in the same tick as the open, before the awaiting
    // code below runs again.
    const early: Early = { messages: [] };
    ws.onmessage = (ev) => early.messages.push(messageText(ev.data));
    await new Promise<void>((resolve, reject) => {
      const abort = () => {
        ws.close();
        reject(signal?.reason ?? new Error("aborted"));
      };
      signal?.addEventListener("abort", abort, { once: true });
      const settle = (err?: unknown) => {
        signal?.removeEventListener("abort", abort);
        // Not null: `ws` throws an error event nobody listens to.
        ws.onopen = ws.onerror = () => {};
        ws.onclose = (ev) => {
          early.close = ev;
        };
        if (err === undefined) {
          resolve();
        } else {
          reject(err);
        }
      };
      ws.onopen = () => settle();
      refused?.then((e) => settle(e));
      let failedOnce = false;
      const failed = (ev: unknown) => {
        if (failedOnce) {
          return; // error and close both come
        }
        failedOnce = true;
        if (refused) {
          // `ws` reports a refusal through unexpected-response, which wins;
          // anything else (no connection at all) is its error event's.
          const why = (ev as { message?: string } | undefined)?.message;
          const err = new Error(`wrenn: WebSocket to ${httpUrl} failed${why ? ": " + why : ""}`);
          setTimeout(() => settle(err), 100);
          return;
        }
        // A browser says nothing of why a handshake failed: ask the route
        // itself over HTTP, which refuses with the same status and envelope.
        probe(t, httpUrl).then(settle, settle);
      };
      ws.onerror = failed;
      ws.onclose = failed;
    });
    return new Socket(ws, signal, early);
  }

  /** The next text message, or undefined once the stream has ended. */
  async next(): Promise<string | undefined> {
    for (;;) {
      const m = this.queue.shift();
      if (m !== undefined) {
        return m;
      }
      if (this.failure !== undefined) {
        throw this.failure;
      }
      if (this.ended) {
        return undefined;
      }
      await new Promise<void>((r) => (this.waiter = r));
    }
  }

  /** Sends v as one JSON text message. */
  send(v: unknown): void {
    if (this.ended || this.ws.readyState !== 1) {
      throw this.failure ?? new Error("wrenn: stream closed");
    }
    this.ws.send(JSON.stringify(v));
  }

  /** Closes the connection; what is queued can still be read. */
  close(): void {
    if (!this.ended) {
      this.closedByUs = true;
    }
    this.end();
    try {
      this.ws.close(1000);
    } catch {
      // closed already
    }
  }

  private fail(err: unknown): void {
    if (this.failure === undefined && !this.ended) {
      this.failure = err;
    }
    this.close();
    this.queue.length = 0;
    this.wake();
  }

  private end(): void {
    this.ended = true;
    this.signal?.removeEventListener("abort", this.onAbort);
    this.wake();
  }

  private wake(): void {
    const w = this.waiter;
    this.waiter = undefined;
    w?.();
  }
}

/** The error a route answers a plain request with, after a failed handshake. */
async function probe(t: Transport, url: string): Promise<Error> {
  try {
    const resp = await t.fetch(url, { headers: t.headers() });
    if (resp.status >= 400 && resp.status !== 426) {
      return await errorFrom(resp);
    }
  } catch {
    // unreachable: say so below
  }
  return new Error(`wrenn: WebSocket to ${url} failed`);
}
