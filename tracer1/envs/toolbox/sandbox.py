"""A sandbox for model-written Python: every run is a fresh interpreter in its own process, with hard limits.

    result = run_python("import math\\nprint(math.factorial(20))", timeout_s=10, memory_mb=512)
    result.ok, result.stdout, result.error     # True, "2432902008176640000\\n", None

Layers, outermost first (`Sandbox.layers` says which are active on this machine):

* ``process`` — a new interpreter (``python -I -S -B -u``: isolated mode, no site-packages, no bytecode
  writes) started by `subprocess` (never a fork of the caller), in a new session, with a scrubbed environment
  (PATH, LANG, HOME and TMPDIR only), stdin from /dev/null and a fresh private temp working directory that is
  removed afterwards. Inside it a supervisor forks the runner of the code into its own process group. The
  caller reads the output through pipes, capped at `max_output_bytes`; on the wall-clock timeout or when the
  cap is passed it asks the supervisor to kill the runner's group (SIGTERM), and SIGKILLs both groups when
  that does not end it within a second. Nothing the code does can raise in the caller.
* ``namespaces`` — when `unshare` (util-linux) works here: new network, PID and IPC namespaces. The network
  namespace has only a downed loopback: no network at all, not even the caller's localhost. The runner is PID 1
  of the PID namespace: when it ends or is killed, the kernel kills every process the code started, and the
  code sees no other process. As root this needs nothing else; as another user it needs unprivileged user
  namespaces (``unshare --user``), and the layer is left out where they are disabled.
* ``rlimits`` — set in the child before any model code is read or run: RLIMIT_CPU (SIGKILL at the limit),
  RLIMIT_AS (memory), RLIMIT_NPROC (processes of the sandbox's user), RLIMIT_FSIZE (largest file),
  RLIMIT_NOFILE (open files) and RLIMIT_CORE = 0; also no_new_privs (setuid programs grant nothing).
* ``unprivileged`` — when the caller is root, the child drops to nobody (65534) before the code runs, so file
  permissions apply to it and RLIMIT_NPROC is enforced (the kernel exempts root from it). The standard-library
  modules the code imports by name (and `PRELOAD`) are imported before the drop: with a Python installed under
  /root, nobody could not read them afterwards (modules imported only dynamically then fail to import there).
* ``audit-hook`` — `sys.addaudithook` in the runner: it blocks sockets and other network clients, process
  creation (fork, exec, spawn, os.system, subprocess, multiprocessing), signals to other processes, ctypes and
  other native-code modules, reading files outside the work directory and the standard library, writing,
  deleting, renaming or linking anything outside the work directory, opening directories (dir_fd escapes),
  crafted code objects and marshal, gc introspection and rlimit changes. A blocked action raises
  PermissionError in the code and is reported to the caller (`SandboxResult.blocked`); the run is then not ok.
  CPython's audit hooks are defence in depth, not a boundary (PEP 578): the OS layers above are the boundary
  wherever they are active, and the hook is what remains where they are not.

What is not covered: disk space inside the work directory is bounded only by RLIMIT_FSIZE per file and the time
limit; without the PID namespace, a process that escapes the audit hook and calls setsid() outlives the kill of
the runner's group until its CPU limit ends it; there is no seccomp filter.
"""

from __future__ import annotations

import json
import math
import os
import selectors
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

NOBODY = 65534
# When the child drops root privileges, it first imports these and every module the code names in an import
# statement (standard library only, blocked modules never): where the interpreter lives under a directory that
# nobody cannot read (a pyenv in /root), only modules imported before the drop are importable afterwards.
PRELOAD = ("traceback", "linecache", "_strptime", "encodings.idna")
_CHILD_SOURCE = (Path(__file__).with_name("_sandbox_child.py")).read_text(encoding="utf-8")
_SIGNAL_ERRORS = {signal.SIGXCPU: "CPU time limit {cpu} s exceeded",
                  signal.SIGXFSZ: "file size limit {fsize} MB exceeded"}


@dataclass(frozen=True)
class SandboxLimits:
    """The limits of one run. `cpu_s` defaults to the timeout rounded up plus one second (a backstop: the
    wall-clock timeout normally ends a busy loop first)."""

    timeout_s: float = 10.0
    memory_mb: int = 512
    cpu_s: int | None = None
    max_processes: int = 32
    max_file_mb: int = 16
    max_open_files: int = 64
    max_output_bytes: int = 64 * 1024
    max_stderr_bytes: int = 16 * 1024

    @property
    def cpu_limit(self) -> int:
        return self.cpu_s if self.cpu_s is not None else math.ceil(self.timeout_s) + 1


