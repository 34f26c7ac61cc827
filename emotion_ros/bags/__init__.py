"""Record, replay and evaluate rosbag2 sessions (MCAP/sqlite3) with the perception node or offline."""
