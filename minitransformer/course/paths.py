"""Where the course's own folders are: the repository that holds this package (a clone, or an editable install).

The notebooks and the grader need `solutions/` and `chapters/`, which are not part of an installed package.
"""

from pathlib import Path

REPOSITORY = Path(__file__).resolve().parents[2]  # minitransformer/course/paths.py -> the repository
SOLUTIONS = REPOSITORY / "solutions"
CHAPTERS = REPOSITORY / "chapters"