@dataclass
class SandboxResult:
    """How one run went. `error` is None exactly when `ok`; otherwise it says why in a few words
    ("timed out after 10 s", "memory limit 512 MB exceeded", "blocked: network access (socket.__new__)",
    "ZeroDivisionError: division by zero", ...)."""

    ok: bool
    stdout: str
    error: str | None
    exit_code: int | None
    duration_s: float
    stderr: str = ""
    timed_out: bool = False
    truncated: bool = False
    blocked: list[str] = field(default_factory=list)
    layers: tuple[str, ...] = ()


def _format_seconds(value: float) -> str:
    return f"{value:g}"


# --- which layers this machine supports ---------------------------------------------------------------------

_probe_lock = threading.Lock()
_probed: dict[tuple, list[str] | None] = {}


def _python() -> str:
    """The base interpreter (not a venv launcher): with -I -S the sandbox needs only the standard library."""
    base = getattr(sys, "_base_executable", None) or sys.executable
    return os.path.realpath(base if os.path.exists(base) else sys.executable)


def _namespace_prefix(python: str) -> list[str] | None:
    """The `unshare` command line that puts the child in new network/PID/IPC namespaces, or None when that does
    not work here (probed once per process and interpreter)."""
    root = os.geteuid() == 0
    key = (python, root)
    with _probe_lock:
        if key in _probed:
            return _probed[key]
        unshare = shutil.which("unshare", path="/usr/bin:/bin:/usr/sbin:/sbin")
        prefix = None
        if unshare is not None:
            flags = ["--net", "--pid", "--ipc"]   # no --fork: the supervisor's first child is PID 1
            candidate = [unshare, *flags] if root else [unshare, "--user", *flags]
            try:
                done = subprocess.run([*candidate, "--", python, "-I", "-S", "-c", "pass"], env=_base_env("/"),
                                      stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                      stderr=subprocess.DEVNULL, timeout=20, start_new_session=True)
                if done.returncode == 0:
                    prefix = [*candidate, "--"]
            except (OSError, subprocess.SubprocessError):
                prefix = None
        _probed[key] = prefix
        return prefix


def _base_env(work: str) -> dict[str, str]:
    return {"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8", "HOME": work, "TMPDIR": work}


# --- the sandbox ---------------------------------------------------------------------------------------------

class Sandbox:
    """Runs Python code under `limits`. `namespaces` None = use them when they work here; `audit_hook` and
    `drop_privileges` (root only) are on by default. Safe to use from several threads at once."""

    def __init__(self, limits: SandboxLimits | None = None, *, namespaces: bool | None = None,
                 audit_hook: bool = True, drop_privileges: bool = True, preload: tuple[str, ...] = PRELOAD,
                 python: str | None = None, workdir_root: str | None = None):
        self.limits = limits or SandboxLimits()
        self.python = python or _python()
        self.audit_hook = audit_hook
        self.drop_privileges = drop_privileges and os.geteuid() == 0
        self.preload = tuple(preload)
        self.workdir_root = workdir_root
        prefix = _namespace_prefix(self.python) if namespaces is not False else None
        if namespaces and prefix is None:
            raise RuntimeError("namespaces were asked for, but `unshare` cannot create them here")
        self._prefix = prefix or []

    @property
    def layers(self) -> tuple[str, ...]:
        """The active layers, outermost first (see the module docstring)."""
        layers = ["process"]
        if self._prefix:
            layers.append("namespaces")
        layers.append("rlimits")
        if self.drop_privileges:
            layers.append("unprivileged")
        if self.audit_hook:
            layers.append("audit-hook")
        return tuple(layers)

    def run(self, code: str, limits: SandboxLimits | None = None) -> SandboxResult:
        """Run `code` (a Python program; its stdout is the result). Never raises on anything the code does."""
        limits = limits or self.limits
        start = time.monotonic()
        try:
            return self._run(code, limits, start)
        except Exception as exc:  # the sandbox itself failed (no temp dir, no interpreter, ...)
            return SandboxResult(False, "", f"sandbox failed: {type(exc).__name__}: {exc}", None,
                                 time.monotonic() - start, layers=self.layers)

    def _run(self, code: str, limits: SandboxLimits, start: float) -> SandboxResult:
        work = tempfile.mkdtemp(prefix="tracer1-sandbox-", dir=self.workdir_root)
        read_status = write_status = None
        proc = None
        status = b""
        try:
            os.chmod(work, 0o700)
            code_path = os.path.join(work, "main.py")
            with open(code_path, "w", encoding="utf-8") as f:
                f.write(code)
            if self.drop_privileges:
                os.chown(work, NOBODY, NOBODY)
            read_status, write_status = os.pipe()
            cfg = {
                "work": os.path.realpath(work), "code_path": os.path.realpath(code_path), "status_fd": write_status,
                "cpu_s": limits.cpu_limit, "memory_bytes": limits.memory_mb << 20,
                "fsize_bytes": limits.max_file_mb << 20, "nofile": limits.max_open_files,
                "nproc": limits.max_processes, "audit": self.audit_hook, "preload": list(self.preload),
                "drop_uid": NOBODY if self.drop_privileges else None, "drop_gid": NOBODY,
                "subreaper": not self._prefix,
            }
            command = [*self._prefix, self.python, "-I", "-S", "-B", "-u", "-c", _CHILD_SOURCE, json.dumps(cfg)]
            proc = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                    stderr=subprocess.PIPE, cwd=work, env=_base_env(work), close_fds=True,
                                    pass_fds=(write_status,), start_new_session=True)
            os.close(write_status)
            write_status = None
            out, err, status, timed_out, overflow = _collect(proc, read_status, limits, start)
            exit_code = proc.returncode
        finally:
            if proc is not None:
                if proc.poll() is None or not _reaped(status):   # normally the supervisor reaped everything
                    _kill_group(proc, status)
                    proc.wait()
                for stream in (proc.stdout, proc.stderr):
                    if stream is not None:
                        stream.close()
            for fd in (read_status, write_status):
                if fd is not None:
                    os.close(fd)
            shutil.rmtree(work, onerror=_force_remove)
        duration = time.monotonic() - start
        return _result(out, err, status, exit_code, duration, timed_out, overflow, limits, self.layers)


