"""Top-level routes: each app owns its own urls.py."""

from django.contrib import admin
from django.urls import include, path

from config.views import healthz

handler500 = "config.views.server_error"

urlpatterns = [
    path("healthz", healthz, name="healthz"),
    path("admin/", admin.site.urls),
    path("playground/", include("playground.urls")),
    path("", include("course.urls")),
]
