"""HTTP routes of the playground."""

from django.urls import path

from . import views, views_pair, views_runs, views_watch

app_name = "playground"
urlpatterns = [
    path("", views.index, name="index"),
    path("labs/", views.lab_start, name="lab_start"),
    path("labs/<str:lab_id>/", views.lab_detail, name="lab_detail"),
    path("pairs/<str:first>/<str:second>/", views_pair.pair_detail, name="pair_detail"),
    path("pairs/<str:first>/<str:second>/live/", views_pair.pair_live, name="pair_live"),
    path("pairs/<str:first>/<str:second>/both/", views_pair.pair_command, name="pair_command"),
    path("labs/<str:lab_id>/present/", views.lab_present, name="lab_present"),
    path("labs/<str:lab_id>/share/", views_watch.lab_share, name="lab_share"),
    path("labs/<str:lab_id>/unshare/", views_watch.lab_unshare, name="lab_unshare"),
    path("labs/<str:lab_id>/runs/", views_runs.run_save, name="run_save"),
    path("runs/<slug:slug>/", views_runs.run_detail, name="run_detail"),
    path("runs/<slug:slug>.json", views_runs.run_json, name="run_json"),
    path("runs/<slug:slug>.csv", views_runs.run_csv, name="run_csv"),
    path("runs/<slug:slug>/delete/", views_runs.run_delete, name="run_delete"),
]
