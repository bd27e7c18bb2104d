"""pideisn: PID 1 of the mvirt image."""
