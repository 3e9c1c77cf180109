import { useEffect, useRef, useState } from "preact/hooks";
import uPlot from "uplot";
import "uplot/dist/uPlot.min.css";
import { api, formatBytes, type SandboxMetrics } from "../api";
import { ErrorLine, usePoll } from "../ui";

const ranges = ["5m", "10m", "1h", "2h", "6h", "12h", "24h"];

/** MetricsView charts a sandbox's CPU and memory (GET /v1/sandboxes/{id}/metrics). */
export function MetricsView(props: { sandboxId: string; active: boolean; visible: boolean }) {
  const [range, setRange] = useState("10m");
  // The finest ranges hold every 500 ms sample: refresh them often.
  const every = range === "5m" || range === "10m" ? 2000 : 15000;
  const m = usePoll(() => api.metrics(props.sandboxId, range), props.active && props.visible ? every : 0, [
    props.sandboxId,
    range,
    props.active,
    props.visible,
  ]);
  const last = m.data?.points[m.data.points.length - 1];
  return (
    <div class="metrics" id="metrics">
      <div class="metrics-head">
        <div class="tiles">
          <Tile label="CPU" value={last ? `${last.cpu_pct.toFixed(1)} %` : "—"} id="metric-cpu" />
          <Tile label="Memory (VMM resident)" value={last ? formatBytes(last.mem_bytes) : "—"} id="metric-mem" />
          <Tile label="Disk (overlay)" value={last ? formatBytes(last.disk_bytes) : "—"} id="metric-disk" />
          <Tile label="Points" value={m.data ? String(m.data.points.length) : "—"} id="metric-points" />
        </div>
        <select id="metrics-range" value={range} onChange={(e) => setRange(e.currentTarget.value)}>
          {ranges.map((r) => (
            <option value={r} key={r}>
              Last {r}
            </option>
          ))}
        </select>
      </div>
      <ErrorLine error={m.error} id="metrics-error" />
      {m.data && props.visible && <Chart data={m.data} range={range} />}
    </div>
  );
}

function Tile(props: { label: string; value: string; id: string }) {
  return (
    <div class="tile" id={props.id}>
      <div class="tile-label">{props.label}</div>
      <div class="tile-value">{props.value}</div>
    </div>
  );
}

const rangeSeconds: Record<string, number> = { "5m": 300, "10m": 600, "1h": 3600, "2h": 7200, "6h": 21600, "12h": 43200, "24h": 86400 };

function Chart(props: { data: SandboxMetrics; range: string }) {
  const el = useRef<HTMLDivElement>(null);
  const plot = useRef<uPlot | null>(null);
  const range = useRef(props.range);
  range.current = props.range;

  const series = (d: SandboxMetrics): uPlot.AlignedData => [
    d.points.map((p) => p.timestamp_unix),
    d.points.map((p) => p.cpu_pct),
    d.points.map((p) => p.mem_bytes / (1 << 20)),
  ];

  useEffect(() => {
    const width = () => Math.max(320, el.current!.clientWidth);
    const u = new uPlot(
      {
        width: width(),
        height: 300,
        cursor: { drag: { x: false, y: false } },
        scales: {
          // The range asked for, or less while the sandbox is younger (a minute at least).
          x: {
            time: true,
            range: (u) => {
              const now = Date.now() / 1000;
              const first = (u.data[0] as number[])[0] ?? now;
              return [Math.max(now - (rangeSeconds[range.current] ?? 600), Math.min(first, now - 60)), now];
            },
          },
          cpu: { range: [0, 100] }, mem: { range: (_u, _min, max) => [0, Math.max(64, max * 1.15)] } },
        axes: [
          { stroke: "#5b6776", grid: { stroke: "#eef1f4" } },
          { scale: "cpu", label: "CPU %", stroke: "#1f6f5c", grid: { stroke: "#eef1f4" } },
          { scale: "mem", label: "Memory MiB", side: 1, stroke: "#3a6ea5", grid: { show: false } },
        ],
        series: [
          {},
          { label: "CPU %", scale: "cpu", stroke: "#1f6f5c", width: 2, fill: "rgba(31,111,92,0.10)", value: (_u, v) => (v == null ? "—" : v.toFixed(1) + " %") },
          { label: "Memory", scale: "mem", stroke: "#3a6ea5", width: 2, value: (_u, v) => (v == null ? "—" : v.toFixed(0) + " MiB") },
        ],
      },
      series(props.data),
      el.current!,
    );
    plot.current = u;
    const ro = new ResizeObserver(() => u.setSize({ width: width(), height: 300 }));
    ro.observe(el.current!);
    return () => {
      ro.disconnect();
      u.destroy();
      plot.current = null;
    };
  }, []);

  useEffect(() => {
    plot.current?.setData(series(props.data));
  }, [props.data]);

  return <div class="chart" id="metrics-chart" data-points={props.data.points.length} ref={el} />;
}
