import { expand, type Transport } from "./http.js";
import type { paths } from "./schema.js";
import type { CallOptions, FileEntry, JsonBody, Path } from "./types.js";

type ReadBody<P extends "/v1/sandboxes/{id}/files/read" | "/v1/sandboxes/{id}/files/stream/read"> = JsonBody<
  paths[P]["post"]
>;
import { Watch } from "./watch.js";
import { Socket } from "./ws.js";

/** What an upload takes. In browsers prefer a Blob (a File): it streams from disk. */
export type UploadData = ReadableStream<Uint8Array> | Uint8Array | Blob | string;

/** A sandbox's file system: `sandbox.files`. Paths are absolute. */
export class Files {
  private readonly t: Transport;
  private readonly id: string;

  constructor(t: Transport, id: string) {
    this.t = t;
    this.id = id;
  }

  /**
   * Writes data to path, replacing any file there, in one request that the
   * server bounds (100 MiB by default; over it is payload_too_large). Use
   * upload for large files.
   */
  async write(path: string, data: Uint8Array | Blob | string, opts: CallOptions = {}): Promise<void> {
    const form = formOf(path, data);
    await this.t.send("POST", this.route("/v1/sandboxes/{id}/files/write"), { body: form, signal: opts.signal });
  }

  /**
   * Streams data to path, of any size. A ReadableStream is sent as it is
   * read, never held whole (in browsers that needs streaming request
   * bodies, which Chrome has over HTTP/2 only; a Blob always works).
   */
  async upload(path: string, data: UploadData, opts: CallOptions = {}): Promise<void> {
    const url = this.route("/v1/sandboxes/{id}/files/stream/write");
    if (typeof ReadableStream !== "undefined" && data instanceof ReadableStream) {
      const m = multipart(path, data);
      await this.t.send("POST", url, { body: m.body, contentType: m.contentType, signal: opts.signal });
      return;
    }
    await this.t.send("POST", url, { body: formOf(path, data as Uint8Array | Blob | string), signal: opts.signal });
  }

  /** Reads the whole file at path (the non-streaming endpoint; use download for large files). */
  async read(path: string, opts: CallOptions = {}): Promise<Uint8Array> {
    const resp = await this.t.sendJSON("POST", this.path("/v1/sandboxes/{id}/files/read"), { path } satisfies ReadBody<"/v1/sandboxes/{id}/files/read">, opts.signal);
    return new Uint8Array(await resp.arrayBuffer());
  }

  /** Reads the file at path as UTF-8 text. */
  async readText(path: string, opts: CallOptions = {}): Promise<string> {
    return new TextDecoder().decode(await this.read(path, opts));
  }

  /**
   * Streams the file at path. A transfer cut short is an error of the
   * stream, never a short file that looks whole.
   */
  async download(path: string, opts: CallOptions = {}): Promise<ReadableStream<Uint8Array>> {
    const resp = await this.t.sendJSON("POST", this.path("/v1/sandboxes/{id}/files/stream/read"), { path } satisfies ReadBody<"/v1/sandboxes/{id}/files/stream/read">, opts.signal);
    if (!resp.body) {
      throw new Error("wrenn: download has no body");
    }
    return resp.body;
  }

  /**
   * Lists the directory at path, each directory before its contents, in
   * name order; depth 1 (the default) is its children, each more descends
   * one level further.
   */
  async list(path: string, opts: CallOptions & { depth?: number } = {}): Promise<FileEntry[]> {
    const body = opts.depth === undefined ? { path } : { path, depth: opts.depth };
    const out = await this.t.call("post", "/v1/sandboxes/{id}/files/list", {
      path: { id: this.id },
      body,
      signal: opts.signal,
    });
    return out.entries ?? [];
  }

  /** Creates a directory, and its missing parents unless parents is false. An existing path is a conflict. */
  async mkdir(path: string, opts: CallOptions & { parents?: boolean } = {}): Promise<FileEntry> {
    const out = await this.t.call("post", "/v1/sandboxes/{id}/files/mkdir", {
      path: { id: this.id },
      body: { path, parents: opts.parents ?? true },
      signal: opts.signal,
    });
    return out.entry ?? {};
  }

