"""benchmarks/map_load.py runs end to end on tiny data: it seeds, starts gunicorn on loopback, loads
every case and exits 0. The numbers it prints here mean nothing."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

REPO = Path(__file__).resolve().parents[1]


def test_map_load_runs_every_case_against_gunicorn():
    url = urlsplit(os.environ.get("DATABASE_URL", "postgis://civic@127.0.0.1:54339/civic"))
    bench_url = urlunsplit(url._replace(path=f"{url.path.rstrip('/')}_map_smoke_bench"))
    result = subprocess.run(
        [sys.executable, str(REPO / "benchmarks" / "map_load.py"), "--reports", "200", "--seconds", "0.5",
         "--max-requests", "5", "--connections", "2", "--workers", "1"],
        cwd=REPO, capture_output=True, text=True, timeout=300,
        env={**os.environ, "DATABASE_URL": bench_url, "OMP_NUM_THREADS": "1"})
    assert result.returncode == 0, result.stderr[-3000:]
    rows = json.loads(result.stdout.strip().splitlines()[-1])
    assert [r["case"] for r in rows] == ["REST, city-wide", "REST, street", "console, city-wide", "console, street"]
    assert all(r["requests"] >= 1 and r["errors"] == 0 for r in rows)
