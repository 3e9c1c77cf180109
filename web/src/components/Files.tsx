import { useEffect, useRef, useState } from "preact/hooks";
import { api, formatBytes, upload, type ApiError, type FileEntry } from "../api";
import { asApiError, Confirm, ErrorLine, Modal } from "../ui";

interface Upload {
  key: number;
  name: string;
  path: string;
  fraction: number;
  error?: string;
  done?: boolean;
  abort?: () => void;
}

let uploadSeq = 0;

const join = (dir: string, name: string) => (dir.endsWith("/") ? dir : dir + "/") + name;
const parent = (p: string) => (p === "/" ? "/" : p.replace(/\/[^/]+\/?$/, "") || "/");

/** FileBrowser lists a sandbox's directories, uploads with progress, downloads and removes. */
export function FileBrowser(props: { sandboxId: string; running: boolean }) {
  const id = props.sandboxId;
  const [path, setPath] = useState("/root");
  const [typed, setTyped] = useState("/root");
  const [entries, setEntries] = useState<FileEntry[] | null>(null);
  const [error, setError] = useState<ApiError | null>(null);
  const [uploads, setUploads] = useState<Upload[]>([]);
  const [removing, setRemoving] = useState<FileEntry | null>(null);
  const [mkdir, setMkdir] = useState(false);
  const [drag, setDrag] = useState(false);
  const fileInput = useRef<HTMLInputElement>(null);
  const seq = useRef(0);

  const load = async (p = path) => {
    const mine = ++seq.current;
    try {
      const res = await api.listFiles(id, p);
      if (mine !== seq.current) return;
      const list = res.entries.filter((e) => e.path !== p);
      list.sort((a, b) => (a.type === "directory" ? 0 : 1) - (b.type === "directory" ? 0 : 1) || a.name.localeCompare(b.name));
      setEntries(list);
      setError(null);
    } catch (e) {
      if (mine === seq.current) setError(asApiError(e));
    }
  };

  useEffect(() => {
    setTyped(path);
    setEntries(null);
    if (props.running) load(path);
  }, [path, props.running]);

  const go = (p: string) => setPath(p.replace(/\/+$/, "") || "/");

  const update = (key: number, u: Partial<Upload>) => setUploads((all) => all.map((x) => (x.key === key ? { ...x, ...u } : x)));

  const send = (files: FileList | File[]) => {
    for (const f of Array.from(files)) {
      const key = ++uploadSeq;
      const dest = join(path, f.name);
      const up = upload(id, dest, f, (fraction) => update(key, { fraction }));
      setUploads((all) => [...all, { key, name: f.name, path: dest, fraction: 0, abort: up.abort }]);
      up.done.then(
        () => {
          update(key, { done: true, fraction: 1 });
          load();
        },
        (e) => update(key, { error: asApiError(e).message }),
      );
    }
  };

  const download = async (e: FileEntry) => {
    try {
      const res = await api.readFile(id, e.path);
      const url = URL.createObjectURL(await res.blob());
      const a = document.createElement("a");
      a.href = url;
      a.download = e.name;
      document.body.appendChild(a);
      a.click();
      a.remove();
      setTimeout(() => URL.revokeObjectURL(url), 10000);
    } catch (err) {
      setError(asApiError(err));
    }
  };

  const crumbs = path === "/" ? [] : path.slice(1).split("/");

  return (
    <div
      class={`files${drag ? " drag" : ""}`}
      id="files"
      onDragOver={(e) => {
        e.preventDefault();
        setDrag(true);
      }}
      onDragLeave={() => setDrag(false)}
      onDrop={(e) => {
        e.preventDefault();
        setDrag(false);
        if (e.dataTransfer?.files.length) send(e.dataTransfer.files);
      }}
    >
      <div class="files-bar">
        <button class="btn btn-small" id="files-up" disabled={path === "/"} onClick={() => go(parent(path))} title="Parent directory">
          ↑ Up
        </button>
        <nav class="crumbs" id="files-crumbs">
          <a href="#" onClick={(e) => (e.preventDefault(), go("/"))}>
            /
          </a>
          {crumbs.map((c, i) => (
            <span key={i}>
              <a href="#" onClick={(e) => (e.preventDefault(), go("/" + crumbs.slice(0, i + 1).join("/")))}>
                {c}
              </a>
              {i < crumbs.length - 1 && <span class="muted">/</span>}
            </span>
          ))}
        </nav>
        <form
          class="files-go"
          onSubmit={(e) => {
            e.preventDefault();
            if (typed.startsWith("/")) go(typed);
            else setError(asApiError(new Error("Paths start with /")));
          }}
        >
          <input id="files-path" value={typed} onInput={(e) => setTyped(e.currentTarget.value)} spellcheck={false} />
        </form>
        <button class="btn btn-small" id="files-refresh" onClick={() => load()} disabled={!props.running}>
          Refresh
        </button>
        <button class="btn btn-small" id="files-mkdir" onClick={() => setMkdir(true)} disabled={!props.running}>
          New folder
        </button>
        <button class="btn btn-small btn-primary" id="files-upload-button" onClick={() => fileInput.current?.click()} disabled={!props.running}>
          Upload
        </button>
        <input
          type="file"
          multiple
          id="file-upload"
          ref={fileInput}
          style={{ display: "none" }}
          onChange={(e) => {
            const fl = e.currentTarget.files;
            if (fl && fl.length) send(fl);
            e.currentTarget.value = "";
          }}
        />
      </div>
      {uploads.length > 0 && (
        <div class="uploads" id="uploads">
          {uploads.map((u) => (
            <div class="upload" key={u.key} data-testid="upload-item" data-name={u.name} data-done={u.done ? "true" : "false"}>
              <span class="upload-name" title={u.path}>
                {u.name}
              </span>
              <div class="progress" id="upload-progress">
                <div class={`progress-fill${u.error ? " failed" : ""}`} style={{ width: `${Math.round(u.fraction * 100)}%` }} />
              </div>
              <span class="upload-pct">{u.error ? "failed" : u.done ? "done" : `${Math.round(u.fraction * 100)}%`}</span>
              {!u.done && !u.error && (
                <button class="btn btn-small btn-ghost" onClick={() => u.abort?.()}>
                  Cancel
                </button>
              )}
              {(u.done || u.error) && (
                <button class="btn btn-small btn-ghost" aria-label="Dismiss" onClick={() => setUploads((all) => all.filter((x) => x.key !== u.key))}>
                  ×
                </button>
              )}
              {u.error && <div class="error-line upload-error">{u.error}</div>}
            </div>
          ))}
        </div>
      )}
      <ErrorLine error={error} id="files-error" />
      {!props.running ? (
        <div class="empty-row">Files can be browsed while the sandbox runs.</div>
      ) : (
        <table class="table files-table" id="files-table">
          <thead>
            <tr>
              <th>Name</th>
              <th>Size</th>
              <th>Permissions</th>
              <th>Owner</th>
              <th>Modified</th>
              <th />
            </tr>
          </thead>
          <tbody>
            {entries?.map((e) => (
              <tr key={e.path} data-testid="file-entry" data-name={e.name} data-type={e.type}>
                <td>
                  {e.type === "directory" ? (
                    <a href="#" class="file-dir" onClick={(ev) => (ev.preventDefault(), go(e.path))}>
                      <span class="icon">▸</span>
                      {e.name}/
                    </a>
                  ) : (
                    <span class="file-name">
                      <span class="icon muted">{e.type === "symlink" ? "↪" : "·"}</span>
                      {e.name}
                      {e.symlink_target && <span class="muted"> → {e.symlink_target}</span>}
                    </span>
                  )}
                </td>
                <td class="nowrap">{e.type === "directory" ? "—" : formatBytes(e.size)}</td>
                <td>
                  <code>{e.permissions}</code>
                </td>
                <td>
                  {e.owner}:{e.group}
                </td>
                <td class="nowrap">{e.modified_at ? new Date(e.modified_at * 1000).toLocaleString() : "—"}</td>
                <td class="actions">
                  {e.type === "file" && (
                    <button class="btn btn-small btn-ghost" data-testid="file-download" onClick={() => download(e)}>
                      Download
                    </button>
                  )}
                  <button class="btn btn-small btn-danger-ghost" data-testid="file-remove" onClick={() => setRemoving(e)}>
                    Delete
                  </button>
                </td>
              </tr>
            ))}
            {entries && entries.length === 0 && (
              <tr>
                <td colSpan={6} class="empty-row">
                  Empty directory. Drop files here or use Upload.
                </td>
              </tr>
            )}
            {!entries && !error && (
              <tr>
                <td colSpan={6} class="empty-row">
                  Loading…
                </td>
              </tr>
            )}
          </tbody>
        </table>
      )}
      {removing && (
        <Confirm
          title={removing.type === "directory" ? "Delete folder" : "Delete file"}
          body={
            <p>
              <code>{removing.path}</code>
              {removing.type === "directory" ? " and everything in it" : ""} will be removed from the sandbox.
            </p>
          }
          action="Delete"
          danger
          onConfirm={async () => {
            await api.removeFile(id, removing.path);
            load();
          }}
          onClose={() => setRemoving(null)}
        />
      )}
      {mkdir && <MkdirDialog dir={path} onClose={() => setMkdir(false)} onMake={async (p) => (await api.makeDir(id, p), load())} />}
    </div>
  );
}

function MkdirDialog(props: { dir: string; onClose: () => void; onMake: (path: string) => Promise<unknown> }) {
  const [name, setName] = useState("");
  const [error, setError] = useState<ApiError | null>(null);
  return (
    <Modal title="New folder" onClose={props.onClose}>
      <form
        onSubmit={async (e) => {
          e.preventDefault();
          try {
            await props.onMake(name.startsWith("/") ? name : join(props.dir, name));
            props.onClose();
          } catch (err) {
            setError(asApiError(err));
          }
        }}
      >
        <label>
          Name (in {props.dir})
          <input id="mkdir-name" value={name} onInput={(e) => setName(e.currentTarget.value)} />
        </label>
        <ErrorLine error={error} />
        <div class="modal-actions">
          <button type="button" class="btn" onClick={props.onClose}>
            Cancel
          </button>
          <button class="btn btn-primary" id="mkdir-submit">
            Create
          </button>
        </div>
      </form>
    </Modal>
  );
}
