"""Grade submitted chapter notebooks: points per exercise, with a reason for every lost point.

    python -m minitransformer.course.grade SUBMISSION.ipynb ... --chapter 1 --csv grades.csv
    python -m minitransformer.course.grade chapters/01_mini_transformer.ipynb --chapter 1   # a learner, before submitting

Untrusted compute, trusted judge:
1. Each submission is (optionally) run top to bottom in a sandbox, only to record whether it runs.
2. Each exercise is graded by its check, which runs in this process (the judge) and never runs learner code:
   every call into the learner's functions and classes goes to a sandboxed child (server.py) that holds only
   the learner's definitions (no other statement of the submission), on inputs the judge drew from a hidden
   seed; the child returns plain data (wire.py) and the judge compares it with the references.
3. A submission that imports or names the library object doing its exercise (or the check and grading
   modules) scores 0 for it: "uses the library's reference for this exercise" (judge.py; tripwires in the
   sandbox catch the routes a static look misses).
4. The sandbox (sandbox.py): bubblewrap, read-only system and course, private /tmp, no network, own PIDs, no
   submissions, hidden tests or grades in view, limits on memory, CPU, files and processes.
5. Every submission gets a CSV row (report.py): points, total, participation (`predictions`), a similarity
   flag for review, duplicate names, the hidden seed, and the reasons.

Modules: submission (reading notebooks), sandbox and server (the two sides of the wall), wire (plain data),
judge (grading one submission), report (the CSV), run (the command, in parallel).
"""

from .run import Result, grade, hidden_paths, main, run_notebook
from .run import write_csv
from .submission import SOLUTIONS, Exercise, chapter_notebook, detect_chapter, exercises_of, learner_definitions

__all__ = ["SOLUTIONS", "Exercise", "Result", "chapter_notebook", "detect_chapter", "exercises_of", "grade",
           "hidden_paths", "learner_definitions", "main", "run_notebook", "write_csv"]
