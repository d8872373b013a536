"""A Prometheus server for `make run METRICS=1`: the machine's `prometheus`
(Debian's package, which `make prometheus` installs), run directly, listening on
127.0.0.1 only, its data in the stack's folder, scraping every process of the
stack every few seconds and evaluating the alert rules in monitoring/alerts.yml."""

import json
import shutil
import subprocess
import threading
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from devstack import StartFailed

ALERTS = Path(__file__).resolve().parents[1] / "monitoring" / "alerts.yml"
SCRAPE_EVERY_S = 5  # graphs fill in seconds; a frozen process is seen down within one interval


def binary() -> str:
    found = shutil.which("prometheus")
    if found is None:
        raise StartFailed(
            "METRICS=1 needs Prometheus, and there is no prometheus on PATH:"
            " make prometheus installs Debian's prometheus package, or put a Prometheus 2 on PATH"
        )
    return found


def version(prometheus: str) -> str:
    """'2.42.0+ds' from `prometheus, version 2.42.0+ds (branch: ...)`."""
    return subprocess.run([prometheus, "--version"], capture_output=True, text=True).stdout.split()[2]


@dataclass(frozen=True)
class Prometheus:
    home: Path
    port: int = 9090

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def config(self) -> Path:
        return self.home / "prometheus.yml"

    def write_config(self, targets: dict[str, dict[str, str]]) -> None:
        """Scrape each process at its address: {service: {process: "127.0.0.1:port"}},
        one job per service, the process in a label of its own. JSON is YAML too."""
        config = {
            "global": {"scrape_interval": f"{SCRAPE_EVERY_S}s", "evaluation_interval": f"{SCRAPE_EVERY_S}s"},
            "rule_files": [str(ALERTS)],
            "scrape_configs": [
                {
                    "job_name": service,
                    "scrape_timeout": f"{SCRAPE_EVERY_S - 1}s",
                    "static_configs": [
                        {"targets": [address], "labels": {"process": process}} for process, address in processes.items()
                    ],
                }
                for service, processes in targets.items()
            ],
        }
        self.home.mkdir(parents=True, exist_ok=True)
        self.config.write_text("# Written by devstack at each start of the stack.\n" + json.dumps(config, indent=2))

    def command(self, prometheus: str) -> list[str]:
        return [
            prometheus,
            f"--config.file={self.config}",
            f"--storage.tsdb.path={self.home / 'data'}",
            f"--web.listen-address=127.0.0.1:{self.port}",
            "--log.level=warn",
        ]

    def wait_ready(self, stopping: threading.Event, timeout: float = 60) -> bool:
        """Poll its readiness check until it answers; False if `stopping` is set first."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                with urllib.request.urlopen(f"{self.url}/-/ready", timeout=2):
                    return True
            except OSError:
                if time.monotonic() > deadline:
                    raise StartFailed(f"Prometheus at {self.url} did not answer within {timeout:.0f}s") from None
                if stopping.wait(0.2):
                    return False
