"""HTTP routes of the playground."""

from django.urls import path

from . import views, views_pair, views_watch

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
]
