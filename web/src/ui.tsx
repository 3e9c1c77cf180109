// Small pieces every page uses: routing, polling, dialogs, status badges
// and the error line that shows the API's own words.
import type { ComponentChildren, JSX } from "preact";
import { useEffect, useRef, useState } from "preact/hooks";
import { ApiError, type SandboxStatus } from "./api";

// ---- routing (history API; the server answers index.html for any page)

const listeners = new Set<() => void>();

export function navigate(path: string, replace = false) {
  if (path === location.pathname + location.search) return;
  if (replace) history.replaceState(null, "", path);
  else history.pushState(null, "", path);
  listeners.forEach((f) => f());
}

window.addEventListener("popstate", () => listeners.forEach((f) => f()));

/** usePath re-renders on navigation and returns the current path. */
export function usePath(): string {
  const [path, setPath] = useState(location.pathname);
  useEffect(() => {
    const f = () => setPath(location.pathname);
    listeners.add(f);
    return () => void listeners.delete(f);
  }, []);
  return path;
}

export function Link(props: JSX.HTMLAttributes<HTMLAnchorElement> & { href: string }) {
  const { href, onClick, ...rest } = props;
  return (
    <a
      href={href}
      onClick={(e) => {
        if (onClick) (onClick as (e: MouseEvent) => void)(e as unknown as MouseEvent);
        if (e.defaultPrevented || e.button !== 0 || e.metaKey || e.ctrlKey || e.shiftKey) return;
        e.preventDefault();
        navigate(href);
      }}
      {...rest}
    />
  );
}

// ---- data

/** usePoll calls load now and every interval ms while mounted and the tab is visible. */
export function usePoll<T>(load: () => Promise<T>, interval: number, deps: unknown[] = []) {
  const [data, setData] = useState<T | null>(null);
  const [error, setError] = useState<ApiError | null>(null);
  const [tick, setTick] = useState(0);
  const loadRef = useRef(load);
  loadRef.current = load;
  useEffect(() => {
    let alive = true;
    let timer: number | undefined;
    const run = async () => {
      try {
        const d = await loadRef.current();
        if (!alive) return;
        setData(d);
        setError(null);
      } catch (e) {
        if (alive) setError(asApiError(e));
      }
      if (alive && interval > 0) timer = window.setTimeout(run, document.hidden ? interval * 4 : interval);
    };
    run();
    return () => {
      alive = false;
      window.clearTimeout(timer);
    };
  }, [...deps, tick]);
  return { data, error, setData, reload: () => setTick((t) => t + 1) };
}

export function asApiError(e: unknown): ApiError {
  if (e instanceof ApiError) return e;
  return new ApiError(0, "client", (e as Error)?.message ?? String(e));
}

// ---- pieces

export function ErrorLine(props: { error: ApiError | string | null; id?: string }) {
  if (!props.error) return null;
  const msg = typeof props.error === "string" ? props.error : props.error.message;
  return (
    <div class="error-line" role="alert" id={props.id} data-testid="error">
      {msg}
    </div>
  );
}

export function StatusBadge(props: { status: SandboxStatus | string; busy?: string }) {
  const label = props.busy ?? props.status;
  return (
    <span
      class={`badge badge-${props.busy ? "busy" : props.status}`}
      data-testid="sandbox-status"
      data-status={props.status}
      title={props.status === "missing" && !props.busy ? "its host is unreachable" : undefined}
    >
      <span class="dot" />
      {label}
    </span>
  );
}

export function Modal(props: { title: string; children: ComponentChildren; onClose: () => void; id?: string }) {
  useEffect(() => {
    const f = (e: KeyboardEvent) => e.key === "Escape" && props.onClose();
    window.addEventListener("keydown", f);
    return () => window.removeEventListener("keydown", f);
  }, []);
  return (
    <div class="modal-backdrop" onClick={(e) => e.target === e.currentTarget && props.onClose()}>
      <div class="modal" role="dialog" aria-label={props.title} id={props.id}>
        <h2>{props.title}</h2>
        {props.children}
      </div>
    </div>
  );
}

/** Confirm asks before a destructive action and shows its error, if any, in place. */
export function Confirm(props: {
  title: string;
  body: ComponentChildren;
  action: string;
  danger?: boolean;
  onConfirm: () => Promise<unknown>;
  onClose: () => void;
}) {
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<ApiError | null>(null);
  return (
    <Modal title={props.title} onClose={props.onClose} id="confirm-dialog">
      <div class="modal-body">{props.body}</div>
      <ErrorLine error={error} id="confirm-error" />
      <div class="modal-actions">
        <button class="btn" onClick={props.onClose} disabled={busy}>
          Cancel
        </button>
        <button
          class={`btn ${props.danger ? "btn-danger" : "btn-primary"}`}
          id="confirm-ok"
          disabled={busy}
          onClick={async () => {
            setBusy(true);
            setError(null);
            try {
              await props.onConfirm();
              props.onClose();
            } catch (e) {
              setError(asApiError(e));
              setBusy(false);
            }
          }}
        >
          {busy ? "Working…" : props.action}
        </button>
      </div>
    </Modal>
  );
}

export function CopyButton(props: { text: string; id?: string }) {
  const [copied, setCopied] = useState(false);
  return (
    <button
      class="btn btn-small"
      id={props.id}
      type="button"
      onClick={async () => {
        try {
          await navigator.clipboard.writeText(props.text);
        } catch {
          // No clipboard API (plain http on another host): select and copy.
          const ta = document.createElement("textarea");
          ta.value = props.text;
          document.body.appendChild(ta);
          ta.select();
          document.execCommand("copy");
          ta.remove();
        }
        setCopied(true);
        setTimeout(() => setCopied(false), 1500);
      }}
    >
      {copied ? "Copied" : "Copy"}
    </button>
  );
}

export function PageHeader(props: { title: string; children?: ComponentChildren; sub?: ComponentChildren }) {
  return (
    <div class="page-header">
      <div>
        <h1>{props.title}</h1>
        {props.sub && <div class="sub">{props.sub}</div>}
      </div>
      <div class="page-actions">{props.children}</div>
    </div>
  );
}
