"""Scaffolding: a team repository (`choreograph init`) and a service in it (`new service`)."""
