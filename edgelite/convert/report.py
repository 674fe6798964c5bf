"""The end-of-conversion table (Ultralytics benchmark style) as text and markdown. Standard library and
edgelite.stats only."""

from __future__ import annotations

from typing import Any

from edgelite.stats import format_delta

COLUMNS = ("format", "status", "size MB", "gzip MB", "top-1", "Δ top-1 [95 % CI]", "agreement", "ms/img")
#: printed under the table: how to read the Δ column
LEGEND = ("Δ top-1 in points against the float Keras model on the same held-out images, with its paired 95 % "
          "interval; ~0 = not distinguishable from zero on this many images")


def rows(bundle) -> list[list[str]]:
    """One row for the float Keras reference, then one per model entry, in manifest order."""
    ref = bundle.info.get("reference", {})
    out = [["keras (float)", "reference", "-", "-", _f(ref.get("top1"), 3), "-", "-", "-"]]
    for m in bundle.models:
        status = m.status if m.status == "ok" else f"{m.status}: {m.error}" if m.error else m.status
        met = m.metrics or {}
        out.append([
            m.name, status,
            _f(m.bytes / 1e6, 2) if m.bytes else "-",
            _f(m.gzip_bytes / 1e6, 2) if m.gzip_bytes else "-",
            _f(met.get("top1"), 3),
            format_delta(met.get("delta"), met.get("delta_ci")),
            _f(met.get("agreement"), 3),
            _f(met.get("ms_per_image"), 2),
        ])
    return out


def table(bundle, max_status: int = 60) -> str:
    body = rows(bundle)
    for r in body:
        if len(r[1]) > max_status:
            r[1] = r[1][: max_status - 1] + "…"
    widths = [max(len(c), *(len(r[i]) for r in body)) for i, c in enumerate(COLUMNS)]
    right = {2, 3, 4, 5, 6, 7}

    def fmt(r):
        return "  ".join(c.rjust(w) if i in right else c.ljust(w) for i, (c, w) in enumerate(zip(r, widths, strict=True)))

    lines = [fmt(list(COLUMNS)), fmt(["-" * w for w in widths])] + [fmt(r) for r in body]
    return "\n".join(line.rstrip() for line in lines + [LEGEND])


def markdown(bundle) -> str:
    body = rows(bundle)
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    lines += ["| " + " | ".join(c.replace("|", "\\|") for c in r) + " |" for r in body]
    return "\n".join(lines) + "\n\n" + LEGEND + "\n"


def _f(v: Any, digits: int) -> str:
    return f"{v:.{digits}f}" if isinstance(v, (int, float)) else "-"
