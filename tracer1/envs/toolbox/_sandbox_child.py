"""The sandbox's bootstrap: the program a fresh `python -I -S -B -u -c <this file's text> <config JSON>` runs.

It is not imported by tracer1; `sandbox.py` passes its source text to a new interpreter. Standard library only.

As the *supervisor* it (1) reads the model's code, (2) sets no_new_privs, (3) sets the resource limits,
(4) when it runs as root, imports the standard-library modules the code names (never a blocked one) and drops
to nobody, then (5) forks the *runner*, which puts itself in its own process group, installs the audit hook
and executes the code. Under `unshare --pid` the runner is PID 1 of the new PID namespace: when it ends, the
kernel kills everything the code started. The supervisor waits for the runner (on SIGTERM, the caller's
timeout, it kills the runner's group first), reaps what is left and reports on the status pipe, one
tab-separated line per event:
`runner<TAB>pid`, `blocked<TAB>category<TAB>detail`, `memory`, `cpu<TAB>seconds`, `signal<TAB>number`,
`error<TAB>message`.
"""

import json
import os
import signal
import sys
import time


def _report(fd, *fields):
    try:
        os.write(fd, ("\t".join(str(f).replace("\t", " ").replace("\n", " ") for f in fields) + "\n").encode())
    except OSError:
        pass


def _set_limits(cfg):
    import resource

    limits = [
        (resource.RLIMIT_AS, cfg["memory_bytes"]),
        (resource.RLIMIT_FSIZE, cfg["fsize_bytes"]),
        (resource.RLIMIT_NOFILE, cfg["nofile"]),
        (resource.RLIMIT_CORE, 0),
        (resource.RLIMIT_NPROC, cfg["nproc"]),
    ]
    for which, value in limits:
        _soft, hard = resource.getrlimit(which)
        value = value if hard == resource.RLIM_INFINITY else min(value, hard)
        resource.setrlimit(which, (value, value))
    # CPU: soft = hard, so the kernel sends SIGKILL at the limit (a PID-1 runner would ignore SIGXCPU); the
    # supervisor reports the runner's CPU time and the caller names the cause.
    _soft, hard = resource.getrlimit(resource.RLIMIT_CPU)
    cpu = cfg["cpu_s"] if hard == resource.RLIM_INFINITY else min(cfg["cpu_s"], hard)
    resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu))


def _drop_privileges(cfg):
    if os.getuid() != 0 or cfg.get("drop_uid") is None:
        return
    uid, gid = cfg["drop_uid"], cfg["drop_gid"]
    os.setgroups([])
    os.setgid(gid)
    os.setuid(uid)
    if os.getuid() == 0 or os.geteuid() == 0:
        raise OSError("could not drop root privileges")


# Modules whose import the runner may not start, by the category reported (a dotted name is blocked when its
# first part is). The hook keeps its own copy: this dict is reachable from the code through sys.modules.
BLOCKED_MODULES = {
    "ctypes": "native code", "_ctypes": "native code", "cffi": "native code", "_cffi_backend": "native code",
    "_testcapi": "native code", "_testinternalcapi": "native code", "_testbuffer": "native code",
    "_testmultiphase": "native code", "_testimportmultiple": "native code", "_testclinic": "native code",
    "_xxsubinterpreters": "native code", "_xxinterpchannels": "native code", "_xxtestfuzz": "native code",
    "_posixsubprocess": "process creation", "subprocess": "process creation",
    "multiprocessing": "process creation", "_multiprocessing": "process creation",
    "_posixshmem": "process creation", "pty": "process creation", "asyncio": "process creation",
    "_ssl": "network access", "ssl": "network access",
}


