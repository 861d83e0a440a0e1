"""What the course keeps in its database, for instructors' figures: quiz answers, lessons
opened and read to their end, experiments' predictions and outcomes.

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
    # The choice numbers ticked (1-based, as the form sends them); [] in rows kept before
    # they were recorded.
    choices = models.JSONField(default=list, blank=True)
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


class LessonReading(models.Model):
    """A browser session opened a lesson, and perhaps read it to its end: one row each."""

    lesson_slug = models.SlugField(max_length=100)
    session_hash = models.CharField(max_length=64)
    opened_at = models.DateTimeField()
    read_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["lesson_slug", "session_hash"], name="lesson_reading_once_per_session"
            )
        ]
        ordering = ["-opened_at"]

    def __str__(self) -> str:
        return f"{self.lesson_slug}: {'read' if self.read_at else 'opened'}"


class ExperimentRecord(models.Model):
    """One run of a lesson's experiment: the prediction at the start, its outcome once the
    run is done (written once: `finished_at` is set with it)."""

    lab_id = models.CharField(max_length=40, unique=True)
    lesson_slug = models.SlugField(max_length=100)
    experiment_slug = models.SlugField(max_length=100)
    session_hash = models.CharField(max_length=64)
    prediction = models.CharField(max_length=40, blank=True)  # as the card's form sent it
    started_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    held = models.BooleanField(null=True, blank=True)  # None: no prediction, or not judged
    figures = models.JSONField(null=True, blank=True)  # the measured figures, by name

    class Meta:
        indexes = [models.Index(fields=["experiment_slug"])]
        ordering = ["-started_at"]

    def __str__(self) -> str:
        return f"{self.experiment_slug} on lab {self.lab_id}"
