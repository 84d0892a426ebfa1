"""Exercise checkers of notebooks 01-03, one module per notebook (`nb01_transformer`, ...).

Each `check_k(student_fn)` compares the student's function with the package's own implementation on
fixed inputs (via `minitransformer.teaching.exercises`): None = not attempted, True = correct, False = not yet.
The reference solutions live in `tests/solutions/`, where the tests run every checker against them.
"""
