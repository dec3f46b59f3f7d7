"""URL routes of the example site."""

from django.urls import path
from pages import views

urlpatterns = [
    path("", views.home, name="home"),
    path("health/", views.health, name="health"),
    path("counter/", views.counter, name="counter"),
    path("session/", views.session, name="session"),
    path("fragment/", views.fragment, name="fragment"),
    path("task/", views.start_task, name="task"),
    path("task/<str:task_id>/", views.task_status, name="task-status"),
]
