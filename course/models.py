"""What the course keeps in its database: anonymous quiz answers, for instructors' stats.

No learner is identifiable here: a session is recorded only as a keyed hash of its key.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils.crypto import salted_hmac


def session_hash(session_key: str) -> str:
    """sha256 HMAC of a session key with SECRET_KEY: stable per learner, not reversible."""
    return salted_hmac(
        "course.QuizAnswer.session_hash",
        session_key,
        secret=settings.SECRET_KEY,
        algorithm="sha256",
    ).hexdigest()


class QuizAnswer(models.Model):
    lesson_slug = models.SlugField(max_length=100)
    quiz_id = models.SlugField(max_length=100)
    session_hash = models.CharField(max_length=64)
    correct = models.BooleanField()
    answered_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        indexes = [models.Index(fields=["lesson_slug", "quiz_id"])]
        ordering = ["-answered_at"]

    def __str__(self) -> str:
        verdict = "right" if self.correct else "wrong"
        return f"{self.lesson_slug}/{self.quiz_id}: {verdict}"


class QuizQuestionStats(QuizAnswer):
    """The admin's per-question view of answers: how many learners, what share got it right."""

    class Meta:
        proxy = True
        verbose_name = "quiz question stats"
        verbose_name_plural = "quiz question stats"
