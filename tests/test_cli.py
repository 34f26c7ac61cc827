"""The project's entry point: `python -m emotion_ros <command>` as a user types it."""
import subprocess
import sys


def run(*args):
    return subprocess.run([sys.executable, "-m", "emotion_ros", *args], capture_output=True, text=True, timeout=300)


def test_summary_of_the_paper_profile_needs_no_weights():
    proc = run("summary", "--profile", "paper")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "LoRA r=64 alpha=16 on q_proj,v_proj" in proc.stdout
    assert "fusion tokens        64" in proc.stdout and "audio tokens         64" in proc.stdout


def _registered_commands() -> set[str]:
    """The subcommand names `python -m emotion_ros` really registers (its argparse subparsers)."""
    import argparse

    from emotion_ros.app.cli import build_parser

    subs = [a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction)]
    assert len(subs) == 1
    return set(subs[0].choices)


def test_every_documented_command_is_registered():
    import re
    from pathlib import Path

    registered = _registered_commands()
    assert registered >= {"launch", "node", "params", "demo", "summary", "benchmark", "import-official",
                          "replay", "record", "evaluate", "make-bag"}
    root = Path(__file__).resolve().parents[1]
    documented = set()
    for doc in [root / "README.md", *root.glob("docs/**/*.md"), *root.glob("scripts/*.sh")]:
        documented |= set(re.findall(r"python -m emotion_ros ([a-z][a-z-]*)", doc.read_text(errors="replace")))
    assert documented, "the README documents no command?"
    assert documented <= registered, f"documented but not registered: {sorted(documented - registered)}"
    proc = run("--help")
    assert proc.returncode == 0 and all(c in proc.stdout for c in registered)
