#!/usr/bin/python3
"""cdp.py - clicks a like on `railgun serve`'s page in headless Chromium.

    cdp.py CHROMIUM URL VIDEO USER TIMEOUT_S [SCREENSHOT.png]

Starts Chromium headless (fresh --user-data-dir in a temp dir, no network
beyond the page's server, DevTools on a port it picks), loads URL (the page
with ?videos=...&user=USER), waits for video VIDEO's count, clicks its Like
button, and waits up to TIMEOUT_S seconds for the count to go up by one and
the button to read Unlike. Drives the page over the DevTools protocol
(python3-websocket, Debian). Prints one JSON line {before, after, seconds};
exit 0 when the count went up in time, 1 otherwise.
"""
import base64
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request

import websocket  # Debian python3-websocket


def main():
    chromium, url, video, user, timeout = sys.argv[1:6]
    shot = sys.argv[6] if len(sys.argv) > 6 else None
    timeout = float(timeout)
    profile = tempfile.mkdtemp(prefix="rg-chromium.")
    proc = subprocess.Popen(
        [chromium, "--headless", "--no-sandbox", "--disable-gpu",
         "--disable-quic", "--no-first-run", "--disable-background-networking",
         "--disable-component-update", "--disable-sync",
         "--disable-dev-shm-usage", "--user-data-dir=" + profile,
         "--remote-debugging-port=0", "--window-size=900,700", "about:blank"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        return drive(profile, url, video, user, timeout, shot)
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        shutil.rmtree(profile, ignore_errors=True)


class Page:
    def __init__(self, ws_url):
        self.ws = websocket.create_connection(ws_url, timeout=30)
        self.next_id = 0

    def call(self, method, **params):
        self.next_id += 1
        me = self.next_id
        self.ws.send(json.dumps({"id": me, "method": method,
                                 "params": params}))
        while True:
            msg = json.loads(self.ws.recv())
            if msg.get("id") == me:
                if "error" in msg:
                    raise RuntimeError("%s: %s" % (method, msg["error"]))
                return msg.get("result", {})

    def eval(self, expr):
        r = self.call("Runtime.evaluate", expression=expr, returnByValue=True)
        return r.get("result", {}).get("value")


def drive(profile, url, video, user, timeout, shot):
    # Chromium writes DevToolsActivePort before (or while) its DevTools
    # server starts listening: a port read too early can be empty, and the
    # first connections can be refused. Retry both until the deadline.
    port_file = os.path.join(profile, "DevToolsActivePort")
    deadline = time.monotonic() + 30
    targets, last = [], None
    while time.monotonic() < deadline and not targets:
        try:
            with open(port_file) as f:
                port = f.readline().strip()
            if not port.isdigit():
                raise OSError("DevToolsActivePort not written yet")
            with urllib.request.urlopen(
                    "http://127.0.0.1:%s/json/list" % port, timeout=5) as r:
                targets = [t for t in json.load(r) if t.get("type") == "page"]
        except (OSError, ValueError) as e:  # URLError is an OSError
            last = e
        if not targets:
            time.sleep(0.1)
    if not targets:
        print(json.dumps({"error": "Chromium's DevTools never answered: %s"
                          % last}))
        return 1
    page = Page(targets[0]["webSocketDebuggerUrl"])
    page.call("Page.enable")
    page.call("Runtime.enable")
    page.call("Page.navigate", url=url)
    count = "document.getElementById('count-%s')" % video
    button = "document.getElementById('btn-%s')" % video

    def number():
        v = page.eval("(%s || {}).textContent" % count)
        return int(v) if v is not None and v.strip().isdigit() else None

    before = None
    while time.monotonic() < deadline and before is None:
        before = number()
        ready = page.eval("!!%s && !%s.disabled" % (button, button))
        if before is None or not ready:
            before = None
            time.sleep(0.1)
    if before is None:
        print(json.dumps({"error": "the page never showed video %s" % video}))
        return 1
    label = page.eval("%s.textContent" % button)
    if label != "Like":
        print(json.dumps({"error": "button reads %r before the click" % label}))
        return 1
    t0 = time.monotonic()
    page.eval("%s.click()" % button)
    after, unlike = before, False
    while time.monotonic() - t0 < timeout:
        after = number()
        unlike = page.eval("%s.textContent" % button) == "Unlike"
        if after == before + 1 and unlike:
            break
        time.sleep(0.05)
    seconds = time.monotonic() - t0
    status = page.eval("document.getElementById('status').textContent")
    if shot:
        png = page.call("Page.captureScreenshot", format="png")["data"]
        with open(shot, "wb") as f:
            f.write(base64.b64decode(png))
    ok = after == before + 1 and unlike
    print(json.dumps({"before": before, "after": after, "unlike": unlike,
                      "seconds": round(seconds, 3), "status": status}))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
