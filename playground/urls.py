"""HTTP routes of the playground."""

app_name = "playground"
urlpatterns: list = []
