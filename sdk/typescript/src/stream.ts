import { WrennError, ErrorCode } from "./error.js";
import type { Socket } from "./ws.js";

/**
 * One event of a streamed command or a background process. An output
 * event's `data` is its bytes and `text` those bytes as UTF-8 (a character
 * split across two events reads as U+FFFD in each; `wait()` joins them).
 */
export type ExecEvent =
  | { type: "start"; pid: number }
  | { type: "stdout" | "stderr"; data: Uint8Array; text: string }
  | { type: "exit"; exitCode: number };

/** A finished streamed command's whole output. */
export interface StreamResult {
  stdout: string;
  stderr: string;
  exitCode: number;
}

/** A message of the exec and process streams, as the server sends it. */
interface StreamMessage {
  type: string;
  pid?: number;
  data?: string;
  encoding?: string;
  exit_code?: number;
}

/** Output as the server sent it: text, or base64 when the encoding says so. */
export function decodeData(s: string, encoding?: string): Uint8Array {
  if (encoding === "base64") {
    return fromBase64(s);
  }
  return new TextEncoder().encode(s);
}

export function fromBase64(s: string): Uint8Array {
  const bin = atob(s);
  const out = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) {
    out[i] = bin.charCodeAt(i);
  }
  return out;
}

export function toBase64(b: Uint8Array): string {
  let bin = "";
  for (let i = 0; i < b.length; i += 0x8000) {
    bin += String.fromCharCode(...b.subarray(i, i + 0x8000));
  }
  return btoa(bin);
}

/**
 * The events of a command streamed over a WebSocket: iterate with
 * `for await`, which ends after the exit event. A stream the server ends
 * with an error throws a WrennError of code "stream_error"; one cut off
 * before its exit, an Error. Leaving the loop early (break) closes the
 * stream. `exitCode` and `pid` are set as their events arrive.
 */
export class EventStream implements AsyncIterable<ExecEvent> {
  /** The process's pid, once the start event has come. */
  pid: number | undefined;
  /** The exit code, once the exit event has come. */
  exitCode: number | undefined;

  protected readonly socket: Promise<Socket>;
  private done = false;
  private iterating = false;

  constructor(socket: Promise<Socket>) {
    this.socket = socket;
    socket.catch(() => {}); // reported to the reader
  }

  /** The next event, or undefined after the exit. */
  async next(): Promise<ExecEvent | undefined> {
    if (this.done) {
      return undefined;
    }
    const s = await this.socket;
    for (;;) {
      let raw: string | undefined;
      try {
        raw = await s.next();
      } catch (err) {
        this.done = true;
        throw err;
      }
      if (raw === undefined) {
        this.done = true;
        throw new Error("wrenn: stream closed before the exit event");
      }
      const m = JSON.parse(raw) as StreamMessage;
      switch (m.type) {
        case "start":
          this.pid = m.pid ?? 0;
          return { type: "start", pid: this.pid };
        case "stdout":
        case "stderr": {
          const data = decodeData(m.data ?? "", m.encoding);
          return { type: m.type, data, text: new TextDecoder().decode(data) };
        }
        case "exit":
          this.done = true;
          this.exitCode = m.exit_code ?? 0;
          s.close(); // the server closes next; nothing more is coming
          return { type: "exit", exitCode: this.exitCode };
        case "error":
          this.done = true;
          s.close();
          throw new WrennError(0, ErrorCode.Stream, m.data ?? "");
      }
      // a later server's message this client does not know
    }
  }

  async *[Symbol.asyncIterator](): AsyncGenerator<ExecEvent, void, undefined> {
    if (this.iterating) {
      throw new Error("wrenn: a stream is read by one loop at a time");
    }
    this.iterating = true;
    try {
      for (;;) {
        const ev = await this.next();
        if (ev === undefined) {
          return;
        }
        yield ev;
      }
    } finally {
      this.iterating = false;
      if (!this.done) {
        await this.close(); // left early
      }
    }
  }

  /** Reads the rest of the stream and returns its output and exit code. */
  async wait(): Promise<StreamResult> {
    let stdout = "";
    let stderr = "";
    const dec = { stdout: new TextDecoder(), stderr: new TextDecoder() };
    for await (const ev of this) {
      if (ev.type === "stdout" || ev.type === "stderr") {
        const text = dec[ev.type].decode(ev.data, { stream: true });
        if (ev.type === "stdout") {
          stdout += text;
        } else {
          stderr += text;
        }
      }
    }
    return { stdout, stderr, exitCode: this.exitCode ?? 0 };
  }

  /** Closes the stream at once. */
  async close(): Promise<void> {
    this.done = true;
    try {
      (await this.socket).close();
    } catch {
      // it never opened
    }
  }
}

/**
 * A command streamed over a WebSocket. Closing it (or aborting its signal)
 * before the exit stops the command too.
 */
export class ExecStream extends EventStream {
  /** Asks the server to stop the command (SIGTERM, then SIGKILL); its exit event follows. */
  async stop(): Promise<void> {
    (await this.socket).send({ type: "stop" });
  }
}

/**
 * A background process's output: a start event, what the sandbox still
 * holds of its output (the last 1 MiB), live output, then its exit.
 * Closing it leaves the process running.
 */
export class ProcessStream extends EventStream {}
