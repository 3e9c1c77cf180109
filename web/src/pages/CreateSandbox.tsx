import { useState } from "preact/hooks";
import { api, type ApiError, type CreateSandboxRequest } from "../api";
import { asApiError, ErrorLine, Link, navigate, PageHeader, usePoll } from "../ui";

type Pair = { k: string; v: string };

/** CreateSandboxPage is the form of CreateSandboxRequest (api/openapi.yaml). */
export function CreateSandboxPage() {
  const templates = usePoll(() => api.listTemplates(), 0);
  const [template, setTemplate] = useState("minimal");
  const [vcpus, setVcpus] = useState("1");
  const [memory, setMemory] = useState("512");
  const [timeout, setTimeoutSec] = useState("300");
  const [autoPause, setAutoPause] = useState(false);
  const [envs, setEnvs] = useState<Pair[]>([]);
  const [metadata, setMetadata] = useState<Pair[]>([]);
  const [internet, setInternet] = useState(true);
  const [allowOut, setAllowOut] = useState("");
  const [denyOut, setDenyOut] = useState("");
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<ApiError | string | null>(null);

  const chosen = templates.data?.find((t) => t.name === template);
  const fixedSize = chosen?.type === "snapshot";

  const submit = async (e: Event) => {
    e.preventDefault();
    setError(null);
    const req: CreateSandboxRequest = { template };
    const num = (s: string, name: string) => {
      const n = Number(s);
      if (s.trim() === "" || !Number.isInteger(n)) throw `${name} must be a whole number`;
      return n;
    };
    try {
      if (!fixedSize) {
        req.vcpus = num(vcpus, "vCPUs");
        req.memory_mb = num(memory, "Memory");
      }
      req.timeout_sec = num(timeout, "Timeout");
    } catch (msg) {
      setError(msg as string);
      return;
    }
    req.auto_pause = autoPause;
    const obj = (pairs: Pair[]) => {
      const o: Record<string, string> = {};
      for (const p of pairs) if (p.k.trim()) o[p.k.trim()] = p.v;
      return Object.keys(o).length ? o : undefined;
    };
    req.envs = obj(envs);
    req.metadata = obj(metadata);
    const list = (s: string) => s.split(/[\s,]+/).filter(Boolean);
    if (!internet) req.allow_internet_access = false;
    if (list(allowOut).length || list(denyOut).length) {
      req.network = {};
      if (list(allowOut).length) req.network.allow_out = list(allowOut);
      if (list(denyOut).length) req.network.deny_out = list(denyOut);
    }
    setBusy(true);
    try {
      const sb = await api.createSandbox(req);
      navigate(`/sandboxes/${sb.id}`);
    } catch (err) {
      setError(asApiError(err));
      setBusy(false);
    }
  };

  return (
    <div class="narrow">
      <PageHeader title="New sandbox" sub="A microVM from a template. The defaults restore a ready snapshot in about a second." />
      <form class="card form" id="create-form" onSubmit={submit}>
        <div class="grid2">
          <label>
            Template
            <select id="create-template" value={template} onChange={(e) => {
              const name = e.currentTarget.value;
              setTemplate(name);
              const t = templates.data?.find((x) => x.name === name);
              if (t?.type === "snapshot") {
                if (t.vcpus) setVcpus(String(t.vcpus));
                if (t.memory_mb) setMemory(String(t.memory_mb));
              }
            }}>
              {(!templates.data || !templates.data.some((t) => t.name === template)) && <option value={template}>{template}</option>}
              {templates.data?.map((t) => (
                <option value={t.name} key={t.name}>
                  {t.name} {t.type === "snapshot" ? "(snapshot)" : ""}
                </option>
              ))}
            </select>
            <span class="hint">{fixedSize ? "A snapshot keeps the sizes it was taken at." : "Base templates boot at any size."}</span>
          </label>
          <label>
            Inactivity timeout (seconds)
            <input id="create-timeout" type="number" min="0" max="2592000" value={timeout} onInput={(e) => setTimeoutSec(e.currentTarget.value)} />
            <span class="hint">0 means never.</span>
          </label>
          <label>
            vCPUs
            <input id="create-vcpus" type="number" min="1" value={vcpus} disabled={fixedSize} onInput={(e) => setVcpus(e.currentTarget.value)} />
          </label>
          <label>
            Memory (MiB)
            <input id="create-memory" type="number" min="128" step="128" value={memory} disabled={fixedSize} onInput={(e) => setMemory(e.currentTarget.value)} />
          </label>
        </div>
        <fieldset class="radio-row">
          <legend>When the timeout passes</legend>
          <label class="check">
            <input type="radio" name="auto_pause" id="create-autopause-off" checked={!autoPause} onChange={() => setAutoPause(false)} />
            Destroy the sandbox
          </label>
          <label class="check">
            <input type="radio" name="auto_pause" id="create-autopause" checked={autoPause} onChange={() => setAutoPause(true)} />
            Pause it (the next call resumes it)
          </label>
        </fieldset>
        <div class="grid2">
          <Pairs title="Environment variables" id="create-envs" pairs={envs} setPairs={setEnvs} hint="The default environment of every command and terminal. Not shown again." />
          <Pairs title="Metadata" id="create-metadata" pairs={metadata} setPairs={setMetadata} hint="Labels, shown in the list." />
        </div>
        <details class="advanced">
          <summary>Network</summary>
          <label class="check">
            <input type="checkbox" id="create-internet" checked={internet} onChange={(e) => setInternet(e.currentTarget.checked)} />
            Allow internet access
          </label>
          <div class="grid2">
            <label>
              Allow out
              <textarea id="create-allow-out" rows={2} placeholder="pypi.org, 1.2.3.0/24" value={allowOut} onInput={(e) => setAllowOut(e.currentTarget.value)} />
            </label>
            <label>
              Deny out
              <textarea id="create-deny-out" rows={2} placeholder="example.com" value={denyOut} onInput={(e) => setDenyOut(e.currentTarget.value)} />
            </label>
          </div>
        </details>
        <ErrorLine error={templates.error} />
        <ErrorLine error={error} id="create-error" />
        <div class="form-actions">
          <Link href="/sandboxes" class="btn">
            Cancel
          </Link>
          <button class="btn btn-primary" id="create-submit" disabled={busy}>
            {busy ? "Creating…" : "Create sandbox"}
          </button>
        </div>
      </form>
    </div>
  );
}

