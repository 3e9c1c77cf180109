import { useEffect, useRef, useState } from "preact/hooks";
import { Terminal } from "@xterm/xterm";
import { FitAddon } from "@xterm/addon-fit";
import "@xterm/xterm/css/xterm.css";
import { base64ToBytes, bytesToBase64, openSocket, probe } from "../api";

type State = "connecting" | "connected" | "exited" | "disconnected" | "error";
type Mode = "pty" | "exec";

const encoder = new TextEncoder();
const dim = (s: string) => `\x1b[2m${s}\x1b[0m`;
const red = (s: string) => `\x1b[31m${s}\x1b[0m`;

/**
 * TerminalView is a terminal in the sandbox: the pty WebSocket
 * (GET /v1/sandboxes/{id}/pty), one session kept by its tag across
 * dropped connections and pause/resume. Where the server has no pty
 * endpoint (a 404) it falls back to a line mode over the exec stream:
 * each line typed runs as one command.
 */
export function TerminalView(props: { sandboxId: string; running: boolean; forceExec?: boolean }) {
  const host = useRef<HTMLDivElement>(null);
  const ctl = useRef<Controller | null>(null);
  const [state, setState] = useState<State>("connecting");
  const [mode, setMode] = useState<Mode>(props.forceExec ? "exec" : "pty");
  const [tag, setTag] = useState<string | null>(null);
  const [message, setMessage] = useState<string | null>(null);

  useEffect(() => {
    const c = new Controller(props.sandboxId, host.current!, props.forceExec ? "exec" : "pty", {
      state: setState,
      mode: setMode,
      tag: setTag,
      message: setMessage,
    });
    ctl.current = c;
    (window as unknown as { wrennTerminal?: Terminal }).wrennTerminal = c.term;
    return () => c.dispose();
  }, [props.sandboxId]);

  // Connect while the sandbox runs; a pause cuts the connection, a resume reconnects.
  useEffect(() => {
    const c = ctl.current;
    if (!c) return;
    if (props.running && !c.live()) c.connect();
  }, [props.running]);

  return (
    <div class="terminal-panel">
      <div class="terminal-bar">
        <span class={`term-state term-${state}`} id="terminal-state" data-state={state} data-mode={mode}>
          <span class="dot" />
          {stateLabel(state, mode, props.running)}
        </span>
        {tag && <code class="muted" id="terminal-tag">{tag}</code>}
        {message && <span class="muted term-message">{message}</span>}
        <span class="spacer" />
        {(state === "disconnected" || state === "error") && props.running && (
          <button class="btn btn-small" id="terminal-reconnect" onClick={() => ctl.current?.connect()}>
            Reconnect
          </button>
        )}
        {mode === "pty" && (
          <button class="btn btn-small" id="terminal-new" disabled={!props.running} onClick={() => ctl.current?.restart()}>
            New session
          </button>
        )}
      </div>
      <div class="terminal-host" id="terminal" data-testid="terminal" ref={host} onClick={() => ctl.current?.term.focus()} />
    </div>
  );
}

function stateLabel(s: State, mode: Mode, running: boolean): string {
  if (!running && s !== "connected") return "Sandbox not running";
  const m = mode === "exec" ? " (line mode)" : "";
  switch (s) {
    case "connecting":
      return "Connecting…";
    case "connected":
      return "Connected" + m;
    case "exited":
      return "Session ended";
    case "disconnected":
      return "Disconnected";
    case "error":
      return "Error";
  }
}

interface Sink {
  state: (s: State) => void;
  mode: (m: Mode) => void;
  tag: (t: string | null) => void;
  message: (m: string | null) => void;
}

/** Controller owns the xterm instance and the WebSocket behind it. */
class Controller {
  term: Terminal;
  private fit = new FitAddon();
  private ws: WebSocket | null = null;
  private tag: string | null = null;
  private state: State = "connecting";
  private observer: ResizeObserver;
  private disposed = false;
  // exec line mode
  private line = "";
  private running = false;

