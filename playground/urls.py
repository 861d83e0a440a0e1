"""HTTP routes of the playground."""

from django.urls import path

from . import views

app_name = "playground"
urlpatterns = [
    path("", views.index, name="index"),
    path("labs/", views.lab_start, name="lab_start"),
    path("labs/<str:lab_id>/", views.lab_detail, name="lab_detail"),
]
