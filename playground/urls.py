"""HTTP routes of the playground."""

from django.urls import path

from . import views, views_watch

app_name = "playground"
urlpatterns = [
    path("", views.index, name="index"),
    path("labs/", views.lab_start, name="lab_start"),
    path("labs/<str:lab_id>/", views.lab_detail, name="lab_detail"),
    path("labs/<str:lab_id>/present/", views.lab_present, name="lab_present"),
    path("labs/<str:lab_id>/share/", views_watch.lab_share, name="lab_share"),
    path("labs/<str:lab_id>/unshare/", views_watch.lab_unshare, name="lab_unshare"),
]
