"""The headless Chromium behind MiniWoB++: finding it, starting it with our flags and profile, killing it.

Chromium and chromedriver are found at /usr/bin (override with TRACER1_CHROMIUM / TRACER1_CHROMEDRIVER); Selenium
Manager is never used. `miniwob` and `selenium` are imported only inside functions, so importing this module (and
the package) works where they are not installed; `miniwob_available()` says why MiniWoB++ cannot run.
"""

from __future__ import annotations

import functools
import http.client
import os
import shutil
import signal
import tempfile
from dataclasses import dataclass
from typing import Any

CHROMIUM = os.environ.get("TRACER1_CHROMIUM", "/usr/bin/chromium")
CHROMEDRIVER = os.environ.get("TRACER1_CHROMEDRIVER", "/usr/bin/chromedriver")
# Headless, no sandbox (we may run as root), and nothing that reaches for the network.
CHROME_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-dev-shm-usage")

# Without fonts Chromium lays text out with zero width: MiniWoB's text nodes vanish and typing goes astray.
_TEXT_WIDTH_JS = """
var s = document.createElement('span');
s.textContent = 'Wg';
document.body.appendChild(s);
var w = s.getBoundingClientRect().width;
s.remove();
return w > 0;
"""


class MiniWoBUnavailable(RuntimeError):
    """The miniwob package, Chromium or chromedriver is missing (the message says how to install it)."""


class BrowserNotReady(RuntimeError):
    """A MiniWoB page did not load or start its episode: treated like a dead browser (restart and replay)."""


def miniwob_available(chromium: str = CHROMIUM, chromedriver: str = CHROMEDRIVER) -> str | None:
    """None when MiniWoB++ can run here, else why not."""
    try:
        import miniwob  # noqa: F401
        import selenium  # noqa: F401
    except ImportError as exc:
        return f"{exc.name} is not installed (pip install miniwob)"
    for path, package in ((chromium, "chromium"), (chromedriver, "chromium-driver")):
        if not (os.path.isfile(path) and os.access(path, os.X_OK)):
            return f"{path} is missing (apt-get install -y {package})"
    return None


@functools.lru_cache(maxsize=1)
def miniwob_tasks() -> list[str]:
    """The MiniWoB++ tasks the installed package has (FlightWoB excluded)."""
    from miniwob.selenium_instance import HTML_DIR

    return sorted(p.stem for p in (HTML_DIR / "miniwob").glob("*.html"))


def browser_errors() -> tuple[type[BaseException], ...]:
    """Exceptions that mean the browser or its driver is gone (or hung), so a restart is the cure."""
    from selenium.common.exceptions import WebDriverException
    from urllib3.exceptions import HTTPError

    return (WebDriverException, HTTPError, http.client.HTTPException, ConnectionError, TimeoutError,
            BrowserNotReady)


@dataclass
class BrowserConfig:
    chromium: str = CHROMIUM
    chromedriver: str = CHROMEDRIVER
    headless: bool = True
    extra_flags: tuple[str, ...] = ()
    command_timeout: float = 30.0
    time_limit_ms: int | None = None  # MiniWoB's episode time limit; None: the task's own
    wait_ms: float = 0.0
    data_mode: str = "train"


def _pids_with(marker: str) -> list[int]:
    """Processes whose command line contains `marker` (Linux /proc; empty elsewhere)."""
    pids = []
    for entry in os.listdir("/proc") if os.path.isdir("/proc") else ():
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                if marker.encode() in f.read():
                    pids.append(int(entry))
        except OSError:
            continue
    return pids


