"""`import sampler` and the numpy-only paths must not pull in torch or transformers."""

import subprocess
import sys


def test_core_import_is_light():
    code = (
        "import sys, sampler, sampler.cheatsheet, sampler.cli\n"
        "sampler.softmax([1.0, 2.0])\n"
        "heavy = [m for m in ('torch', 'transformers', 'matplotlib') if m in sys.modules]\n"
        "print(','.join(heavy))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""
