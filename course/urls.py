"""HTTP routes of the course."""

app_name = "course"
urlpatterns: list = []
