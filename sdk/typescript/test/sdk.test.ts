// The SDK against a live Wrenn server with real VMs: WRENN_URL names
// it (tests/e2e/tssdk_test.go starts one and runs `npm test`). Every
// operation runs at least once, on two sandboxes.
import assert from "node:assert/strict";
import { createHash, randomBytes } from "node:crypto";
import { after, before, describe, test } from "node:test";
import WS from "ws";

import { ErrorCode, Sandbox, Wrenn, WrennError, type ExecEvent, type FileEvent } from "../src/index.js";

const baseUrl = process.env["WRENN_URL"] ?? "";
const password = "typescript-sdk-tests";

/** Asserts that fn throws the API's error with this status and code, and returns it. */
async function rejects(fn: () => Promise<unknown>, status: number, code: string): Promise<WrennError> {
  try {
    await fn();
  } catch (err) {
    assert.ok(err instanceof WrennError, `want a WrennError, got ${String(err)}`);
    assert.equal(err.status, status, err.message);
    assert.equal(err.code, code, err.message);
    assert.ok(err.message.length > 0);
    return err;
  }
  assert.fail(`want ${status} ${code}, got no error`);
}

function sha256(b: Uint8Array): string {
  return createHash("sha256").update(b).digest("hex");
}

/** A stream of data in uneven chunks, so that nothing can know its size. */
function chunked(data: Uint8Array): ReadableStream<Uint8Array> {
  let off = 0;
  return new ReadableStream({
    pull(c) {
      if (off >= data.length) {
        c.close();
        return;
      }
      const n = Math.min(data.length - off, 100_000 + (off % 7919));
      c.enqueue(data.slice(off, off + n));
      off += n;
    },
  });
}

async function readAll(s: ReadableStream<Uint8Array>): Promise<Uint8Array> {
  const parts: Uint8Array[] = [];
  let n = 0;
  for await (const p of s as unknown as AsyncIterable<Uint8Array>) {
    parts.push(p);
    n += p.length;
  }
  const out = new Uint8Array(n);
  let off = 0;
  for (const p of parts) {
    out.set(p, off);
    off += p.length;
  }
  return out;
}

/** A WebSocket with only the browser's constructor: no headers, so it authenticates by subprotocol. */
class BrowserWebSocket extends WS {
  constructor(url: string, protocols?: string | string[]) {
    super(url, protocols);
  }
}