def _collect(proc: subprocess.Popen, status_fd: int, limits: SandboxLimits, start: float):
    """Read stdout, stderr and the status pipe until they close, the deadline passes or stdout overflows."""
    deadline = start + limits.timeout_s
    out, err, status = bytearray(), bytearray(), bytearray()
    timed_out = overflow = False
    sel = selectors.DefaultSelector()
    sinks = {proc.stdout.fileno(): out, proc.stderr.fileno(): err, status_fd: status}
    for fd in sinks:
        os.set_blocking(fd, False)
        sel.register(fd, selectors.EVENT_READ)
    drain_until = None   # once the child has exited: a short grace to read what is left in the pipes
    try:
        while sinks:
            now = time.monotonic()
            if drain_until is None and proc.poll() is not None:
                drain_until = now + 0.25
            if drain_until is not None and now >= drain_until:
                break        # something the code left behind still holds a pipe open: it is killed below
            left = (deadline if drain_until is None else min(deadline, drain_until)) - now
            if left <= 0:
                timed_out = True
                break
            for key, _ in sel.select(timeout=min(left, 0.5)):
                fd = key.fd
                try:
                    chunk = os.read(fd, 1 << 16)
                except BlockingIOError:
                    continue
                if not chunk:
                    sel.unregister(fd)
                    del sinks[fd]
                    continue
                sink = sinks[fd]
                sink += chunk
                if sink is err and len(err) > 2 * limits.max_stderr_bytes:
                    del err[:len(err) - limits.max_stderr_bytes]   # keep the end: that is where tracebacks are
                elif sink is status and len(status) > 1 << 16:
                    del status[1 << 16:]
            if len(out) > limits.max_output_bytes:
                overflow = True
                break
    finally:
        sel.close()
    if timed_out or overflow:
        _stop(proc, status)
    try:
        proc.wait(timeout=max(1.0, deadline - time.monotonic() + 1.0))
    except subprocess.TimeoutExpired:
        _kill_group(proc, status)
        proc.wait()
    # the status pipe may still hold the supervisor's last words
    try:
        while True:
            chunk = os.read(status_fd, 1 << 16)
            if not chunk or len(status) > 1 << 16:
                break
            status += chunk
    except (BlockingIOError, OSError):
        pass
    return bytes(out), bytes(err[-limits.max_stderr_bytes:]), bytes(status), timed_out, overflow


def _reaped(status: bytes) -> bool:
    """Whether the supervisor reported the runner's end (it then killed and reaped the runner's group)."""
    return any(line.startswith("cpu\t") for line in _decode(status).splitlines())


def _runner_pid(status: bytes) -> int | None:
    for line in _decode(status).splitlines():
        kind, _, rest = line.partition("\t")
        if kind == "runner" and rest.strip().isdigit():
            return int(rest)
    return None


