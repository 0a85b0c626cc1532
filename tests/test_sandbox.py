"""The Python sandbox: one test per hostile snippet, each contained and reported, the caller unharmed.

Every hostile test checks that the run failed with the right reason, that what it went for (a canary file, a
secret, a local server) is untouched, and that the caller can still fork and run processes. Limits are low
(1-3 s, a few processes) so the whole module takes seconds.
"""

import ast
import os
import socket
import subprocess
import threading
import time
from pathlib import Path

import pytest

from tracer1.envs.toolbox.sandbox import NOBODY, Sandbox, SandboxLimits, run_python

LIMITS = SandboxLimits(timeout_s=3.0, memory_mb=256)


@pytest.fixture(scope="module")
def sandbox():
    return Sandbox(LIMITS)


def _nobody_processes() -> list[int]:
    """Processes running as the sandbox's user (when the sandbox drops root to nobody)."""
    pids = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/status") as f:
                    for line in f:
                        if line.startswith("Uid:"):
                            if int(line.split()[1]) == NOBODY:
                                pids.append(int(entry))
                            break
            except OSError:
                continue
    return pids


@pytest.fixture
def parent_ok(sandbox):
    """After the test: the caller can still fork and run programs, and the sandbox left no process behind."""
    before = set(_nobody_processes())
    yield
    pid = os.fork()
    if pid == 0:
        os._exit(7)
    _, status = os.waitpid(pid, 0)
    assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 7
    assert subprocess.run(["true"], timeout=10).returncode == 0
    if "unprivileged" in sandbox.layers:
        deadline = time.monotonic() + 3
        while set(_nobody_processes()) - before and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not set(_nobody_processes()) - before, "the sandbox left processes behind"


def _blocked(result, category: str) -> None:
    assert not result.ok
    assert result.error is not None and result.error.startswith(f"blocked: {category}"), result.error
    assert any(b.startswith(category) for b in result.blocked)


# --- ordinary code ------------------------------------------------------------------------------------------

def test_ordinary_code_runs_and_prints(sandbox, parent_ok):
    result = sandbox.run("import math, json\nprint(math.factorial(10), json.dumps({'a': [1, 2]}))")
    assert result.ok and result.error is None and result.exit_code == 0
    assert result.stdout == '3628800 {"a": [1, 2]}\n'
    assert result.duration_s < LIMITS.timeout_s


def test_work_dir_is_private_writable_and_removed(sandbox, parent_ok):
    code = ("import os\nopen('notes.txt', 'w').write('kept')\nprint(os.getcwd())\n"
            "print(open('notes.txt').read())\nprint(sorted(os.listdir('.')))")
    result = sandbox.run(code)
    assert result.ok, result.error
    cwd, content, listing = result.stdout.splitlines()
    assert content == "kept" and "notes.txt" in listing
    assert not Path(cwd).exists()                       # removed afterwards
    assert Path(cwd).name.startswith("tracer1-sandbox-")


def test_exception_is_reported_by_its_last_line(sandbox, parent_ok):
    result = sandbox.run("def f():\n    return 1 / 0\nf()")
    assert not result.ok and result.exit_code == 1
    assert result.error == "ZeroDivisionError: division by zero"
    assert "main.py" in result.stderr and "line 2" in result.stderr


def test_environment_is_scrubbed(sandbox, parent_ok, monkeypatch):
    monkeypatch.setenv("TRACER1_TEST_SECRET", "hunter2")
    result = sandbox.run("import os\nprint(sorted(os.environ))\nprint(os.environ.get('TRACER1_TEST_SECRET'))")
    assert result.ok
    names, secret = result.stdout.splitlines()
    assert ast.literal_eval(names) == ["HOME", "LANG", "PATH", "TMPDIR"]
    assert secret == "None"


def test_run_python_uses_the_default_sandbox(parent_ok):
    result = run_python("print(sum(range(101)))", timeout_s=5, memory_mb=128)
    assert result.ok and result.stdout.strip() == "5050"
    assert result.layers[0] == "process" and "rlimits" in result.layers