@dataclass
class BrowserState:
    """The processes and profile of one browser. Kept apart from the env so `weakref.finalize` can kill them
    without holding the env alive. Every Chromium process carries the browser's own profile dir on its command
    line, which is how we find them all (renderers and helpers included)."""

    service: Any = None               # selenium's chromedriver Service
    user_data_dir: str | None = None

    def _chromium_pids(self) -> list[int]:
        return _pids_with(f"--user-data-dir={self.user_data_dir}") if self.user_data_dir else []

    def _driver_process(self):
        process = getattr(self.service, "process", None)
        return process if process is not None and process.poll() is None else None

    def pids(self) -> list[int]:
        """Every live Chromium process of this browser, and chromedriver."""
        driver = self._driver_process()
        return self._chromium_pids() + ([driver.pid] if driver is not None else [])

    def chromium_pid(self) -> int | None:
        """The main Chromium process (the browser, not a renderer or helper: those have `--type=`)."""
        for pid in self._chromium_pids():
            try:
                with open(f"/proc/{pid}/cmdline", "rb") as f:
                    args = f.read().split(b"\0")
            except OSError:
                continue
            if not any(a.startswith(b"--type=") for a in args):
                return pid
        return None

    def kill(self) -> None:
        """Kill chromedriver and every Chromium process of this browser, and delete its profile."""
        for pid in self.pids():
            try:
                os.kill(pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        process = getattr(self.service, "process", None)
        if process is not None:
            try:
                process.wait(timeout=5)  # reap it: no zombie left behind
            except Exception:  # noqa: BLE001 - best effort
                pass
        if self.user_data_dir:
            shutil.rmtree(self.user_data_dir, ignore_errors=True)
        self.service, self.user_data_dir = None, None


def make_backend(task: str, cfg: BrowserConfig, state: BrowserState):
    """A `miniwob` MiniWoBEnvironment for `task` whose SeleniumInstance starts our Chromium, records it in
    `state`, and can switch tasks in the same browser (classes are built here so that importing this module does
    not need miniwob)."""
    from miniwob.action import ActionSpaceConfig, ActionTypes
    from miniwob.constants import ALL_POSSIBLE_KEYS
    from miniwob.environment import MiniWoBEnvironment
    from miniwob.fields import get_field_extractor
    from miniwob.selenium_instance import SeleniumInstance
    from selenium import webdriver
    from selenium.common.exceptions import TimeoutException
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as EC
    from selenium.webdriver.support.wait import WebDriverWait

    class Instance(SeleniumInstance):
        def create_driver(self):
            state.user_data_dir = tempfile.mkdtemp(prefix="tracer1-miniwob-chromium-")
            options = webdriver.ChromeOptions()
            options.binary_location = cfg.chromium
            flags = [f for f in CHROME_FLAGS if cfg.headless or f != "--headless"]
            for flag in (*flags, *cfg.extra_flags, f"--user-data-dir={state.user_data_dir}"):
                options.add_argument(flag)
            service = Service(executable_path=cfg.chromedriver)  # an explicit path: Selenium Manager never runs
            state.service = service
            self.driver = webdriver.Chrome(service=service, options=options)
            # A headless window never has the OS focus, and newer Chromium (150) then fires no focus events, so
            # clicking a textbox does not focus it (focus-text cannot be solved): emulate a focused page.
            self.driver.execute_cdp_cmd("Emulation.setFocusEmulationEnabled", {"enabled": True})
            client = getattr(self.driver.command_executor, "_client_config", None)
            if client is not None:
                client.timeout = cfg.command_timeout  # a hung browser raises instead of blocking for minutes
            self.driver.set_page_load_timeout(cfg.command_timeout)
            self.driver.set_script_timeout(cfg.command_timeout)
            self.load_page()
            self.inner_width, self.inner_height = self.driver.execute_script(
                "return [window.innerWidth, window.innerHeight];")
            if not self.driver.execute_script(_TEXT_WIDTH_JS):
                raise MiniWoBUnavailable("Chromium renders no text: no fonts are installed "
                                         "(apt-get install -y fonts-liberation)")

        def load_page(self):
            self.driver.get(self.url)
            try:
                WebDriverWait(self.driver, 10).until(EC.element_to_be_clickable((By.ID, self.SYNC_SCREEN_ID)))
            except TimeoutException as exc:
                raise BrowserNotReady(f"MiniWoB page {self.url} did not load") from exc
            self.task_time_limit_ms = self.driver.execute_script("return core.EPISODE_MAX_TIME;")

        def switch_task(self, task: str):
            """Load another task's page in the same browser (miniwob itself starts a browser per task)."""
            self.url = self.url.rsplit("/", 1)[0] + f"/{task}.html"
            self.field_extractor = get_field_extractor(task)
            self.load_page()

        def begin_task(self, seed=None):
            limit = cfg.time_limit_ms if cfg.time_limit_ms is not None else self.task_time_limit_ms
            self.driver.execute_script(f"core.EPISODE_MAX_TIME = {int(limit)};")
            try:
                super().begin_task(seed)
            except RuntimeError as exc:  # "does not load properly"
                raise BrowserNotReady(str(exc)) from exc

    class Backend(MiniWoBEnvironment):
        def _hard_reset_instance(self):
            self.instance = Instance(index=0, **self.instance_kwargs)
            self.instance.start()

    action_config = ActionSpaceConfig.get_preset("all_supported")
    action_config.allowed_keys = ALL_POSSIBLE_KEYS
    backend = Backend(subdomain=task, action_space_config=action_config, wait_ms=cfg.wait_ms,
                      data_mode=cfg.data_mode)
    backend.action_types = ActionTypes
    return backend