def _make_hook(status_fd, work, read_roots, read_files):
    """The audit hook: defence in depth inside the runner (CPython's audit hooks are not a security boundary;
    the OS layers are). It must not be talked out of a decision by the code it watches, so everything it uses
    is captured here: C functions and unbound str methods (a str subclass or a patched os.path, builtins or
    module cannot change what it computes), immutable data, and state only the hook can reach."""
    import _thread
    import stat as _stat_module

    write, lstat, stat, readlink, getcwd, fspath = os.write, os.lstat, os.stat, os.readlink, os.getcwd, os.fspath
    is_link, is_dir = _stat_module.S_ISLNK, _stat_module.S_ISDIR
    get_ident = _thread.get_ident
    _str, _bytes, _int, _tuple, _len, _isinstance, _bool = str, bytes, int, tuple, len, isinstance, bool
    as_str, startswith, endswith, split, join, partition, replace = (
        str.__str__, str.startswith, str.endswith, str.split, str.join, str.partition, str.replace)
    decode, encode = bytes.decode, str.encode
    fs_encoding = sys.getfilesystemencoding()
    denied = PermissionError
    set_add, set_discard = set.add, set.discard

    work = as_str(work).rstrip("/")
    read_roots = _tuple(as_str(r).rstrip("/") for r in read_roots)
    read_files = frozenset(as_str(f) for f in read_files)
    write_flags = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND
    busy = set()
    extension_suffixes = (".so", ".pyd", ".dylib")
    blocked_modules = dict(BLOCKED_MODULES)
    process = frozenset({"os.fork", "os.forkpty", "os.posix_spawn", "os.spawn", "os.exec", "os.system",
                         "subprocess.Popen", "os.startfile", "pty.spawn"})
    signals = frozenset({"os.kill", "os.killpg", "signal.pthread_kill"})
    network_other = frozenset({"urllib.Request", "http.client.connect", "http.client.send", "ftplib.connect",
                               "smtplib.connect", "nntplib.connect", "poplib.connect", "imaplib.open",
                               "telnetlib.Telnet.open", "webbrowser.open"})
    internals = frozenset({"code.__new__", "marshal.loads", "marshal.load", "gc.get_objects",
                           "gc.get_referrers", "gc.get_referents", "sys._current_frames",
                           "sys._current_exceptions", "resource.setrlimit", "resource.prlimit",
                           "sys.settrace", "sys.setprofile", "cpython.run_command"})
    # event -> (positions of paths the code writes, removes or renames; positions of dir_fd arguments)
    write_events = {
        "os.mkdir": ((0,), (2,)), "os.remove": ((0,), (1,)), "os.rmdir": ((0,), (1,)),
        "os.rename": ((0, 1), (2, 3)), "os.chmod": ((0,), (2,)), "os.chown": ((0,), (3,)),
        "os.truncate": ((0,), ()), "os.utime": ((0,), (3,)), "os.setxattr": ((0,), ()),
        "os.removexattr": ((0,), ()), "os.chflags": ((0,), ()), "os.mkfifo": ((0,), (2,)),
        "os.mknod": ((0,), (3,)), "shutil.rmtree": ((0,), (1,)), "shutil.copyfile": ((1,), ()),
        "shutil.copymode": ((1,), ()), "shutil.copystat": ((1,), ()), "shutil.copytree": ((1,), ()),
        "shutil.move": ((0, 1), ()), "shutil.chown": ((0,), ()), "shutil.unpack_archive": ((1,), ()),
        "shutil.make_archive": ((0,), ()),
    }
    read_events = {"os.listdir": (0,), "os.scandir": (0,), "os.getxattr": (0,), "os.listxattr": (0,),
                   "shutil.copyfile": (0,), "shutil.copytree": (0,), "shutil.copymode": (0,),
                   "shutil.copystat": (0,), "shutil.unpack_archive": (0,)}

    def text(path):
        """A plain str from a str, bytes or path-like (subclasses reduced to their data)."""
        if not _isinstance(path, (_str, _bytes)):
            path = fspath(path)
        if _isinstance(path, _bytes):
            return decode(_bytes(path), fs_encoding, "surrogateescape")
        return as_str(path)

    def resolve(path):
        """The absolute path with every symlink followed (lstat/readlink only; missing parts kept as they are)."""
        path = text(path)
        if not startswith(path, "/"):
            path = as_str(getcwd()) + "/" + path
        pending = [c for c in split(path, "/") if c and c != "."]
        done = []
        links = 0
        while pending:
            part = pending.pop(0)
            if part == "..":
                if done:
                    done.pop()
                continue
            candidate = "/" + join("/", done + [part])
            try:
                mode = lstat(candidate).st_mode
            except OSError:
                done.append(part)
                continue
            if is_link(mode):
                links += 1
                if links > 40:
                    raise denied("blocked by the sandbox: too many symbolic links")
                target = as_str(readlink(candidate))
                if startswith(target, "/"):
                    done = []
                pending = [c for c in split(target, "/") if c and c != "."] + pending
            else:
                done.append(part)
        return "/" + join("/", done)

    def inside(path, root):
        return path == root or startswith(path, root + "/")

    def may_write(path):
        return inside(path, work)

    def may_read(path):
        if inside(path, work) or path in read_files:
            return True
        for root in read_roots:
            if inside(path, root):
                return True
        return False

    def block(category, detail):
        line = "blocked\t" + category + "\t" + replace(replace(detail, "\t", " "), "\n", " ") + "\n"
        try:
            write(status_fd, encode(line, "utf-8", "replace"))
        except OSError:
            pass
        raise denied("blocked by the sandbox: " + category + " (" + detail + ")")

    def check_paths(args, positions, allowed, verb):
        for i in positions:
            if i >= _len(args) or args[i] is None or _isinstance(args[i], _int):
                continue
            path = resolve(args[i])
            if not allowed(path):
                block("file access outside the sandbox", verb + " " + path)
            if verb == "write" and endswith(path, extension_suffixes):
                block("native code", "writing a native library " + path)

    def hook(event, args):
        event = as_str(event)
        ident = get_ident()
        if ident in busy:
            return
        set_add(busy, ident)
        try:
            if event == "open":
                path, mode, flags = args
                if path is None or _isinstance(path, _int):
                    return
                resolved = resolve(path)
                writing = _bool((flags or 0) & write_flags) or (
                    _isinstance(mode, _str) and ("w" in as_str(mode) or "a" in as_str(mode)
                                                 or "x" in as_str(mode) or "+" in as_str(mode)))
                if writing:
                    if not may_write(resolved):
                        block("file access outside the sandbox", "write " + resolved)
                    if endswith(resolved, extension_suffixes):
                        block("native code", "writing a native library " + resolved)
                    return
                if endswith(resolved, ".pyc"):   # imports fall back to the source; no crafted bytecode
                    raise denied("the sandbox reads no bytecode files")
                if not may_read(resolved):
                    block("file access outside the sandbox", "read " + resolved)
                try:
                    directory = is_dir(stat(resolved).st_mode)
                except OSError:
                    directory = False
                if directory:                    # a directory fd would let dir_fd= paths escape the checks
                    block("file access outside the sandbox", "open directory " + resolved)
            elif event == "import":
                name = text(args[0]) if args and args[0] is not None else ""
                category = blocked_modules.get(partition(name, ".")[0]) or blocked_modules.get(name)
                if category:
                    block(category, "import " + name)
            elif startswith(event, "socket.") or event in network_other:
                block("network access", event)
            elif event in process:
                block("process creation", event)
            elif event in signals:
                block("sending signals", event)
            elif startswith(event, "ctypes."):
                block("native code", event)
            elif event in internals:
                block("interpreter internals", event)
            elif event == "os.symlink" or event == "os.link":
                block("file access outside the sandbox", event + " (links are not allowed)")
            elif event == "os.chdir":
                if args and not _isinstance(args[0], _int) and may_write(resolve(args[0])):
                    return
                block("file access outside the sandbox", "chdir")
            else:
                spec = write_events.get(event)
                if spec is not None:
                    paths, dir_fds = spec
                    for i in dir_fds:
                        if i < _len(args) and _isinstance(args[i], _int) and args[i] >= 0:
                            block("file access outside the sandbox", event + " with dir_fd")
                    check_paths(args, paths, may_write, "write")
                positions = read_events.get(event)
                if positions is not None:
                    check_paths(args, positions, may_read, "read")
        finally:
            set_discard(busy, ident)

    return hook


