"""Headless Chromium driven over the DevTools protocol on a pipe (``--remote-debugging-pipe``), no dependency.

Chromium reads JSON commands from its file descriptor 3 and writes responses and events to 4, each message ended by
a NUL byte. :class:`Chromium` opens a page, records console errors, uncaught exceptions and failed loads, evaluates
JavaScript and takes screenshots.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Self

INSTALL = ["apt-get", "install", "-y", "-q", "chromium"]


def find_chromium() -> str | None:
    """Debian's chromium, installed with apt-get when missing (as tests/slurm/cluster-up.sh installs SLURM).

    Returns:
        The executable, or None when neither chromium nor apt-get exists.
    """
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found or not shutil.which("apt-get"):
        return found
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    if subprocess.run(INSTALL, env=env, capture_output=True, check=False).returncode != 0:
        subprocess.run(["apt-get", "update", "-q"], env=env, capture_output=True, check=True)
        subprocess.run(INSTALL, env=env, capture_output=True, check=True)
    return shutil.which("chromium")


class Chromium:
    """One headless browser with one page.

    Attributes:
        problems: console errors, exceptions and failed resource loads seen so far, as text.
    """

    def __init__(self, executable: str, width: int = 1400, height: int = 1000, timeout: float = 60) -> None:
        self.timeout = timeout
        self.problems: list[str] = []
        self._profile = tempfile.mkdtemp(prefix="chromium-")
        commands, self._to_browser = os.pipe()
        self._from_browser, replies = os.pipe()

        def descriptors() -> None:  # in the child, before exec: the pipe ends become fds 3 and 4
            os.dup2(commands, 3)
            os.dup2(replies, 4)

        self._process = subprocess.Popen(
            [
                executable,
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--no-first-run",
                "--remote-debugging-pipe",
                f"--user-data-dir={self._profile}",
                "about:blank",
            ],
            preexec_fn=descriptors,  # noqa: PLW1509 (the tests start browsers from one thread)
            pass_fds=(3, 4),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        os.close(commands)
        os.close(replies)
        self._buffer = b""
        self._next_id = 0
        self._events: list[str] = []
        target = self.send("Target.createTarget", {"url": "about:blank"})["targetId"]
        self._session = self.send("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
        for domain in ("Page", "Runtime", "Log", "Network"):
            self.send(f"{domain}.enable", session=True)
        metrics = {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": False}
        self.send("Emulation.setDeviceMetricsOverride", metrics, session=True)

    def _read(self) -> dict:
        deadline = time.monotonic() + self.timeout
        while b"\0" not in self._buffer:
            if time.monotonic() > deadline:
                raise TimeoutError("chromium did not answer")
            data = os.read(self._from_browser, 1 << 16)
            if not data:
                raise RuntimeError("chromium closed the DevTools pipe")
            self._buffer += data
        message, self._buffer = self._buffer.split(b"\0", 1)
        return json.loads(message)

    def _event(self, message: dict) -> None:
        """Record what counts as a problem of the page."""
        method, params = message.get("method"), message.get("params", {})
        if method == "Runtime.consoleAPICalled" and params["type"] in ("error", "assert"):
            self.problems.append(
                "console: " + " ".join(str(a.get("value", a.get("description"))) for a in params["args"])
            )
        elif method == "Runtime.exceptionThrown":
            self.problems.append("exception: " + params["exceptionDetails"].get("text", ""))
        elif method == "Log.entryAdded" and params["entry"]["level"] == "error":
            self.problems.append(f"log: {params['entry']['text']} {params['entry'].get('url', '')}")
        elif method == "Network.loadingFailed":
            self.problems.append(f"failed load: {params['errorText']} (request {params['requestId']})")
        self._events.append(method)

    def send(self, method: str, params: dict | None = None, session: bool = False) -> dict:
        """Send a command and return its result; events that arrive meanwhile are recorded."""
        self._next_id += 1
        message = {"id": self._next_id, "method": method, "params": params or {}}
        if session:
            message["sessionId"] = self._session
        os.write(self._to_browser, json.dumps(message).encode() + b"\0")
        while True:
            reply = self._read()
            if reply.get("id") == self._next_id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply["result"]
            self._event(reply)

    def open(self, path: Path) -> None:
        """Load a file and wait for its load event (every image of the page loaded or failed)."""
        self._events = []
        self.send("Page.navigate", {"url": path.resolve().as_uri()}, session=True)
        while "Page.loadEventFired" not in self._events:
            self._event(self._read())

    def evaluate(self, expression: str):
        """The JSON value of a JavaScript expression in the page."""
        result = self.send("Runtime.evaluate", {"expression": expression, "returnByValue": True}, session=True)
        if "exceptionDetails" in result:
            raise RuntimeError(f"{expression}: {result['exceptionDetails']}")
        return result["result"].get("value")

    def screenshot(self, path: Path, full_page: bool = False) -> None:
        params = {"format": "png", "captureBeyondViewport": full_page}
        path.write_bytes(base64.b64decode(self.send("Page.captureScreenshot", params, session=True)["data"]))

    def close(self) -> None:
        try:
            self.send("Browser.close")
        except (RuntimeError, OSError):
            pass
        try:
            self._process.wait(10)
        except subprocess.TimeoutExpired:
            self._process.kill()
        os.close(self._to_browser)
        os.close(self._from_browser)
        shutil.rmtree(self._profile, ignore_errors=True)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
