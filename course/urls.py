"""HTTP routes of the course."""

from django.urls import path, re_path

from course import views, views_author, views_decide, views_quiz, views_search
from course.lessons import SLUG_PATTERN

app_name = "course"
urlpatterns = [
    path("", views.home, name="home"),
    # The lesson slug pattern, not <slug:>: no dots, underscores or capitals reach the view.
    re_path(rf"^lessons/(?P<slug>{SLUG_PATTERN})/$", views.lesson, name="lesson"),
    # Active learning: quizzes, progress, the decision tree, search, the authors' preview.
    re_path(
        rf"^lessons/(?P<slug>{SLUG_PATTERN})/quiz/(?P<quiz_id>{SLUG_PATTERN})/$",
        views_quiz.quiz_answer,
        name="quiz_answer",
    ),
    re_path(
        rf"^lessons/(?P<slug>{SLUG_PATTERN})/read/$", views_quiz.lesson_read, name="lesson_read"
    ),
    path("progress/reset/", views_quiz.progress_reset_view, name="progress_reset"),
    path("decide/", views_decide.decide, name="decide"),
    path("search/", views_search.search, name="search"),
    path("author/preview/", views_author.author_preview, name="author_preview"),
    path("instructor/", views_author.instructor_dashboard, name="instructor_dashboard"),
    path(
        "author/preview/render/", views_author.author_preview_render, name="author_preview_render"
    ),
]
