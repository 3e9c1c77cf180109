import { ErrorCode, WrennError } from "./error.js";
import { fromBase64, toBase64 } from "./stream.js";
import type { PtyClientMessage, PtyServerMessage } from "./types.js";
import type { Socket } from "./ws.js";

/** One event of an attached terminal. */
export type TerminalEvent =
  | { type: "output"; data: Uint8Array }
  /** The program ended (128+n if signal n killed it); the last event. */
  | { type: "exit"; exitCode: number }
  /** A message the server could not act on (a bad resize); the session goes on. */
  | { type: "error"; message: string };

/**
 * An attachment to an interactive terminal in a sandbox. Iterate it with
 * `for await` for its output, until the exit; leaving the loop early keeps
 * the attachment (close() detaches). The program keeps running when the
 * attachment closes: connectTerminal(tag) attaches again. A fatal error
 * from the server (the sandbox paused, another attachment took over) is
 * thrown as a WrennError of code "stream_error".
 */
export class Terminal implements AsyncIterable<TerminalEvent> {
  /** Names the session, for connectTerminal. */
  readonly tag: string;
  /** The program's pid in the sandbox. */
  readonly pid: number;
  /** The exit code, once the exit event has come. */
  exitCode: number | undefined;

  private readonly socket: Socket;
  private done = false;

  private constructor(socket: Socket, tag: string, pid: number) {
    this.socket = socket;
    this.tag = tag;
    this.pid = pid;
  }

  /** Sends the first message and waits for the session to start. */
  static async open(socket: Socket, first: PtyClientMessage): Promise<Terminal> {
    try {
      socket.send(first);
      for (;;) {
        const m = await read(socket);
        if (m === undefined) {
          throw new Error("wrenn: terminal closed before it started");
        }
        if (m.type === "started") {
          return new Terminal(socket, m.tag ?? "", m.pid ?? 0);
        }
        if (m.type === "error") {
          throw new WrennError(0, ErrorCode.Stream, m.data ?? "");
        }
      }
    } catch (err) {
      socket.close();
      throw err;
    }
  }

  /** The next event, or undefined after the exit. */
  async next(): Promise<TerminalEvent | undefined> {
    while (!this.done) {
      let m: PtyServerMessage | undefined;
      try {
        m = await read(this.socket);
      } catch (err) {
        this.done = true;
        throw err;
      }
      if (m === undefined) {
        this.done = true;
        throw new Error("wrenn: terminal closed before the exit event");
      }
      switch (m.type) {
        case "output":
          return { type: "output", data: fromBase64(m.data ?? "") };
        case "exit":
          this.done = true;
          this.exitCode = m.exit_code ?? 0;
          this.socket.close();
          return { type: "exit", exitCode: this.exitCode };
        case "error":
          if (m.fatal) {
            this.done = true;
            this.socket.close();
            throw new WrennError(0, ErrorCode.Stream, m.data ?? "");
          }
          return { type: "error", message: m.data ?? "" };
      }
      // "ping", a repeated "started", or a later server's message
    }
    return undefined;
  }

  async *[Symbol.asyncIterator](): AsyncGenerator<TerminalEvent, void, undefined> {
    for (;;) {
      const ev = await this.next();
      if (ev === undefined) {
        return;
      }
      yield ev;
    }
  }

  /** Types data (text is sent as UTF-8) into the terminal. */
  input(data: string | Uint8Array): void {
    const bytes = typeof data === "string" ? new TextEncoder().encode(data) : data;
    this.send({ type: "input", data: toBase64(bytes) });
  }

  /** Sets the terminal's size (each 1 to 4096). */
  resize(cols: number, rows: number): void {
    this.send({ type: "resize", cols, rows });
  }

  /** Ends the program and everything it started; the exit event follows. */
  kill(): void {
    this.send({ type: "kill" });
  }

  /** Detaches; the program keeps running. */
  close(): void {
    this.done = true;
    this.socket.close();
  }

  private send(m: PtyClientMessage): void {
    this.socket.send(m);
  }
}

async function read(s: Socket): Promise<PtyServerMessage | undefined> {
  const raw = await s.next();
  return raw === undefined ? undefined : (JSON.parse(raw) as PtyServerMessage);
}
