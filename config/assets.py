"""`{% load assets %}{% asset "css/site.css" %}`: a static file's URL, asked of the storage
once per process instead of on every render.

Django's `{% static %}` asks the storage on every render (the installed-apps check, the
manifest, urljoin: about 85 Python calls), and base.html names seven files on every page.
A file's URL cannot change while the process runs (ManifestStaticFilesStorage reads its
manifest at start; the development storage adds no hash), so the answer is kept per path.
It can go when rendering `{% static %}` costs about as much (measure with `make bench`).
"""

from __future__ import annotations

from functools import cache

from django import template
from django.templatetags.static import static

register = template.Library()


@register.simple_tag
@cache
def asset(path: str) -> str:
    return static(path)
