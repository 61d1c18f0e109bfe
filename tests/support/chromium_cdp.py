#!/usr/bin/env python3
"""chromium_cdp.py - load a page in headless Chromium (Debian's
/usr/bin/chromium) and drive it over the DevTools protocol, for the
dashboard tests. Nothing is downloaded: Chromium talks to this script over
a pipe (--remote-debugging-pipe: JSON messages, NUL-terminated, on fds 3
and 4), so no WebSocket library is needed.

  chromium_cdp.py --url URL --until JS_EXPR --collect JS_EXPR
                  [--screenshot FILE] [--timeout S] [--width W --height H]

Opens URL in a fresh profile (a temp --user-data-dir, removed after),
waits until JS_EXPR is truthy in the page (polled every 100 ms), then
prints one JSON object on stdout:
  {"value": <JSON.parse of the string --collect returns>,
   "requests": [every URL the page asked for],
   "exceptions": [uncaught exceptions], "console_errors": [...]}
and writes a PNG screenshot of the whole page to FILE. Exit 0; 1 with a
one-line reason on stderr (Chromium missing or dying, timeout, an error
from the protocol).
"""
import argparse
import base64
import fcntl
import json
import os
import select
import shutil
import subprocess
import sys
import tempfile
import time

FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
         "--no-first-run", "--disable-background-networking",
         "--disable-component-update", "--disable-sync",
         "--disable-default-apps", "--disable-extensions",
         "--no-default-browser-check", "--mute-audio",
         "--remote-debugging-pipe"]


class Browser:
    def __init__(self, exe, profile, timeout):
        # fds 3 (commands to Chromium) and 4 (its answers), as Chromium
        # expects them with --remote-debugging-pipe
        # (the child's ends are moved above 10 first, so that putting one
        # on 3 cannot overwrite the other)
        to_r, self.to_w = os.pipe()
        self.from_r, from_w = os.pipe()
        hi_r, hi_w = fcntl.fcntl(to_r, fcntl.F_DUPFD, 10), fcntl.fcntl(from_w, fcntl.F_DUPFD, 10)
        os.close(to_r)
        os.close(from_w)
        to_r, from_w = hi_r, hi_w

        def child_fds():
            os.dup2(to_r, 3)
            os.dup2(from_w, 4)

        self.log = open(os.path.join(profile, "chromium.log"), "wb")
        self.proc = subprocess.Popen(
            [exe] + FLAGS + ["--user-data-dir=" + profile, "about:blank"],
            stdin=subprocess.DEVNULL, stdout=self.log, stderr=self.log,
            preexec_fn=child_fds, pass_fds=(3, 4), close_fds=True)
        os.close(to_r)
        os.close(from_w)
        self.buf = b""
        self.next_id = 0
        self.events = []
        self.deadline = time.monotonic() + timeout

    def send(self, method, params=None, session=None):
        self.next_id += 1
        msg = {"id": self.next_id, "method": method, "params": params or {}}
        if session:
            msg["sessionId"] = session
        os.write(self.to_w, json.dumps(msg).encode() + b"\0")
        return self.next_id

    def recv(self):
        while b"\0" not in self.buf:
            left = self.deadline - time.monotonic()
            if left <= 0:
                raise RuntimeError("timed out waiting for Chromium")
            r, _, _ = select.select([self.from_r], [], [], min(left, 1.0))
            if not r:
                if self.proc.poll() is not None:
                    raise RuntimeError("Chromium exited (%d)" % self.proc.returncode)
                continue
            chunk = os.read(self.from_r, 1 << 20)
            if not chunk:
                raise RuntimeError("Chromium closed the pipe")
            self.buf += chunk
        msg, self.buf = self.buf.split(b"\0", 1)
        return json.loads(msg)

    def call(self, method, params=None, session=None):
        want = self.send(method, params, session)
        while True:
            m = self.recv()
            if m.get("id") == want:
                if "error" in m:
                    raise RuntimeError("%s: %s" % (method, m["error"].get("message")))
                return m.get("result", {})
            self.events.append(m)

    def close(self):
        try:
            self.send("Browser.close")
        except OSError:
            pass
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        os.close(self.to_w)
        os.close(self.from_r)
        self.log.close()