def _run_code(code, filename, status_fd):
    import builtins

    status = 0
    try:
        exec(compile(code, filename, "exec"), {"__name__": "__main__", "__builtins__": builtins})
    except SystemExit as exc:
        if exc.code is None:
            status = 0
        elif isinstance(exc.code, int):
            status = exc.code & 0xFF
        else:
            try:
                print(exc.code, file=sys.stderr)
            except Exception:
                pass
            status = 1
    except MemoryError:
        _report(status_fd, "memory")
        status = 1
    except BaseException as exc:
        try:
            import traceback

            traceback.print_exception(type(exc), exc, exc.__traceback__.tb_next)  # without this frame
        except BaseException:
            pass
        status = 1
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except BaseException:
            pass
    os._exit(status)


def _imported_names(code):
    """The absolute module names `code` imports (`import a.b`, `from a.b import c` -> a.b and a.b.c)."""
    import ast

    try:
        tree = ast.parse(code)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return []
    names = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.append(node.module)
            names += [f"{node.module}.{alias.name}" for alias in node.names if alias.name != "*"]
    return names[:200]


def _preload(names):
    """Import standard-library modules while the interpreter can still read them (before the drop to nobody).
    Only the standard library is on sys.path (-I -S), never the work directory, so no code of the model runs
    here; a guard refuses the blocked modules, so none of them is loaded behind the audit hook's back (a module
    that needs one, such as asyncio, is simply not preloaded)."""
    class Guard:
        @staticmethod
        def find_spec(name, path=None, target=None):
            if name in BLOCKED_MODULES or name.partition(".")[0] in BLOCKED_MODULES:
                raise ImportError(f"{name} is not available in the sandbox")
            return None

    sys.meta_path.insert(0, Guard)
    try:
        for name in names:
            if name.partition(".")[0] in BLOCKED_MODULES:
                continue
            try:
                __import__(name)
            except BaseException:
                pass
    finally:
        sys.meta_path.remove(Guard)


