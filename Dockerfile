# One image for every asyncq process: compose services (or `docker run`) pick the CLI with the command,
# e.g. `docker run --rm asyncq producer --help`, `consumer -v`, `asyncq stats --json`.
#
#   docker build -t asyncq .                                  # dependencies from the package index
#   docker build --build-arg WHEELHOUSE=wheelhouse -t asyncq .  # offline, from ./wheelhouse
#                                                             # (scripts/provision-docker.sh fills it)
FROM python:3.11-slim-bookworm

# Empty: install from the index. A folder of the build context: install only from the wheels in it.
ARG WHEELHOUSE=""

# The venv keeps the image independent of where the base puts Python (/usr/local/bin in the official
# image, /usr/bin in Debian's), and PATH makes its console scripts the image's commands.
ENV VIRTUAL_ENV=/opt/venv \
    PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

RUN python3 -m venv /opt/venv \
    && groupadd --system --gid 10001 asyncq \
    && useradd --system --uid 10001 --gid asyncq --home-dir /nonexistent --no-create-home \
        --shell /usr/sbin/nologin asyncq

# Dependencies first, in their own layer: it is rebuilt only when pyproject.toml (or the wheelhouse) changes.
WORKDIR /src
COPY pyproject.toml ${WHEELHOUSE} /tmp/deps/
# The runtime dependencies and those of the extras listed in [tool.asyncq] image-extras (web, otel).
RUN python3 -c 'import tomllib; m = tomllib.load(open("/tmp/deps/pyproject.toml", "rb")); p = m["project"]; print("\n".join(p["dependencies"] + [d for e in m["tool"]["asyncq"]["image-extras"] for d in p["optional-dependencies"][e]]))' \
        > /tmp/deps/requirements.txt \
    && pip install --no-cache-dir ${WHEELHOUSE:+--no-index --find-links /tmp/deps} -r /tmp/deps/requirements.txt

COPY pyproject.toml README.md ./
COPY shared ./shared
COPY producer ./producer
COPY consumer ./consumer
RUN pip install --no-cache-dir --no-deps ${WHEELHOUSE:+--no-index --find-links /tmp/deps} . \
    && rm -rf /tmp/deps /src

WORKDIR /
USER 10001:10001
CMD ["asyncq", "--help"]
