"""Admin for instructors: raw quiz answers, readings and experiment runs (read-only), and
per-question stats to see what students miss. The figures are on /instructor/."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.db.models import Count, Q, QuerySet
from django.http import HttpRequest
from django.template.response import TemplateResponse

from course.models import ExperimentRecord, LessonReading, QuizAnswer, QuizQuestionStats


class ReadOnlyAdmin(admin.ModelAdmin):
    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(QuizAnswer)
class QuizAnswerAdmin(ReadOnlyAdmin):
    list_display = ["answered_at", "lesson_slug", "quiz_id", "correct", "choices", "session_hash"]
    list_filter = ["correct", "lesson_slug"]
    search_fields = ["lesson_slug", "quiz_id"]
    date_hierarchy = "answered_at"


@admin.register(LessonReading)
class LessonReadingAdmin(ReadOnlyAdmin):
    list_display = ["opened_at", "lesson_slug", "read_at", "session_hash"]
    list_filter = ["lesson_slug"]
    date_hierarchy = "opened_at"


@admin.register(ExperimentRecord)
class ExperimentRecordAdmin(ReadOnlyAdmin):
    list_display = ["started_at", "experiment_slug", "prediction", "held", "finished_at", "lab_id"]
    list_filter = ["experiment_slug", "held"]
    search_fields = ["lab_id", "experiment_slug"]
    date_hierarchy = "started_at"


def question_stats(answers: QuerySet[Any]) -> list[dict[str, Any]]:
    """One row per (lesson, quiz): learners who answered, attempts, share who got it right.

    Sorted with the most-missed questions first, which is what an instructor looks for.
    """
    rows = list(
        answers.order_by()
        .values("lesson_slug", "quiz_id")
        .annotate(
            learners=Count("session_hash", distinct=True),
            attempts=Count("id"),
            wrong_attempts=Count("id", filter=Q(correct=False)),
            learners_right=Count("session_hash", filter=Q(correct=True), distinct=True),
        )
    )
    for row in rows:
        row["share_right"] = row["learners_right"] / row["learners"] if row["learners"] else 0.0
        row["share_right_percent"] = round(100 * row["share_right"])
    rows.sort(key=lambda r: (r["share_right"], r["lesson_slug"], r["quiz_id"]))
    return rows


@admin.register(QuizQuestionStats)
class QuizQuestionStatsAdmin(ReadOnlyAdmin):
    """A changelist over an aggregate: the admin's filters apply, then answers are grouped."""

    change_list_template = "admin/course/quizquestionstats/change_list.html"
    list_filter = ["lesson_slug", ("answered_at", admin.DateFieldListFilter)]

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def changelist_view(
        self, request: HttpRequest, extra_context: dict[str, Any] | None = None
    ) -> Any:
        extra_context = {"title": "Quiz questions: what students miss", **(extra_context or {})}
        response = super().changelist_view(request, extra_context)
        if isinstance(response, TemplateResponse) and response.context_data:
            changelist = response.context_data.get("cl")
            if changelist is not None:
                response.context_data["question_stats"] = question_stats(changelist.queryset)
        return response
