"""A real headless Chromium, driven over the DevTools protocol: open a page, collect what it logs,
run a script in it, move the mouse, take a screenshot.

Chromium comes from the system (Debian's chromium-headless-shell or chromium; ``.ci/run`` installs
one). ``find_chromium`` says where; a test without one skips, except under ``CI=true``, where a
missing browser is a failure.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import socket
import subprocess
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest
import websocket

__all__ = ["Browser", "chromium_or_skip"]

_NAMES = ("chromium-headless-shell", "chromium", "chromium-browser", "google-chrome")


def chromium_or_skip() -> str:
    """The path of a Chromium to drive; skips the test when there is none (fails it under CI=true)."""
    found = next((path for name in _NAMES if (path := shutil.which(name))), None)
    if found is None:
        message = "no Chromium found (apt-get install chromium-headless-shell); .ci/run installs it"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    return found


class Browser:
    """One headless Chromium with one page (a context manager)."""

    def __init__(self, executable: str, *, width: int = 1200, height: int = 800) -> None:
        self.profile = tempfile.mkdtemp(prefix="embedsql-chromium-")
        port = _free_port()
        self.process = subprocess.Popen(
            [
                executable,
                "--headless",
                "--no-sandbox",  # CI runs as root, where Chromium's sandbox cannot start
                "--disable-dev-shm-usage",
                # WebGL without a GPU: SwiftShader, Chromium's own software renderer.
                "--use-angle=swiftshader",
                "--enable-unsafe-swiftshader",
                "--no-first-run",
                f"--remote-debugging-port={port}",
                f"--user-data-dir={self.profile}",
                f"--window-size={width},{height}",
                "about:blank",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        # No Origin header: Chromium refuses a DevTools client that claims one it was not told to allow.
        self.socket = websocket.create_connection(_page_socket(port, self.process), timeout=60, suppress_origin=True)
        self._id = 0
        self.events: list[dict[str, Any]] = []
        for domain in ("Page", "Runtime", "Log"):
            self.call(f"{domain}.enable")
        self.call("Emulation.setDeviceMetricsOverride", width=width, height=height, deviceScaleFactor=1, mobile=False)

    def __enter__(self) -> Browser:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        try:
            self.socket.close()
        finally:
            self.process.kill()
            self.process.wait()
            shutil.rmtree(self.profile, ignore_errors=True)

    def call(self, method: str, **params: Any) -> dict[str, Any]:
        """Send one command and return its result; events that arrive meanwhile are kept in ``events``."""
        self._id += 1
        self.socket.send(json.dumps({"id": self._id, "method": method, "params": params}))
        while True:
            message = json.loads(self.socket.recv())
            if message.get("id") == self._id:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error']}")
                return dict(message.get("result", {}))
            self.events.append(message)

    def open(self, path: Path) -> None:
        """Load the file at ``path`` and wait for its load event."""
        self.call("Page.navigate", url=path.resolve().as_uri())
        self.wait_for(lambda: any(e.get("method") == "Page.loadEventFired" for e in self.events), "the page to load")

    def evaluate(self, expression: str) -> Any:
        """The value of ``expression`` in the page (awaited when it is a promise)."""
        result = self.call("Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True)
        if "exceptionDetails" in result:
            raise RuntimeError(f"{expression}: {result['exceptionDetails']}")
        return result["result"].get("value")

    def wait_for(self, done: Any, what: str, *, seconds: float = 60) -> None:
        """Poll ``done()`` (reading events as they come) until it is true; fail after ``seconds``."""
        deadline = time.monotonic() + seconds
        while not done():
            if time.monotonic() > deadline:
                raise TimeoutError(f"waited {seconds} s for {what}")
            self.call("Runtime.evaluate", expression="0")  # lets pending events arrive
            time.sleep(0.05)

    def move_mouse(self, x: float, y: float) -> None:
        self.call("Input.dispatchMouseEvent", type="mouseMoved", x=x, y=y)

    def screenshot(self) -> bytes:
        """The page as a PNG."""
        return base64.b64decode(self.call("Page.captureScreenshot", format="png")["data"])

    def errors(self) -> list[str]:
        """What the page reported as errors: exceptions, console.error and error log entries."""
        found = []
        for event in self.events:
            method, params = event.get("method"), event.get("params", {})
            if method == "Runtime.exceptionThrown":
                found.append(json.dumps(params["exceptionDetails"]))
            elif method == "Runtime.consoleAPICalled" and params.get("type") in ("error", "assert"):
                found.append(json.dumps(params.get("args")))
            elif method == "Log.entryAdded" and params["entry"].get("level") == "error":
                found.append(params["entry"].get("text", ""))
        return found


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _page_socket(port: int, process: subprocess.Popen[bytes]) -> str:
    """The DevTools websocket of the browser's first page, once the browser answers."""
    deadline = time.monotonic() + 60
    while True:
        if process.poll() is not None:
            raise RuntimeError(f"Chromium exited with status {process.returncode} before it answered")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=5) as answer:
                pages = [t for t in json.load(answer) if t.get("type") == "page"]
            if pages:
                return str(pages[0]["webSocketDebuggerUrl"])
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise TimeoutError("Chromium did not open its DevTools port within 60 s")
        time.sleep(0.1)
