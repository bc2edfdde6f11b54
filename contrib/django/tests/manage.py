#!/usr/bin/env python
"""`python tests/manage.py test` (from contrib/django): the same tests with Django's own runner."""
import os
import sys
from pathlib import Path

if __name__ == "__main__":
    app = Path(__file__).resolve().parent.parent
    sys.path.insert(0, str(app))
    # The test label "tests" is this package only from contrib/django (the repository root has
    # a tests/ folder of its own).
    os.chdir(app)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.settings")
    from django.core.management import execute_from_command_line

    argv = sys.argv
    if argv[1:2] == ["test"] and len(argv) == 2:
        argv = argv + ["tests"]
    execute_from_command_line(argv)
