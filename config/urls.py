"""Top-level routes: each app owns its own urls.py."""

from django.contrib import admin
from django.urls import include, path

from config.views import healthz
from playground import views_watch

handler500 = "config.views.server_error"

urlpatterns = [
    path("healthz", healthz, name="healthz"),
    path("admin/", admin.site.urls),
    path("playground/", include("playground.urls")),
    # Short, to be read aloud to a class: /watch/ABCD-EFGH/.
    path("watch/", views_watch.watch_find, name="watch_find"),
    path("watch/<str:code>/", views_watch.watch, name="watch"),
    path("", include("course.urls")),
]