def _prctl_flags(cfg):
    """Best effort, before privileges are dropped: no_new_privs (setuid programs grant nothing) and, without a
    PID namespace, make the supervisor the subreaper of everything the code starts (so it can reap them)."""
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(38, 1, 0, 0, 0)          # PR_SET_NO_NEW_PRIVS
        if cfg.get("subreaper"):
            libc.prctl(36, 1, 0, 0, 0)      # PR_SET_CHILD_SUBREAPER
        del libc
    except Exception:
        pass
    for name in [m for m in sys.modules if m == "_ctypes" or m == "ctypes" or m.startswith("ctypes.")]:
        del sys.modules[name]


def _supervise(runner, status_fd):
    """Wait for the runner; on SIGTERM (the caller's timeout) kill its process group. Then kill and reap what
    is left, and report how the runner ended."""
    def stop(_signum, _frame):
        try:
            os.killpg(runner, signal.SIGKILL)
        except OSError:
            pass

    signal.signal(signal.SIGTERM, stop)
    while True:
        try:
            _pid, state, usage = os.wait4(runner, 0)
            break
        except InterruptedError:
            continue
        except ChildProcessError:
            state, usage = 0, None
            break
    stop(None, None)                         # stragglers in the runner's group
    give_up = time.monotonic() + 1.0
    while time.monotonic() < give_up:        # reap them (and, as subreaper, orphans)
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            break
        if pid == 0:
            time.sleep(0.01)
    if usage is not None:
        _report(status_fd, "cpu", f"{usage.ru_utime + usage.ru_stime:.3f}")
    if os.WIFSIGNALED(state):
        _report(status_fd, "signal", os.WTERMSIG(state))
        os._exit(128 + os.WTERMSIG(state))
    os._exit(os.WEXITSTATUS(state))


def _main():
    cfg = json.loads(sys.argv[1])
    status_fd = 3
    hook = None
    if cfg["status_fd"] != status_fd:
        os.dup2(cfg["status_fd"], status_fd)
        os.close(cfg["status_fd"])
    try:
        with open(cfg["code_path"], encoding="utf-8") as f:
            code = f.read()
        _prctl_flags(cfg)
        _set_limits(cfg)
        if cfg.get("drop_uid") is not None and os.getuid() == 0:
            _preload(list(cfg["preload"]) + _imported_names(code))
        if cfg["audit"]:
            read_roots = [os.path.dirname(os.__file__)]
            read_files = ["/dev/null", "/dev/urandom"]
            hook = _make_hook(status_fd, cfg["work"], read_roots, read_files)
        _drop_privileges(cfg)
    except Exception as exc:
        _report(status_fd, "error", f"{type(exc).__name__}: {exc}")
        os._exit(70)

    runner = os.fork()
    if runner == 0:
        # The runner: its own process group (with --pid it is PID 1 of the new PID namespace).
        try:
            os.setpgid(0, 0)
        except OSError:
            pass
        if hook is not None:
            sys.addaudithook(hook)
        del hook
        _run_code(code, cfg["code_path"], status_fd)
    del hook, code
    try:
        os.setpgid(runner, runner)
    except OSError:
        pass
    _report(status_fd, "runner", runner)
    _supervise(runner, status_fd)


_main()
