"""Exercise checkers of the method notebooks (04 onwards), one module per notebook.

Each `check_k(student_fn)` compares the student's function with the package's own closed forms and name
filters (`minitransformer.teaching.exercises`): None = not attempted, True = correct, False = not yet. The reference
solutions live in `tests/solutions/`, where the tests run every checker against them and a wrong answer.
"""
