"""Course tooling: the exercises' checks, Colab links, the set-up check and the notebook runner.

exercises   sft_utils.exercises.check(exercise_id, answer)               notebooks 01-08 and 06b (their ends)
colab       colab_url(notebook), the badges and set-up cells             every notebook's first cells
finetune    notebook 08's settings and each cell's estimated GPU memory  notebook 08
check_env   python -m sft_utils.check_env                                README (set-up)
notebooks   python -m sft_utils.course.notebooks: run them all headless  README
"""
