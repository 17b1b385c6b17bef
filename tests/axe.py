"""axe-core for the page's accessibility scan: npm's ``axe-core``, the version pinned in
``scripts/install_browser.sh``, in ``~/.cache/sampler/npm`` (or ``$SAMPLER_NPM_PREFIX``).

Without it the scan fails with that instruction rather than skip, as tests/chromium.py does.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest

_INSTALLER = Path(__file__).resolve().parent.parent / "scripts" / "install_browser.sh"


def pinned_version() -> str:
    """The axe-core version ``scripts/install_browser.sh`` installs."""
    return re.search(r'^AXE_VERSION="([^"]+)"', _INSTALLER.read_text(), re.M).group(1)


def script_path() -> Path:
    """``axe.min.js`` of the pinned axe-core, installed by ``scripts/install_browser.sh``."""
    prefix = Path(os.environ.get("SAMPLER_NPM_PREFIX", Path.home() / ".cache/sampler/npm"))
    package = prefix / "node_modules" / "axe-core"
    version = pinned_version()
    try:
        found = json.loads((package / "package.json").read_text())["version"]
    except (OSError, ValueError, KeyError):
        found = None
    if found != version or not (package / "axe.min.js").is_file():
        pytest.fail(
            f"axe-core {version} is not in {prefix} (found {found or 'none'}): run "
            "`bash scripts/install_browser.sh` (README's test command; it needs npm)"
        )
    return package / "axe.min.js"


# axe's scan of the whole page: the violations, each with its rule, impact and elements.
RUN = """async () => {
  const result = await axe.run(document, { resultTypes: ["violations"] });
  return result.violations.map((v) => ({ id: v.id, impact: v.impact, help: v.help,
    targets: v.nodes.slice(0, 5).map((n) => n.target.join(" ") + " :: " + n.failureSummary) }));
}"""


def serious_violations(page) -> list[dict]:
    """axe-core's violations of impact serious or critical on ``page`` (axe injected here)."""
    page.add_script_tag(path=str(script_path()))
    return [v for v in page.evaluate(RUN) if v["impact"] in ("serious", "critical")]
