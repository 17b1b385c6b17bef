"""`import sampler` and the numpy-only paths must not pull in torch or transformers, nor the
data extra (pandas, pyarrow), which only DataFrames and `export --format parquet` use, nor ray,
which only `sweep --ray` uses."""

import subprocess
import sys


def test_core_import_is_light():
    code = (
        "import sys, sampler, sampler.cheatsheet, sampler.cli, sampler.runlog\n"
        "import sampler.runlog.store, sampler.runlog.export\n"
        "sampler.softmax([1.0, 2.0])\n"
        "heavy = ('torch', 'transformers', 'matplotlib', 'pandas', 'pyarrow', 'ray')\n"
        "heavy = [m for m in heavy if m in sys.modules]\n"
        "print(','.join(heavy))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


def test_commands_without_a_torch_model_never_import_torch(tmp_path):
    # each command runs to the end in a fresh process; what it imported is read back after
    code = (
        "import sys\n"
        "from sampler.cli import cli\n"
        "code = 0\n"
        "try:\n"
        "    cli.main(args=sys.argv[1:], prog_name='sampler')\n"
        "except SystemExit as end:\n"
        "    code = end.code\n"
        "heavy = ('torch', 'transformers', 'pandas', 'pyarrow', 'ray')\n"
        "heavy = [m for m in heavy if m in sys.modules]\n"
        "print(f'EXIT={code} HEAVY=' + ','.join(heavy), file=sys.stderr)\n"
    )
    markov = "synthetic:markov?vocab=50&seed=1"
    db = str(tmp_path / "log.db")
    commands = [
        ["softmax"],
        ["chain", "3", "1", "0.2", "--top-k", "2"],
        ["verify", "--draws", "500", "--case", "cheat-sheet τ=1"],
        ["generate", "--model", markov, "--prompt", "kalo", "--max-new-tokens", "3", "--db", db],
        ["sweep", "--model", markov, "--prompt", "kalo", "--temperatures", "0,1", "--samples",
         "1", "--max-new-tokens", "3", "--db", db],
        ["runs", "--db", db],
        ["report", "latest", "--db", db],
        ["export", "latest", "--db", db],
        ["export", "latest", "--format", "csv", "--db", db],
    ]
    for command in commands:
        done = subprocess.run([sys.executable, "-c", code, *command], capture_output=True,
                              text=True, cwd=tmp_path)
        assert "EXIT=0 HEAVY=\n" in done.stderr, (command, done.stderr[-300:])
