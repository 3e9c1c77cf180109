import { Files } from "./files.js";
import { expand, type Transport } from "./http.js";
import { decodeData, ExecStream, ProcessStream } from "./stream.js";
import { Terminal } from "./terminal.js";
import type {
  CallOptions,
  ExecRequest,
  MetricsRange,
  Path,
  Process,
  SandboxInfo,
  SandboxMetrics,
  Signal,
  TerminalOptions,
} from "./types.js";
import { Socket } from "./ws.js";

/** A finished command. A command that failed is still a result, with its exit code. */
export interface ExecResult {
  sandboxId: string;
  cmd: string;
  /** Standard output as UTF-8 text (see stdoutBytes for binary output). */
  stdout: string;
  stderr: string;
  stdoutBytes: Uint8Array;
  stderrBytes: Uint8Array;
  exitCode: number;
  durationMs: number;
}

/** A command: a shell command line, or the request with args, envs, cwd and timeout_sec. */
export type Command = string | ExecRequest;

function request(cmd: Command): ExecRequest {
  return typeof cmd === "string" ? { cmd } : cmd;
}

/**
 * One sandbox: its last known state (info) and every operation on it.
 * Made by Wrenn.createSandbox, getSandbox, listSandboxes, or sandbox(id)
 * for an ID alone.
 */
export class Sandbox {
  readonly id: string;
  /** What the API last reported of the sandbox (updated by refresh, pause and resume). */
  info: SandboxInfo;
  /** The sandbox's file system. */
  readonly files: Files;

  private readonly t: Transport;

  constructor(t: Transport, id: string, info: SandboxInfo = { id }) {
    this.t = t;
    this.id = id;
    this.info = info;
    this.files = new Files(t, id);
  }

  /** The sandbox's status as last reported. */
  get status(): SandboxInfo["status"] {
    return this.info.status;
  }

  /** Reads the sandbox again. Another team's, or none, is not_found. */
  async refresh(opts: CallOptions = {}): Promise<this> {
    this.info = await this.t.call("get", "/v1/sandboxes/{id}", { path: { id: this.id }, signal: opts.signal });
    return this;
  }

  /** Ends the sandbox and frees everything it held. */
  async destroy(opts: CallOptions = {}): Promise<void> {
    await this.t.call("delete", "/v1/sandboxes/{id}", { path: { id: this.id }, signal: opts.signal });
  }

  /** Snapshots the running sandbox to disk and releases its VM; not running is a conflict. */
  async pause(opts: CallOptions = {}): Promise<this> {
    this.info = await this.t.call("post", "/v1/sandboxes/{id}/pause", { path: { id: this.id }, signal: opts.signal });
    return this;
  }

  /** Starts the paused sandbox again from its snapshot; not paused is a conflict. */
  async resume(opts: CallOptions = {}): Promise<this> {
    this.info = await this.t.call("post", "/v1/sandboxes/{id}/resume", { path: { id: this.id }, signal: opts.signal });
    return this;
  }

  /** Records activity, so the inactivity timeout starts again. */
  async ping(opts: CallOptions = {}): Promise<void> {
    await this.t.call("post", "/v1/sandboxes/{id}/ping", { path: { id: this.id }, signal: opts.signal });
  }

  /** CPU, memory and disk samples over range ("10m" by default) of a running or paused sandbox. */
  async metrics(range?: MetricsRange, opts: CallOptions = {}): Promise<SandboxMetrics> {
    return this.t.call("get", "/v1/sandboxes/{id}/metrics", {
      path: { id: this.id },
      query: { range },
      signal: opts.signal,
    });
  }

  /** Runs a command and waits for it to end. */
  async exec(cmd: Command, opts: CallOptions = {}): Promise<ExecResult> {
    const out = await this.t.call("post", "/v1/sandboxes/{id}/exec", {
      path: { id: this.id },
      body: request(cmd),
      signal: opts.signal,
    });
    if (out === undefined || !("exit_code" in out || "stdout" in out)) {
      throw new Error("wrenn: exec answered without a result");
    }
    const r = out as Extract<typeof out, { exit_code?: number }>;
    const stdoutBytes = decodeData(r.stdout ?? "", r.encoding);
    const stderrBytes = decodeData(r.stderr ?? "", r.encoding);
    const dec = new TextDecoder();
    return {
      sandboxId: r.sandbox_id ?? this.id,
      cmd: r.cmd ?? "",
      stdout: dec.decode(stdoutBytes),
      stderr: dec.decode(stderrBytes),
      stdoutBytes,
      stderrBytes,
      exitCode: r.exit_code ?? 0,
      durationMs: r.duration_ms ?? 0,
    };
  }

