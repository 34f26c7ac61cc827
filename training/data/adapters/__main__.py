from emotion_ros_training.data.adapters import main

raise SystemExit(main())
