"""The preview page `edgelite run --http` serves at `/`: the live stream, the top-k labels, FPS and stage
timings, filled in by its script from /result.json?frame=shown (the result drawn on the frame the stream sent,
so the panel and the overlay show the same frame) — a `str.format` template: model, title, qs, qs_json, playing
(what the header says once results come: "live" for a camera or stream, not for a file or folder)."""

#: the header's status by source kind (edgelite.device.sources.describe_source); anything else: "live"
PLAYING = {"file": "playing a video file", "folder": "reading an image folder"}

PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>edgelite · {title}</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>
 body {{ font: 15px system-ui, sans-serif; margin: 0; background: #111; color: #eee; }}
 header {{ padding: 8px 14px; background: #222; }} header b {{ color: #7c7; }}
 main {{ display: flex; flex-wrap: wrap; gap: 16px; padding: 14px; }}
 #stream {{ max-width: 100%; min-width: 320px; background: #000; }}
 table {{ border-collapse: collapse; }} td {{ padding: 2px 8px; }}
 .bar {{ background: #2a6; height: 12px; }} #labels td:first-child {{ font-weight: bold; }}
 #status {{ color: #aaa; }}
</style></head>
<body><header><b>edgelite</b> · <span id="model">{model}</span> · <span id="status">connecting…</span></header>
<main>
 <img id="stream" src="stream.mjpg{qs}" alt="live stream">
 <section>
  <h3>Top classes</h3><table id="labels"></table>
  <p><span id="fps">–</span> fps · frame <span id="frame">–</span></p>
  <h3>Stage timings (ms)</h3><table id="timings"></table>
 </section>
</main>
<script>
const qs = {qs_json};
function esc(s) {{ return String(s).replace(/[&<>"]/g, c => ({{"&":"&amp;","<":"&lt;",">":"&gt;",'"':"&quot;"}})[c]); }}
async function tick() {{
  try {{
    const r = await fetch("result.json" + (qs ? qs + "&" : "?") + "frame=shown", {{cache: "no-store"}});
    if (r.ok) {{
      const d = await r.json();
      if (d.frame !== undefined) {{
        document.getElementById("labels").innerHTML = d.top_k.map(p =>
          `<tr><td>${{esc(p.label)}}</td><td>${{p.score.toFixed(3)}}</td>` +
          `<td><div class="bar" style="width:${{Math.round(p.score * 150)}}px"></div></td></tr>`).join("");
        document.getElementById("timings").innerHTML = Object.entries(d.timings_ms).map(([k, v]) =>
          `<tr><td>${{esc(k)}}</td><td>${{v.toFixed(2)}}</td></tr>`).join("");
        document.getElementById("fps").textContent = d.fps.toFixed(1);
        document.getElementById("frame").textContent = d.frame;
        document.getElementById("status").textContent = {playing};
      }}
    }} else {{ document.getElementById("status").textContent = "HTTP " + r.status; }}
  }} catch (e) {{ document.getElementById("status").textContent = "disconnected"; }}
  setTimeout(tick, 300);
}}
tick();
</script></body></html>
"""
