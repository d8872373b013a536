# One image per service, all from this file: docker-compose.yml chooses the
# service with the SERVICE build argument (orders, billing or notifications).
# Build context: the repository root.
FROM python:3.11-slim

ENV PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1 PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 \
    DATA_DIR=/data
WORKDIR /app

# Pinned dependencies first, in their own layer: it is rebuilt only when they
# change, and the three images share it (SERVICE is declared after it).
COPY requirements.txt constraints.txt ./
RUN pip install -c constraints.txt -r requirements.txt
RUN useradd --system --uid 10001 --no-create-home app && mkdir /data && chown app /data

COPY contracts/ contracts/
COPY generated/ generated/
COPY eventbus/ eventbus/
COPY services/__init__.py services/

ARG SERVICE
COPY services/${SERVICE}/ services/${SERVICE}/
RUN test -f "services/${SERVICE}/__main__.py" || \
    { echo "build with --build-arg SERVICE=orders|billing|notifications (got '${SERVICE}')" >&2; exit 1; }
ENV SERVICE=${SERVICE}

USER app

# exec: Python replaces the shell, so SIGTERM reaches it and it finishes its work.
CMD ["sh", "-c", "exec python -m \"services.$SERVICE\""]