def _stop(proc: subprocess.Popen, status: bytes) -> None:
    """Ask the supervisor to kill the runner's process group and reap it (SIGTERM); if it has not exited
    within a second, SIGKILL both process groups. Killing in this order leaves no zombie behind."""
    if proc.poll() is not None:
        _kill_group(proc, status)
        return
    try:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=1.0)
    except (subprocess.TimeoutExpired, ProcessLookupError):
        _kill_group(proc, status)


def _kill_group(proc: subprocess.Popen, status: bytes = b"") -> None:
    """SIGKILL the runner's process group and the supervisor's (the child was started in a new session)."""
    runner = _runner_pid(status)
    for group in ([runner] if runner else []) + [proc.pid]:
        try:
            os.killpg(group, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass


def _force_remove(func, path, _exc_info) -> None:
    try:
        os.chmod(os.path.dirname(path), 0o700)
        if os.path.isdir(path) and not os.path.islink(path):
            os.chmod(path, 0o700)
            shutil.rmtree(path, ignore_errors=True)
        else:
            os.unlink(path)
    except OSError:
        pass


def _decode(data: bytes) -> str:
    return data.decode("utf-8", errors="replace")


def _result(out: bytes, err: bytes, status: bytes, exit_code: int | None, duration: float, timed_out: bool,
            overflow: bool, limits: SandboxLimits, layers: tuple[str, ...]) -> SandboxResult:
    blocked, memory, signals, failures, cpu_used = [], False, [], [], 0.0
    for line in _decode(status).splitlines():
        kind, _, rest = line.partition("\t")
        if kind == "blocked":
            category, _, detail = rest.partition("\t")
            blocked.append(f"{category} ({detail})" if detail else category)
        elif kind == "memory":
            memory = True
        elif kind == "signal" and rest.strip().isdigit():
            signals.append(int(rest))
        elif kind == "error":
            failures.append(rest)
        elif kind == "cpu":
            try:
                cpu_used = float(rest)
            except ValueError:
                pass
    stdout = _decode(out[:limits.max_output_bytes])
    stderr = _decode(err)
    last_line = stderr.strip().rsplit("\n", 1)[-1]
    if timed_out:
        error = f"timed out after {_format_seconds(limits.timeout_s)} s"
    elif overflow:
        error = f"output limit {limits.max_output_bytes} bytes exceeded"
    elif failures:
        error = f"sandbox failed: {failures[0]}"
    elif memory or (exit_code and "MemoryError" in last_line):
        error = f"memory limit {limits.memory_mb} MB exceeded"
    elif exit_code and "[Errno 27]" in last_line:    # EFBIG: CPython ignores SIGXFSZ
        error = f"file size limit {limits.max_file_mb} MB exceeded"
    elif blocked:
        error = f"blocked: {blocked[0]}"
    elif signals:
        number = signals[-1]
        if number == signal.SIGKILL and cpu_used >= limits.cpu_limit - 0.05:
            number = signal.SIGXCPU    # RLIMIT_CPU's hard limit ends the runner with SIGKILL
        template = _SIGNAL_ERRORS.get(number)
        if template:
            error = template.format(cpu=limits.cpu_limit, fsize=limits.max_file_mb)
        else:
            try:
                name = signal.Signals(number).name
            except ValueError:
                name = f"signal {number}"
            error = f"killed by {name}"
    elif exit_code:
        lines = [line for line in stderr.strip().splitlines() if line.strip()]
        error = lines[-1].strip() if lines else f"exited with code {exit_code}"
        if exit_code < 0:  # the interpreter (or unshare) itself died by a signal
            error = f"killed by {signal.Signals(-exit_code).name}" if -exit_code in signal.valid_signals() \
                else f"exited with code {exit_code}"
    else:
        error = None
    return SandboxResult(ok=error is None, stdout=stdout, error=error, exit_code=exit_code, duration_s=duration,
                         stderr=stderr, timed_out=timed_out, truncated=overflow, blocked=blocked, layers=layers)


_default: dict[tuple, Sandbox] = {}
_default_lock = threading.Lock()


def run_python(code: str, timeout_s: float = 10.0, memory_mb: int = 512, **limits) -> SandboxResult:
    """Run `code` in a default `Sandbox` (all available layers) with these limits."""
    with _default_lock:
        sandbox = _default.get(())
        if sandbox is None:
            sandbox = _default[()] = Sandbox()
    return sandbox.run(code, SandboxLimits(timeout_s=timeout_s, memory_mb=memory_mb, **limits))
