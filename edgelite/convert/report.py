"""The end-of-conversion table (Ultralytics benchmark style) as text and markdown. Standard library only."""

from __future__ import annotations

from typing import Any

COLUMNS = ("format", "status", "size MB", "gzip MB", "top-1", "Δ top-1", "agreement", "ms/img")


def rows(bundle) -> list[list[str]]:
    """One row for the float Keras reference, then one per model entry, in manifest order."""
    ref = bundle.info.get("reference", {})
    out = [["keras (float)", "reference", "-", "-", _f(ref.get("top1"), 3), "-", "-", "-"]]
    for m in bundle.models:
        status = m.status if m.status == "ok" else f"{m.status}: {m.error}" if m.error else m.status
        met = m.metrics or {}
        delta = met.get("delta")
        out.append([
            m.name, status,
            _f(m.bytes / 1e6, 2) if m.bytes else "-",
            _f(m.gzip_bytes / 1e6, 2) if m.gzip_bytes else "-",
            _f(met.get("top1"), 3),
            f"{delta:+.1f}" if isinstance(delta, (int, float)) else "-",
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
    return "\n".join(line.rstrip() for line in lines)


def markdown(bundle) -> str:
    body = rows(bundle)
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    lines += ["| " + " | ".join(c.replace("|", "\\|") for c in r) + " |" for r in body]
    return "\n".join(lines) + "\n"


def _f(v: Any, digits: int) -> str:
    return f"{v:.{digits}f}" if isinstance(v, (int, float)) else "-"
