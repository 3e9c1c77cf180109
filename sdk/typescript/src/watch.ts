import { ErrorCode, WrennError } from "./error.js";
import type { Socket } from "./ws.js";

/** One change under a watched directory. */
export interface FileEvent {
  /** What happened; a rename's event names the old path, the new one has its own create. */
  op: "create" | "write" | "remove" | "rename" | "chmod";
  /** Absolute. */
  path: string;
}

/**
 * The changes under a directory of a sandbox, for `for await`, until the
 * watch fails (a WrennError of code "stream_error": the sandbox stopped or
 * paused, changes came too fast) or is closed. Leaving the loop early
 * closes it.
 */
export class Watch implements AsyncIterable<FileEvent> {
  private readonly socket: Socket;

  constructor(socket: Socket) {
    this.socket = socket;
  }

  /** The next change, or undefined once closed. */
  async next(): Promise<FileEvent | undefined> {
    for (;;) {
      const raw = await this.socket.next();
      if (raw === undefined) {
        return undefined;
      }
      const m = JSON.parse(raw) as { type: string; op?: FileEvent["op"]; path?: string; data?: string };
      if (m.type === "event") {
        return { op: m.op ?? "write", path: m.path ?? "" };
      }
      if (m.type === "error") {
        this.socket.close();
        throw new WrennError(0, ErrorCode.Stream, m.data ?? "");
      }
    }
  }

  async *[Symbol.asyncIterator](): AsyncGenerator<FileEvent, void, undefined> {
    try {
      for (;;) {
        const ev = await this.next();
        if (ev === undefined) {
          return;
        }
        yield ev;
      }
    } finally {
      this.close();
    }
  }

  /** Ends the watch. */
  close(): void {
    this.socket.close();
  }
}
