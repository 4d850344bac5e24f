"""The ratio chart of scripts/bench-compare: reads its raw JSON-lines file and draws, as SVG
(PNG through rsvg-convert), each client's CPU per request and throughput divided by
weft-agent's, one group of bars per workload.

Hand-written SVG rather than gnuplot or matplotlib: no package to install to draw or redraw a
chart, the same text for the same data (it diffs in git), and the bars can start at 1 on a log
axis (cheaper or faster than weft goes down or up from weft's line), which a histogram style
does not do.
"""

import json
import math
import os
import shutil
import subprocess
import tempfile
from xml.sax.saxutils import escape

BASE = "weft-agent"
# Bounds on what a raw file may hold, so a wrong or hostile file fails with a message instead
# of filling memory or drawing a chart kilometres wide.
MAX_RAW_BYTES = 64 * 1024 * 1024
MAX_RUNS = 100_000
MAX_WORKLOADS = 64
MAX_CLIENTS = 32
MAX_NAME = 40
NUMBERS = ("requests", "bytes", "wall_s", "user_us", "sys_us")
OPTIONAL_NUMBERS = ("allocs", "alloc_bytes")

# Okabe-Ito colours (told apart with colour blindness too), fixed per client so every chart
# shows a client in the same colour.
COLOURS = {
    "weft-client": "#56B4E9",
    "wrk": "#999999",
    "hyper": "#E69F00",
    "hyper-conn": "#D55E00",
    "reqwest": "#CC79A7",
    "ureq": "#009E73",
    "limit": "#333333",
}
SPARE_COLOURS = ["#0072B2", "#F0E442", "#8C564B", "#17BECF", "#BCBD22", "#7F7F7F"]

# Panels: summary key, panel title, weft-agent's own figure under each workload name.
PANELS = [
    ("cpu", "CPU µs per request ÷ weft-agent's: lower is better (below 1: cheaper than weft)",
     lambda s: f"{_num(s['cpu'])} µs/req"),
    ("rps", "req/s (and MiB/s) ÷ weft-agent's: higher is better (above 1: faster than weft)",
     lambda s: f"{_num(s['rps'])} req/s"),
]


class RawError(Exception):
    """A raw file that cannot be read or is not what bench-compare writes."""


def read_raw(path):
    """Runs of a `--raw` file, grouped: ({(workload, client): [run, ...]}, workloads in order
    of appearance, clients in order of appearance, {"utc": last run's time or None,
    "weft": [trees named], "rounds": n})."""
    try:
        size = os.path.getsize(path)
        if size > MAX_RAW_BYTES:
            raise RawError(f"{path}: {size} bytes, over the {MAX_RAW_BYTES} a raw file may have")
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except (OSError, UnicodeDecodeError) as e:
        raise RawError(f"cannot read {path}: {e}") from None
    runs, workloads, clients = {}, [], []
    meta = {"utc": None, "weft": [], "rounds": 0}
    count = 0
    for no, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        where = f"{path}:{no}"
        try:
            r = json.loads(line)
        except ValueError as e:
            raise RawError(f"{where}: not JSON ({e})") from None
        if not isinstance(r, dict):
            raise RawError(f"{where}: not a JSON object")
        for k in ("workload", "client"):
            if not isinstance(r.get(k), str) or not r[k]:
                raise RawError(f"{where}: no {k!r} name")
        for k in NUMBERS:
            v = r.get(k)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) \
                    or v < 0:
                raise RawError(f"{where}: {k!r} is {v!r}, not a number of 0 or more")
        for k in OPTIONAL_NUMBERS:  # null for wrk (a C program: no allocation counter)
            v = r.setdefault(k, None)
            if v is not None and (isinstance(v, bool) or not isinstance(v, (int, float))
                                  or not math.isfinite(v) or v < 0):
                raise RawError(f"{where}: {k!r} is {v!r}, not null or a number of 0 or more")
        if r["wall_s"] <= 0:
            raise RawError(f"{where}: 'wall_s' is {r['wall_s']!r}: a run lasts some time")
        count += 1
        if count > MAX_RUNS:
            raise RawError(f"{path}: more than {MAX_RUNS} runs")
        w, c = r["workload"], r["client"]
        if w not in workloads:
            if len(workloads) == MAX_WORKLOADS:
                raise RawError(f"{where}: more than {MAX_WORKLOADS} workloads")
            workloads.append(w)
        if c not in clients:
            if len(clients) == MAX_CLIENTS:
                raise RawError(f"{where}: more than {MAX_CLIENTS} clients")
            clients.append(c)
        runs.setdefault((w, c), []).append(r)
        if isinstance(r.get("utc"), str):
            meta["utc"] = r["utc"][:40]
        if isinstance(r.get("weft"), str) and r["weft"][:200] not in meta["weft"]:
            meta["weft"].append(r["weft"][:200])
        if isinstance(r.get("round"), int) and not isinstance(r["round"], bool):
            meta["rounds"] = max(meta["rounds"], min(r["round"], MAX_RUNS) + 1)
    if not runs:
        raise RawError(f"{path}: no benchmark runs in it")
    return runs, workloads, clients, meta


