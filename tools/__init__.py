"""The contract tooling `make` runs, never the services: the compatibility gate
and release (`make contracts-check`, `make contracts-release`) and the AsyncAPI
document (`make generate`, `make docs`). It stands on eventbus; eventbus, and so
every service image, knows nothing of it."""