  /**
   * Starts a command and streams its events: `for await (const ev of
   * sandbox.execStream("make"))`. Closing the stream, leaving the loop or
   * aborting the signal before the exit stops the command.
   */
  execStream(cmd: Command, opts: CallOptions = {}): ExecStream {
    const socket = Socket.open(this.t, this.path("/v1/sandboxes/{id}/exec/stream"), undefined, opts.signal).then(
      (s) => {
        s.send({ type: "start", ...request(cmd) });
        return s;
      },
    );
    return new ExecStream(socket);
  }

  /**
   * Starts a command in the background and returns at once with its pid and
   * tag. tag names it (at most 128 bytes, not a number, no '/'); none makes
   * one up. A tag a running process holds is a conflict.
   */
  async startProcess(cmd: Command, opts: CallOptions & { tag?: string } = {}): Promise<Process> {
    const req = { ...request(cmd), background: true };
    const body = opts.tag ? { ...req, tag: opts.tag } : req;
    const out = await this.t.call("post", "/v1/sandboxes/{id}/exec", {
      path: { id: this.id },
      body,
      signal: opts.signal,
    });
    const p = (out ?? {}) as Extract<typeof out, { pid?: number }>;
    const args = request(cmd).args;
    return args ? { pid: p.pid, tag: p.tag, cmd: p.cmd, args } : { pid: p.pid, tag: p.tag, cmd: p.cmd };
  }

  /** The sandbox's running background processes, in the order they started. */
  async listProcesses(opts: CallOptions = {}): Promise<Process[]> {
    const out = await this.t.call("get", "/v1/sandboxes/{id}/processes", {
      path: { id: this.id },
      signal: opts.signal,
    });
    return out.processes ?? [];
  }

  /**
   * Ends a background process's group and returns once it has exited.
   * selector is its pid or tag; sig SIGTERM (then SIGKILL after 2 s; the
   * default) or SIGKILL.
   */
  async killProcess(selector: string | number, sig?: Signal, opts: CallOptions = {}): Promise<void> {
    await this.t.call("delete", "/v1/sandboxes/{id}/processes/{selector}", {
      path: { id: this.id, selector: String(selector) },
      query: { signal: sig },
      signal: opts.signal,
    });
  }

  /**
   * Streams a background process's output (pid or tag): what the sandbox
   * still holds, live output, then its exit. Closing it leaves the process
   * running. A process that exited in the last 10 minutes can still be
   * streamed.
   */
  processStream(selector: string | number, opts: CallOptions = {}): ProcessStream {
    const path = expand("/v1/sandboxes/{id}/processes/{selector}/stream" satisfies Path, {
      id: this.id,
      selector: String(selector),
    });
    return new ProcessStream(Socket.open(this.t, path, undefined, opts.signal));
  }

  /** Starts a program (bash by default) on a new terminal and attaches to it. */
  async terminal(options: TerminalOptions = {}, opts: CallOptions = {}): Promise<Terminal> {
    const s = await Socket.open(this.t, this.path("/v1/sandboxes/{id}/pty"), undefined, opts.signal);
    return Terminal.open(s, { type: "start", ...options });
  }

  /**
   * Attaches to a running terminal by its tag: what the program printed
   * while nobody was attached (the latest 256 KiB) comes first. It cuts off
   * any other attachment.
   */
  async connectTerminal(tag: string, opts: CallOptions = {}): Promise<Terminal> {
    const s = await Socket.open(this.t, this.path("/v1/sandboxes/{id}/pty"), undefined, opts.signal);
    return Terminal.open(s, { type: "connect", tag });
  }

  private path(p: Path): string {
    return expand(p, { id: this.id });
  }
}
