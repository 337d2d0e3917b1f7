# syntax=docker/dockerfile:1
# The REST service serving one serving bundle (python -m deep_learning_workflow.service).
#
#   kedro run                                  # or: kedro run --pipelines serving (writes the bundle)
#   docker build -t deep-learning-workflow .   # copies data/07_model_output/serving_bundle into the image
#   docker run --rm -p 8000:8000 deep-learning-workflow
#   curl localhost:8000/readyz
#
# Another bundle: docker build --build-arg BUNDLE=<folder under the build context> ... (and let it through
# .dockerignore). Settings: DLW_SERVICE_* variables at `docker run -e ...`; keep secrets such as a PostgreSQL
# password of DLW_SERVICE_LOG_URL out of the image (pass them at run time or through your orchestrator's secrets).

ARG PYTHON_IMAGE=python:3.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /build
RUN pip install "build~=1.2"
COPY pyproject.toml README.md ./
COPY src ./src
RUN python -m build --wheel --outdir /dist

FROM ${PYTHON_IMAGE}
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    KEDRO_DISABLE_TELEMETRY=1 \
    TF_CPP_MIN_LOG_LEVEL=2 \
    CUDA_VISIBLE_DEVICES=""
RUN groupadd --system --gid 10001 app \
    && useradd --system --uid 10001 --gid app --home-dir /app --shell /usr/sbin/nologin app
# The package's dependencies bring TensorFlow; its Linux wheel runs on the CPU (no CUDA libraries are installed).
COPY --from=build /dist/*.whl /tmp/wheels/
RUN pip install /tmp/wheels/*.whl && rm -rf /tmp/wheels
WORKDIR /app
COPY conf/base/service.yml conf/base/service.yml
ARG BUNDLE=data/07_model_output/serving_bundle
# Owned by root and read-only for the service: the manifest is verified at start-up.
COPY ${BUNDLE} /app/bundle
# The only writable place: the prediction log (mount a volume to keep it).
RUN mkdir -p /app/var && chown app:app /app/var
VOLUME ["/app/var"]
ENV DLW_SERVICE_BUNDLE=/app/bundle \
    DLW_SERVICE_HOST=0.0.0.0 \
    DLW_SERVICE_PORT=8000 \
    DLW_SERVICE_LOG_URL=sqlite:////app/var/prediction_log.sqlite
# Numeric, so that a runtime can check the user is not root without reading the image's /etc/passwd.
USER 10001:10001
EXPOSE 8000
# /readyz answers 200 only once the bundle is loaded and its manifest verified; loading TensorFlow takes a while.
HEALTHCHECK --interval=30s --timeout=5s --start-period=120s --retries=3 \
    CMD ["python", "-c", "import os, sys, urllib.request; url = 'http://127.0.0.1:' + os.environ.get('DLW_SERVICE_PORT', '8000') + '/readyz'; sys.exit(0 if urllib.request.urlopen(url, timeout=4).status == 200 else 1)"]
STOPSIGNAL SIGTERM
# Settings come from the DLW_SERVICE_* variables above, so `docker run -e DLW_SERVICE_...` can change them.
CMD ["python", "-m", "deep_learning_workflow.service"]