# --- files ----------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("target", ["secret", "/etc/passwd"])
def test_reading_outside_the_work_dir_is_blocked(sandbox, parent_ok, tmp_path, target):
    secret = tmp_path / "secret.txt"
    secret.write_text("TOP-SECRET-VALUE")
    secret.chmod(0o644)
    path = str(secret) if target == "secret" else target
    result = sandbox.run(f"print(open({path!r}).read())")
    _blocked(result, "file access outside the sandbox")
    assert "TOP-SECRET-VALUE" not in result.stdout and "root:" not in result.stdout


def test_listing_outside_the_work_dir_is_blocked(sandbox, parent_ok, tmp_path):
    (tmp_path / "private-name.txt").write_text("x")
    result = sandbox.run(f"import os\nprint(os.listdir({str(tmp_path)!r}))")
    _blocked(result, "file access outside the sandbox")
    assert "private-name" not in result.stdout


@pytest.mark.parametrize("snippet", [
    "open(CANARY, 'w').write('pwned')",
    "open(CANARY, 'a').write('pwned')",
    "os.remove(CANARY)",
    "os.rename(CANARY, CANARY + '.moved')",
    "shutil.rmtree(DIR)",
    "os.chmod(CANARY, 0)",
    "os.symlink(CANARY, 'link')\nopen('link', 'w').write('pwned')",
    "fd = os.open(CANARY, os.O_WRONLY | os.O_TRUNC)\nos.write(fd, b'pwned')",
], ids=["write", "append", "remove", "rename", "rmtree", "chmod", "symlink", "os-open"])
def test_writing_or_deleting_outside_the_work_dir_is_blocked(sandbox, parent_ok, tmp_path, snippet):
    canary = tmp_path / "canary.txt"
    canary.write_text("alive")
    canary.chmod(0o666)
    tmp_path.chmod(0o777)    # so that only the sandbox, not file permissions, stands in the way
    code = f"import os, shutil\nCANARY = {str(canary)!r}\nDIR = {str(tmp_path)!r}\n{snippet}"
    result = sandbox.run(code)
    _blocked(result, "file access outside the sandbox")
    assert canary.read_text() == "alive"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["canary.txt"]
    tmp_path.chmod(0o700)


def test_file_size_is_limited(parent_ok):
    sandbox = Sandbox(SandboxLimits(timeout_s=5, max_file_mb=1))
    result = sandbox.run("f = open('big.bin', 'wb')\nwhile True:\n    f.write(b'x' * 65536)\n    f.flush()")
    assert not result.ok and result.error == "file size limit 1 MB exceeded"


# --- network --------------------------------------------------------------------------------------------------

