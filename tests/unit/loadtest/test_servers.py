"""launch() and ServerProcess.stop() on a real (tiny, standard-library) HTTP server process."""

import os
import time

import httpx
import psutil

from loadtest.servers import launch

# Serves 200 on every GET at the port launch() appends, after starting a child that would
# outlive it if stop() did not kill the whole process group.
SERVE = """
import http.server, subprocess, sys
subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
class Ok(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200); self.end_headers(); self.wfile.write(b"ok")
    def log_message(self, *args):
        pass
http.server.HTTPServer(("127.0.0.1", int(sys.argv[-1])), Ok).serve_forever()
"""


def test_a_server_runs_in_this_session_in_its_own_process_group_and_stops_whole(tmp_path):
    server = launch(["-c", SERVE], tmp_path / "server.log", model="none",
                    ready_path="/", ready_timeout=60, poll_s=0.1)
    pid = server.process.pid
    try:
        assert httpx.get(server.base_url, timeout=10).text == "ok"
        # the same session (one autogroup: docs/deployment.md), a process group of its own
        assert os.getsid(pid) == os.getsid(0)
        assert os.getpgid(pid) == pid != os.getpgid(0)
        children = psutil.Process(pid).children()
        assert len(children) == 1
    finally:
        server.stop()
    assert server.process.poll() is not None
    deadline = time.monotonic() + 30  # only a guard: SIGKILL has been sent
    while not _ended(children[0]):  # killed with its group: it would otherwise sleep for 600 s
        assert time.monotonic() < deadline, "the server's child outlived it"
        time.sleep(0.05)


def _ended(process: psutil.Process) -> bool:
    try:
        return process.status() == psutil.STATUS_ZOMBIE  # killed, not yet reaped by init
    except psutil.NoSuchProcess:
        return True