  /** Removes a file, or a directory and everything in it. */
  async remove(path: string, opts: CallOptions = {}): Promise<void> {
    await this.t.call("post", "/v1/sandboxes/{id}/files/remove", {
      path: { id: this.id },
      body: { path },
      signal: opts.signal,
    });
  }

  /** Describes path (a symbolic link itself, not its target). */
  async stat(path: string, opts: CallOptions = {}): Promise<FileEntry> {
    const out = await this.t.call("post", "/v1/sandboxes/{id}/files/stat", {
      path: { id: this.id },
      body: { path },
      signal: opts.signal,
    });
    return out.entry ?? {};
  }

  /** Renames source to destination, which must not exist; returns the entry at destination. */
  async move(source: string, destination: string, opts: CallOptions = {}): Promise<FileEntry> {
    const out = await this.t.call("post", "/v1/sandboxes/{id}/files/move", {
      path: { id: this.id },
      body: { source, destination },
      signal: opts.signal,
    });
    return out.entry ?? {};
  }

  /**
   * Watches the directory path, and if recursive everything below it.
   * Every change after the returned promise resolves is reported. An open
   * watch does not count as activity.
   */
  async watch(path: string, opts: CallOptions & { recursive?: boolean } = {}): Promise<Watch> {
    const query: Record<string, unknown> = { path };
    if (opts.recursive) {
      query["recursive"] = "true";
    }
    return new Watch(await Socket.open(this.t, this.path("/v1/sandboxes/{id}/files/watch"), query, opts.signal));
  }

  /** The contract's path, for this sandbox. */
  private path(p: Path): string {
    return expand(p, { id: this.id });
  }

  private route(p: Path): string {
    return this.t.url(this.path(p));
  }
}

/** The multipart form of an upload: path first, as the server requires, then the file. */
function formOf(path: string, data: Uint8Array | Blob | string): FormData {
  const form = new FormData();
  form.append("path", path);
  const blob = data instanceof Blob ? data : new Blob([data as BlobPart]);
  form.append("file", blob, basename(path));
  return form;
}

function basename(path: string): string {
  return path.replace(/\/+$/, "").split("/").pop() || "file";
}

/** A multipart body produced as data is read (exported for the tests). */
export function multipart(
  path: string,
  data: ReadableStream<Uint8Array>,
): { body: ReadableStream<Uint8Array>; contentType: string } {
  const rand = new Uint8Array(12);
  crypto.getRandomValues(rand);
  const boundary = "wrenn-" + Array.from(rand, (b) => b.toString(16).padStart(2, "0")).join("");
  // As browsers' FormData escapes a file name (the HTML standard's way).
  const quote = (s: string) => s.replace(/"/g, "%22").replace(/\r/g, "%0D").replace(/\n/g, "%0A");
  const enc = new TextEncoder();
  const head = enc.encode(
    `--${boundary}\r\nContent-Disposition: form-data; name="path"\r\n\r\n${path}\r\n` +
      `--${boundary}\r\nContent-Disposition: form-data; name="file"; filename="${quote(basename(path))}"\r\n` +
      `Content-Type: application/octet-stream\r\n\r\n`,
  );
  const tail = enc.encode(`\r\n--${boundary}--\r\n`);
  const reader = data.getReader();
  let stage: "head" | "data" | "done" = "head";
  const body = new ReadableStream<Uint8Array>({
    async pull(c) {
      if (stage === "head") {
        stage = "data";
        c.enqueue(head);
        return;
      }
      if (stage === "data") {
        const { done, value } = await reader.read();
        if (!done) {
          c.enqueue(value);
          return;
        }
        stage = "done";
        c.enqueue(tail);
        c.close();
      }
    },
    async cancel(reason) {
      await reader.cancel(reason);
    },
  });
  return { body, contentType: `multipart/form-data; boundary=${boundary}` };
}