def _num(x):
    digits = 0 if abs(x) >= 100 else 1 if abs(x) >= 10 else 2
    return f"{x:,.{digits}f}"


def _short(name):
    return name if len(name) <= MAX_NAME else name[:MAX_NAME - 1] + "…"


def _wrap(text, width):
    lines, line = [], ""
    for word in text.split():
        if line and len(line) + 1 + len(word) > width:
            lines.append(line)
            line = word
        else:
            line = f"{line} {word}" if line else word
    return lines + [line] if line else lines


def _colour(client, clients):
    if client in COLOURS:
        return COLOURS[client]
    spare = [c for c in clients if c not in COLOURS]
    return SPARE_COLOURS[spare.index(client) % len(SPARE_COLOURS)]


def _ticks(lo, hi):
    """Tick values on a log axis from lo to hi: 1-2-5 steps, finer when the span is narrow,
    powers of ten alone when it is wide."""
    k0, k1 = math.floor(math.log10(lo)) - 1, math.ceil(math.log10(hi)) + 1
    if math.log10(hi / lo) > 4:
        return [10.0 ** k for k in range(k0, k1 + 1) if lo <= 10.0 ** k <= hi]
    best = []
    for steps in ((1, 2, 5), (1, 1.5, 2, 3, 5, 7), (1, 1.2, 1.4, 1.6, 1.8, 2, 2.5, 3, 4, 5, 6, 7,
                                                    8, 9), tuple(1 + i / 20 for i in range(180))):
        best = [round(m * 10.0 ** k, 6) for k in range(k0, k1 + 1) for m in steps
                if lo <= m * 10.0 ** k <= hi]
        if len(best) >= 5:
            break
    return best


class _Svg:
    def __init__(self):
        self.parts = []

    def add(self, s):
        self.parts.append(s)

    def text(self, x, y, s, size=11, anchor="start", extra="", tip=None):
        tip = f"<title>{escape(tip)}</title>" if tip else ""
        self.add(f'<text x="{x:.1f}" y="{y:.1f}" font-size="{size}" text-anchor="{anchor}"'
                 f'{extra}>{tip}{escape(s)}</text>')


