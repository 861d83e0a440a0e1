"""HTTP routes of the playground."""

from django.urls import path

from . import views

app_name = "playground"
urlpatterns = [
    path("", views.index, name="index"),
    path("labs/", views.lab_start, name="lab_start"),
    path("labs/<str:lab_id>/", views.lab_detail, name="lab_detail"),
    path("labs/<str:lab_id>/runs/", views.run_save, name="run_save"),
    path("runs/<slug:slug>/", views.run_detail, name="run_detail"),
    path("runs/<slug:slug>.json", views.run_json, name="run_json"),
    path("runs/<slug:slug>.csv", views.run_csv, name="run_csv"),
    path("runs/<slug:slug>/delete/", views.run_delete, name="run_delete"),
]
