"""The shipped sample config is what oslo-config-generator makes from the options."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

SAMPLE = Path(__file__).resolve().parents[2] / "etc" / "entropy.conf.sample"


def test_sample_config_is_up_to_date(tmp_path: Path) -> None:
    generator = shutil.which("oslo-config-generator", path=str(Path(sys.executable).parent))
    assert generator, "oslo-config-generator is installed with oslo.config"
    out = tmp_path / "entropy.conf.sample"
    subprocess.run([generator, "--namespace", "entropy", "--output-file", str(out)], check=True)
    assert out.read_text() == SAMPLE.read_text(), (
        "etc/entropy.conf.sample is stale: run "
        "oslo-config-generator --namespace entropy --output-file etc/entropy.conf.sample"
    )
