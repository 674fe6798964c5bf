"""The one page `edgelite review` serves: a grid of thumbnails, most uncertain first, labelled by key or click.
Plain HTML and a small inline script (no framework, nothing fetched from the internet); every string from
a file name or a label goes into the page as text, never as HTML. Placeholders: __TITLE__, __QS__ (JSON)."""

PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>edgelite review · __TITLE__</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>
 body { font: 14px system-ui, sans-serif; margin: 0; background: #f4f4f2; color: #222; }
 header { position: sticky; top: 0; z-index: 2; background: #fff; border-bottom: 1px solid #ccc; padding: 6px 12px; }
 header b { color: #175; } #classes button { margin: 2px 3px 2px 0; }
 button { font: inherit; padding: 3px 8px; border: 1px solid #999; border-radius: 4px; background: #fafafa; cursor: pointer; }
 button kbd { font-weight: bold; color: #175; } #msg { color: #a22; margin-left: 8px; }
 #grid { display: grid; grid-template-columns: repeat(auto-fill, minmax(172px, 1fr)); gap: 8px; padding: 10px; }
 .tile { background: #fff; border: 3px solid transparent; border-radius: 6px; padding: 4px; cursor: pointer; position: relative; }
 .tile.sel { border-color: #2a7de1; } .tile.done { opacity: .45; }
 .tile img { width: 160px; height: 120px; object-fit: contain; background: #ddd; display: block; margin: auto; }
 .tile .n { position: absolute; top: 6px; right: 8px; background: #222; color: #fff; border-radius: 8px; padding: 0 6px; font-size: 12px; }
 .tile ol { margin: 4px 0 0 0; padding-left: 18px; font-size: 12px; } .tile .st { font-weight: bold; min-height: 1.2em; }
 .st.label { color: #175; } .st.discard { color: #a22; } .st.skip { color: #777; } .bad { color: #a22; font-size: 12px; }
</style></head>
<body>
<header>
 <b>edgelite review</b> · <span id="title">__TITLE__</span> · <span id="progress">loading…</span>
 · <button id="prev">◀</button> <span id="pageno"></span> <button id="next">▶</button>
 · <button id="undo"><kbd>u</kbd> undo</button> <button id="confirm">delete <span id="waiting">0</span> discarded</button>
 <span id="msg"></span>
 <div id="classes"></div>
</header>
<main id="grid"></main>
<script>
const QS = __QS__;
const PER = Number(new URLSearchParams(location.search).get("per") || 200);
let data = null, page = 0, sel = 0;
const $ = id => document.getElementById(id);
function el(tag, cls, text) { const e = document.createElement(tag); if (cls) e.className = cls; if (text !== undefined) e.textContent = text; return e; }
function say(t) { $("msg").textContent = t || ""; }
async function api(path, body) {
  const r = await fetch(path + QS, {method: "POST", headers: {"Content-Type": "application/json"}, body: JSON.stringify(body || {})});
  const d = await r.json();
  if (!r.ok) { say(d.error || ("HTTP " + r.status)); return null; }
  say(""); return d;
}
async function load(p, keep) {
  const r = await fetch(`api/groups${QS}${QS ? "&" : "?"}page=${p}&per=${PER}`, {cache: "no-store"});
  data = await r.json(); page = data.page;
  if (!keep) sel = firstOpen(0);
  render();
}
function firstOpen(from) {
  for (let i = from; i < data.items.length; i++) if (!data.items[i].decided) return i;
  return Math.min(from, Math.max(0, data.items.length - 1));
}
function render() {
  const cls = $("classes"); cls.textContent = "";
  data.labels.forEach((l, i) => { const b = el("button", "cls"); if (i < 10) b.append(el("kbd", "", String((i + 1) % 10)), " "); b.append(l);
    b.onclick = () => decide("label", l); b.dataset.label = l; cls.append(b); });
  const bx = el("button"); bx.append(el("kbd", "", "x"), " discard"); bx.onclick = () => decide("discard"); cls.append(bx);
  const bs = el("button"); bs.append(el("kbd", "", "s"), " skip"); bs.onclick = () => decide("skip"); cls.append(bs);
  const grid = $("grid"); grid.textContent = "";
  data.items.forEach((it, i) => {
    const t = el("div", "tile"); t.dataset.group = it.group; t.dataset.i = i;
    const img = el("img"); img.alt = it.name; img.title = it.name; img.src = `thumb/${it.frame}${QS}`;
    t.append(img);
    if (it.n > 1) t.append(el("span", "n", "×" + it.n));
    if (it.unreadable) t.append(el("div", "bad", "not an image: x to discard"));
    const ol = el("ol"); it.top.forEach(([l, s]) => ol.append(el("li", "", `${l} ${s.toFixed(2)}`))); t.append(ol);
    t.append(el("div", "st"));
    t.onclick = () => { sel = i; mark(); };
    grid.append(t);
  });
  mark();
}
function mark() {
  const tiles = $("grid").children;
  for (const t of tiles) {
    const it = data.items[t.dataset.i], st = t.querySelector(".st");
    t.classList.toggle("sel", Number(t.dataset.i) === sel);
    t.classList.toggle("done", !!it.decided);
    st.className = "st " + (it.decided ? it.decided.action : "");
    st.textContent = it.decided ? (it.decided.action === "label" ? "→ " + it.decided.label : it.decided.action) : "";
  }
  if (tiles[sel]) tiles[sel].scrollIntoView({block: "nearest"});
  $("progress").textContent = `${data.decided} of ${data.groups} groups decided (${data.frames} frames) · scores: ${data.model}`;
  $("pageno").textContent = `page ${data.page + 1} of ${data.pages}`;
  $("waiting").textContent = data.discarded_waiting;
}
async function decide(action, label) {
  const it = data.items[sel]; if (!it || it.decided) return;
  const d = await api("api/decide", {group: it.group, action: action, label: label || ""});
  if (!d) return;
  it.decided = {action: action, label: label || ""}; data.decided++;
  if (action === "discard") data.discarded_waiting += it.n;
  sel = firstOpen(sel + 1); mark();
}
async function undo() {
  const d = await api("api/undo"); if (!d || !d.undone) return;
  await load(page, true);
  const i = data.items.findIndex(it => it.group === d.undone.group); if (i >= 0) { sel = i; mark(); }
}
function columns() {
  const tiles = $("grid").children; if (tiles.length < 2) return 1;
  const top = tiles[0].offsetTop; let n = 0; while (n < tiles.length && tiles[n].offsetTop === top) n++; return n;
}
document.addEventListener("keydown", e => {
  if (!data || e.altKey || e.metaKey) return;
  if (e.ctrlKey && e.key !== "z") return;
  const k = e.key;
  const n = k === "0" ? 10 : Number(k);  // 1-9, then 0 for a tenth class
  if (k.length === 1 && k >= "0" && k <= "9" && n <= data.labels.length) decide("label", data.labels[n - 1]);
  else if (k === "x") decide("discard");
  else if (k === "s") decide("skip");
  else if (k === "u" || (e.ctrlKey && k === "z")) undo();
  else if (k === "ArrowRight") sel = Math.min(sel + 1, data.items.length - 1);
  else if (k === "ArrowLeft") sel = Math.max(sel - 1, 0);
  else if (k === "ArrowDown") sel = Math.min(sel + columns(), data.items.length - 1);
  else if (k === "ArrowUp") sel = Math.max(sel - columns(), 0);
  else if (k === "PageDown" && page + 1 < data.pages) { load(page + 1); }
  else if (k === "PageUp" && page > 0) { load(page - 1); }
  else return;
  e.preventDefault(); mark();
});
$("prev").onclick = () => page > 0 && load(page - 1);
$("next").onclick = () => page + 1 < data.pages && load(page + 1);
$("undo").onclick = undo;
$("confirm").onclick = async () => {
  if (!data.discarded_waiting || !confirm(`Delete ${data.discarded_waiting} discarded frames for good?`)) return;
  const d = await api("api/confirm"); if (d) { say(`deleted ${d.deleted} frames`); load(page, true); }
};
load(0);
</script></body></html>
"""
