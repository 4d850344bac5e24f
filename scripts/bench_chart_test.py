#!/usr/bin/env python3
"""Tests of scripts/bench_chart.py and of `scripts/bench-compare --from-raw`, which draw the
benchmark's ratio chart: python3 -B scripts/bench_chart_test.py (a second or two; no network,
no benchmark run)."""

import json
import os
import re
import subprocess
import sys
import tempfile
import unittest
import xml.etree.ElementTree as ET
from unittest import mock

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench_chart  # noqa: E402

SCRIPT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "bench-compare")
SVG = "{http://www.w3.org/2000/svg}"


def run(workload, client, requests=1000, cpu_us=10_000, wall_s=1.0, **extra):
    """A raw line as bench-compare writes it; CPU split evenly between user and system."""
    return {"workload": workload, "client": client, "round": 0, "requests": requests,
            "bytes": 0, "wall_s": wall_s, "user_us": cpu_us // 2, "sys_us": cpu_us - cpu_us // 2,
            "allocs": 2 * requests, "alloc_bytes": 24 * requests, "max_gap_ms": 1.0, **extra}


def summary(cpu, rps):
    return {"cpu": cpu, "rps": rps}


def bars(svg_text):
    """The bars of a chart: (title text, height) of every rect that has a tooltip."""
    root = ET.fromstring(svg_text)
    out = []
    for r in root.iter(SVG + "rect"):
        t = r.find(SVG + "title")
        if t is not None:
            out.append((t.text, float(r.get("height"))))
    return out


class Draw(unittest.TestCase):
    def test_one_bar_per_ratio_in_each_panel_and_valid_svg(self):
        results = {("w1", "weft-agent"): summary(10, 100), ("w1", "limit"): summary(5, 200),
                   ("w2", "weft-agent"): summary(20, 50), ("w2", "limit"): summary(40, 25)}
        svg = bench_chart.draw(results, ["weft-agent", "limit"], ["w1", "w2"], "T 4543346",
                               "sub")
        got = bars(svg)
        self.assertEqual(len(got), 4)  # 2 workloads x 1 peer x 2 panels
        self.assertIn("T 4543346", svg)
        # Log scale: 0.5 and 2 are as far from the line at 1.
        heights = {round(h, 3) for _, h in got}
        self.assertEqual(len(heights), 1, heights)
        self.assertTrue(any(t.startswith("limit, w1: 0.50 × weft-agent's") for t, _ in got))
        self.assertTrue(any(t.startswith("limit, w2: 2.00 × weft-agent's") for t, _ in got))

    def test_hostile_names_are_escaped_and_cut(self):
        evil = '<script>alert("x")</script>&' + "x" * 500
        results = {(evil, "weft-agent"): summary(10, 100), (evil, evil): summary(5, 200)}
        svg = bench_chart.draw(results, ["weft-agent", evil], [evil], evil, evil)
        root = ET.fromstring(svg)  # well-formed despite the markup in the names
        self.assertEqual(list(root.iter(SVG + "script")), [])
        self.assertNotIn("<script>", svg)
        # Axis labels and legend entries are cut to 40 characters.
        labels = [t.text for t in root.iter(SVG + "text") if t.text and t.text.startswith("<")]
        self.assertTrue(any(len(t) == bench_chart.MAX_NAME for t in labels), labels)

    def test_missing_base_failed_runs_and_zero_figures_give_dashes_not_bars(self):
        results = {("no base", "limit"): summary(5, 200),
                   ("zero", "weft-agent"): summary(10, 100), ("zero", "limit"): summary(0, 0),
                   ("base zero", "weft-agent"): summary(0, 0),
                   ("base zero", "limit"): summary(5, 5)}
        svg = bench_chart.draw(results, ["weft-agent", "limit", "ureq"],
                               ["no base", "zero", "base zero"], "t", "s")
        self.assertEqual(bars(svg), [])
        root = ET.fromstring(svg)
        dashes = [t for t in root.iter(SVG + "text") if (t.text or "") == "–"
                  or any((x.text or "").endswith("run)") for x in t.iter(SVG + "title"))]
        self.assertEqual(len(dashes), 3 * 2 * 2)  # 3 workloads x 2 peers x 2 panels
        self.assertNotIn("nan", svg.lower())

    def test_extreme_ratios_stay_finite_with_a_few_ticks(self):
        results = {("w", "weft-agent"): summary(1.0, 1.0), ("w", "a"): summary(1e9, 1e-9),
                   ("w", "b"): summary(1e-9, 1e9)}
        svg = bench_chart.draw(results, ["weft-agent", "a", "b"], ["w"], "t", "s")
        self.assertNotIn("nan", svg.lower())
        self.assertNotIn("inf", svg.lower())
        ticks = [t.text for t in ET.fromstring(svg).iter(SVG + "text")
                 if (t.text or "").endswith("×")]
        self.assertLessEqual(len(ticks), 2 * 25)
        self.assertIn("1×", ticks)

    def test_empty_chart_draws(self):
        svg = bench_chart.draw({}, [], [], "t", "s")
        ET.fromstring(svg)

    def test_ticks(self):
        self.assertEqual(bench_chart._ticks(0.15, 7), [0.2, 0.5, 1, 2, 5])
        fine = bench_chart._ticks(0.8, 1.25)
        self.assertIn(1, fine)
        self.assertGreaterEqual(len(fine), 5)
        self.assertEqual(bench_chart._ticks(1e-6, 1e6), [10.0 ** k for k in range(-6, 7)])


