"""Open a page in Debian's headless Chromium and ask it what it rendered (DevTools over a pipe).

`inspect_page(path)` loads a local HTML file, waits for its load event and returns the
page title, every image's source with its natural size as the browser decoded it, the page
height and a PNG screenshot. The DevTools protocol runs over `--remote-debugging-pipe`
(JSON messages ended by NUL on file descriptors 3 and 4), so no network port and no Python
package beyond the standard library is needed.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

CHROMIUM = "chromium"
# Flags that headless Chromium needs on a root, offline, display-less machine.
FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--hide-scrollbars", "--remote-debugging-pipe")
IMAGES_JS = ("JSON.stringify({title: document.title, height: document.documentElement.scrollHeight, "
             "images: Array.from(document.images).map(i => ({src: i.getAttribute('src'), complete: i.complete, "
             "width: i.naturalWidth, height: i.naturalHeight}))})")


def chromium_path() -> str | None:
    """The Chromium executable, or None when it is not installed."""
    return shutil.which(CHROMIUM)


class _DevTools:
    """Commands and replies of the DevTools protocol over Chromium's pipe."""

    def __init__(self, process: subprocess.Popen, to_browser: int, from_browser: int) -> None:
        self.process, self.out, self.inp = process, os.fdopen(to_browser, "wb"), os.fdopen(from_browser, "rb")
        self.next_id, self.events, self.unread, self.buffer = 0, [], [], b""

    def call(self, method: str, session: str | None = None, **params) -> dict:
        self.next_id += 1
        message = {"id": self.next_id, "method": method, "params": params}
        if session:
            message["sessionId"] = session
        self.out.write(json.dumps(message).encode() + b"\0")
        self.out.flush()
        while True:
            reply = self._next()
            if reply.get("id") == self.next_id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply.get("result", {})
            self.events.append(reply)

    def wait_event(self, name: str) -> dict:
        while True:
            for event in self.events:
                if event.get("method") == name:
                    self.events.remove(event)
                    return event
            self.events.append(self._next())

    def _next(self) -> dict:
        while not self.unread:
            chunk = self.inp.read1(65536)
            if not chunk:
                raise RuntimeError(f"Chromium closed the DevTools pipe (exit {self.process.poll()})")
            *complete, self.buffer = (self.buffer + chunk).split(b"\0")
            self.unread += [json.loads(m) for m in complete]
        return self.unread.pop(0)


def inspect_page(path: str | Path, width: int = 1200, height: int = 1600, timeout: float = 60.0) -> dict:
    """{"title", "height", "images": [{"src", "complete", "width", "height"}], "screenshot": PNG bytes}."""
    if chromium_path() is None:
        raise RuntimeError("Debian's chromium is not installed: run `make browser` (apt-get install chromium)")
    with tempfile.TemporaryDirectory() as profile:
        to_browser_r, to_browser_w = os.pipe()
        from_browser_r, from_browser_w = os.pipe()

        def child_fds() -> None:  # Chromium reads commands on fd 3 and writes replies on fd 4
            read, write = os.dup(to_browser_r), os.dup(from_browser_w)  # above 4, so dup2 cannot clobber them
            os.dup2(read, 3)
            os.dup2(write, 4)

        process = subprocess.Popen([chromium_path(), *FLAGS, f"--user-data-dir={profile}",
                                    f"--window-size={width},{height}"], preexec_fn=child_fds,
                                   pass_fds=(3, 4), stdout=subprocess.DEVNULL,
                                   stderr=subprocess.DEVNULL)
        os.close(to_browser_r)
        os.close(from_browser_w)
        tools = _DevTools(process, to_browser_w, from_browser_r)
        try:
            target = tools.call("Target.createTarget", url="about:blank")["targetId"]
            session = tools.call("Target.attachToTarget", targetId=target, flatten=True)["sessionId"]
            tools.call("Page.enable", session)
            tools.call("Page.navigate", session, url=Path(path).resolve().as_uri())
            tools.wait_event("Page.loadEventFired")
            found = json.loads(tools.call("Runtime.evaluate", session, expression=IMAGES_JS,
                                          returnByValue=True)["result"]["value"])
            shot = tools.call("Page.captureScreenshot", session, format="png")["data"]
            tools.call("Browser.close")
            process.wait(timeout=timeout)
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()
    return {**found, "screenshot": base64.b64decode(shot)}
