import sys

from emotion_ros.app.cli import main

sys.exit(main())
