"""Conversations: the course's own JSONL files, and Open-Assistant's message trees -> one thread per tree.

conversations   load_conversations, course_data_path, shared_data_dir      notebook 01
oasst           oasst1 rows or trees -> threads; split by tree              notebook 08
toy             toy_conversations, TASKS: tasks a small model learns on a CPU  notebook 07
"""

from .conversations import PROJECT_ROOT, course_data_path, load_conversations, shared_data_dir

__all__ = ["PROJECT_ROOT", "course_data_path", "load_conversations", "shared_data_dir"]