function Pairs(props: { title: string; id: string; pairs: Pair[]; setPairs: (p: Pair[]) => void; hint: string }) {
  const set = (i: number, p: Partial<Pair>) => props.setPairs(props.pairs.map((x, j) => (j === i ? { ...x, ...p } : x)));
  return (
    <div class="pairs" id={props.id}>
      <div class="pairs-head">
        <span class="label">{props.title}</span>
        <button type="button" class="btn btn-small btn-ghost" id={`${props.id}-add`} onClick={() => props.setPairs([...props.pairs, { k: "", v: "" }])}>
          + Add
        </button>
      </div>
      {props.pairs.map((p, i) => (
        <div class="pair" key={i}>
          <input placeholder="KEY" data-testid="pair-key" value={p.k} onInput={(e) => set(i, { k: e.currentTarget.value })} />
          <input placeholder="value" data-testid="pair-value" value={p.v} onInput={(e) => set(i, { v: e.currentTarget.value })} />
          <button type="button" class="btn btn-small btn-ghost" aria-label="Remove" onClick={() => props.setPairs(props.pairs.filter((_, j) => j !== i))}>
            ×
          </button>
        </div>
      ))}
      {props.pairs.length === 0 && <div class="hint">{props.hint}</div>}
    </div>
  );
}
