"""A Zipkin server for `make run TRACES=1`: the official exec jar from Maven
Central (fetched once, cached beside the Kafka jars), spans kept in memory,
listening on 127.0.0.1 only."""

import subprocess
import threading
import time
import urllib.request
from dataclasses import dataclass

from devstack import StartFailed
from devstack.kafka import CACHE
from devstack.supervisor import die_with_parent

VERSION = "3.6.1"
JAR = CACHE / "zipkin" / f"zipkin-server-{VERSION}-exec.jar"


def fetch() -> bool:
    """Download the exec jar with Maven, once; True when it did. Maven's output is shown only when it fails."""
    if JAR.exists():
        return False
    partial = JAR.parent / "partial"  # renamed into place once complete: a cut download is never taken for the jar
    partial.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(
        [
            "mvn",
            "--batch-mode",
            "--quiet",
            "--no-transfer-progress",
            "-Dstyle.color=never",
            "dependency:copy",
            f"-Dartifact=io.zipkin:zipkin-server:{VERSION}:jar:exec",
            f"-DoutputDirectory={partial}",
        ],
        capture_output=True,
        text=True,
        cwd=partial,  # no pom.xml there: Maven runs the goal without a project
        preexec_fn=die_with_parent,
    )
    if done.returncode != 0:
        output = (done.stdout + done.stderr).strip().splitlines()
        raise StartFailed(
            f"fetching Zipkin {VERSION} with Maven failed (exit code {done.returncode}): " + " / ".join(output[-5:])
        )
    (partial / JAR.name).rename(JAR)
    return True


@dataclass(frozen=True)
class Zipkin:
    port: int = 9411
    heap: str = "256m"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def spans_endpoint(self) -> str:
        """Where the services' Zipkin exporter posts spans."""
        return f"{self.url}/api/v2/spans"

    @property
    def trace_view(self) -> str:
        """A trace in Zipkin's UI, for the order page's links."""
        return f"{self.url}/zipkin/traces/{{traceId}}"

    def command(self) -> list[str]:
        return [
            "java",
            f"-Xms{self.heap}",
            f"-Xmx{self.heap}",
            "-XX:+UseSerialGC",  # one small heap, one collector thread
            "-Djava.awt.headless=true",
            "-jar",
            str(JAR),
            "--armeria.ports[0].ip=127.0.0.1",  # without these three, Zipkin listens on every interface
            f"--armeria.ports[0].port={self.port}",
            "--armeria.ports[0].protocols[0]=http",
            "--logging.level.root=WARN",
            "--logging.level.com.linecorp.armeria.server.Server=INFO",  # its "Serving HTTP at" line
        ]

    def wait_ready(self, stopping: threading.Event, timeout: float = 180) -> bool:
        """Poll its health check until it answers; False if `stopping` is set first."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                with urllib.request.urlopen(f"{self.url}/health", timeout=2):
                    return True
            except OSError:
                if time.monotonic() > deadline:
                    raise StartFailed(f"Zipkin at {self.url} did not answer within {timeout:.0f}s") from None
                if stopping.wait(0.5):
                    return False
