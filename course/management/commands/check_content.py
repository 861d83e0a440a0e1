"""`manage.py check_content`: print each lesson problem as path:line: message; fail if any."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError

from course.checks import content_check


class Command(BaseCommand):
    help = "Check the lesson files: front matter, links, code languages, raw HTML, quizzes."

    def handle(self, *args: Any, **options: Any) -> None:
        problems = content_check()
        for problem in problems:
            self.stdout.write(str(problem))
        if problems:
            raise CommandError(f"{len(problems)} problem(s) in the lessons")
        self.stdout.write("The lessons have no problems.")