def evaluate(b, session, expr):
    r = b.call("Runtime.evaluate", {"expression": expr, "returnByValue": True,
                                    "awaitPromise": True}, session)
    if "exceptionDetails" in r:
        raise RuntimeError("evaluate %s: %s" % (expr[:60], r["exceptionDetails"].get("text")))
    return r.get("result", {}).get("value")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--url", required=True)
    ap.add_argument("--until", required=True)
    ap.add_argument("--collect", required=True)
    ap.add_argument("--screenshot")
    ap.add_argument("--timeout", type=float, default=60)
    ap.add_argument("--width", type=int, default=1400)
    ap.add_argument("--height", type=int, default=1600)
    ap.add_argument("--chromium", default=os.environ.get("CHROMIUM", "/usr/bin/chromium"))
    a = ap.parse_args()
    if not os.access(a.chromium, os.X_OK):
        sys.exit("chromium_cdp: %s not found (apt-get install chromium)" % a.chromium)
    profile = tempfile.mkdtemp(prefix="rg-chromium.")
    b = None
    try:
        b = Browser(a.chromium, profile, a.timeout)
        targets = b.call("Target.getTargets")["targetInfos"]
        page = next((t for t in targets if t["type"] == "page"), None)
        if page is None:
            page = {"targetId": b.call("Target.createTarget", {"url": "about:blank"})["targetId"]}
        s = b.call("Target.attachToTarget", {"targetId": page["targetId"],
                                             "flatten": True})["sessionId"]
        for dom in ("Page.enable", "Runtime.enable", "Network.enable", "Log.enable"):
            b.call(dom, None, s)
        b.call("Emulation.setDeviceMetricsOverride",
               {"width": a.width, "height": a.height, "deviceScaleFactor": 1,
                "mobile": False}, s)
        b.call("Emulation.setScrollbarsHidden", {"hidden": True}, s)
        b.call("Page.navigate", {"url": a.url}, s)
        while not evaluate(b, s, "Boolean(%s)" % a.until):
            if time.monotonic() > b.deadline:
                raise RuntimeError("timed out waiting for: %s" % a.until)
            time.sleep(0.1)
        value = json.loads(evaluate(b, s, a.collect))
        if a.screenshot:
            shot = b.call("Page.captureScreenshot", {"format": "png",
                                                     "captureBeyondViewport": True}, s)
            with open(a.screenshot, "wb") as f:
                f.write(base64.b64decode(shot["data"]))
        requests, exceptions, console = [], [], []
        for e in b.events:
            m, p = e.get("method"), e.get("params", {})
            if m == "Network.requestWillBeSent":
                requests.append(p["request"]["url"])
            elif m == "Runtime.exceptionThrown":
                d = p.get("exceptionDetails", {})
                exceptions.append(d.get("exception", {}).get("description") or d.get("text"))
            elif m == "Runtime.consoleAPICalled" and p.get("type") == "error":
                console.append(" ".join(str(x.get("value", x.get("description")))
                                        for x in p.get("args", [])))
            elif m == "Log.entryAdded" and p["entry"].get("level") == "error":
                console.append(p["entry"].get("text"))
        json.dump({"value": value, "requests": requests, "exceptions": exceptions,
                   "console_errors": console}, sys.stdout)
        sys.stdout.write("\n")
    except (RuntimeError, OSError, ValueError, KeyError) as e:
        log = ""
        try:
            with open(os.path.join(profile, "chromium.log"), "rb") as f:
                log = f.read()[-400:].decode(errors="replace").replace("\n", " | ")
        except OSError:
            pass
        sys.stderr.write("chromium_cdp: %s%s\n" % (e, ("; chromium: " + log) if log else ""))
        return 1
    finally:
        if b is not None:
            b.close()
        shutil.rmtree(profile, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