def draw(results, clients, workloads, title, subtitle):
    """The chart as SVG text. `results[(workload, client)]` is a summary with at least "cpu"
    (µs per request) and "rps"; missing ones are failed or skipped runs."""
    others = [c for c in clients if c != BASE]
    bw = 14 if len(others) > 4 else 22
    gw = max(110, len(others) * bw + 24)
    left, right, plot_h, pad = 64, 16, 240, 30
    # At least 760 pixels wide, the groups widened to fill them.
    gw = max(gw, (760 - left - right) // max(len(workloads), 1))
    width = left + gw * max(len(workloads), 1) + right
    svg = _Svg()
    svg.text(left, 24, title, 16, extra=' font-weight="bold"')
    y = 24
    for line in _wrap(subtitle, int((width - left - right) / 6.3)):
        y += 17
        svg.text(left, y, line, 11, extra=' fill="#444"')
    # Legend: the line, then one swatch per client (wrapping).
    x, y = left, y + 22
    svg.add(f'<line x1="{x}" y1="{y - 4}" x2="{x + 18}" y2="{y - 4}" stroke="#000" '
            f'stroke-width="2"/>')
    base_note = f"{BASE} = 1 (its own figure under each workload)"
    svg.text(x + 22, y, base_note)
    x += 22 + int(6.5 * len(base_note)) + 24
    for c in others:
        need = 18 + 7 * len(_short(c)) + 20
        if x + need > width - right:
            x, y = left, y + 18
        svg.add(f'<rect x="{x}" y="{y - 10}" width="12" height="12" '
                f'fill="{_colour(c, clients)}"/>')
        svg.text(x + 16, y, _short(c))
        x += need
    top = y + 28
    for key, panel_title, base_label in PANELS:
        top = _panel(svg, results, clients, others, workloads, key, panel_title, base_label,
                     top, left, gw, bw, plot_h, pad)
    height = top
    head = (f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
            f'viewBox="0 0 {width} {height}" font-family="DejaVu Sans, Arial, sans-serif">'
            f'<rect width="100%" height="100%" fill="#fff"/>')
    return head + "\n" + "\n".join(svg.parts) + "\n</svg>\n"


def _panel(svg, results, clients, others, workloads, key, panel_title, base_label, top, left,
           gw, bw, plot_h, pad):
    """One panel of grouped bars; returns the y below it."""
    svg.text(left, top, panel_title, 13, extra=' font-weight="bold"')
    y0, y1 = top + 10, top + 10 + plot_h
    ratios = {}
    for w in workloads:
        base = results.get((w, BASE))
        for c in others:
            s = results.get((w, c))
            if base and s and base[key] and base[key] > 0 and s[key] and s[key] > 0:
                ratios[(w, c)] = s[key] / base[key]
    lo = min([1.0] + list(ratios.values()))
    hi = max([1.0] + list(ratios.values()))
    llo, lhi = math.log10(lo), math.log10(hi)
    if lhi - llo < 0.2:  # a span of at least 0.8-1.25
        mid = (lhi + llo) / 2
        llo, lhi = mid - 0.1, mid + 0.1
    # Data between y0+pad and y1-pad; the pad leaves room for the value labels.
    scale = (plot_h - 2 * pad) / (lhi - llo)

    def ypos(v):
        return y1 - pad - (math.log10(v) - llo) * scale

    axis_lo = 10 ** (llo - pad / scale)
    axis_hi = 10 ** (lhi + pad / scale)
    right_x = left + gw * len(workloads)
    for t in _ticks(axis_lo, axis_hi):
        yt = ypos(t)
        svg.add(f'<line x1="{left}" y1="{yt:.1f}" x2="{right_x}" y2="{yt:.1f}" '
                f'stroke="#ddd" stroke-width="1"/>')
        svg.text(left - 6, yt + 4, f"{t:g}×", 10, "end")
    svg.add(f'<rect x="{left}" y="{y0}" width="{right_x - left}" height="{plot_h}" '
            f'fill="none" stroke="#888"/>')
    one = ypos(1.0)
    for i, w in enumerate(workloads):
        gx = left + i * gw
        if i:
            svg.add(f'<line x1="{gx}" y1="{y0}" x2="{gx}" y2="{y1}" stroke="#eee"/>')
        base = results.get((w, BASE))
        bx = gx + (gw - bw * len(others)) / 2
        for j, c in enumerate(others):
            x = bx + j * bw
            r = ratios.get((w, c))
            if r is None:
                svg.text(x + bw / 2, one - 3, "–", 14, "middle", ' fill="#999"',
                         f"{c}, {w}: no ratio (failed, skipped or no {BASE} run)")
                continue
            yr = ypos(r)
            ytop, h = min(one, yr), max(abs(one - yr), 1)
            tip = (f"{c}, {w}: {r:.2f} × {BASE}'s ({_num(results[(w, c)][key])} against "
                   f"{_num(base[key])})")
            svg.add(f'<rect x="{x + 1:.1f}" y="{ytop:.1f}" width="{bw - 2}" height="{h:.1f}" '
                    f'fill="{_colour(c, clients)}"><title>{escape(tip)}</title></rect>')
            # The value, rotated, beyond the end of the bar.
            ly = yr - 4 if r >= 1 else yr + 4
            anchor = "start" if r >= 1 else "end"
            svg.text(x + bw / 2 + 3, ly, f"{r:.2f}", 9, anchor,
                     f' transform="rotate(-90 {x + bw / 2 + 3:.1f} {ly:.1f})"')
        svg.text(gx + gw / 2, y1 + 16, _short(w), 11, "middle")
        svg.text(gx + gw / 2, y1 + 30, base_label(base) if base and base[key] else f"no {BASE}",
                 9, "middle", ' fill="#555"')
    svg.add(f'<line x1="{left}" y1="{one:.1f}" x2="{right_x}" y2="{one:.1f}" stroke="#000" '
            f'stroke-width="1.5"/>')
    return y1 + 62


def write(path, svg_text):
    """Writes the chart to `path`: SVG, or PNG (through rsvg-convert) when the name ends in
    .png. Returns (path written, warning or None): without rsvg-convert a PNG request writes
    the SVG beside it and says how to get the PNG."""
    if not path.lower().endswith(".png"):
        _atomic_write(path, svg_text)
        return path, None
    tool = shutil.which("rsvg-convert")
    svg_path = path[:-4] + ".svg"
    if tool is None:
        _atomic_write(svg_path, svg_text)
        return svg_path, ("no rsvg-convert for the PNG chart (apt-get install librsvg2-bin); "
                          f"wrote the SVG to {svg_path}")
    with tempfile.NamedTemporaryFile("w", suffix=".svg", encoding="utf-8") as f:
        f.write(svg_text)
        f.flush()
        p = subprocess.run([tool, "--background-color", "white", "-o", path, f.name],
                           capture_output=True, text=True, timeout=60)
    if p.returncode != 0:
        _atomic_write(svg_path, svg_text)
        return svg_path, (f"rsvg-convert failed ({p.stderr.strip()[-200:]}); wrote the SVG to "
                          f"{svg_path}")
    return path, None


def _atomic_write(path, text):
    d = os.path.dirname(os.path.abspath(path))
    os.makedirs(d, exist_ok=True)
    tmp = f"{path}.tmp{os.getpid()}"
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(text)
    os.replace(tmp, path)
