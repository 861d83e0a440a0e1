"""WebSocket routes of the playground."""

from django.urls import path

from . import consumers

websocket_urlpatterns = [
    path("ws/labs/<str:lab_id>/", consumers.LabConsumer.as_asgi()),
    path("ws/watch/<str:code>/", consumers.WatchConsumer.as_asgi()),
]