  constructor(
    private id: string,
    el: HTMLElement,
    private mode: Mode,
    private sink: Sink,
  ) {
    this.term = new Terminal({
      cursorBlink: true,
      fontFamily: '"JetBrains Mono", "DejaVu Sans Mono", Menlo, Consolas, monospace',
      fontSize: 13,
      scrollback: 5000,
      theme: { background: "#0f1720", foreground: "#d8dee9", cursor: "#7fd1b9", selectionBackground: "#2e4a5a" },
    });
    this.term.loadAddon(this.fit);
    this.term.open(el);
    this.fitNow();
    this.observer = new ResizeObserver(() => this.fitNow());
    this.observer.observe(el);
    this.term.onData((d) => this.input(d));
    this.term.onResize(({ cols, rows }) => {
      if (this.mode === "pty" && this.state === "connected") this.send({ type: "resize", cols, rows });
    });
    sink.mode(mode);
  }

  private fitNow() {
    const el = this.term.element?.parentElement;
    if (!el || el.clientWidth === 0 || el.clientHeight === 0) return; // hidden tab
    try {
      this.fit.fit();
    } catch {
      // not laid out yet
    }
  }

  /**
   * focusUnlessBusy focuses the terminal when it comes up, unless the
   * user is typing somewhere else (a dialog, a form) by then: a session
   * starts asynchronously and must not take their keystrokes.
   */
  private focusUnlessBusy() {
    const active = document.activeElement;
    const el = this.term.element;
    if (!active || active === document.body || (el && el.contains(active))) this.term.focus();
  }

  live(): boolean {
    return this.ws !== null || (this.mode === "exec" && this.state === "connected");
  }

  private setState(s: State) {
    this.state = s;
    this.sink.state(s);
  }

  connect() {
    if (this.disposed) return;
    if (this.mode === "exec") {
      this.startLineMode();
      return;
    }
    this.setState("connecting");
    this.sink.message(null);
    const ws = openSocket(`/v1/sandboxes/${encodeURIComponent(this.id)}/pty`);
    this.ws = ws;
    let opened = false;
    let fatal: string | null = null;
    ws.onopen = () => {
      opened = true;
      this.fitNow();
      if (this.tag) this.send({ type: "connect", tag: this.tag });
      else
        this.send({
          type: "start",
          cols: this.term.cols,
          rows: this.term.rows,
          envs: { TERM: "xterm-256color" },
        });
    };
    ws.onmessage = (ev) => {
      let m: { type: string; tag?: string; data?: string; exit_code?: number; fatal?: boolean };
      try {
        m = JSON.parse(ev.data);
      } catch {
        return;
      }
      switch (m.type) {
        case "started":
          this.tag = m.tag ?? null;
          this.sink.tag(this.tag);
          this.setState("connected");
          this.send({ type: "resize", cols: this.term.cols, rows: this.term.rows });
          this.focusUnlessBusy();
          break;
        case "output":
          if (m.data) this.term.write(base64ToBytes(m.data));
          break;
        case "exit":
          this.term.write(dim(`\r\n[exited with code ${m.exit_code ?? 0}]\r\n`));
          this.tag = null;
          this.sink.tag(null);
          this.setState("exited");
          break;
        case "error":
          if (m.fatal) {
            fatal = m.data ?? "the terminal ended";
            // An unknown tag (the session ended while we were away): start afresh next time.
            if (this.state !== "connected") this.tag = null;
            this.term.write(red(`\r\n[${fatal}]\r\n`));
          } else {
            this.sink.message(m.data ?? null);
          }
          break;
      }
    };
    ws.onclose = async () => {
      if (this.ws !== ws) return;
      this.ws = null;
      if (this.disposed) return;
      if (!opened) {
        // The upgrade was refused; a plain GET says why in the envelope.
        const err = await probe(`/v1/sandboxes/${encodeURIComponent(this.id)}/pty`);
        if (err && err.status === 404 && (await this.ptyMissing())) {
          this.mode = "exec";
          this.sink.mode("exec");
          this.term.write(dim("[this server has no terminal endpoint; line mode over the exec stream]\r\n"));
          this.startLineMode();
          return;
        }
        const msg = err ? err.message : "the terminal connection was refused";
        this.sink.message(msg);
        this.term.write(red(`[${msg}]\r\n`));
        this.setState("error");
        return;
      }
      if (this.state === "exited") return;
      if (fatal) this.sink.message(fatal);
      this.setState("disconnected");
    };
  }

