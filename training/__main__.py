"""`python -m emotion_ros_training <command> ...`: one entry point for the offline tools.

    python -m emotion_ros_training train    --recipe tiny --manifest M --stage 1 --out RUN     (emotion_ros_training.train)
    python -m emotion_ros_training evaluate --checkpoint RUN/stage2/final --manifest M        (emotion_ros_training.evaluate)
    python -m emotion_ros_training report   --recipe tiny --manifest M --out REPORT           (emotion_ros_training.report)
    python -m emotion_ros_training plots    RUN/stage1/metrics.jsonl --out loss.png           (emotion_ros_training.plots)
    python -m emotion_ros_training export   --checkpoint RUN/stage2/final --out DIR           (emotion_ros_training.export)
    python -m emotion_ros_training synth    --out DATA --num 100 --seed 0                      (emotion_ros_training.synth.generate)
"""
import importlib
import sys

COMMANDS = {"train": "emotion_ros_training.train", "evaluate": "emotion_ros_training.evaluate", "report": "emotion_ros_training.report",
            "plots": "emotion_ros_training.plots", "export": "emotion_ros_training.export", "synth": "emotion_ros_training.synth.generate"}


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] not in COMMANDS:
        print(__doc__, file=sys.stderr)
        return 0 if argv and argv[0] in ("-h", "--help") else 2
    return importlib.import_module(COMMANDS[argv[0]]).main(argv[1:]) or 0


if __name__ == "__main__":
    sys.exit(main())
