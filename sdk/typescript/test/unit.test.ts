// What the SDK does without a server: error envelopes and other bodies,
// path templates, and the streamed multipart body of an upload.
import assert from "node:assert/strict";
import { test } from "node:test";

import { parseError, WrennError } from "../src/error.js";
import { multipart } from "../src/files.js";
import { expand, Transport } from "../src/http.js";
import { Wrenn } from "../src/index.js";

test("errors: the envelope's words, or the status and the body's start", () => {
  const e = parseError(409, '{"error":{"code":"conflict","message":"sandbox sb-1 is paused"}}');
  assert.ok(e instanceof WrennError);
  assert.deepEqual([e.status, e.code, e.message, e.isConflict], [409, "conflict", "sandbox sb-1 is paused", true]);
  const host = parseError(409, '{"error":{"code":"host_has_sandboxes","message":"2 sandboxes","sandbox_ids":["sb-1","sb-2"]}}');
  assert.deepEqual(host.sandboxIds, ["sb-1", "sb-2"]);
  const proxy = parseError(502, "<html>Bad Gateway</html>\n", undefined, "Bad Gateway");
  assert.deepEqual([proxy.code, proxy.message], ["host_agent_error", "<html>Bad Gateway</html>"]);
  assert.equal(parseError(429, "", 7, "Too Many Requests").retryAfter, 7);
  assert.equal(parseError(404, "", undefined, "").message, "HTTP 404");
});

test("paths: parameters escaped, a missing one refused", () => {
  assert.equal(expand("/v1/sandboxes/{id}/processes/{selector}", { id: "sb-1", selector: "a b/c" }), "/v1/sandboxes/sb-1/processes/a%20b%2Fc");
  assert.throws(() => expand("/v1/sandboxes/{id}", {}), TypeError);
  const t = new Transport({ baseUrl: "http://localhost:8080/base/", apiKey: "wrn_k" });
  assert.equal(t.url("/v1/x", { a: "1", b: undefined, c: "" }), "http://localhost:8080/base/v1/x?a=1");
  assert.deepEqual(t.headers(), { "X-API-Key": "wrn_k" });
  assert.throws(() => new Transport({ baseUrl: "ftp://x" }), TypeError);
});

test("upload: a multipart body made as the stream is read, path first", async () => {
  const data = new Uint8Array(300_000).map((_, i) => (i * 7) % 256);
  let pulls = 0;
  const src = new ReadableStream<Uint8Array>({
    pull(c) {
      const off = pulls++ * 65536;
      if (off >= data.length) {
        c.close();
      } else {
        c.enqueue(data.slice(off, off + 65536));
      }
    },
  });
  const m = multipart('/root/a "b".bin', src);
  assert.equal(pulls, 0, "read before it was sent");
  const form = await new Response(m.body, { headers: { "Content-Type": m.contentType } }).formData();
  assert.deepEqual([...form.keys()], ["path", "file"]);
  assert.equal(form.get("path"), '/root/a "b".bin');
  const file = form.get("file") as File;
  assert.deepEqual(new Uint8Array(await file.arrayBuffer()), data);
});

// A WebSocket that, as the `ws` package may, emits its open, the server's
// first messages and its close in one tick.
class BurstSocket {
  readyState = 0;
  binaryType = "";
  onopen: ((ev: unknown) => void) | null = null;
  onmessage: ((ev: { data: unknown }) => void) | null = null;
  onerror: ((ev: unknown) => void) | null = null;
  onclose: ((ev: { code: number; reason: string }) => void) | null = null;
  constructor(_url: string, _protocols?: string | string[]) {
    setTimeout(() => {
      this.readyState = 1;
      this.onopen?.({});
      for (const m of [
        { type: "start", pid: 7 },
        { type: "stdout", data: "started\n" },
        { type: "stdout", data: "finished\n" },
        { type: "exit", exit_code: 0 },
      ]) {
        this.onmessage?.({ data: JSON.stringify(m) });
      }
      this.readyState = 3;
      this.onclose?.({ code: 1000, reason: "" });
    }, 0);
  }
  send(): void {}
  close(): void {}
}

test("streams: messages that come with the open are not lost", async () => {
  const wrenn = new Wrenn({ baseUrl: "http://localhost:1", apiKey: "wrn_k", WebSocket: BurstSocket });
  const out = await wrenn.sandbox("sb-1").processStream("job").wait();
  assert.deepEqual(out, { stdout: "started\nfinished\n", stderr: "", exitCode: 0 });
});