  /** ptyMissing tells a server without the pty route from a missing sandbox: the sandbox answers, the route does not. */
  private async ptyMissing(): Promise<boolean> {
    const err = await probe(`/v1/sandboxes/${encodeURIComponent(this.id)}`);
    return err === null;
  }

  restart() {
    if (this.mode !== "pty") return;
    if (this.ws && this.state === "connected") this.send({ type: "kill" });
    const old = this.ws;
    this.ws = null;
    old?.close();
    this.tag = null;
    this.sink.tag(null);
    this.term.reset();
    this.connect();
  }

  private send(m: object) {
    if (this.ws && this.ws.readyState === WebSocket.OPEN) this.ws.send(JSON.stringify(m));
  }

  private input(d: string) {
    if (this.mode === "pty") {
      if (this.state === "connected") this.send({ type: "input", data: bytesToBase64(encoder.encode(d)) });
      return;
    }
    this.lineInput(d);
  }

  // ---- line mode over the exec stream

  private startLineMode() {
    this.setState("connected");
    this.sink.message("each line runs as one command");
    if (!this.running) this.prompt();
  }

  private prompt() {
    this.term.write("\x1b[32m$\x1b[0m ");
  }

  private lineInput(d: string) {
    if (this.running) {
      if (d === "\x03") this.send({ type: "stop" });
      return;
    }
    for (const ch of d) {
      if (ch === "\r") {
        this.term.write("\r\n");
        const cmd = this.line.trim();
        this.line = "";
        if (cmd) this.runLine(cmd);
        else this.prompt();
      } else if (ch === "\x7f" || ch === "\b") {
        if (this.line.length > 0) {
          this.line = this.line.slice(0, -1);
          this.term.write("\b \b");
        }
      } else if (ch === "\x03") {
        this.line = "";
        this.term.write("^C\r\n");
        this.prompt();
      } else if (ch >= " ") {
        this.line += ch;
        this.term.write(ch);
      }
    }
  }

  private runLine(cmd: string) {
    this.running = true;
    const ws = openSocket(`/v1/sandboxes/${encodeURIComponent(this.id)}/exec/stream`);
    this.ws = ws;
    let opened = false;
    const nl = (s: string) => s.replace(/\r?\n/g, "\r\n");
    ws.onopen = () => {
      opened = true;
      ws.send(JSON.stringify({ type: "start", cmd }));
    };
    ws.onmessage = (ev) => {
      let m: { type: string; data?: string; encoding?: string; exit_code?: number };
      try {
        m = JSON.parse(ev.data);
      } catch {
        return;
      }
      const text = (d?: string) =>
        d === undefined ? "" : m.encoding === "base64" ? new TextDecoder().decode(base64ToBytes(d)) : d;
      if (m.type === "stdout") this.term.write(nl(text(m.data)));
      else if (m.type === "stderr") this.term.write(red(nl(text(m.data))));
      else if (m.type === "exit" && m.exit_code) this.term.write(dim(`[exit ${m.exit_code}]\r\n`));
      else if (m.type === "error") this.term.write(red(`[${m.data}]\r\n`));
    };
    ws.onclose = async () => {
      if (this.ws === ws) this.ws = null;
      if (!opened) {
        const err = await probe(`/v1/sandboxes/${encodeURIComponent(this.id)}/exec/stream`);
        this.term.write(red(`[${err ? err.message : "the exec stream was refused"}]\r\n`));
      }
      this.running = false;
      if (!this.disposed) this.prompt();
    };
  }

  dispose() {
    this.disposed = true;
    this.observer.disconnect();
    const ws = this.ws;
    this.ws = null;
    ws?.close();
    this.term.dispose();
  }
}
