import { useState } from "preact/hooks";
import { api, type ApiError, type Sandbox } from "../api";
import { asApiError, Confirm, ErrorLine, Modal, navigate } from "../ui";

/**
 * SandboxActions are a sandbox's lifecycle buttons: pause, resume,
 * snapshot (make a template of it, which consumes it) and destroy.
 * busy reports the action in flight, so the status can say so.
 */
export function SandboxActions(props: {
  sandbox: Sandbox;
  onChanged: (sb?: Sandbox) => void;
  onBusy?: (label: string | null) => void;
  compact?: boolean;
  afterDestroy?: () => void;
}) {
  const sb = props.sandbox;
  const [busy, setBusy] = useState<string | null>(null);
  const [error, setError] = useState<ApiError | null>(null);
  const [confirmDestroy, setConfirmDestroy] = useState(false);
  const [snapshotting, setSnapshotting] = useState(false);

  const run = async (label: string, f: () => Promise<Sandbox | void>) => {
    setBusy(label);
    props.onBusy?.(label);
    setError(null);
    try {
      const out = await f();
      props.onChanged(out || undefined);
    } catch (e) {
      setError(asApiError(e));
    }
    setBusy(null);
    props.onBusy?.(null);
  };

  const small = props.compact ? " btn-small" : "";
  const live = sb.status === "running";
  return (
    <div>
    <div class="sb-actions">
      {sb.status === "running" && (
        <button class={`btn${small}`} data-testid="sb-pause" disabled={!!busy} onClick={() => run("pausing", () => api.pauseSandbox(sb.id))}>
          {busy === "pausing" ? "Pausing…" : "Pause"}
        </button>
      )}
      {sb.status === "paused" && (
        <button class={`btn${small}`} data-testid="sb-resume" disabled={!!busy} onClick={() => run("resuming", () => api.resumeSandbox(sb.id))}>
          {busy === "resuming" ? "Resuming…" : "Resume"}
        </button>
      )}
      {live && (
        <button class={`btn${small}`} data-testid="sb-snapshot" disabled={!!busy} onClick={() => setSnapshotting(true)}>
          Snapshot
        </button>
      )}
      {sb.status !== "stopped" && (
        <button class={`btn btn-danger-ghost${small}`} data-testid="sb-destroy" disabled={!!busy} onClick={() => setConfirmDestroy(true)}>
          {busy === "destroying" ? "Destroying…" : "Destroy"}
        </button>
      )}
    </div>
      {error && <div class="action-error"><ErrorLine error={error} /></div>}
      {confirmDestroy && (
        <Confirm
          title="Destroy sandbox"
          body={
            <p>
              <code>{sb.id}</code> and everything in it will be gone: its VM, disk and processes. This cannot be undone.
            </p>
          }
          action="Destroy"
          danger
          onConfirm={async () => {
            props.onBusy?.("destroying");
            try {
              await api.destroySandbox(sb.id);
            } finally {
              props.onBusy?.(null);
            }
            props.onChanged();
            props.afterDestroy?.();
          }}
          onClose={() => setConfirmDestroy(false)}
        />
      )}
      {snapshotting && <SnapshotDialog sandbox={sb} onClose={() => setSnapshotting(false)} />}
    </div>
  );
}

function SnapshotDialog(props: { sandbox: Sandbox; onClose: () => void }) {
  const [name, setName] = useState("");
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<ApiError | null>(null);
  return (
    <Modal title="Snapshot to a template" onClose={props.onClose} id="snapshot-dialog">
      <form
        onSubmit={async (e) => {
          e.preventDefault();
          setBusy(true);
          setError(null);
          try {
            await api.createSnapshot(props.sandbox.id, name.trim());
            props.onClose();
            navigate("/snapshots");
          } catch (err) {
            setError(asApiError(err));
            setBusy(false);
          }
        }}
      >
        <p class="modal-body">
          Wrenn pauses <code>{props.sandbox.id}</code>, keeps its memory and disk as a template new sandboxes restore, and
          then removes the sandbox.
        </p>
        <label>
          Template name
          <input id="snapshot-name" placeholder="generated if empty" value={name} onInput={(e) => setName(e.currentTarget.value)} />
        </label>
        <ErrorLine error={error} id="snapshot-error" />
        <div class="modal-actions">
          <button type="button" class="btn" onClick={props.onClose} disabled={busy}>
            Cancel
          </button>
          <button class="btn btn-primary" id="snapshot-submit" disabled={busy}>
            {busy ? "Snapshotting…" : "Create template"}
          </button>
        </div>
      </form>
    </Modal>
  );
}
