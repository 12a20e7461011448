"""``python -m sft_utils.check_env``: is this environment ready for the course? See :mod:`sft_utils.course.check_env`."""

from .course.check_env import main

if __name__ == "__main__":
    raise SystemExit(main())
