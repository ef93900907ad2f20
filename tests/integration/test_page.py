"""The page in a real browser: Chromium records from a (fake) microphone, submits, and shows the answer.

It serves the committed demo model, so the screenshot is what a person sees: ``make screenshot-page`` runs this
test with ``SER_PAGE_SCREENSHOT=docs/gateway-page.png`` to write the README's.
"""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile

from conftest import kill_with_its_server
from ser_serve.clients.probes import wait_until_ready
from ser_serve.engines.torchserve.server import free_port

DEMO = Path(__file__).resolve().parents[2] / "models" / "demo"

pytestmark = [pytest.mark.integration,
              pytest.mark.skipif(not (shutil.which("chromium") and shutil.which("chromedriver")),
                                 reason="chromium and chromedriver are installed by `make test-tools` (as root)")]


def chromium(fake_microphone, downloads):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which("chromium")
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream",
                 f"--use-file-for-fake-audio-capture={fake_microphone}", f"--user-data-dir={downloads}",
                 "--window-size=900,760"):
        options.add_argument(flag)
    return webdriver.Chrome(service=Service(shutil.which("chromedriver")), options=options)


def test_recording_from_the_microphone_shows_every_label_and_the_dominant_one(tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ready
    from selenium.webdriver.support.ui import WebDriverWait

    from ser_train.synth import Speaker, utterance

    speech = utterance("happy", 2.5, Speaker(base_f0=190.0, tract_scale=1.1), np.random.default_rng(1), snr_db=35)
    soundfile.write(tmp_path / "microphone.wav", speech, 16_000)
    port = free_port()
    gateway = subprocess.Popen([sys.executable, "-m", "ser_serve.cli", "gateway", "--model-dir", str(DEMO),
                                "--port", str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    browser = None
    try:
        url = f"http://127.0.0.1:{port}"
        wait_until_ready(url, 120, lambda: gateway.poll() is None)
        browser = chromium(tmp_path / "microphone.wav", tmp_path / "profile")
        browser.get(url + "/")
        browser.find_element(By.ID, "record").click()
        WebDriverWait(browser, 10).until(ready.element_to_be_clickable((By.ID, "stop")))
        browser.implicitly_wait(0)
        import time

        time.sleep(2.5)  # record a little over two seconds of the fake microphone
        browser.find_element(By.ID, "stop").click()
        WebDriverWait(browser, 60).until(lambda b: b.find_element(By.ID, "dominant").text.strip())
        labels = [item.get_attribute("data-label") for item in browser.find_elements(By.CSS_SELECTOR, "#bars li")]
        assert sorted(labels) == sorted(json.loads((DEMO / "config.json").read_text())["id2label"].values())
        assert browser.find_element(By.ID, "dominant").text == labels[0]  # the first bar is the dominant label
        assert "Done: recording.webm" in browser.find_element(By.ID, "status").text
        screenshot = Path(os.environ.get("SER_PAGE_SCREENSHOT", tmp_path / "page.png"))
        browser.save_screenshot(str(screenshot))
        assert screenshot.stat().st_size > 10_000
    finally:
        if browser is not None:
            browser.quit()
        kill_with_its_server(gateway)