describe("Wrenn TypeScript SDK", { skip: baseUrl === "" ? "WRENN_URL is not set" : false }, () => {
  const email = `tssdk-${Date.now()}-${randomBytes(3).toString("hex")}@example.com`;
  let anon: Wrenn;
  let token: string;
  let wrenn: Wrenn;
  let sb: Sandbox;
  const cleanup: Array<() => Promise<unknown>> = [];

  before(async () => {
    anon = new Wrenn({ baseUrl });
    const session = await anon.signup(email, password);
    assert.ok(session.token && session.team_id && session.email === email, JSON.stringify(session));
    const login = await anon.login(email, password);
    assert.equal(login.team_id, session.team_id);
    token = login.token ?? "";
    const key = await anon.with({ token }).createAPIKey("tssdk");
    assert.match(key.key ?? "", /^wrn_/);
    wrenn = new Wrenn({ baseUrl, apiKey: key.key ?? "" });
    sb = await wrenn.createSandbox({
      template: "minimal",
      metadata: { by: "tssdk" },
      envs: { GREETING: "hello" },
    });
    cleanup.push(() => sb.destroy());
    assert.equal(sb.status, "running");
    assert.match(sb.id, /^sb-/);
  });

  after(async () => {
    for (const fn of cleanup.reverse()) {
      await fn().catch(() => {});
    }
  });

  test("api keys", async () => {
    const acct = anon.with({ token });
    const k = await acct.createAPIKey("second");
    const keys = await acct.listAPIKeys();
    assert.ok(keys.some((x) => x.id === k.id && x.name === "second" && !x.key));
    await acct.deleteAPIKey(k.id ?? "");
    assert.ok(!(await acct.listAPIKeys()).some((x) => x.id === k.id));
    await rejects(() => new Wrenn({ baseUrl, apiKey: k.key ?? "" }).listSandboxes(), 401, ErrorCode.Unauthorized);
  });

  test("errors are the API's, as it words them", async () => {
    await rejects(() => anon.login(email, "not the password"), 401, ErrorCode.Unauthorized);
    await rejects(() => new Wrenn({ baseUrl, apiKey: "wrn_bad" }).listSandboxes(), 401, ErrorCode.Unauthorized);
    await rejects(() => anon.signup(email, password), 409, ErrorCode.Conflict);
    // A bad request: the message is the envelope's, word for word.
    const err = await rejects(() => wrenn.createSandbox({ timeout_sec: -5 }), 400, ErrorCode.Invalid);
    const raw = await fetch(baseUrl + "/v1/sandboxes", {
      method: "POST",
      headers: { "X-API-Key": (wrenn as unknown as { t: { apiKey: string } }).t.apiKey, "Content-Type": "application/json" },
      body: JSON.stringify({ timeout_sec: -5 }),
    });
    const env = (await raw.json()) as { error: { code: string; message: string } };
    assert.equal(raw.status, 400);
    assert.equal(err.message, env.error.message);
    // A refused WebSocket handshake is the same error.
    const ghost = wrenn.sandbox("sb-doesnotexist");
    await rejects(() => ghost.execStream("true").wait(), 404, ErrorCode.NotFound);
    await rejects(() => ghost.terminal(), 404, ErrorCode.NotFound);
    await rejects(() => sb.files.stat("relative/path"), 400, ErrorCode.Invalid);
    await rejects(() => sb.files.stat("/no/such/file"), 404, ErrorCode.NotFound);
  });

  test("another team's sandbox is not found", async () => {
    const other = new Wrenn({ baseUrl });
    const s = await other.signup(`other-${email}`, password);
    const k = await other.with({ token: s.token ?? "" }).createAPIKey();
    const stranger = new Wrenn({ baseUrl, apiKey: k.key ?? "" });
    await rejects(() => stranger.getSandbox(sb.id), 404, ErrorCode.NotFound);
    await rejects(() => stranger.sandbox(sb.id).exec("true"), 404, ErrorCode.NotFound);
    await rejects(() => stranger.sandbox(sb.id).files.read("/etc/hostname"), 404, ErrorCode.NotFound);
    await rejects(() => stranger.sandbox(sb.id).execStream("true").wait(), 404, ErrorCode.NotFound);
    await rejects(() => stranger.sandbox(sb.id).destroy(), 404, ErrorCode.NotFound);
    assert.deepEqual(await stranger.listSandboxes(), []);
  });

  test("hosts", async () => {
    const acct = anon.with({ token });
    const session = await anon.login(email, password);
    const made = await acct.hosts.create({ type: "byoc", team_id: session.team_id ?? "", provider: "tssdk" });
    const id = made.host?.id ?? "";
    assert.equal(made.host?.status, "pending");
    assert.ok((made.registration_token ?? "").length > 0);
    assert.ok((await acct.hosts.list()).some((h) => h.id === id));
    assert.equal((await acct.hosts.get(id)).provider, "tssdk");
    await acct.hosts.addTag(id, "gpu");
    await acct.hosts.addTag(id, "arm");
    assert.deepEqual(await acct.hosts.listTags(id), ["arm", "gpu"]);
    await acct.hosts.removeTag(id, "arm");
    assert.deepEqual(await acct.hosts.listTags(id), ["gpu"]);
    assert.equal((await acct.hosts.drain(id)).draining, true);
    assert.equal((await acct.hosts.undrain(id)).draining, false);
    const again = await acct.hosts.regenerateToken(id);
    assert.notEqual(again.registration_token, made.registration_token);
    assert.deepEqual((await acct.hosts.previewDelete(id)).sandbox_ids, []);

    // Another team's login sees none of it, and may not make shared hosts.
    const other = new Wrenn({ baseUrl });
    const s = await other.signup(`hosts-${email}`, password);
    const stranger = other.with({ token: s.token ?? "" });
    await rejects(() => stranger.hosts.get(id), 404, ErrorCode.NotFound);
    await rejects(() => stranger.hosts.create({ type: "regular" }), 403, ErrorCode.Forbidden);

    await acct.hosts.delete(id);
    await rejects(() => acct.hosts.get(id), 404, ErrorCode.NotFound);
  });

  test("list and get", async () => {
    const got = await wrenn.getSandbox(sb.id);
    assert.equal(got.info.metadata?.["by"], "tssdk");
    const listed = await wrenn.listSandboxes({ status: ["running"], metadata: { by: "tssdk" } });
    assert.deepEqual(
      listed.map((s) => s.id),
      [sb.id],
    );
    assert.deepEqual(await wrenn.listSandboxes({ metadata: { by: "nobody" } }), []);
    // A login's JWT works on sandbox routes too.
    const byToken = await new Wrenn({ baseUrl, token }).listSandboxes();
    assert.ok(byToken.some((s) => s.id === sb.id));
  });

  test("exec", async () => {
    const res = await sb.exec({
      cmd: "sh",
      args: ["-c", `echo "$GREETING $WHO"; pwd; printf '\\377' >&2; exit 4`],
      envs: { WHO: "sdk" },
      cwd: "/tmp",
      timeout_sec: 20,
    });
    assert.equal(res.stdout, "hello sdk\n/tmp\n");
    assert.deepEqual([...res.stderrBytes], [0xff]);
    assert.equal(res.exitCode, 4);
    assert.equal(res.sandboxId, sb.id);
    const py = await sb.exec(`python3 -c "print(6*7)"`);
    assert.equal(py.stdout, "42\n");
    assert.equal(py.exitCode, 0);
  });

  test("exec stream: live output and the exit code", async () => {
    const st = sb.execStream({ cmd: "sh", args: ["-c", "for i in 1 2 3; do echo line$i; sleep 0.3; done; echo oops >&2; exit 3"] });
    let stdout = "";
    let stderr = "";
    const seen: ExecEvent["type"][] = [];
    const firstAt: number[] = [];
    const t0 = Date.now();
    for await (const ev of st) {
      seen.push(ev.type);
      if (ev.type === "stdout") {
        stdout += ev.text;
        firstAt.push(Date.now() - t0);
      } else if (ev.type === "stderr") {
        stderr += ev.text;
      }
    }
    assert.equal(stdout, "line1\nline2\nline3\n");
    assert.equal(stderr, "oops\n");
    assert.equal(st.exitCode, 3);
    assert.ok((st.pid ?? 0) > 0);
    assert.equal(seen[0], "start");
    assert.equal(seen.at(-1), "exit");
    assert.ok(firstAt.length >= 2, `stdout came in ${firstAt.length} event(s), not as printed`);
    assert.ok(firstAt.at(-1)! - firstAt[0]! >= 300, `stdout was not live: ${firstAt}`);

    const res = await sb.execStream(`echo done; exit 7`).wait();
    assert.deepEqual(res, { stdout: "done\n", stderr: "", exitCode: 7 });
  });

  test("exec stream: stop, break and abort", async () => {
    const st = sb.execStream("echo ready; sleep 100");
    for await (const ev of st) {
      if (ev.type === "stdout") {
        await st.stop();
      }
    }
    assert.ok(st.exitCode !== undefined && st.exitCode !== 0, `stopped exit ${st.exitCode}`);

    const ac = new AbortController();
    const aborted = sb.execStream("echo ready; sleep 100", { signal: ac.signal });
    await assert.rejects(
      (async () => {
        for await (const ev of aborted) {
          if (ev.type === "stdout") {
            ac.abort();
          }
        }
      })(),
      { name: "AbortError" },
    );
    // An aborted call, and a REST call past its deadline.
    await assert.rejects(sb.exec("sleep 10", { signal: AbortSignal.timeout(300) }), { name: "TimeoutError" });
    const pre = new AbortController();
    pre.abort();
    await assert.rejects(sb.ping({ signal: pre.signal }), { name: "AbortError" });
    // Leaving a loop early closes the stream (and stops its command).
    for await (const ev of sb.execStream("echo a; sleep 100")) {
      if (ev.type === "stdout") {
        break;
      }
    }
    // Every one of the three commands ends (SIGTERM first: give it a moment).
    let left = "";
    for (let i = 0; i < 50; i++) {
      left = (await sb.exec("pgrep -fx 'sleep 100' || true")).stdout;
      if (left === "") {
        break;
      }
      await new Promise((r) => setTimeout(r, 200));
    }
    assert.equal(left, "", "commands of closed streams still run");
  });

  test("files", async () => {
    await sb.files.mkdir("/root/ts/sub");
    await rejects(() => sb.files.mkdir("/root/ts/sub"), 409, ErrorCode.Conflict);
    const w = await sb.files.watch("/root/ts", { recursive: true });

    // Streamed upload and download of a few MiB, compared by sha256.
    const big = new Uint8Array(randomBytes(5 << 20));
    await sb.files.upload("/root/ts/big.bin", chunked(big));
    const down = await readAll(await sb.files.download("/root/ts/big.bin"));
    assert.equal(down.length, big.length);
    assert.equal(sha256(down), sha256(big));
    const events: FileEvent[] = [];
    for await (const ev of w) {
      events.push(ev);
      if (ev.path === "/root/ts/big.bin") {
        break;
      }
    }
    assert.deepEqual(events.at(-1), { op: "create", path: "/root/ts/big.bin" });

    // Blob and bytes uploads, both endpoints.
    const blob = new Blob([new Uint8Array(randomBytes(300_000))]);
    await sb.files.upload("/root/ts/blob.bin", blob);
    assert.equal(sha256(await sb.files.read("/root/ts/blob.bin")), sha256(new Uint8Array(await blob.arrayBuffer())));
    await sb.files.write("/root/ts/small.txt", "small\n");
    await sb.files.write("/root/ts/sub/bytes.bin", new Uint8Array([0, 1, 2, 255]));
    assert.equal(await sb.files.readText("/root/ts/small.txt"), "small\n");
    assert.deepEqual([...(await sb.files.read("/root/ts/sub/bytes.bin"))], [0, 1, 2, 255]);

    const st = await sb.files.stat("/root/ts/big.bin");
    assert.equal(st.size, big.length);
    assert.equal(st.type, "file");
    const names = (await sb.files.list("/root/ts")).map((e) => e.name);
    assert.deepEqual(names, ["big.bin", "blob.bin", "small.txt", "sub"]);
    const deep = (await sb.files.list("/root/ts", { depth: 2 })).map((e) => e.path);
    assert.ok(deep.includes("/root/ts/sub/bytes.bin"), deep.join(" "));

    const moved = await sb.files.move("/root/ts/small.txt", "/root/ts/sub/moved.txt");
    assert.equal(moved.path, "/root/ts/sub/moved.txt");
    const odd = '/root/ts/sub/a "quoted"\nname.txt';
    await sb.files.upload(odd, new Blob(["odd\n"]).stream());
    assert.equal(await sb.files.readText(odd), "odd\n");
    await sb.files.remove("/root/ts/blob.bin");
    await rejects(() => sb.files.stat("/root/ts/blob.bin"), 404, ErrorCode.NotFound);
    await rejects(() => sb.files.read("/root/ts/none"), 404, ErrorCode.NotFound);
    await rejects(() => sb.files.download("/root/ts/none"), 404, ErrorCode.NotFound);
  });

  test("background processes", async () => {
    const p = await sb.startProcess({ cmd: "sh", args: ["-c", "echo started; sleep 1; echo finished"] }, { tag: "ts-job" });
    assert.equal(p.tag, "ts-job");
    assert.ok((p.pid ?? 0) > 0);
    const sleeper = await sb.startProcess("sleep 1000");
    assert.match(sleeper.tag ?? "", /^proc-/);
    await rejects(() => sb.startProcess("sleep 1", { tag: sleeper.tag ?? "" }), 409, ErrorCode.Conflict);
    assert.ok((await sb.listProcesses()).some((x) => x.tag === sleeper.tag));
    const out = await sb.processStream("ts-job").wait();
    assert.deepEqual(out, { stdout: "started\nfinished\n", stderr: "", exitCode: 0 });
    await sb.killProcess(sleeper.tag ?? "", "SIGKILL");
    assert.ok(!(await sb.listProcesses()).some((x) => x.tag === sleeper.tag));
    await rejects(() => sb.killProcess(sleeper.pid ?? 0), 404, ErrorCode.NotFound);
  });

  test("terminal", async () => {
    const term = await sb.terminal({ cmd: "/bin/bash", cols: 80, rows: 24 });
    assert.match(term.tag, /^pty-[0-9a-f]{8}$/);
    assert.ok(term.pid > 0);
    term.resize(100, 30);
    term.input("echo hi-$((40+2)); stty size\n");
    let out = "";
    const dec = new TextDecoder();
    for await (const ev of term) {
      if (ev.type === "output") {
        out += dec.decode(ev.data, { stream: true });
      }
      if (out.includes("hi-42") && out.includes("30 100")) {
        break; // the attachment stays
      }
    }
    assert.ok(out.includes("hi-42"), out);
    // Detach, attach again by tag, and end it.
    term.close();
    const again = await sb.connectTerminal(term.tag);
    assert.equal(again.tag, term.tag);
    again.input("echo back\n");
    again.kill();
    for await (const ev of again) {
      void ev;
    }
    assert.ok((again.exitCode ?? 0) > 0, `killed terminal exit ${again.exitCode}`);
    await rejects(() => sb.connectTerminal("pty-00000000"), 0, ErrorCode.Stream);
  });

  test("browser WebSockets authenticate by subprotocol", async () => {
    for (const creds of [{ apiKey: (wrenn as unknown as { t: { apiKey: string } }).t.apiKey }, { token }]) {
      const browser = new Wrenn({ baseUrl, ...creds, WebSocket: BrowserWebSocket });
      const res = await browser.sandbox(sb.id).execStream("echo via-subprotocol").wait();
      assert.equal(res.stdout, "via-subprotocol\n");
    }
    const bad = new Wrenn({ baseUrl, apiKey: "wrn_bad", WebSocket: BrowserWebSocket });
    // The handshake fails without a status; the SDK asks the route over HTTP why.
    await rejects(() => bad.sandbox(sb.id).execStream("true").wait(), 401, ErrorCode.Unauthorized);
  });

  test("ping, metrics, stats and usage", async () => {
    await sb.ping();
    const m = await sb.metrics("5m");
    assert.equal(m.sandbox_id, sb.id);
    assert.equal(m.range, "5m");
    assert.ok(Array.isArray(m.points));
    await rejects(() => sb.metrics("7m" as "5m"), 400, ErrorCode.Invalid);
    const stats = await wrenn.stats("5m");
    assert.ok(stats.current.running_count >= 1, JSON.stringify(stats.current));
    const today = new Date().toISOString().slice(0, 10);
    const u = await wrenn.usage({ from: today, to: today });
    assert.equal(u.points.length, 1);
    assert.equal(u.points[0]?.date, today);
  });

  test("pause and resume", async () => {
    await sb.files.write("/root/marker", "kept\n");
    await sb.pause();
    assert.equal(sb.status, "paused");
    await rejects(() => sb.pause(), 409, ErrorCode.Conflict);
    await sb.resume();
    assert.equal(sb.status, "running");
    assert.equal((await sb.exec("cat /root/marker")).stdout, "kept\n");
  });

  test("snapshots", async () => {
    const name = "ts-snap-" + randomBytes(3).toString("hex");
    const tpl = await wrenn.createSnapshot({ sandbox_id: sb.id, name });
    assert.equal(tpl.name, name);
    assert.equal(tpl.type, "snapshot");
    await rejects(() => wrenn.createSnapshot({ sandbox_id: sb.id, name }), 409, ErrorCode.Conflict);
    assert.ok((await wrenn.listSnapshots("snapshot")).some((t) => t.name === name));
    assert.ok((await wrenn.listSnapshots()).some((t) => t.name === "minimal" && t.type === "base"));
    const from = await wrenn.createSandbox({ template: name });
    cleanup.push(() => from.destroy());
    assert.equal((await from.exec("cat /root/marker")).stdout, "kept\n");
    await from.destroy();
    assert.equal((await from.refresh()).status, "stopped");
    await wrenn.deleteSnapshot(name);
    assert.ok(!(await wrenn.listSnapshots()).some((t) => t.name === name));
    await rejects(() => wrenn.deleteSnapshot(name), 404, ErrorCode.NotFound);
  });
});