class _Server:
    """A localhost TCP server that records every connection and every byte it receives."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.sock.settimeout(0.1)
        self.port = self.sock.getsockname()[1]
        self.connections, self.received = 0, b""
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self):
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            self.connections += 1
            conn.settimeout(1)
            try:
                self.received += conn.recv(1024)
            except OSError:
                pass
            conn.close()

    def close(self):
        time.sleep(0.2)
        self._stop.set()
        self._thread.join(2)
        self.sock.close()


@pytest.fixture
def server():
    s = _Server()
    yield s
    s.close()


def _connect_code(port: int) -> str:
    return (f"import socket\ns = socket.create_connection(('127.0.0.1', {port}), timeout=2)\n"
            f"s.sendall(b'exfiltrated')\nprint('sent')")


def test_sockets_are_blocked(sandbox, parent_ok, server):
    result = sandbox.run(_connect_code(server.port))
    _blocked(result, "network access")
    assert "sent" not in result.stdout
    server.close()
    assert server.connections == 0 and server.received == b""


def test_raw_socket_module_is_blocked_too(sandbox, parent_ok, server):
    result = sandbox.run(f"import _socket\ns = _socket.socket()\ns.connect(('127.0.0.1', {server.port}))")
    _blocked(result, "network access")
    server.close()
    assert server.connections == 0


def test_network_namespace_alone_keeps_the_server_unreached(parent_ok, server):
    sandbox = Sandbox(LIMITS, audit_hook=False)
    if "namespaces" not in sandbox.layers:
        pytest.skip("unshare cannot create namespaces here")
    result = sandbox.run(_connect_code(server.port))
    assert not result.ok and "sent" not in result.stdout
    assert "Network is unreachable" in result.error or "refused" in result.error, result.error
    server.close()
    assert server.connections == 0 and server.received == b""


def test_each_layer_is_needed_for_the_network(server):
    """Without the namespace and the hook the same code does reach the server: the layers are what block it."""
    result = Sandbox(LIMITS, namespaces=False, audit_hook=False).run(_connect_code(server.port))
    assert result.ok and result.stdout == "sent\n"
    server.close()
    assert server.received == b"exfiltrated"


# --- processes ------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("snippet", [
    "import os\nos.system('touch ' + MARKER)",
    "import subprocess\nsubprocess.run(['sh', '-c', 'touch ' + MARKER])",
    "import os\nos.execv('/bin/sh', ['sh', '-c', 'touch ' + MARKER])",
    "import os\nos.posix_spawn('/bin/sh', ['sh', '-c', 'touch ' + MARKER], {})",
    "import pty\npty.spawn(['sh', '-c', 'touch ' + MARKER])",
    "import multiprocessing\nmultiprocessing.Process(target=print).start()",
], ids=["os.system", "subprocess", "execv", "posix_spawn", "pty", "multiprocessing"])
def test_spawning_a_shell_or_process_is_blocked(sandbox, parent_ok, tmp_path, snippet):
    tmp_path.chmod(0o777)
    marker = tmp_path / "marker"
    result = sandbox.run(f"MARKER = {str(marker)!r}\n{snippet}")
    _blocked(result, "process creation")
    assert not marker.exists()
    tmp_path.chmod(0o700)


def test_fork_bomb_is_blocked(sandbox, parent_ok):
    result = sandbox.run("import os\nwhile True:\n    os.fork()")
    _blocked(result, "process creation")
    assert result.duration_s < LIMITS.timeout_s


def test_fork_bomb_without_the_hook_is_bounded_by_rlimit_nproc_and_killed(parent_ok):
    """With the audit hook off, a real fork bomb runs: RLIMIT_NPROC caps it (watched from outside) and the
    timeout kills all of it."""
    limit = 8
    sandbox = Sandbox(SandboxLimits(timeout_s=1.5, max_processes=limit), audit_hook=False)
    if "unprivileged" not in sandbox.layers or "namespaces" not in sandbox.layers:
        pytest.skip("needs root (to run the bomb as nobody, where RLIMIT_NPROC applies) and namespaces")
    baseline = len(_nobody_processes())
    peak = [0]
    done = threading.Event()

    def watch():
        while not done.is_set():
            peak[0] = max(peak[0], len(_nobody_processes()) - baseline)
            time.sleep(0.005)

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        result = sandbox.run("import os, time\nwhile True:\n    try:\n        os.fork()\n"
                             "    except OSError:\n        time.sleep(0.01)")
    finally:
        done.set()
        watcher.join()
    assert not result.ok and result.timed_out and result.error == "timed out after 1.5 s"
    assert result.duration_s < 4
    assert 2 <= peak[0] <= limit, peak[0]     # it did fork, and never past the limit


def test_signalling_other_processes_is_blocked(sandbox, parent_ok):
    result = sandbox.run("import os, signal\nos.kill(os.getppid(), signal.SIGKILL)\nos.kill(1, signal.SIGKILL)")
    _blocked(result, "sending signals")


def test_native_code_is_blocked(sandbox, parent_ok):
    result = sandbox.run("import ctypes\nctypes.CDLL(None).exit(0)")
    _blocked(result, "native code")


def test_interpreter_internals_are_blocked(sandbox, parent_ok):
    result = sandbox.run("import gc\nprint(len(gc.get_objects()))")
    _blocked(result, "interpreter internals")


@pytest.mark.parametrize("snippet", [
    "import os, posixpath\nposixpath.realpath = os.path.realpath = lambda p, **k: os.getcwd() + '/x'\n"
    "print(open('/etc/passwd').read())",
    "import builtins\nbuiltins.isinstance = lambda *a: True\nprint(open('/etc/passwd').read())",
    "import os\nclass S(str):\n    def startswith(self, *a): return True\n    def __str__(self): return 'x'\n"
    "print(open(S('/etc/passwd')).read())",
    "import sys\nsys.modules['__main__'].BLOCKED_MODULES.clear()\nimport ctypes",
    "class S(str):\n    def partition(self, *a): return ('math', '', '')\n__import__(S('ctypes'))",
    "import os\nfd = os.open('.', os.O_RDONLY)\nos.open('../../etc/passwd', os.O_RDONLY, dir_fd=fd)",
    "import marshal\nexec(marshal.loads(marshal.dumps(compile('1', 'x', 'exec'))))",
    "f = open('/proc/self/mem', 'r+b')",
], ids=["patched-realpath", "patched-builtins", "str-subclass", "cleared-blocklist", "import-subclass", "dir-fd",
        "marshal", "proc-mem"])
def test_tampering_does_not_talk_the_hook_out_of_blocking(sandbox, parent_ok, snippet):
    result = sandbox.run(snippet)
    assert not result.ok and result.error.startswith("blocked: "), result.error
    assert "root:" not in result.stdout


# --- time, memory, output -------------------------------------------------------------------------------------

@pytest.mark.parametrize("snippet", ["while True:\n    pass", "import time\ntime.sleep(60)"], ids=["busy", "sleep"])
def test_infinite_loop_times_out(parent_ok, snippet):
    sandbox = Sandbox(SandboxLimits(timeout_s=1.0))
    start = time.monotonic()
    result = sandbox.run(snippet)
    assert not result.ok and result.timed_out
    assert result.error == "timed out after 1 s"
    assert time.monotonic() - start < 3.5


def test_cpu_limit_ends_a_busy_loop(parent_ok):
    sandbox = Sandbox(SandboxLimits(timeout_s=8.0, cpu_s=1))
    result = sandbox.run("while True:\n    pass")
    assert not result.ok and not result.timed_out
    assert result.error == "CPU time limit 1 s exceeded"
    assert result.duration_s < 4


@pytest.mark.parametrize("snippet", ["x = bytearray(8 * 1024 ** 3)",
                                     "chunks = []\nwhile True:\n    chunks.append(bytearray(1 << 20))"],
                         ids=["one-huge", "growing"])
def test_huge_allocation_hits_the_memory_limit(sandbox, parent_ok, snippet):
    result = sandbox.run(snippet)
    assert not result.ok and result.error == "memory limit 256 MB exceeded"


def test_output_is_capped(parent_ok):
    sandbox = Sandbox(SandboxLimits(timeout_s=5, max_output_bytes=10_000))
    result = sandbox.run("while True:\n    print('x' * 100)")
    assert not result.ok and result.truncated
    assert result.error == "output limit 10000 bytes exceeded"
    assert 0 < len(result.stdout) <= 10_000


def test_a_bad_sandbox_reports_instead_of_raising():
    result = Sandbox(LIMITS, python="/nonexistent/python").run("print(1)")
    assert not result.ok and result.error.startswith("sandbox failed")


def test_concurrent_runs_stay_separate(sandbox, parent_ok):
    results = [None] * 4

    def run(i):
        results[i] = sandbox.run(f"import os\nopen('mine', 'w').write('{i}')\nprint(open('mine').read())")

    threads = [threading.Thread(target=run, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert [r.stdout.strip() for r in results] == ["0", "1", "2", "3"]


def test_layers_are_reported(sandbox):
    layers = sandbox.layers
    assert layers[0] == "process" and "rlimits" in layers and "audit-hook" in layers
    assert ("unprivileged" in layers) == (os.geteuid() == 0)
    assert Sandbox(LIMITS, namespaces=False, audit_hook=False).layers == tuple(
        x for x in layers if x not in ("namespaces", "audit-hook"))
