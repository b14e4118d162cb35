// The supervisors' charts: first-response times and breach rate per day, as inline SVG
// bar charts. Each is an image with a title and a description that carry the summary, and
// a table beside it that carries every number.
import { el, svg } from "/console/dom.js";
import { day, t } from "/console/i18n.js";

function niceMax(value) {
  for (const step of [5, 10, 15, 30, 60, 90, 120, 180, 240, 360, 480, 720, 1440]) if (value <= step) return step;
  return Math.ceil(value / 1440) * 1440;
}

// A bar chart as inline SVG: one group of bars per day, one bar per series. Series differ
// by fill style (solid, outlined) as well as colour; the SVG is an image whose title and
// description carry the summary, and a table beside it carries every number.
function barChart({ id, title, desc, days, series, max, unit, table }) {
  const width = 640; const height = 220; const left = 44; const bottom = 28; const top = 10;
  const plotW = width - left - 8; const plotH = height - top - bottom;
  const slot = plotW / Math.max(days.length, 1);
  const barW = Math.max(2, Math.min(22, (slot * 0.8) / series.length));
  const y = (value) => top + plotH - (plotH * Math.min(value, max)) / max;
  const grid = [0, max / 2, max].map((v) => svg("g", { class: "tick" },
    svg("line", { x1: left, x2: width - 8, y1: y(v), y2: y(v) }),
    svg("text", { x: left - 6, y: y(v) + 4, "text-anchor": "end" }, `${Math.round(v)}${unit}`)));
  const every = Math.ceil(days.length / 10);
  const bars = days.map((d, i) => svg("g", { "data-day": d.period },
    ...series.map((s, j) => {
      const value = s.value(d);
      if (value === null || value === undefined) return null;
      const x = left + i * slot + (slot - barW * series.length) / 2 + j * barW;
      const h = Math.max(1, top + plotH - y(value));
      return svg("rect", { class: `bar ${s.cls}`, x, y: top + plotH - h, width: barW - 1, height: h },
        svg("title", {}, `${day(d.period)}: ${s.label} ${s.text(d)}`));
    }),
    i % every === 0 ? svg("text", { class: "day", x: left + i * slot + slot / 2, y: height - 8,
      "text-anchor": "middle" }, day(d.period)) : null));
  const chart = svg("svg", { viewBox: `0 0 ${width} ${height}`, role: "img", class: "chart",
    "aria-labelledby": `${id}-title ${id}-desc` },
  svg("title", { id: `${id}-title` }, title), svg("desc", { id: `${id}-desc` }, desc), ...grid, ...bars);
  const legend = series.length > 1 ? el("ul", { class: "legend" },
    ...series.map((s) => el("li", {}, el("span", { class: `swatch ${s.cls}`, "aria-hidden": "true" }), s.label))) : null;
  return el("figure", { class: "panel", id },
    el("figcaption", {}, el("strong", {}, title)), chart, legend,
    el("details", {}, el("summary", {}, t("data_table")), table));
}

function dataTable(headers, rows) {
  return el("table", { class: "data" },
    el("thead", {}, el("tr", {}, ...headers.map((h) => el("th", { scope: "col" }, h)))),
    el("tbody", {}, ...rows.map((cells) => el("tr", {}, el("th", { scope: "row" }, cells[0]),
      ...cells.slice(1).map((c) => el("td", {}, c))))));
}

export function metricCharts(metrics) {
  const minutes = (s) => (s === null || s === undefined ? null : Math.round(s / 6) / 10);
  const fr = metrics.rows.filter((r) => r.clock === "first_response")
    .map((r) => ({ period: r.period, p50: minutes(r.p50_seconds), p90: minutes(r.p90_seconds) }));
  const byDay = new Map();
  for (const r of metrics.rows) {
    const d = byDay.get(r.period) || { period: r.period, ended: 0, breached: 0 };
    d.ended += r.ended; d.breached += r.breached;
    byDay.set(r.period, d);
  }
  const br = [...byDay.values()].sort((a, b) => new Date(a.period) - new Date(b.period))
    .map((d) => ({ ...d, rate: d.ended ? Math.round((1000 * d.breached) / d.ended) / 10 : null }));
  const empty = (id, key) => el("figure", { class: "panel", id }, el("figcaption", {}, el("strong", {}, t(key))),
    el("p", { class: "muted" }, t("no_data")));

  let first;
  if (!fr.length) first = empty("chart-first-response", "chart_fr");
  else {
    const last = fr[fr.length - 1];
    const top = Math.max(...fr.map((d) => d.p90 ?? d.p50 ?? 0));
    first = barChart({
      id: "chart-first-response", title: t("chart_fr"), days: fr, max: niceMax(top), unit: "",
      desc: t("chart_fr_desc", { days: fr.length, from: day(fr[0].period), to: day(last.period),
        last: day(last.period), p50: last.p50 ?? "–", p90: last.p90 ?? "–", max: top }),
      series: [
        { label: "p50", cls: "p50", value: (d) => d.p50, text: (d) => `${d.p50} min` },
        { label: "p90", cls: "p90", value: (d) => d.p90, text: (d) => `${d.p90} min` },
      ],
      table: dataTable([t("day"), "p50 (min)", "p90 (min)"], fr.map((d) => [day(d.period), d.p50 ?? "–", d.p90 ?? "–"])),
    });
  }
  let second;
  if (!br.length) second = empty("chart-breach-rate", "chart_br");
  else {
    const last = br[br.length - 1];
    second = barChart({
      id: "chart-breach-rate", title: t("chart_br"), days: br, max: 100, unit: " %",
      desc: t("chart_br_desc", { days: br.length, from: day(br[0].period), to: day(last.period),
        last: day(last.period), rate: last.rate ?? "–", ended: last.ended,
        max: Math.max(...br.map((d) => d.rate ?? 0)) }),
      series: [{ label: t("breach_rate"), cls: "rate", value: (d) => d.rate, text: (d) => `${d.rate} % (${d.breached}/${d.ended})` }],
      table: dataTable([t("day"), t("breach_rate"), t("breached_count"), t("ended")],
        br.map((d) => [day(d.period), `${d.rate ?? "–"} %`, d.breached, d.ended])),
    });
  }
  return [first, second, el("p", { class: "muted small" }, t("chart_note"))];
}
