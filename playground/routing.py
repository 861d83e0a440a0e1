"""WebSocket routes of the playground."""

from django.urls import path

websocket_urlpatterns: list = []