class ReadRaw(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.TemporaryDirectory()
        self.addCleanup(self.dir.cleanup)

    def raw(self, lines, name="r.jsonl"):
        path = os.path.join(self.dir.name, name)
        with open(path, "w") as f:
            for line in lines:
                f.write((line if isinstance(line, str) else json.dumps(line)) + "\n")
        return path

    def refused(self, lines, pattern):
        path = self.raw(lines)
        with self.assertRaises(bench_chart.RawError) as e:
            bench_chart.read_raw(path)
        self.assertRegex(str(e.exception), pattern)
        self.assertIn(path, str(e.exception))

    def test_reads_groups_and_metadata(self):
        path = self.raw([run("a", "weft-agent", utc="2026-12-07 11:32 UTC", weft="weft abc"),
                         "", run("a", "limit", round=1), run("b", "weft-agent")])
        runs, workloads, clients, meta = bench_chart.read_raw(path)
        self.assertEqual(workloads, ["a", "b"])
        self.assertEqual(clients, ["weft-agent", "limit"])
        self.assertEqual(len(runs[("a", "weft-agent")]), 1)
        self.assertEqual(meta, {"utc": "2026-12-07 11:32 UTC", "weft": ["weft abc"],
                                "rounds": 2})

    def test_the_real_baseline_file_reads(self):
        base = "/work/notes/base.jsonl"
        if not os.path.exists(base):
            self.skipTest("no baseline raw file on this machine")
        runs, workloads, clients, _ = bench_chart.read_raw(base)
        self.assertEqual(len(workloads), 6)
        self.assertIn("wrk", clients)

    def test_hostile_files_are_refused_with_file_and_line(self):
        good = run("a", "weft-agent")
        cases = [
            ([], r"no benchmark runs"),
            (["", "   "], r"no benchmark runs"),
            ([good, "{not json"], r":2: not JSON"),
            (["[1, 2]"], r":1: not a JSON object"),
            ([{**good, "workload": ""}], r":1: no 'workload'"),
            ([{k: v for k, v in good.items() if k != "client"}], r":1: no 'client'"),
            ([{**good, "requests": "12"}], r"'requests' is '12'"),
            ([{**good, "user_us": -1}], r"'user_us' is -1"),
            ([{**good, "sys_us": True}], r"'sys_us' is True"),
            (['{"workload":"a","client":"c","requests":1,"bytes":0,"wall_s":NaN,'
              '"user_us":1,"sys_us":1}'], r"'wall_s' is nan"),
            (['{"workload":"a","client":"c","requests":Infinity,"bytes":0,"wall_s":1,'
              '"user_us":1,"sys_us":1}'], r"'requests' is inf"),
            ([{**good, "wall_s": 0}], r"'wall_s' is 0: a run lasts"),
            ([{**good, "allocs": "many"}], r"'allocs' is 'many'"),
            ([run("a", f"c{i}") for i in range(bench_chart.MAX_CLIENTS + 1)],
             r":33: more than 32 clients"),
            ([run(f"w{i}", "c") for i in range(bench_chart.MAX_WORKLOADS + 1)],
             r":65: more than 64 workloads"),
        ]
        for lines, pattern in cases:
            with self.subTest(pattern=pattern):
                self.refused(lines, pattern)

    def test_missing_allocation_counters_read_as_none(self):
        line = {k: v for k, v in run("a", "wrk").items() if k not in ("allocs", "alloc_bytes")}
        runs, _, _, _ = bench_chart.read_raw(self.raw([line]))
        self.assertIsNone(runs[("a", "wrk")][0]["allocs"])

    def test_size_and_run_count_are_capped(self):
        with mock.patch.object(bench_chart, "MAX_RUNS", 3):
            self.refused([run("a", "weft-agent")] * 4, r"more than 3 runs")
        with mock.patch.object(bench_chart, "MAX_RAW_BYTES", 100):
            self.refused([run("a", "weft-agent")] * 2, r"bytes, over the 100")

    def test_unreadable_files_are_refused(self):
        missing = os.path.join(self.dir.name, "missing.jsonl")
        with self.assertRaisesRegex(bench_chart.RawError, "cannot read .*missing.jsonl"):
            bench_chart.read_raw(missing)
        path = os.path.join(self.dir.name, "binary.jsonl")
        with open(path, "wb") as f:
            f.write(b"\xff\xfe\x00garbage")
        with self.assertRaisesRegex(bench_chart.RawError, "cannot read"):
            bench_chart.read_raw(path)


class Write(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.TemporaryDirectory()
        self.addCleanup(self.dir.cleanup)

    def test_svg_into_a_new_directory(self):
        path = os.path.join(self.dir.name, "new", "c.svg")
        self.assertEqual(bench_chart.write(path, "<svg/>"), (path, None))
        with open(path) as f:
            self.assertEqual(f.read(), "<svg/>")
        self.assertEqual(os.listdir(os.path.dirname(path)), ["c.svg"])  # no temporary left

    def test_png_without_rsvg_convert_writes_the_svg_and_says_how_to_get_it(self):
        path = os.path.join(self.dir.name, "c.png")
        with mock.patch.object(bench_chart.shutil, "which", return_value=None):
            written, warning = bench_chart.write(path, "<svg/>")
        self.assertEqual(written, os.path.join(self.dir.name, "c.svg"))
        self.assertIn("apt-get install librsvg2-bin", warning)
        self.assertFalse(os.path.exists(path))

    def test_png_with_rsvg_convert(self):
        if bench_chart.shutil.which("rsvg-convert") is None:
            self.skipTest("rsvg-convert not installed (librsvg2-bin)")
        svg = bench_chart.draw({("w", "weft-agent"): summary(1, 1), ("w", "x"): summary(2, 2)},
                               ["weft-agent", "x"], ["w"], "t", "s")
        path = os.path.join(self.dir.name, "c.png")
        self.assertEqual(bench_chart.write(path, svg), (path, None))
        with open(path, "rb") as f:
            self.assertEqual(f.read(8), b"\x89PNG\r\n\x1a\n")


class FromRaw(unittest.TestCase):
    """`scripts/bench-compare --from-raw`: only reads the file and draws (no nginx, no build)."""

    def setUp(self):
        self.dir = tempfile.TemporaryDirectory()
        self.addCleanup(self.dir.cleanup)

    def bench_compare(self, *args):
        return subprocess.run([sys.executable, "-B", SCRIPT, *args], capture_output=True,
                              text=True, timeout=60)

    def test_draws_beside_the_raw_file_with_tree_and_time_in_the_title(self):
        raw = os.path.join(self.dir.name, "run.jsonl")
        with open(raw, "w") as f:
            for c in ("weft-agent", "hyper", "limit"):
                f.write(json.dumps(run("empty c16", c, weft="weft 1234abc",
                                       utc="2026-12-07 12:00 UTC")) + "\n")
        p = self.bench_compare("--from-raw", raw)
        self.assertEqual(p.returncode, 0, p.stderr)
        with open(os.path.join(self.dir.name, "run.svg")) as f:
            svg = f.read()
        self.assertIn("2026-12-07 12:00 UTC, weft 1234abc", svg)
        self.assertEqual(len(bars(svg)), 4)  # hyper and limit, two panels

    def test_tree_option_and_file_time_for_an_old_raw_file(self):
        raw = os.path.join(self.dir.name, "old.jsonl")
        with open(raw, "w") as f:
            f.write(json.dumps(run("1m c1", "weft-agent")) + "\n")
        os.utime(raw, (0, 1_000_000_000))  # 2001-09-09 01:46:40 UTC
        out = os.path.join(self.dir.name, "x", "chart.svg")
        p = self.bench_compare("--from-raw", raw, "--tree", "weft 4543346", "--chart", out)
        self.assertEqual(p.returncode, 0, p.stderr)
        with open(out) as f:
            self.assertIn("2001-09-09 01:46 UTC (file time), weft 4543346", f.read())

    def test_a_bad_raw_file_fails_with_its_line_and_no_traceback(self):
        raw = os.path.join(self.dir.name, "bad.jsonl")
        with open(raw, "w") as f:
            f.write(json.dumps(run("a", "weft-agent")) + "\n{\n")
        p = self.bench_compare("--from-raw", raw)
        self.assertNotEqual(p.returncode, 0)
        self.assertRegex(p.stderr, re.escape(raw) + r":2: not JSON")
        self.assertNotIn("Traceback", p.stderr)
        self.assertFalse(os.path.exists(os.path.join(self.dir.name, "bad.svg")))

    def test_an_unwritable_chart_path_fails_without_a_traceback(self):
        raw = os.path.join(self.dir.name, "run.jsonl")
        with open(raw, "w") as f:
            f.write(json.dumps(run("a", "weft-agent")) + "\n")
        blocker = os.path.join(self.dir.name, "file")
        open(blocker, "w").close()
        p = self.bench_compare("--from-raw", raw, "--chart", os.path.join(blocker, "c.svg"))
        self.assertNotEqual(p.returncode, 0)
        self.assertIn("chart not written", p.stderr)
        self.assertNotIn("Traceback", p.stderr)


if __name__ == "__main__":
    unittest.main()
