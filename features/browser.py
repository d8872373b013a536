"""Headless Chromium for the @browser scenarios: Debian's chromium and
chromedriver driven by selenium, started so that it reaches for nothing on the
network (the machine may have none) and keeps no state between runs."""

import shutil
import tempfile
from pathlib import Path

from selenium import webdriver
from selenium.webdriver.chrome.service import Service

SCREENSHOTS = Path(".run/browser")
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--window-size=1100,900",
)


def chromium() -> webdriver.Chrome:
    binary, driver = shutil.which("chromium"), shutil.which("chromedriver")
    if not (binary and driver):
        raise RuntimeError("chromium and chromedriver are needed: `make browser-test` installs them")
    options = webdriver.ChromeOptions()
    options.binary_location = binary
    for flag in (*FLAGS, f"--user-data-dir={tempfile.mkdtemp(prefix='event-driven-chromium-')}"):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})  # the console, for the page's errors
    return webdriver.Chrome(options=options, service=Service(executable_path=driver))
